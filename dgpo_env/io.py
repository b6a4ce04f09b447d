"""Crash-safe file output: atomic writes, writable-directory checks and readable JSON.

A file written with :func:`atomic_write_bytes` or :func:`atomic_write_text` is either absent, its
previous version, or complete: the data goes to a temporary file in the same directory, which is
flushed, ``fsync``-ed and then renamed over the target with :func:`os.replace` (atomic on POSIX and
Windows within one file system); the directory is ``fsync``-ed afterwards so that the rename itself
survives a power loss. A reader never sees a half-written file, and an interrupted writer leaves at
most a hidden ``.<name>.*.tmp`` file behind (removed on any Python-level error).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = [
    "atomic_write_bytes",
    "atomic_write_text",
    "dumps_json",
    "ensure_writable_dir",
    "fsync_directory",
]


def fsync_directory(directory: str | os.PathLike[str]) -> None:
    """Flush a directory's entries (new, renamed or removed files) to disk.

    A no-op where directories cannot be opened (Windows) or do not support ``fsync``.

    Args:
        directory: The directory.
    """
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
    try:
        fd = os.open(directory, flags)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _new_file_mode() -> int:
    """Permission bits of a newly created regular file under this process's umask."""
    try:  # Linux >= 4.7 shows the umask without changing it (os.umask is not thread-safe)
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and durably.

    The temporary file lives in ``path``'s directory (so the final rename never crosses file
    systems); it gets the permissions of the file it replaces, or those of a new file under the
    umask (not ``tempfile``'s private 0600).

    Args:
        path: The target file; its directory must exist.
        data: The complete new contents.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        OSError: If the directory is missing or not writable, the disk is full, etc.; the target
            is then unchanged and the temporary file removed.
    """
    target = Path(path)
    try:
        mode = target.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = _new_file_mode()
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_directory(target.parent)
    return target


def atomic_write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically and durably (see :func:`atomic_write_bytes`).

    Args:
        path: The target file; its directory must exist.
        text: The complete new contents.
        encoding: Text encoding.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        OSError: As :func:`atomic_write_bytes`.
    """
    return atomic_write_bytes(path, text.encode(encoding))


def ensure_writable_dir(path: str | os.PathLike[str]) -> Path:
    """Create directory ``path`` (with parents) and check that a file can be written there.

    A probe file is written with :func:`atomic_write_bytes` and removed, so the check covers
    creating, renaming and deleting files, not only the directory's permission bits.

    Args:
        path: The directory.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        OSError: If the directory cannot be created or written; the message names the path and
            the operating system's reason.
    """
    directory = Path(path)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = atomic_write_bytes(directory / f".write-probe-{os.getpid()}", b"")
        probe.unlink()
    except OSError as err:
        raise OSError(err.errno, f"cannot write to {str(directory)!r}: {err.strerror or err}") from err
    return directory


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _is_leaf(value: Any) -> bool:
    """A scalar, or a list of scalars / of lists of scalars (printed on one line)."""
    if _is_scalar(value):
        return True
    if isinstance(value, list | tuple):
        return all(_is_scalar(v) or (isinstance(v, list | tuple) and all(map(_is_scalar, v))) for v in value)
    return isinstance(value, dict) and not value


def dumps_json(obj: Any, indent: int = 1, default: Callable[[Any], Any] | None = None) -> str:
    """JSON text like ``json.dumps(obj, indent=indent)``, but short arrays stay on one line.

    Arrays of scalars and arrays of such arrays (``[[1, 90.1], [7, 91.2]]``) are printed on one
    line, which keeps data files with many small arrays compact yet readable. Numbers are written
    as :func:`json.dumps` writes them (``repr`` of floats: exact round trip; ``NaN`` allowed).

    Args:
        obj: A JSON-ready value (dicts with string keys, lists, tuples, scalars).
        indent: Spaces per nesting level.
        default: As in :func:`json.dumps`, for values JSON cannot represent.

    Returns:
        The text, without a trailing newline.
    """

    def dump(value: Any, level: int) -> str:
        if not isinstance(value, dict | list | tuple) and default is not None and not _is_scalar(value):
            value = default(value)
        if _is_leaf(value):
            return json.dumps(value, default=default)
        inner = " " * (indent * (level + 1))
        if isinstance(value, dict):
            items = [f"{inner}{json.dumps(str(k))}: {dump(v, level + 1)}" for k, v in value.items()]
            return "{\n" + ",\n".join(items) + "\n" + " " * (indent * level) + "}"
        items = [f"{inner}{dump(v, level + 1)}" for v in value]
        return "[\n" + ",\n".join(items) + "\n" + " " * (indent * level) + "]"

    return dump(obj, 0)
