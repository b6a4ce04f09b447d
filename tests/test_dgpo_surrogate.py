"""The surrogate DGPO variant: its Gaussian process, what it learns from, the preset, the harness method."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agents.compare import register_method, run_comparison
from agents.dgpo import PRESETS, DGPOConfig, EliteConfig, make_dgpo
from agents.dgpo.cell_gp import CellGP, hamming, normal_scores
from agents.dgpo.surrogate import SurrogateConfig, SurrogateDGPO
from agents.dgpo.variants import Preset
from agents.diffusion.model import DiffusionModel
from agents.pretrained import load_pretrained
from dgpo_env.benchmarks import make_benchmark
from dgpo_env.search_spaces import NB201SearchSpace

NB201 = "dgpo_env/NB201-CIFAR10-v0"


# ---------------------------------------------------------------------------------------------- the Gaussian process
def test_normal_scores_keep_the_order_and_are_centred() -> None:
    z = normal_scores(np.array([91.0, 10.0, 90.5, 91.2]))
    assert np.argsort(z).tolist() == [1, 2, 0, 3]
    assert z.sum() == pytest.approx(0.0, abs=1e-12) and z[3] == pytest.approx(-z[1])


def test_hamming_counts_differing_entries() -> None:
    a = np.array([[0, 1, 2], [0, 0, 0]])
    b = np.array([[0, 1, 2], [1, 1, 1], [0, 1, 0]])
    np.testing.assert_array_equal(hamming(a, b), [[0, 2, 1], [2, 3, 1]])


def test_the_gp_learns_an_additive_function_and_spreads_a_batch() -> None:
    rng = np.random.default_rng(0)
    weights = rng.normal(size=(6, 5))
    cells = rng.integers(0, 5, size=(400, 6))
    values = weights[np.arange(6), cells].sum(1)  # [400]
    gp = CellGP.fit(cells[:150], values[:150])
    mean, cov = gp.posterior(cells[150:])
    assert np.corrcoef(mean, values[150:])[0, 1] > 0.8  # it ranks unseen cells well
    assert np.all(np.diag(cov) > -1e-9) and np.allclose(cov, cov.T)
    _, seen_cov = gp.posterior(cells[:5])
    assert np.diag(seen_cov).max() < np.diag(cov).mean()  # less uncertain where it has data
    picks = gp.select_batch(cells[150:], 0.0, [None] * 10)
    assert picks[0] == int(np.argmax(mean)) and len(set(picks)) == 10
    groups = np.arange(250) % 3  # a pick per group: from group 2, then 0, then from the empty group 5
    grouped = gp.select_batch(cells[150:], 1.0, [2, 0, 5], groups=groups)
    assert groups[grouped[0]] == 2 and groups[grouped[1]] == 0 and grouped[2] == -1
    with pytest.raises(ValueError, match="n >= 2"):
        CellGP.fit(cells[:1], values[:1])


# ---------------------------------------------------------------------------------------------- the algorithm
def test_the_reward_model_learns_only_from_counted_queries(
    nb201_model: DiffusionModel, monkeypatch: pytest.MonkeyPatch, gp_fits: Callable[..., list[Any]]
) -> None:
    """A wrapper records every counted query; every point the GP is fitted on must be one of them."""
    benchmark = make_benchmark("nb201", dataset="cifar10")
    counted: dict[tuple[int, ...], float] = {}
    query = benchmark.query

    def recording_query(cell: Any, rng: Any = None) -> Any:
        result = query(cell, rng)
        if result.key is not None:
            counted[tuple(cell.nodes[1:-1].tolist())] = float(result.val_acc_mean)
        return result

    monkeypatch.setattr(benchmark, "query", recording_query)
    fits = gp_fits(lambda: len(counted))
    agent = make_dgpo(
        "surrogate", nb201_model, None, benchmark=benchmark, n_envs=4, n_steps=4, batch_size=4, max_queries=40, seed=0
    )
    agent.learn(10**6)
    assert agent.n_queries == 40 == len(counted) == benchmark.n_queries
    assert fits and agent.n_ranked_rounds == len(fits)
    free = NB201SearchSpace().free_positions
    for x, y, n_counted in fits:
        assert len(x) <= n_counted  # fitted on cells already counted when it ran
        for row, value in zip(x, y, strict=True):
            ops = tuple(int(v) for v in row)  # the free entries of an NB201 cell are its six op nodes
            assert ops in counted and counted[ops] == value
    assert free.tolist() == [1, 2, 3, 4, 5, 6]


def test_surrogate_runs_are_reproducible_and_propose_new_cells(nb201_model: DiffusionModel) -> None:
    def run(seed: int) -> tuple[list[float], int]:
        agent = make_dgpo("surrogate", nb201_model, NB201, n_steps=3, batch_size=5, max_queries=30, seed=seed)
        agent.learn(10**6)
        env = agent.get_env()
        assert env is not None
        benchmark = env.get_attr("benchmark")[0]
        return [r.val_acc_mean for r in benchmark.history], benchmark.n_lookups

    first, lookups = run(3)
    assert run(3) == (first, lookups) and run(4)[0] != first
    assert len(first) == 30 and lookups <= 35  # ranked rounds spend their slots on new cells


def test_surrogate_preset_and_settings(nb201_model: DiffusionModel) -> None:
    preset = PRESETS["surrogate"]
    assert preset.algorithm is SurrogateDGPO and preset.elite == EliteConfig(restart_after=75)
    assert preset.surrogate == SurrogateConfig()
    assert preset.config == PRESETS["elite"].config.replace(batch_size=5) and preset.sets("ucb_beta")
    assert PRESETS["constrained"].config == PRESETS["pareto"].config == PRESETS["elite"].config  # measured at 10
    assert preset.flat_kwargs()["n_candidates"] == SurrogateConfig().n_candidates
    with pytest.raises(ValueError, match="surrogate settings go with SurrogateDGPO"):
        Preset("odd", PRESETS["elite"].algorithm, DGPOConfig(), EliteConfig(), SurrogateConfig())
    agent = make_dgpo("surrogate", nb201_model, NB201, n_steps=2, batch_size=2, ucb_beta=0.5)
    assert agent.surrogate == SurrogateConfig(ucb_beta=0.5) and agent.ucb_beta == 0.5
    assert agent.settings_dict()["ucb_beta"] == 0.5
    with pytest.raises(AttributeError, match=r"surrogate\.replace"):
        agent.ucb_beta = 1.0  # type: ignore[misc]
    with pytest.raises(TypeError, match=r"SurrogateConfig.n_candidates must be an int >= 1, got 2.5"):
        SurrogateConfig(n_candidates=2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"SurrogateConfig.surrogate_after must be an int >= 2, got 1"):
        SurrogateConfig(surrogate_after=1)
    with pytest.raises(TypeError, match="surrogate must be a SurrogateConfig"):
        SurrogateDGPO("GraphDiffusionPolicy", None, surrogate={"ucb_beta": 1.0})  # type: ignore[arg-type]


def test_a_surrogate_agent_saves_and_loads_with_its_settings(nb201_model: DiffusionModel, tmp_path: Path) -> None:
    agent = make_dgpo("surrogate", nb201_model, NB201, n_steps=2, batch_size=4, n_candidates=8, seed=0)
    agent.learn(2 * 4 * 2)
    agent.save(tmp_path / "surrogate")
    loaded = SurrogateDGPO.load(tmp_path / "surrogate", env=agent.get_env())
    assert loaded.surrogate == agent.surrogate == SurrogateConfig(n_candidates=8) and loaded.elite == agent.elite
    assert loaded.archive.scores == agent.archive.scores


def test_dgpo_surrogate_runs_in_a_toy_comparison(tmp_path: Path, registry: None) -> None:
    """The registered method, on the shipped toy prior, in the comparison engine (seconds)."""
    from agents.dgpo.compare_methods import run_dgpo_surrogate

    checkpoint = load_pretrained("toy").save(tmp_path / "toy.pt")
    register_method("dgpo-surrogate", partial(run_dgpo_surrogate, checkpoint=checkpoint, n_steps=3), overwrite=True)
    comparison = run_comparison("toy", ["dgpo-surrogate", "rs"], 2, 30, n_jobs=1, out_dir=tmp_path, progress=False)
    runs = comparison.to_dict()["runs"]["dgpo-surrogate"]
    assert [r["n_queries"] for r in runs] == [30, 30]
    assert all(r["settings"]["variant"] == "surrogate" and r["method"] == "dgpo-surrogate" for r in runs)
