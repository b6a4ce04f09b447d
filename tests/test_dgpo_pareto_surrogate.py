"""The multi-objective surrogate DGPO variant: its acquisition, what it learns from, the preset, the harness method."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("moocore")

from agents.compare import register_method, run_comparison
from agents.dgpo import PRESETS, DGPOConfig, EliteConfig, cell_gp, make_dgpo
from agents.dgpo.cell_gp import CellGP
from agents.dgpo.compare_methods import run_dgpo_mo_gp
from agents.dgpo.pareto_surrogate import ParetoConfig, ParetoSurrogateDGPO, epsilon_to_front, select_batch_hvi
from agents.dgpo.surrogate import SurrogateConfig
from agents.dgpo.variants import Preset
from agents.diffusion.model import DiffusionModel
from dgpo_env.benchmarks import make_benchmark
from dgpo_env.search_spaces import NB201SearchSpace

NB201 = "dgpo_env/NB201-CIFAR10-v0"


# ---------------------------------------------------------------------------------------------- the acquisition
def test_epsilon_to_front_on_a_hand_example() -> None:
    front = np.array([[1.0, 0.0], [0.0, 1.0]])
    points = np.array([[0.5, 0.5], [-1.0, -1.0], [1.0, 0.0], [0.0, -0.5]])
    # (0.5, 0.5) is between the two: -0.5; (-1, -1) must gain 1 in both; a front point: 0; (0, -0.5): 0.5
    assert epsilon_to_front(points, front).tolist() == [-0.5, 1.0, 0.0, 0.5]


def test_the_acquisition_fills_the_gap_of_the_front_and_spreads_a_batch() -> None:
    """Two objectives of three binary entries: the cell good in both is picked first, then no repeat."""
    x = np.array([[0, 0, 0], [1, 1, 0], [0, 0, 1], [1, 0, 0], [0, 1, 1]])
    first = x[:, 0] + x[:, 1] - 0.5 * x[:, 2]  # larger is better in both
    second = 1.0 - x[:, 0] + x[:, 2] - 0.1 * x[:, 1]
    models = [CellGP.fit(x, first), CellGP.fit(x, second)]
    observed = np.stack([cell_gp.normal_scores(first), cell_gp.normal_scores(second)], axis=1)
    candidates = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 1], [0, 0, 0]])
    picks = select_batch_hvi(models, observed, candidates, 0.0, [None, None, None], None, 1.0)
    assert len(set(picks)) == 3 and all(0 <= p < len(candidates) for p in picks)
    means = np.stack([m.posterior(candidates)[0] for m in models], axis=1)
    front = observed[epsilon_to_front(observed, observed) >= 0]
    assert epsilon_to_front(means[picks[:1]], front)[0] < 0  # the first pick is not dominated by what is known
    # groups restrict the picks; an empty group gives -1
    grouped = select_batch_hvi(models, observed, candidates, 1.0, [0, 1, 2], np.array([0, 0, 1, 1]), 1.0)
    assert grouped[0] in (0, 1) and grouped[1] in (2, 3) and grouped[2] == -1


# ---------------------------------------------------------------------------------------------- the agent
def test_the_models_learn_only_from_counted_queries_and_their_true_objectives(
    nb201_model: DiffusionModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    benchmark = make_benchmark("nb201", dataset="cifar10")
    fits: list[tuple[np.ndarray, int]] = []
    fit = CellGP.fit.__func__  # type: ignore[attr-defined]

    def spying_fit(cls: type[CellGP], x: np.ndarray, y: np.ndarray, *args: Any) -> CellGP:
        fits.append((x.copy(), benchmark.n_queries))
        return fit(cls, x, y, *args)

    monkeypatch.setattr(cell_gp.CellGP, "fit", classmethod(spying_fit))
    agent = make_dgpo(
        "pareto", nb201_model, None, benchmark=benchmark, n_envs=4, n_steps=3, batch_size=4, max_queries=24, seed=0
    )
    agent.learn(10**6)
    assert agent.n_queries == 24 == benchmark.n_queries and agent.n_ranked_rounds > 0
    assert len(fits) == 2 * agent.n_ranked_rounds  # one model per objective and ranked round
    assert all(len(x) <= n_counted for x, n_counted in fits)
    queried = {record.key for record in benchmark.history}
    assert set(agent.objective_values) == queried
    space = NB201SearchSpace()
    for key, flat in agent.archive.cells.items():  # objectives as the benchmark reports them (peek: not counted)
        truth = benchmark.peek(space.from_flat(flat))
        assert agent.objective_values[key].tolist() == pytest.approx([truth.val_acc_mean, 1000.0 * truth.latency_s])


def test_pareto_preset_settings_and_errors(nb201_model: DiffusionModel, tmp_path: Path) -> None:
    preset = PRESETS["pareto"]
    assert preset.algorithm is ParetoSurrogateDGPO and preset.pareto == ParetoConfig()
    assert preset.config == PRESETS["elite"].config and preset.sets("reference_margin")
    with pytest.raises(ValueError, match="pareto settings go with ParetoSurrogateDGPO"):
        Preset("odd", PRESETS["surrogate"].algorithm, DGPOConfig(), EliteConfig(), SurrogateConfig(), ParetoConfig())
    with pytest.raises(ValueError, match="at least two distinct metrics"):
        ParetoConfig(objectives="acc")
    with pytest.raises(ValueError, match="unknown metric 'lat'"):
        ParetoConfig(objectives="acc,lat")
    with pytest.raises(TypeError, match="comma-separated string"):
        ParetoConfig(objectives=["acc", "latency"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="reference_margin"):
        ParetoConfig(reference_margin=0.0)
    with pytest.raises(ValueError, match="multi-objective: give objectives"):
        run_dgpo_mo_gp({"name": "nb201", "dataset": "cifar10"}, 0, 5)
    agent = make_dgpo("pareto", nb201_model, NB201, n_steps=2, batch_size=4, objectives="acc,params", seed=0)
    assert agent.pareto == ParetoConfig(objectives="acc,params") and agent.settings_dict()["objectives"] == "acc,params"
    agent.learn(2 * 4 * 4)
    agent.save(tmp_path / "pareto")
    loaded = ParetoSurrogateDGPO.load(tmp_path / "pareto", env=agent.get_env())
    assert loaded.pareto == agent.pareto and loaded.surrogate == agent.surrogate
    assert {k: v.tolist() for k, v in loaded.objective_values.items()} == {
        k: v.tolist() for k, v in agent.objective_values.items()
    }


# ---------------------------------------------------------------------------------------------- the harness method
def test_dgpo_mo_gp_runs_in_the_harness_on_budget_and_reproducibly(
    nb201_model: DiffusionModel, tmp_path: Path, registry: None
) -> None:
    checkpoint = nb201_model.save(tmp_path / "tiny.pt")
    register_method("dgpo-mo-gp", partial(run_dgpo_mo_gp, checkpoint=checkpoint, n_steps=3), overwrite=True)

    def compare(folder: str, seeds: list[int]) -> dict[str, Any]:
        comparison = run_comparison(
            "nb201:cifar10",
            ["dgpo-mo-gp"],
            seeds,
            20,
            n_jobs=1,
            out_dir=tmp_path / folder,
            progress=False,
            echo=False,
            objectives=["acc", "latency"],
        )
        assert comparison.pareto is not None
        return comparison.to_dict()["runs"]["dgpo-mo-gp"]

    runs = compare("a", [0, 1])
    assert [r["n_queries"] for r in runs] == [20, 20] and all(len(r["queried"]) == 20 for r in runs)
    assert all(r["settings"]["variant"] == "pareto" and r["settings"]["objectives"] == "acc,latency" for r in runs)
    again = compare("b", [0])
    assert again[0]["queried"] == runs[0]["queried"] and runs[1]["queried"] != runs[0]["queried"]


def test_finetune_command_runs_the_pareto_preset_on_its_objectives(nb201_model: DiffusionModel, tmp_path: Path) -> None:
    from agents.cli import main

    path = nb201_model.save(tmp_path / "nb201.pt")
    args = ["finetune", str(path), "--env", NB201, "--max-queries", "16", "--n-steps", "2", "--no-progress"]
    assert main([*args, "--variant", "pareto", "--objectives", "acc,params", "--save", str(tmp_path / "agent")]) == 0
    agent = ParetoSurrogateDGPO.load(tmp_path / "agent")
    assert agent.pareto.objectives == "acc,params" and agent.archive_score == "reward" and agent.n_queries == 16
