"""Comparisons under hard budgets: every method sees an over-budget cell as accuracy 0 (docs/howto-constrained.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agents.cli import main
from agents.harness.registry import benchmark_kwargs_for, build_benchmark
from dgpo_env.benchmarks import ConstrainedBenchmark, NB201Benchmark, ToyBenchmark
from dgpo_env.rewards import AccuracyUnderBudget

LATENCY_MS = 12.0


def test_over_budget_cells_read_as_zero_and_the_oracle_is_the_best_feasible_cell() -> None:
    plain = NB201Benchmark("cifar10")
    budget = AccuracyUnderBudget(max_latency_ms=LATENCY_MS)
    constrained = ConstrainedBenchmark(NB201Benchmark("cifar10"), budget)
    assert constrained.name == "nb201-cifar10-lat12ms"
    best = -1.0
    n_feasible = 0
    for cell in plain.search_space.enumerate_cells():
        truth, seen = plain.peek(cell), constrained.peek(cell)
        assert seen.latency_s == truth.latency_s and seen.params_m == truth.params_m
        if truth.latency_s is not None and truth.latency_s * 1e3 <= LATENCY_MS:
            n_feasible += 1
            assert seen == truth
            best = max(best, float(truth.val_acc_mean or 0.0))
        else:
            assert seen.val_acc == seen.val_acc_mean == 0.0 and seen.test_acc is None
            assert seen.extra == {"over_budget": True}
    assert 0 < n_feasible < 15625
    oracle = constrained.oracle
    assert oracle.val_acc == best < plain.oracle.val_acc
    assert constrained.peek(oracle.cell).latency_s * 1e3 <= LATENCY_MS  # type: ignore[operator]


def test_an_over_budget_look_up_is_still_one_counted_query() -> None:
    constrained = ConstrainedBenchmark(NB201Benchmark("cifar10"), AccuracyUnderBudget(max_latency_ms=LATENCY_MS))
    space = constrained.search_space
    over = next(cell for cell in space.enumerate_cells() if constrained.peek(cell).extra == {"over_budget": True})
    assert constrained.query(over).val_acc == 0.0
    assert constrained.query(over).val_acc == 0.0  # a repeat is free
    assert constrained.n_queries == 1 and constrained.n_lookups == 2
    assert constrained.best_so_far().tolist() == [0.0]
    from agents.baselines.base import make_result

    none_found = make_result("rs", 0, constrained, 5, None, 0.0, {})
    assert none_found.best_val_acc == 0.0 and none_found.best_key is None and none_found.best_test_acc is None


def test_arguments_and_unreachable_budgets_are_reported() -> None:
    with pytest.raises(TypeError, match="AccuracyUnderBudget"):
        ConstrainedBenchmark(NB201Benchmark("cifar10"), lambda r: 0.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="must be a Benchmark"):
        ConstrainedBenchmark("nb201", AccuracyUnderBudget(max_latency_ms=1.0))  # type: ignore[arg-type]
    impossible = ConstrainedBenchmark(NB201Benchmark("cifar10"), AccuracyUnderBudget(max_latency_ms=1.0))
    with pytest.raises(ValueError, match=r"no cell of nb201-cifar10 meets the budgets \(latency <= 1 ms\)"):
        _ = impossible.oracle
    toy = ConstrainedBenchmark(ToyBenchmark(), AccuracyUnderBudget(max_params_m=1.0))
    with pytest.raises(ValueError, match=r"toy.*the best cell under a budget needs every cell"):
        _ = toy.oracle


def test_the_harness_wraps_only_when_the_spec_has_a_budget() -> None:
    assert isinstance(
        build_benchmark(benchmark_kwargs_for("nb201:cifar10", reward={"max_params_m": 0.5})), ConstrainedBenchmark
    )
    assert type(build_benchmark(benchmark_kwargs_for("nb201:cifar10"))) is NB201Benchmark
    trade_off = benchmark_kwargs_for(
        "nb201:cifar10", objectives=["acc", "latency"], reward={"objectives": ["acc", "latency"]}
    )
    assert type(build_benchmark(trade_off)) is NB201Benchmark


def test_compare_with_a_latency_budget_ranks_every_method_by_feasible_accuracy(tmp_path: Path) -> None:
    args = ["compare", "--env", "nb201:cifar10", "--seeds", "1", "--max-queries", "12", "--jobs", "1"]
    args += ["--algos", "rs,tpe,dgpo-elite", "--max-latency-ms", "12", "--no-progress", "--out", str(tmp_path)]
    assert main(args) == 0
    (path,) = tmp_path.glob("compare_nb201-cifar10-lat12ms_12q_1seed_*.json")
    data = json.loads(path.read_text())
    plain = NB201Benchmark("cifar10")
    feasible = ConstrainedBenchmark(plain, AccuracyUnderBudget(max_latency_ms=LATENCY_MS))
    assert data["oracle"]["val_acc"] == feasible.oracle.val_acc
    cells = {plain.search_space.canonical_key(c): c for c in plain.search_space.enumerate_cells()}
    for method, runs in data["runs"].items():
        for run in runs:
            assert run["n_queries"] == 12, method
            if run["best_val_acc"] == 0.0:  # no feasible cell found: no best cell (never an over-budget one)
                assert run["best_key"] is None, method
            else:  # the best cell a method reports meets the budget
                result = plain.peek(cells[run["best_key"]])
                assert result.latency_s * 1e3 <= LATENCY_MS, (method, run["best_key"])  # type: ignore[operator]
                assert run["best_val_acc"] == result.val_acc_mean


def test_query_efficiency_under_a_latency_budget_and_its_results_section(tmp_path: Path) -> None:
    import importlib.util

    scripts = Path(__file__).resolve().parents[1] / "benchmarks"
    modules = {}
    for name in ("query_efficiency", "results_md"):
        spec = importlib.util.spec_from_file_location(f"bench_{name}", scripts / f"{name}.py")
        assert spec is not None and spec.loader is not None
        modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(modules[name])
    out = tmp_path / "query_efficiency_latency12.json"
    argv = ["--datasets", "cifar10", "--algos", "rea,ls,tpe", "--seeds", "100", "--budgets", "5,10"]
    argv += ["--max-latency-ms", "12", "--jobs", "1", "--out-dir", str(tmp_path), "--out", str(out)]
    assert modules["query_efficiency"].main(argv) == 0
    report = json.loads(out.read_text())
    assert report["constraints"] == {"max_latency_ms": 12.0}
    entry = report["datasets"]["cifar10"]
    assert entry["benchmark"] == "nb201-cifar10-lat12ms" and entry["oracle"]["val_acc"] < 90.0
    lines = modules["results_md"].efficiency_section(report, "## 2x. test")
    assert any(line.startswith("**Under hard budgets: latency <= 12 ms.**") for line in lines)
    plain = modules["results_md"].efficiency_section(dict(report, constraints=None), "## 2x. test")
    assert not any("Under hard budgets" in line for line in plain)
