"""Shared fixtures: isolated cache directory and the optional ../shared reference data."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
NB201_TABLE = SHARED_DATA / "nb201" / "nb201.npz"


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Point the benchmark cache at a per-session temporary directory (never the user's cache)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("DGPO_CACHE_DIR", str(tmp_path_factory.mktemp("dgpo-cache")))
    yield
    mp.undo()


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """The suite's models are tiny: they run fastest single-threaded (restored afterwards)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def nb201_table_path() -> Path:
    """Path of the extended NB201 table in ../shared; skips when it is absent."""
    if not NB201_TABLE.is_file():
        pytest.skip(f"reference data not present at {NB201_TABLE}")
    return NB201_TABLE
