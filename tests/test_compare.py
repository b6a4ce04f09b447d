from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agents.baselines import SearchResult
from agents.cli import main as cli_main
from agents.compare import (
    Comparison,
    available_methods,
    benchmark_kwargs_for,
    curves_matrix,
    decode_curve,
    get_method,
    register_method,
    run_baseline,
    run_comparison,
    summarise,
)
from agents.harness import registry as harness_registry

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
ALGOS = ["rs", "rea", "ls", "reinforce"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Undo registrations made by a test."""
    monkeypatch.setattr(harness_registry, "_REGISTRY", dict(harness_registry._REGISTRY))
    monkeypatch.setattr(harness_registry, "_RESOLVED", dict(harness_registry._RESOLVED))


def _check_outputs(c: Comparison, seeds: int, max_queries: int) -> dict[str, Any]:
    assert c.json_path is not None and c.png_path is not None
    assert c.png_path.read_bytes()[:8] == PNG_MAGIC
    data = json.loads(c.json_path.read_text())
    assert data["max_queries"] == max_queries and data["seeds"] == list(range(seeds))
    assert data["oracle"]["val_acc"] == pytest.approx(100.0)
    assert data["versions"]["numpy"] == np.__version__
    assert set(data["runs"]) == set(ALGOS)
    for runs in data["runs"].values():
        assert [r["seed"] for r in runs] == list(range(seeds))
        for r in runs:
            curve = decode_curve(r["curve"])  # stored compactly as its steps
            assert len(curve) == r["n_queries"] == max_queries
            assert r["best_val_acc"] == curve[-1] and r["best_test_acc"] == r["best_val_acc"]
            assert r["wall_time_s"] > 0 and r["settings"]["proposals_per_query"] == 50
    assert [s["method"] for s in data["summary"]] == ALGOS
    return data


def test_tiny_toy_comparison_in_process_and_in_workers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    serial = run_comparison("dgpo_env/ToyDAG-v0", ALGOS, 2, 50, n_jobs=1, out_dir=tmp_path / "a", progress=False)
    table = capsys.readouterr().out
    parallel = run_comparison("toy", ALGOS, 2, 50, n_jobs=2, out_dir=tmp_path / "b", progress=False, echo=False)
    a = _check_outputs(serial, 2, 50)
    b = _check_outputs(parallel, 2, 50)
    for algo in ALGOS:  # worker processes reproduce the in-process runs exactly
        assert [r["curve"] for r in a["runs"][algo]] == [r["curve"] for r in b["runs"][algo]]
    for algo in ALGOS:
        assert algo in table
    assert "toy: 2 seeds x 50 queries; oracle val 100.0000" in table
    assert "wrote" in table and str(serial.json_path) in table


def test_unknown_method_lists_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown method 'dgpo-typo'; known methods: ") as err:
        run_comparison("toy", ["rs", "dgpo-typo"], 1, 5, n_jobs=1, progress=False, echo=False)
    listed = str(err.value).split("known methods: ")[1].split(", ")
    assert {"dgpo", "ppo", "ppo-mlp", "rs", "rea", "ls", "reinforce"} <= set(listed)
    with pytest.raises(ValueError, match="unknown environment"):
        run_comparison("NB201-typo", ["rs"], 1, 5, n_jobs=1, progress=False, echo=False)


def test_env_ids_map_to_benchmarks() -> None:
    assert benchmark_kwargs_for("dgpo_env/NB201-CIFAR100-v0") == {"name": "nb201", "dataset": "cifar100"}
    assert benchmark_kwargs_for("nb201:imagenet16", "t.npz") == {
        "name": "nb201",
        "dataset": "imagenet16",
        "table_path": "t.npz",
    }
    assert benchmark_kwargs_for("dgpo_env/ToyDAG-v0") == {"name": "toy"}
    with pytest.raises(ValueError, match="NB201 table"):
        benchmark_kwargs_for("toy", "t.npz")


def _fake_method(benchmark_kwargs: dict[str, Any], seed: int, max_queries: int) -> SearchResult:
    return run_baseline("rs", benchmark_kwargs, seed + 100, max_queries)


def _overspending_method(benchmark_kwargs: dict[str, Any], seed: int, max_queries: int) -> SearchResult:
    return run_baseline("rs", benchmark_kwargs, seed, max_queries + 1)


def test_register_method_contract(registry: None) -> None:
    register_method("fake", _fake_method)
    assert "fake" in available_methods()
    c = run_comparison("toy", ["fake"], [4], 10, n_jobs=1, progress=False, echo=False)
    run = c.runs["fake"][0]
    assert run.method == "fake" and run.seed == 4  # the harness names runs by registry name and seed
    assert run.curve == run_baseline("rs", {"name": "toy"}, 104, 10).curve
    register_method("fake", _fake_method)  # the same registration again is a no-op
    with pytest.raises(ValueError, match="already registered"):
        register_method("fake", _overspending_method)
    register_method("fake", partial(run_baseline, "rea", population_size=5), overwrite=True)
    assert get_method("fake")({"name": "toy"}, 0, 8).settings["population_size"] == 5
    register_method("lazy", "agents.compare:run_baseline")
    assert get_method("lazy") is run_baseline
    register_method("broken", "agents.no_such_module:run")
    with pytest.raises(ValueError, match="does not import"):
        get_method("broken")
    with pytest.raises(ValueError, match="module:function"):
        register_method("bad-path", "agents.compare.run_baseline")
    with pytest.raises(ValueError, match="commas"):
        register_method("a,b", _fake_method)
    register_method("greedy", _overspending_method)
    with pytest.raises(RuntimeError, match="must stop at the budget"):
        run_comparison("toy", ["greedy"], 1, 10, n_jobs=1, progress=False, echo=False)


def _result(curve: list[float], test: float | None) -> SearchResult:
    return SearchResult(
        method="m",
        seed=0,
        benchmark="b",
        max_queries=len(curve),
        best_key="k",
        best_val_acc=curve[-1],
        best_test_acc=test,
        n_queries=len(curve),
        n_lookups=len(curve),
        n_proposals=len(curve),
        wall_time_s=1.0,
        curve=tuple(curve),
        stop_reason="budget",
    )


def test_summary_statistics() -> None:
    runs = [_result([90.0, 91.0, 92.0, 92.0], 89.0), _result([88.0, 88.0, 90.0, 91.0], 87.0)]
    s = summarise("m", runs, oracle_val_acc=92.0, checkpoints=[2])
    assert s.val_mean == pytest.approx(91.5) and s.val_std == pytest.approx(0.5)
    assert s.test_mean == pytest.approx(88.0) and s.test_std == pytest.approx(1.0)
    assert s.share_optimum == pytest.approx(0.5)
    assert s.checkpoints[2] == pytest.approx((89.5, 1.5, 0.0))
    no_test = summarise("m", [runs[0], _result([80.0], None)], oracle_val_acc=92.0, checkpoints=[])
    assert no_test.test_mean is None and no_test.test_std is None
    short = curves_matrix([runs[0], _result([80.0, 85.0], None)], 4)
    np.testing.assert_allclose(short[1], [80.0, 85.0, 85.0, 85.0])


@pytest.mark.skipif(not (SHARED / "nb201" / "nb201.npz").exists(), reason="../shared/data/nb201 missing")
def test_nb201_test_accuracy_from_extended_table(capsys: pytest.CaptureFixture[str]) -> None:
    table = SHARED / "nb201" / "nb201.npz"
    c = run_comparison("dgpo_env/NB201-CIFAR10-v0", ["ls"], [0], 300, n_jobs=1, table_path=table, progress=False)
    (s,) = c.summaries
    assert s.share_optimum == 1.0 and s.val_mean == pytest.approx(91.6067, abs=1e-4)
    assert s.test_mean == pytest.approx(91.09, abs=0.01)  # the oracle cell's CIFAR-10 test accuracy
    assert "91.09 ± 0.00" in capsys.readouterr().out
    plain = run_comparison("nb201:cifar10", ["rs"], [0], 20, n_jobs=1, progress=False, echo=False)
    assert plain.summaries[0].test_mean is None and "n/a" in plain.table()


def test_cli_compare(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["compare", "--env", "toy", "--algos", "rs,ls", "--seeds", "2", "--max-queries", "20"]
    assert cli_main([*argv, "--jobs", "1", "--out", str(tmp_path), "--no-progress", "--log-x"]) == 0
    out = capsys.readouterr().out
    stem = tmp_path / "compare_toy_20q_2seeds_rs+ls"
    assert stem.with_suffix(".json").exists() and stem.with_suffix(".png").exists()
    assert not stem.with_suffix(".runs").exists()  # the store goes once the JSON is complete
    assert "rs " in out and "ls " in out
    assert cli_main(["compare", "--env", "toy", "--algos", "nope", "--jobs", "1", "--out", str(tmp_path)]) == 2
    assert "known methods" in capsys.readouterr().err


def test_plot_bands_never_cross_the_oracle_and_share_counts_seeds_at_it() -> None:
    from agents.harness.report import curve_bands

    oracle = 91.61
    curves = np.array(
        [
            [90.0, 91.0, oracle, oracle],
            [89.0, 91.5, 91.5, oracle],
            [90.5, oracle, oracle, oracle],
            [88.0, 88.0, 88.0, 88.0],
        ]
    )  # [S=4, Q=4]: three seeds reach the oracle, at different queries
    mean, low, high, share = curve_bands(curves, oracle)
    assert np.all(high <= oracle) and np.all(low <= high)
    assert mean.tolist() == pytest.approx(curves.mean(axis=0).tolist())
    assert share.tolist() == [0.0, 0.25, 0.5, 0.75]
    naive_upper = curves.mean(axis=0) + curves.std(axis=0)
    assert naive_upper.max() > oracle  # the band it replaces did cross the oracle


def test_compare_writes_the_plot_curves_as_tensorboard_scalars(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from agents.harness.report import curve_bands, curves_matrix, result_from_dict

    argv = ["compare", "--env", "toy", "--algos", "rs,rea", "--seeds", "2", "--max-queries", "15"]
    argv += ["--jobs", "1", "--no-progress", "--out", str(tmp_path / "cmp"), "--tensorboard", str(tmp_path / "tb")]
    assert cli_main(argv) == 0
    (stem_dir,) = (tmp_path / "tb").iterdir()
    assert sorted(p.name for p in stem_dir.iterdir()) == ["rea", "rs"]
    data = json.loads(next((tmp_path / "cmp").glob("*.json")).read_text())
    events = EventAccumulator(str(stem_dir / "rs")).Reload()
    assert sorted(events.Tags()["scalars"]) == ["best_val/mean", "best_val/p25", "best_val/p75", "seeds_at_oracle"]
    mean = [e.value for e in events.Scalars("best_val/mean")]
    steps = [e.step for e in events.Scalars("best_val/mean")]
    assert steps == list(range(1, 16))

    runs = [result_from_dict(r) for r in data["runs"]["rs"]]
    expected = curve_bands(curves_matrix(runs, 15), data["oracle"]["val_acc"])[0]
    assert mean == pytest.approx(expected.tolist(), abs=1e-4)  # stored as float32
