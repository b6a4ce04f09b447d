"""CallableBenchmark: one evaluation per distinct cell, results through the ledger, resume after a crash."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import dgpo_env  # noqa: F401  (registers the ids)
from dgpo_env.benchmarks import BenchmarkDataError, CallableBenchmark, EvaluationError
from dgpo_env.envs.graph_denoise import GraphDenoiseEnv
from dgpo_env.ledger import BUDGET_EXHAUSTED, InMemoryLedger, SQLiteLedger
from dgpo_env.search_spaces import DAG, ToySearchSpace

SPACE = ToySearchSpace()


def score(cell: DAG) -> float:
    """A deterministic score: share of free entries set, in percent."""
    return float(100.0 * cell.flat()[SPACE.free_positions].astype(bool).mean())


SCORE = object()
"""``Counted``'s default: return ``score(cell)``."""


class Counted:
    """``score`` that counts its calls and can fail or return something else."""

    def __init__(self, value: Any = SCORE) -> None:
        self.calls = 0
        self.value = value

    def __call__(self, cell: DAG) -> Any:
        self.calls += 1
        if isinstance(self.value, BaseException):
            raise self.value
        return score(cell) if self.value is SCORE else self.value


def cells(n: int, seed: int = 0) -> list[DAG]:
    rng = np.random.default_rng(seed)
    return [SPACE.sample_uniform(rng) for _ in range(n)]


def test_each_distinct_cell_is_evaluated_once() -> None:
    fn = Counted()
    bench = CallableBenchmark(SPACE, fn)
    batch = cells(20)
    first = [bench.query(c) for c in batch]
    again = [bench.query(c) for c in batch]
    assert fn.calls == len(set(batch)) == bench.n_queries
    assert bench.n_lookups == 40
    assert [r.val_acc for r in first] == [r.val_acc for r in again] == [score(c) for c in batch]
    peeked = bench.peek(cells(1, seed=5)[0])  # an uncounted look-up evaluates once, kept for the query
    assert fn.calls == len(set(batch)) + 1 and bench.n_queries == len(set(batch))
    assert bench.query(cells(1, seed=5)[0]).val_acc == peeked.val_acc and fn.calls == len(set(batch)) + 1
    invalid = DAG(np.array([0, 2, 2, 2, 2, 1]), np.zeros(15, np.int64))  # no path input -> output
    assert not bench.query(invalid).valid and fn.calls == len(set(batch)) + 1


CRASHING_RUN = textwrap.dedent(
    """
    import os, sys
    import numpy as np
    from dgpo_env.benchmarks import CallableBenchmark
    from dgpo_env.ledger import SQLiteLedger
    from dgpo_env.search_spaces import ToySearchSpace

    space = ToySearchSpace()
    rng = np.random.default_rng(0)
    cells = [space.sample_uniform(rng) for _ in range(30)]
    crash_at = int(sys.argv[2])
    calls = 0

    def fn(cell):
        global calls
        calls += 1
        if calls == crash_at:
            os._exit(3)  # killed in the middle of an evaluation: no clean-up, no exception handling
        return float(100.0 * cell.flat()[space.free_positions].astype(bool).mean())

    bench = CallableBenchmark(space, fn, ledger=SQLiteLedger(sys.argv[1]))
    for cell in cells:
        bench.query(cell)
    """
)


def test_a_crashed_run_resumes_without_re_evaluating(tmp_path: Path) -> None:
    path = tmp_path / "evals.sqlite"
    crash = subprocess.run(
        [sys.executable, "-c", CRASHING_RUN, str(path), "13"], capture_output=True, text=True, timeout=120
    )
    assert crash.returncode == 3, crash.stderr
    batch = cells(30)  # the same cells, in the same order, as the crashed run
    reopened = SQLiteLedger(path)
    assert reopened.n_queries == 12  # the 12 finished evaluations; the 13th died before it was recorded
    fn = Counted()
    bench = CallableBenchmark(SPACE, fn, ledger=reopened)
    results = [bench.query(c) for c in batch]
    assert fn.calls == len(set(batch)) - 12  # only the cells the crashed run did not finish
    assert [r.val_acc for r in results] == [score(c) for c in batch]
    assert bench.n_queries == len(set(batch))
    fn_third = Counted()  # a third run on the same file evaluates nothing
    third = CallableBenchmark(SPACE, fn_third, ledger=SQLiteLedger(path))
    assert [third.query(c).val_acc for c in batch] == [r.val_acc for r in results] and fn_third.calls == 0


def test_mapping_results_and_extras_survive_a_reopen(tmp_path: Path) -> None:
    def rich(cell: DAG) -> dict[str, Any]:
        return {
            "score": score(cell),
            "test_score": np.float32(50.5),
            "latency_s": 0.25,
            "history": [1, 2.5, np.int64(3)],
            "notes": {"ok": True, "label": None},
        }

    cell = cells(1)[0]
    first = CallableBenchmark(SPACE, rich, ledger=SQLiteLedger(tmp_path / "e.sqlite")).query(cell)
    assert first.test_acc == 50.5 and first.latency_s == 0.25
    assert first.extra == {"history": [1, 2.5, 3], "latency_s": 0.25, "notes": {"ok": True, "label": None}}
    fn = Counted()
    resumed = CallableBenchmark(SPACE, fn, ledger=SQLiteLedger(tmp_path / "e.sqlite")).query(cell)
    assert fn.calls == 0 and resumed == first
    memory = CallableBenchmark(SPACE, rich, ledger=InMemoryLedger())
    assert memory.query(cell) == first and memory.ledger.stored(first.key or "").extra == first.extra  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("value", "error", "match"),
    [
        (True, TypeError, "finite real score or a mapping"),
        ("0.9", TypeError, "finite real score or a mapping"),
        (None, TypeError, "finite real score or a mapping"),
        (math.nan, ValueError, "finite real"),
        (math.inf, ValueError, "finite real"),
        ({"accuracy": 1.0}, ValueError, "without 'score'"),
        ({"score": "high"}, TypeError, "'score'"),
        ({"score": 1.0, "test_score": math.nan}, ValueError, "'test_score'"),
        ({"score": 1.0, "latency_s": "fast"}, TypeError, "'latency_s'"),
        ({"score": 1.0, "model": object()}, TypeError, "JSON values"),
        ({"score": 1.0, "loss": math.nan}, TypeError, "finite numbers"),
        ({"score": 1.0, 3: "x"}, TypeError, "keys of extra metrics must be strings"),
    ],
)
def test_bad_return_values_are_refused_and_not_recorded(value: object, error: type[Exception], match: str) -> None:
    bench = CallableBenchmark(SPACE, Counted(value))
    with pytest.raises(error, match=match) as info:
        bench.query(cells(1)[0])
    assert "for cell" in str(info.value) and bench.n_queries == 0 and bench.n_lookups == 0


def test_exceptions_are_reported_not_recorded() -> None:
    cell = cells(1)[0]
    failing = Counted(RuntimeError("GPU out of memory"))
    bench = CallableBenchmark(SPACE, failing)
    with pytest.raises(EvaluationError, match="raised RuntimeError: GPU out of memory") as info:
        bench.query(cell)
    assert isinstance(info.value.__cause__, RuntimeError) and bench.n_queries == 0
    lenient = CallableBenchmark(SPACE, failing, on_error="invalid")
    result = lenient.query(cell)
    assert not result.valid and "GPU out of memory" in str(result.reason) and lenient.n_queries == 0
    failing.value = SCORE  # the cause is fixed: the cell is evaluated again, not answered from a bad record
    assert lenient.query(cell).val_acc == score(cell) and failing.calls == 3
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C is not swallowed
        CallableBenchmark(SPACE, Counted(KeyboardInterrupt())).query(cell)


def test_budget_refuses_before_evaluating() -> None:
    fn = Counted()
    bench = CallableBenchmark(SPACE, fn, ledger=InMemoryLedger(max_queries=3))
    batch = list(dict.fromkeys(cells(10)))
    results = [bench.query(c) for c in batch]
    assert fn.calls == 3 and bench.n_queries == 3
    assert [r.reason for r in results[3:]] == [BUDGET_EXHAUSTED] * (len(batch) - 3)
    assert bench.query(batch[0]).valid  # known cells are still answered


def test_bad_arguments() -> None:
    with pytest.raises(TypeError, match="SearchSpace"):
        CallableBenchmark("toy", score)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="fn"):
        CallableBenchmark(SPACE, 3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="on_error"):
        CallableBenchmark(SPACE, score, on_error="ignore")  # type: ignore[arg-type]
    with pytest.raises(NotImplementedError, match="unknown"):
        _ = CallableBenchmark(SPACE, score).oracle
    assert not issubclass(EvaluationError, BenchmarkDataError)


def test_environment_runs_on_a_callable_benchmark() -> None:
    fn = Counted()
    bench = CallableBenchmark(SPACE, fn, name="toy-callable")
    env = GraphDenoiseEnv(benchmark=bench, n_steps=3, reward_scale="percent")
    check_env(env, skip_render_check=True)
    made = gym.make("dgpo_env/ToyDAG-v0", benchmark=bench, n_steps=3)
    made.reset(seed=0)
    rewards = []
    for _ in range(40):
        made.reset()
        terminated = False
        while not terminated:
            _, reward, terminated, _, info = made.step(made.action_space.sample())
        rewards.append(reward)
        if info["valid"]:
            assert reward == pytest.approx(info["val_acc"] / 100)
    assert fn.calls == bench.n_queries and bench.n_queries >= 1
