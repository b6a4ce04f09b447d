"""Shared fixtures: isolated cache directory, the optional ../shared reference data, a local Ray runtime,
a tiny NB201 diffusion model and an undo of harness method registrations."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

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


@pytest.fixture(scope="module")
def nb201_model() -> Any:
    """A tiny untrained NB201 diffusion model (``DiffusionModel``; the surrogate variants' tests)."""
    from agents.diffusion.denoiser import DenoiserConfig
    from agents.diffusion.model import DiffusionModel
    from dgpo_env.search_spaces import NB201SearchSpace

    tiny = DenoiserConfig(hidden_dim=16, edge_dim=8, n_layers=2, n_heads=2, time_dim=8)
    return DiffusionModel.create(NB201SearchSpace(), diffusion_steps=100, config=tiny, seed=0)


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Undo the harness method registrations a test makes."""
    from agents.harness import registry as harness_registry

    monkeypatch.setattr(harness_registry, "_REGISTRY", dict(harness_registry._REGISTRY))
    monkeypatch.setattr(harness_registry, "_RESOLVED", dict(harness_registry._RESOLVED))


GPFit = tuple[Any, Any, int]
"""``(x, y, n_counted)`` of one ``CellGP.fit`` call: a copy of its inputs and the count of queries then."""


@pytest.fixture
def gp_fits(monkeypatch: pytest.MonkeyPatch) -> Callable[[Callable[[], int]], list[GPFit]]:
    """Record every ``CellGP.fit``: call it with a function giving the queries counted so far."""

    def start(n_counted: Callable[[], int]) -> list[GPFit]:
        from agents.dgpo import cell_gp

        fits: list[GPFit] = []
        fit = cell_gp.CellGP.fit.__func__  # type: ignore[attr-defined]

        def spying_fit(cls: type, x: Any, y: Any, *args: Any) -> Any:
            fits.append((x.copy(), y.copy(), n_counted()))
            return fit(cls, x, y, *args)

        monkeypatch.setattr(cell_gp.CellGP, "fit", classmethod(spying_fit))
        return fits

    return start


@pytest.fixture(scope="module")
def ray_runtime() -> Iterator[None]:
    """A local Ray runtime of 2 CPUs for the requesting module, shut down afterwards (skips without Ray).

    Modules using it mark themselves ``xdist_group("ray")`` so that one runtime runs at a time.
    """
    try:
        import ray
    except ImportError:
        pytest.skip('needs the ray extra: pip install "dgpo-env[ray]"')
    if ray.is_initialized():
        ray.shutdown()
    # The workers import test modules and tests/harness_jobs.py by name, hence tests/ on their path.
    path = os.pathsep.join(p for p in (str(Path(__file__).parent), os.environ.get("PYTHONPATH")) if p)
    ray.init(
        address="local",  # a new instance of our own, even if a cluster runs on this machine
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
        runtime_env={"env_vars": {"PYTHONPATH": path}},
    )
    yield
    ray.shutdown()
