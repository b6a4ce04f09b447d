"""Pareto reports (agents.harness.pareto) and the multi-objective methods in the comparison harness."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("moocore")
pytest.importorskip("optuna")

from agents.cli import main
from agents.dgpo.compare_methods import run_dgpo_mo
from agents.diffusion.denoiser import DenoiserConfig
from agents.diffusion.model import DiffusionModel
from agents.harness import register_method, run_comparison
from agents.harness.pareto import ObjectiveTable, hypervolume, nondominated
from dgpo_env.benchmarks import NB201Benchmark
from dgpo_env.search_spaces import NB201SearchSpace


def test_hypervolume_of_a_known_front_is_the_hand_computed_area() -> None:
    # minimise both: (1,3), (2,2), (3,1) against (4,4): columns of heights 1, 2, 3 -> 6
    assert hypervolume(np.array([[1, 3], [2, 2], [3, 1]]), [4, 4], [False, False]) == pytest.approx(6.0)
    # accuracy maximised, latency minimised: (90, 10) and (80, 5) against (70, 20):
    # 20 x 10 + 10 x 15 - overlap 10 x 10 = 250
    assert hypervolume(np.array([[90, 10], [80, 5]]), [70, 20], [True, False]) == pytest.approx(250.0)
    # a dominated point adds nothing, a point beyond the reference adds nothing, no point is 0
    assert hypervolume(np.array([[90, 10], [80, 5], [75, 12], [60, 1]]), [70, 20], [True, False]) == 250.0
    assert hypervolume(np.zeros((0, 2)), [70, 20], [True, False]) == 0.0


def test_pareto_front_extraction_on_a_hand_example() -> None:
    # (acc, latency): maximise acc, minimise latency
    points = np.array([[90, 10], [85, 12], [80, 5], [90, 10], [70, 4], [60, 6], [95, 20]])
    mask = nondominated(points, [True, False])
    # (85, 12) is dominated by (90, 10); (60, 6) by (80, 5); the duplicate (90, 10) is kept
    assert mask.tolist() == [True, False, True, True, True, False, True]


def test_true_front_of_nb201_is_non_dominated_and_covers_the_extremes() -> None:
    bench = NB201Benchmark("cifar10")
    table = ObjectiveTable.build(bench, ["acc", "latency"])
    assert len(table.keys) == 15625 and bench.n_queries == 0  # built from peeks: nothing counted
    front = table.values[nondominated(table.values, table.maximise)]
    assert front[:, 0].max() == pytest.approx(bench.oracle.val_acc, abs=1e-6)  # the most accurate cell is on it
    assert front[:, 1].min() == pytest.approx(table.values[:, 1].min())  # so is the fastest
    for point in front[:10]:  # no table row dominates a front point
        better = (table.values[:, 0] >= point[0]) & (table.values[:, 1] <= point[1])
        strictly = (table.values[:, 0] > point[0]) | (table.values[:, 1] < point[1])
        assert not (better & strictly).any()


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = DenoiserConfig(hidden_dim=16, edge_dim=8, n_layers=1, n_heads=2, time_dim=8)
    model = DiffusionModel.create(NB201SearchSpace(), diffusion_steps=100, config=config, seed=0)
    return model.save(tmp_path_factory.mktemp("model") / "tiny.pt")


def test_mo_methods_run_in_a_comparison_and_get_a_pareto_report(tiny_checkpoint: Path, tmp_path: Path) -> None:
    register_method(
        "dgpo-mo-tiny", functools.partial(run_dgpo_mo, checkpoint=tiny_checkpoint, n_steps=3), overwrite=True
    )
    methods = ["dgpo-mo-tiny", "nsga2", "motpe", "rs"]
    comparison = run_comparison(
        "nb201:cifar10",
        methods,
        [0, 1],
        15,
        n_jobs=1,
        out_dir=tmp_path,
        progress=False,
        echo=False,
        objectives=["acc", "latency"],
        checkpoints=[5],
    )
    assert comparison.pareto is not None
    data = json.loads(Path(str(comparison.json_path)).read_text())
    pareto = data["pareto"]
    assert pareto["checkpoints"] == [5, 15] and set(pareto["summary"]) == set(methods)
    for method in methods:
        for run in pareto["runs"][method]:
            assert all(0.0 <= v <= 1.0 + 1e-9 for v in run["hv_ratio"] + run["share"])
            assert run["hv_ratio"][0] <= run["hv_ratio"][1]  # more queries never shrink the front
        for run in data["runs"][method]:
            assert run["n_queries"] == 15 and len(run["queried"]) == 15  # the keys of the run's own queries
    assert Path(str(comparison.png_path)).with_name(Path(str(comparison.png_path)).stem + "_pareto.png").is_file()
    with pytest.raises(TypeError, match="objectives must be a list of metric names"):
        run_comparison("nb201:cifar10", ["rs"], [0], 5, progress=False, echo=False, objectives="acc,latency")  # type: ignore[arg-type]
    # a single-objective comparison keeps no keys and has no Pareto section
    plain = run_comparison("nb201:cifar10", ["rs"], [0], 5, n_jobs=1, progress=False, echo=False)
    assert plain.pareto is None and plain.runs["rs"][0].queried == ()


def test_compare_command_objectives_and_their_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["compare", "--env", "nb201:cifar10", "--seeds", "1", "--max-queries", "8", "--jobs", "1", "--no-progress"]
    assert main([*args, "--algos", "rs,nsga2", "--objectives", "acc,latency", "--out", str(tmp_path)]) == 0
    assert "Pareto front (acc vs latency)" in capsys.readouterr().out
    assert main([*args, "--algos", "rs", "--objectives", "acc,lat", "--out", str(tmp_path / "b")]) == 2
    assert "unknown metric 'lat'; known metrics: acc, latency, params, train_time" in capsys.readouterr().err
    assert main([*args, "--algos", "nsga2", "--out", str(tmp_path / "c")]) == 2  # needs objectives
    assert "nsga2: multi-objective methods; give objectives" in capsys.readouterr().err
    # budgets and objectives together are refused before any run (a budget is a constraint, not an objective)
    assert main([*args, "--algos", "rs,nsga2", "--objectives", "acc,latency", "--max-latency-ms", "12"]) == 2
    assert "either budgets" in capsys.readouterr().err
