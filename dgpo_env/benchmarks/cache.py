"""Where converted benchmark tables live, and how they are written safely."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import platformdirs

CACHE_ENV_VAR = "DGPO_CACHE_DIR"


def cache_dir() -> Path:
    """The cache directory: ``$DGPO_CACHE_DIR`` if set, else the user's cache dir for ``dgpo-env``."""
    override = os.environ.get(CACHE_ENV_VAR)
    path = Path(override) if override else Path(platformdirs.user_cache_dir("dgpo-env"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def save_npz_atomic(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write an ``.npz`` file atomically (temporary file, then rename), so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)  # type: ignore[arg-type]
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
