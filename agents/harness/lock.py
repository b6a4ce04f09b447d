"""One run per output directory: an operating-system lock held for the run's lifetime (see docs/harness.md).

``dgpo compare`` and the benchmark scripts that write comparisons (``benchmarks/query_efficiency.py``,
``benchmarks/multi_objective.py``) take :func:`output_dir_lock` on their output directory before they read
or write anything in it. A second run on the same directory at the same time is refused at once with
:class:`OutputDirBusyError` (it does not wait), instead of both writing the same store and one of them
failing halfway.

The lock is :class:`filelock.FileLock` on ``<directory>/.dgpo.lock`` (``flock`` on POSIX, ``msvcrt`` on
Windows; the package already comes with PyTorch). The operating system drops such a lock when the process
ends, however it ends, so a crashed or killed run leaves at most an unlocked, empty file that never blocks
the next run. Within one process the lock is re-entrant: a script holding it can call
:func:`~agents.harness.run_comparison` on the same directory. :func:`output_lock` is the same lock on a
file of the caller's choice, for a script whose output is one file and its store
(``benchmarks/reproduce_paper.py``: ``<out>.dgpo.lock`` beside ``<out>``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

LOCK_NAME = ".dgpo.lock"
"""File name of the lock inside an output directory."""

_LOCKS: dict[str, FileLock] = {}
_GUARD = threading.Lock()


class OutputDirBusyError(ValueError):
    """Another run (another process) holds the lock of an output directory (or output file)."""

    def __init__(self, directory: Path, lock_file: Path) -> None:
        super().__init__(
            f"{directory} is in use by another run (it holds the lock {lock_file}); wait for that run to finish "
            "or choose another --out"
        )
        self.directory = directory
        self.lock_file = lock_file


@contextmanager
def output_dir_lock(directory: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold the lock of output ``directory`` (created if needed) for the ``with`` block.

    Args:
        directory: The output directory.

    Yields:
        The lock file's path.

    Raises:
        OutputDirBusyError: At once (no waiting) if another process holds the lock.
        OSError: If the directory or the lock file cannot be created.
    """
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    with output_lock(path / LOCK_NAME, path) as lock_file:
        yield lock_file


@contextmanager
def output_lock(lock_file: str | os.PathLike[str], target: str | os.PathLike[str] | None = None) -> Iterator[Path]:
    """Hold the lock ``lock_file`` (created if needed; its directory must exist) for the ``with`` block.

    Args:
        lock_file: The lock file.
        target: What the lock guards, for the message (default: ``lock_file``'s directory).

    Yields:
        The lock file's path.

    Raises:
        OutputDirBusyError: At once (no waiting) if another process holds the lock.
        OSError: If the lock file cannot be created.
    """
    path = Path(lock_file)
    with _GUARD:  # one FileLock object per lock file and process: its counter makes it re-entrant
        lock = _LOCKS.setdefault(os.path.realpath(path), FileLock(path, thread_local=False))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise OutputDirBusyError(Path(target) if target is not None else path.parent, path) from None
    try:
        yield path
    finally:
        lock.release()


__all__ = ["LOCK_NAME", "OutputDirBusyError", "output_dir_lock", "output_lock"]
