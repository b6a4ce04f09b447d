"""The worker side of :class:`~agents.harness.executor.LocalExecutor` (see docs/harness.md).

A worker ignores SIGINT, dies with its parent (``PR_SET_PDEATHSIG`` on Linux plus a thread that
watches the parent's pid), runs the optional initializer, then answers jobs over its pipe. This module
imports nothing heavy, so a worker starts quickly.
"""

from __future__ import annotations

import ctypes
import os
import pickle
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from typing import Any

PARENT_POLL_S = 0.5
"""Seconds between a worker's checks that its parent is still alive (the fallback to PDEATHSIG)."""

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _watch_parent(parent_pid: int) -> None:
    """Exit this worker as soon as its parent is gone (the parent's pid is no longer ours)."""
    while True:
        time.sleep(PARENT_POLL_S)
        if os.getppid() != parent_pid:
            os._exit(1)


def _die_with_parent(parent_pid: int) -> None:
    """Make the kernel kill this process with SIGKILL when its parent dies; also watch from a thread."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent_pid,), name="watch-parent", daemon=True).start()


def worker_main(
    conn: Connection,
    parent_pid: int,
    initializer: Callable[..., Any] | None,
    initargs: tuple[Any, ...],
    max_jobs: int | None,
) -> None:
    """A worker's loop: receive ``(job_id, pickled (fn, args, kwargs))``, reply ``(status, job_id, payload, wall)``.

    ``None`` from the parent (or a closed pipe) ends the loop, as does reaching ``max_jobs``.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # usually inherited already (sigint_ignored)
    _die_with_parent(parent_pid)
    setup_error: str | None = None
    if initializer is not None:
        try:
            initializer(*initargs)
        except BaseException:
            setup_error = "the worker initializer failed:\n" + traceback.format_exc()
    done = 0
    while max_jobs is None or done < max_jobs:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        job_id, payload = message
        start = time.perf_counter()
        reply: tuple[str, str, Any, float]
        if setup_error is not None:
            reply = ("error", job_id, setup_error, 0.0)
        else:
            try:
                fn, args, kwargs = pickle.loads(payload)  # the parent's own job, sent over its private pipe
                reply = ("ok", job_id, fn(*args, **kwargs), time.perf_counter() - start)
            except BaseException:
                reply = ("error", job_id, traceback.format_exc(), time.perf_counter() - start)
        try:
            try:
                conn.send(reply)
            except (OSError, EOFError):
                raise
            except Exception:  # the value does not pickle
                conn.send(("error", job_id, "the job's result could not be sent back:\n" + traceback.format_exc(), 0.0))
        except (OSError, EOFError):
            return  # the parent is gone
        done += 1


@contextmanager
def sigint_ignored() -> Iterator[None]:
    """Ignore SIGINT while a worker is started, so that it starts with SIGINT ignored.

    An ignored signal stays ignored across ``exec``, and Python then installs no KeyboardInterrupt
    handler, so even a Ctrl-C during the worker's start-up does not reach it. The parent ignores
    SIGINT only for the few milliseconds of the start (a Ctrl-C exactly then is dropped). Only the
    main thread can change signal handlers; elsewhere this does nothing (the worker ignores SIGINT
    from its first line of code instead).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous is None:  # installed outside Python: could not be restored
        yield
        return
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


__all__ = ["PARENT_POLL_S", "sigint_ignored", "worker_main"]
