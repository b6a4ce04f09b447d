"""Where converted benchmark tables live, and how they are read and written safely.

A cache file is only ever a copy of data that can be rebuilt from its source, so a cache that
cannot be used never stops a run:

* a cache file that is unreadable (empty, truncated, not an ``.npz``), incomplete (a column
  missing) or inconsistent (shapes, identifiers or values its table cannot have) is rebuilt from
  the source, with a one-line :class:`CacheWarning`;
* a cache directory that cannot be created or written (no permission, full disk,
  ``DGPO_CACHE_DIR`` naming a file) leaves the converted data in memory for this process, with
  one :class:`CacheWarning` per directory naming ``DGPO_CACHE_DIR``.

Cache files are written with :func:`dgpo_env.io.atomic_write_bytes` (readers never see half a
file) and read with ``np.load(..., allow_pickle=False)`` (a cache file never runs code).
"""

from __future__ import annotations

import io
import os
import warnings
import zipfile
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import platformdirs

from dgpo_env.io import atomic_write_bytes

CACHE_ENV_VAR = "DGPO_CACHE_DIR"

_warned_dirs: set[str] = set()


class CacheWarning(UserWarning):
    """A benchmark cache file was damaged (and is rebuilt) or could not be written (data kept in memory)."""


def cache_dir() -> Path:
    """The cache directory: ``$DGPO_CACHE_DIR`` if set, else the user's cache dir for ``dgpo-env``.

    Raises:
        OSError: If the directory cannot be created (``FileExistsError`` when the path is a file).
    """
    path = _configured_dir()
    path.mkdir(parents=True, exist_ok=True)
    return path


def _configured_dir() -> Path:
    override = os.environ.get(CACHE_ENV_VAR)
    return Path(override) if override else Path(platformdirs.user_cache_dir("dgpo-env"))


def cache_file(name: str) -> Path | None:
    """``cache_dir() / name``, or ``None`` (after one warning) if the cache directory cannot be created."""
    try:
        return cache_dir() / name
    except OSError as err:
        _warn_unwritable(_configured_dir(), err)
        return None


def read_cache(path: Path | None, check: Callable[[dict[str, np.ndarray]], None]) -> dict[str, np.ndarray] | None:
    """The arrays of a cache file, or ``None`` if it is absent or cannot be used (then it is to be rebuilt).

    Args:
        path: The cache file (``None``: no cache directory, nothing to read).
        check: Raises ``ValueError`` (with the reason) if the arrays are incomplete or inconsistent.

    Returns:
        The arrays by name; ``None`` for a missing file, or after a one-line :class:`CacheWarning`
        for a file that is unreadable, incomplete or inconsistent.
    """
    if path is None or not path.exists():
        return None
    try:
        with path.open("rb") as fh:
            magic = fh.read(4)
        if magic != b"PK\x03\x04":
            raise ValueError("empty file" if not magic else "not an .npz archive")
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise ValueError("not an .npz archive")
        with data:
            arrays = {k: data[k] for k in data.files}
        check(arrays)
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        warnings.warn(
            f"damaged benchmark cache file {path} ({reason}); rebuilding it from the source",
            CacheWarning,
            stacklevel=3,
        )
        return None
    return arrays


def write_cache(path: Path | None, arrays: Mapping[str, np.ndarray]) -> bool:
    """Write a cache file atomically; if that fails, warn once per directory and keep going.

    Args:
        path: The cache file (``None``: no usable cache directory, nothing is written).
        arrays: The arrays to store (``.npz``, no pickled objects).

    Returns:
        Whether the file was written.
    """
    if path is None:
        return False
    if any(np.asarray(a).dtype.hasobject for a in arrays.values()):
        raise TypeError("cache arrays must not hold Python objects (they would need pickling)")
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, buffer.getvalue())
    except OSError as err:
        _warn_unwritable(path.parent, err)
        return False
    return True


def _warn_unwritable(directory: Path, err: OSError) -> None:
    key = str(directory)
    if key in _warned_dirs:
        return
    _warned_dirs.add(key)
    warnings.warn(
        f"cannot write the benchmark cache in {directory} ({type(err).__name__}: {err.strerror or err}); "
        f"using the converted data in memory (converted again by the next process); "
        f"fix: set {CACHE_ENV_VAR} to a writable directory",
        CacheWarning,
        stacklevel=3,
    )
