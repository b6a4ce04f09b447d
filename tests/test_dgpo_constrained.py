"""Budget-aware DGPO: what its models learn from, the exact query budget, reproducibility, the harness method."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agents.compare import register_method, run_comparison
from agents.dgpo import PRESETS, make_dgpo
from agents.dgpo.constrained import ConstrainedConfig, ConstrainedDGPO, run_dgpo_constrained
from agents.diffusion.denoiser import DenoiserConfig
from agents.diffusion.model import DiffusionModel
from agents.harness import registry as harness_registry
from dgpo_env.benchmarks import ConstrainedBenchmark, NB201Benchmark
from dgpo_env.rewards import AccuracyUnderBudget
from dgpo_env.search_spaces import NB201SearchSpace

TINY = DenoiserConfig(hidden_dim=16, edge_dim=8, n_layers=2, n_heads=2, time_dim=8)
LATENCY_MS = 12.0


@pytest.fixture(scope="module")
def nb201_model() -> DiffusionModel:
    return DiffusionModel.create(NB201SearchSpace(), diffusion_steps=100, config=TINY, seed=0)


def constrained_benchmark() -> ConstrainedBenchmark:
    return ConstrainedBenchmark(NB201Benchmark("cifar10"), AccuracyUnderBudget(max_latency_ms=LATENCY_MS))


def run(model: DiffusionModel, benchmark: Any, seed: int, max_queries: int = 40, **kwargs: Any) -> ConstrainedDGPO:
    agent = make_dgpo(
        "constrained", model, None, benchmark=benchmark, n_envs=4, n_steps=3, batch_size=4, max_queries=max_queries,
        seed=seed, **kwargs,
    )  # fmt: skip
    agent.learn(10**6)
    assert isinstance(agent, ConstrainedDGPO)
    return agent


def test_the_models_learn_only_from_counted_queries(
    nb201_model: DiffusionModel, monkeypatch: pytest.MonkeyPatch, gp_fits: Callable[..., list[Any]]
) -> None:
    """Every accuracy fit is on counted feasible cells with their accuracies; every cost fit on counted cells."""
    benchmark = constrained_benchmark()
    plain = NB201Benchmark("cifar10")
    counted: dict[tuple[int, ...], tuple[float, float]] = {}  # ops -> (val acc as read, true latency in ms)
    query = benchmark.query

    def recording_query(cell: Any, rng: Any = None) -> Any:
        result = query(cell, rng)
        if result.key is not None:
            truth = plain.peek(cell)
            counted[tuple(cell.nodes[1:-1].tolist())] = (float(result.val_acc_mean), truth.latency_s * 1e3)
        return result

    monkeypatch.setattr(benchmark, "query", recording_query)
    fits = gp_fits(lambda: len(counted))
    agent = run(nb201_model, benchmark, seed=0)
    assert agent.n_queries == 40 == len(counted) == benchmark.n_queries  # the query budget, exactly
    assert agent.n_ranked_rounds > 0 and len(agent.costs) == 40
    assert agent.feasible_keys == {r.key for r in benchmark.history if r.val_acc_mean > 0.0}
    n_cost_fits = n_accuracy_fits = 0
    for x, y, n_counted in fits:
        assert len(x) <= n_counted
        rows = [counted[tuple(int(v) for v in row)] for row in x]  # KeyError: fitted on a cell never counted
        latency = np.log([ms for _, ms in rows])
        if np.allclose(y, latency):  # a cost model: every counted cell, over budget or not
            n_cost_fits += 1
        elif np.any(y):  # an accuracy model: feasible cells only, with their accuracies
            n_accuracy_fits += 1
            assert all(ms <= LATENCY_MS for _, ms in rows)
            np.testing.assert_allclose(y, [acc for acc, _ in rows])
    assert n_cost_fits >= agent.n_ranked_rounds and n_accuracy_fits > 0


def test_feasibility_ranks_cheap_cells_above_expensive_ones(nb201_model: DiffusionModel) -> None:
    agent = run(nb201_model, constrained_benchmark(), seed=1)
    free = NB201SearchSpace().free_positions
    known = list(agent.costs)
    x = np.stack([agent.archive.cells[key][free] for key in known])
    probability = agent.feasibility(x, known, [LATENCY_MS])
    assert np.all((probability >= 0.0) & (probability <= 1.0))
    feasible = np.array([key in agent.feasible_keys for key in known])
    assert feasible.any() and (~feasible).any()
    assert probability[feasible].mean() > probability[~feasible].mean() + 0.3


def test_a_constrained_agent_saves_and_loads_its_costs(nb201_model: DiffusionModel, tmp_path: Path) -> None:
    agent = run(nb201_model, constrained_benchmark(), seed=2, max_queries=20, acquisition="ei")
    agent.save(tmp_path / "constrained")
    loaded = ConstrainedDGPO.load(tmp_path / "constrained", env=agent.get_env())
    assert loaded.constrained == agent.constrained and loaded.feasible_keys == agent.feasible_keys
    assert loaded.costs.keys() == agent.costs.keys()
    assert all(np.array_equal(loaded.costs[key], value) for key, value in agent.costs.items())


def test_runs_reproduce_and_without_a_budget_it_is_the_surrogate_preset(nb201_model: DiffusionModel) -> None:
    def history(preset: str, benchmark: Any, seed: int) -> list[str]:
        agent = make_dgpo(
            preset, nb201_model, None, benchmark=benchmark, n_envs=4, n_steps=3, batch_size=4, max_queries=30,
            seed=seed,
        )  # fmt: skip
        agent.learn(10**6)
        return [r.key for r in benchmark.history]

    first = history("constrained", constrained_benchmark(), 3)
    assert history("constrained", constrained_benchmark(), 3) == first
    assert history("constrained", constrained_benchmark(), 4) != first
    plain = history("constrained", NB201Benchmark("cifar10"), 3)
    assert plain == history("surrogate", NB201Benchmark("cifar10"), 3) != first


def test_settings_are_checked(nb201_model: DiffusionModel) -> None:
    preset = PRESETS["constrained"]
    assert preset.algorithm is ConstrainedDGPO and preset.surrogate == PRESETS["surrogate"].surrogate
    agent = make_dgpo("constrained", nb201_model, "dgpo_env/NB201-CIFAR10-v0", n_steps=2, acquisition="ei")
    assert agent.constrained == ConstrainedConfig(acquisition="ei") and agent.settings_dict()["acquisition"] == "ei"
    assert agent.budget is None  # the registered environment has no budget
    with pytest.raises(ValueError, match="acquisition must be 'ei' or 'ucb', got 'pi'"):
        ConstrainedConfig(acquisition="pi")
    with pytest.raises(ValueError, match=r"feasible_after must be an int >= 2, got 1"):
        ConstrainedConfig(feasible_after=1)
    with pytest.raises(TypeError, match="graded must be a bool"):
        run_dgpo_constrained({"name": "toy"}, 0, 10, graded="yes")  # type: ignore[arg-type]


def test_dgpo_constrained_runs_in_a_comparison_under_a_latency_budget(
    nb201_model: DiffusionModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The registered method in the comparison engine, with a budget, on a tiny untrained model (seconds)."""
    monkeypatch.setattr(harness_registry, "_REGISTRY", dict(harness_registry._REGISTRY))
    monkeypatch.setattr(harness_registry, "_RESOLVED", dict(harness_registry._RESOLVED))
    checkpoint = nb201_model.save(tmp_path / "tiny.pt")
    register_method("dgpo-constrained", partial(run_dgpo_constrained, checkpoint=checkpoint, n_steps=3), overwrite=True)
    comparison = run_comparison(
        "nb201:cifar10", ["dgpo-constrained"], [0], 24, n_jobs=1, progress=False, echo=False,
        reward={"max_latency_ms": LATENCY_MS},
    )  # fmt: skip
    (result,) = comparison.to_dict()["runs"]["dgpo-constrained"]
    assert result["n_queries"] == 24 and result["settings"]["variant"] == "constrained"
    assert result["method"] == "dgpo-constrained" and result["settings"]["acquisition"] == "ucb"
