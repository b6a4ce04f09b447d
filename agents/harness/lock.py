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
:func:`~agents.harness.run_comparison` on the same directory.
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
    """Another run (another process) holds the output directory's lock."""

    def __init__(self, directory: Path, lock_file: Path) -> None:
        super().__init__(
            f"{directory} is in use by another run (it holds the lock {lock_file}); wait for that run to finish "
            "or choose another --out (output directory)"
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
    lock_file = path / LOCK_NAME
    with _GUARD:  # one FileLock object per directory and process: its counter makes it re-entrant
        lock = _LOCKS.setdefault(os.path.realpath(lock_file), FileLock(lock_file, thread_local=False))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise OutputDirBusyError(path, lock_file) from None
    try:
        yield lock_file
    finally:
        lock.release()


__all__ = ["LOCK_NAME", "OutputDirBusyError", "output_dir_lock"]
