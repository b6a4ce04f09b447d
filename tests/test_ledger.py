"""The query ledger: exact distinct-query counts and budgets, in one process and across worker processes."""

from __future__ import annotations

import copy
import multiprocessing
import os
import pickle
import signal
import sqlite3
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

import dgpo_env  # noqa: F401  (registers the ids)
from agents.baselines import SEARCHERS
from agents.dgpo import DGPO
from agents.diffusion.denoiser import DenoiserConfig
from agents.diffusion.model import DiffusionModel
from agents.policies import QueryBudgetCallback, env_ledger
from dgpo_env.benchmarks import NB201Benchmark, ToyBenchmark
from dgpo_env.envs.graph_denoise import GraphDenoiseEnv
from dgpo_env.ledger import (
    BUDGET_EXHAUSTED,
    Admission,
    InMemoryLedger,
    LedgerError,
    QueryLedger,
    SQLiteLedger,
)
from dgpo_env.search_spaces import NB201SearchSpace

LedgerFactory = Callable[..., QueryLedger]
TINY = DenoiserConfig(hidden_dim=16, edge_dim=8, n_layers=2, n_heads=2, time_dim=8)


@pytest.fixture(params=["memory", "sqlite"])
def make_ledger(request: pytest.FixtureRequest, tmp_path: Path) -> LedgerFactory:
    if request.param == "memory":
        return InMemoryLedger
    counter = iter(range(1000))
    return lambda max_queries=None: SQLiteLedger(tmp_path / f"l{next(counter)}.sqlite", max_queries=max_queries)


def test_record_new_known_refused(make_ledger: LedgerFactory) -> None:
    ledger = make_ledger(max_queries=2)
    assert ledger.record("a", 50.0, None) is Admission.NEW
    assert ledger.record("a", 50.0, None) is Admission.KNOWN
    assert ledger.record("b", 70.0, 69.0) is Admission.NEW
    assert ledger.exhausted
    assert ledger.record("c", 90.0, None) is Admission.REFUSED
    assert ledger.record("b", 70.0, 69.0) is Admission.KNOWN  # known cells stay free after the budget
    assert ledger.counts() == (2, 4) and not ledger.was_queried("c") and ledger.was_queried("b")
    assert [(r.key, r.val_acc_mean, r.test_acc) for r in ledger.history] == [("a", 50.0, None), ("b", 70.0, 69.0)]
    np.testing.assert_array_equal(ledger.best_so_far(), [50.0, 70.0])
    ledger.set_budget(3)
    assert ledger.record("c", 90.0, None) is Admission.NEW
    ledger.reset()
    assert ledger.counts() == (0, 0) and ledger.history == [] and ledger.max_queries == 3


def test_history_skips_cells_without_a_value_but_counts_them(make_ledger: LedgerFactory) -> None:
    ledger = make_ledger()
    ledger.record("a", None, None)
    ledger.record("b", 60.0, None)
    assert ledger.n_queries == 2 and [r.key for r in ledger.history] == ["b"]


@pytest.mark.parametrize(
    ("value", "error", "words"),
    [
        (0, ValueError, ">= 1"),
        (-3, ValueError, ">= 1"),
        (2.9, TypeError, "integer"),
        (True, TypeError, "integer"),
        ("5", TypeError, "integer"),
    ],
)
def test_budgets_are_validated_not_coerced(
    make_ledger: LedgerFactory, value: object, error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match=words):
        make_ledger(max_queries=value)
    ledger = make_ledger()
    with pytest.raises(error, match="max_queries"):
        ledger.set_budget(value)  # type: ignore[arg-type]
    ledger.set_budget(np.int64(4))  # numpy integers are integers
    assert ledger.max_queries == 4


def test_benchmark_counts_through_its_ledger_and_refuses_beyond_the_budget() -> None:
    toy = ToyBenchmark(ledger=InMemoryLedger(max_queries=1))
    oracle = toy.oracle.cell
    neighbour = next(iter(toy.search_space.neighbours(oracle)))
    assert toy.query(oracle).valid
    refused = toy.query(neighbour)
    assert not refused.valid and refused.reason == BUDGET_EXHAUSTED and refused.key is None
    assert toy.query(oracle).val_acc == 100.0
    assert (toy.n_queries, toy.n_lookups) == (1, 2) and not toy.was_queried(toy.search_space.canonical_key(neighbour))


def test_benchmarks_sharing_a_ledger_share_one_count() -> None:
    ledger = InMemoryLedger()
    first, second = ToyBenchmark(ledger=ledger), ToyBenchmark(ledger=ledger)
    first.query(first.oracle.cell)
    second.query(second.oracle.cell)
    assert first.n_queries == second.n_queries == 1 and first.n_lookups == 2


def test_a_benchmark_ledger_must_be_a_ledger() -> None:
    with pytest.raises(TypeError, match="QueryLedger"):
        ToyBenchmark(ledger="runs/x.sqlite")  # type: ignore[arg-type]


def test_in_memory_ledger_refuses_to_fork_its_count() -> None:
    bench = ToyBenchmark()
    with pytest.raises(LedgerError, match="SQLiteLedger"):
        pickle.dumps(bench)
    copied = copy.deepcopy(bench)  # a copy in this process keeps counting into the same ledger
    assert copied.ledger is bench.ledger
    env = gym.make("dgpo_env/ToyDAG-v0", ledger=InMemoryLedger())
    assert env.spec is not None and env.spec.kwargs["ledger"] is env.unwrapped.ledger  # type: ignore[attr-defined]


def test_a_deleted_or_replaced_sqlite_file_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite"
    ledger = SQLiteLedger(path, max_queries=3)
    ledger.record("a", 1.0, None)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    with pytest.raises(LedgerError, match="deleted or replaced while in use"):
        ledger.record("b", 2.0, None)


@pytest.mark.parametrize("path", ["", ":memory:", "file:x?mode=memory"])
def test_sqlite_ledger_needs_a_real_file(path: str) -> None:
    with pytest.raises(ValueError, match="ledger file"):
        SQLiteLedger(path)


def test_sqlite_ledger_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(LedgerError, match="folder does not exist"):
        SQLiteLedger(tmp_path / "missing" / "q.sqlite")


def test_in_memory_ledger_refuses_to_record_in_a_forked_child() -> None:
    ledger = InMemoryLedger()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        messages = []
        for use in (lambda: ledger.record("a", 1.0, None), lambda: ledger.was_queried("a"), lambda: ledger.history):
            try:
                use()
                messages.append("used")
            except LedgerError as err:
                messages.append(str(err))
        os.write(write, "\n".join(messages).encode()[:4000])
        os._exit(0)
    os.waitpid(pid, 0)
    messages = os.read(read, 8000).decode().split("\n")
    assert len(messages) == 3
    assert all("forked" in message and "SQLiteLedger" in message for message in messages)
    assert ledger.n_queries == 0 and ledger.record("a", 1.0, None) is Admission.NEW


def test_in_memory_ledger_holds_no_python_object_per_record() -> None:
    """The records live in SQLite's memory, not as Python objects (docs/ledger.md, "The in-process ledger")."""
    ledger = InMemoryLedger()
    keys = [f"{i:021d}" for i in range(20_000)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for key in keys:
            ledger.record(key, 1.0, 2.0)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert ledger.counts() == (20_000, 20_000)
    assert grown < 20_000 * 8, f"{grown} bytes of Python objects for 20,000 records"
    history = ledger.history
    assert [r.key for r in history[:2]] == keys[:2] and history[-1].test_acc == 2.0


def test_sqlite_handles_share_counts_and_survive_pickling(tmp_path: Path) -> None:
    ledger = SQLiteLedger(tmp_path / "q.sqlite", max_queries=3)
    copy_ = pickle.loads(pickle.dumps(ledger))
    assert copy_.ledger_id == ledger.ledger_id and copy_.max_queries == 3
    ledger.record("a", 1.0, None)
    copy_.record("a", 1.0, None)
    copy_.record("b", 2.0, None)
    assert ledger.counts() == copy_.counts() == (2, 3)
    reopened = SQLiteLedger(tmp_path / "q.sqlite")  # without a budget: keeps the stored one
    assert reopened.max_queries == 3 and [r.key for r in reopened.history] == ["a", "b"]


def test_sqlite_ledger_detects_a_replaced_or_foreign_file(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite"
    blob = pickle.dumps(SQLiteLedger(path))
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    SQLiteLedger(path)  # another ledger under the same name
    with pytest.raises(LedgerError, match="replaced"):
        pickle.loads(blob)
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(LedgerError, match="not a dgpo-env query ledger"):
        SQLiteLedger(junk)
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE customers (name TEXT)")
    with pytest.raises(LedgerError, match="other tables: customers"):
        SQLiteLedger(other)


def _record_keys(path: str, prefix: str, n: int, kill: bool) -> int:
    ledger = SQLiteLedger(path)
    new = sum(ledger.record(f"{prefix}{i}", float(i), None) is Admission.NEW for i in range(n))
    if kill:
        os.kill(os.getpid(), signal.SIGKILL)
    return new


def test_sqlite_budget_is_exact_under_concurrent_processes(tmp_path: Path) -> None:
    path = str(tmp_path / "q.sqlite")
    SQLiteLedger(path, max_queries=20)
    context = multiprocessing.get_context("spawn")
    with context.Pool(4) as pool:
        admitted = pool.starmap(_record_keys, [(path, f"w{w}-", 15, False) for w in range(4)])
    ledger = SQLiteLedger(path)
    assert sum(admitted) == 20 == ledger.n_queries == len(ledger.history) == ledger.n_lookups


def test_sqlite_record_survives_a_killed_process(tmp_path: Path) -> None:
    path = str(tmp_path / "q.sqlite")
    SQLiteLedger(path)
    process = multiprocessing.get_context("spawn").Process(target=_record_keys, args=(path, "k", 7, True))
    process.start()
    process.join(60)
    assert process.exitcode == -signal.SIGKILL
    assert SQLiteLedger(path).n_queries == 7


def _step_until_exhausted(env: gym.vector.VectorEnv | SubprocVecEnv, ledger: QueryLedger, rounds: int = 40) -> None:
    """Random valid cells (allowed values only) until the ledger's budget is spent."""
    rng = np.random.default_rng(0)
    space = NB201SearchSpace()
    allowed = np.split(space.flat_action_mask, np.cumsum(space.nvec)[:-1])  # per entry: bool[K]
    for _ in range(rounds):
        actions = np.array([[rng.choice(np.flatnonzero(ok)) for ok in allowed] for _ in range(4)])
        env.step(actions)
        if ledger.exhausted:
            env.step(actions)  # one more round: every new cell must now be refused
            return
    raise AssertionError("the budget was not reached")


def test_subproc_vec_env_workers_share_one_exact_budget(tmp_path: Path) -> None:
    ledger = SQLiteLedger(tmp_path / "q.sqlite", max_queries=20)
    env = make_vec_env(
        "dgpo_env/NB201-CIFAR10-v0",
        n_envs=4,
        seed=0,
        vec_env_cls=SubprocVecEnv,
        env_kwargs={"n_steps": 1, "ledger": ledger},
    )
    try:
        env.reset()
        assert env_ledger(env).ledger_id == ledger.ledger_id
        _step_until_exhausted(env, ledger)
    finally:
        env.close()
    assert ledger.n_queries == 20 == len({r.key for r in ledger.history})


def test_async_vector_env_workers_share_one_exact_budget(tmp_path: Path) -> None:
    ledger = SQLiteLedger(tmp_path / "q.sqlite", max_queries=20)
    env = gym.make_vec("dgpo_env/NB201-CIFAR10-v0", 4, vectorization_mode="async", n_steps=1, ledger=ledger)
    try:
        env.reset(seed=0)
        _step_until_exhausted(env, ledger)
    finally:
        env.close()
    assert ledger.n_queries == 20 == len({r.key for r in ledger.history})


def test_a_path_as_ledger_opens_an_sqlite_ledger(tmp_path: Path) -> None:
    env = gym.make("dgpo_env/ToyDAG-v0", ledger=str(tmp_path / "q.sqlite"))
    assert isinstance(env.unwrapped.ledger, SQLiteLedger)  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match=r"benchmark\.ledger"):
        GraphDenoiseEnv(benchmark=ToyBenchmark(), ledger=InMemoryLedger())


def test_workers_given_an_in_memory_benchmark_are_refused() -> None:
    bench = ToyBenchmark()
    with pytest.raises(LedgerError, match="SQLiteLedger"):
        SubprocVecEnv([lambda: GraphDenoiseEnv(benchmark=bench, n_steps=1)] * 2, start_method="spawn")


def test_copies_with_separate_ledgers_are_refused() -> None:
    env = make_vec_env("dgpo_env/ToyDAG-v0", n_envs=3, vec_env_cls=DummyVecEnv)
    with pytest.raises(LedgerError, match="3 different ledgers"):
        env_ledger(env)
    agent = PPO("MultiInputPolicy", env, n_steps=8, batch_size=8)
    with pytest.raises(LedgerError, match="SQLiteLedger"):
        agent.learn(16, callback=QueryBudgetCallback(5))


def test_copies_in_workers_with_in_memory_ledgers_are_refused() -> None:
    env = make_vec_env("dgpo_env:dgpo_env/ToyDAG-v0", n_envs=1, vec_env_cls=SubprocVecEnv)  # workers import dgpo_env
    try:
        with pytest.raises(LedgerError, match="another process"):
            env_ledger(env)
    finally:
        env.close()


def test_query_budget_callback_makes_the_budget_exact_with_separate_copies_sharing_a_ledger(tmp_path: Path) -> None:
    ledger = InMemoryLedger()
    env = DummyVecEnv([lambda: GraphDenoiseEnv(benchmark=NB201Benchmark(ledger=ledger), n_steps=1)] * 4)
    agent = PPO("MultiInputPolicy", env, n_steps=8, batch_size=16, seed=0)
    agent.learn(10_000, callback=QueryBudgetCallback(10))
    assert ledger.n_queries == 10 and ledger.max_queries == 10 and agent.num_timesteps < 10_000


# ---------------------------------------------------------------------------------------------- DGPO
@pytest.fixture(scope="module")
def nb201_model() -> DiffusionModel:
    return DiffusionModel.create(NB201SearchSpace(), diffusion_steps=100, config=TINY, seed=0)


def test_dgpo_refuses_copies_that_count_separately(nb201_model: DiffusionModel) -> None:
    env = make_vec_env(
        "dgpo_env/NB201-CIFAR10-v0",
        n_envs=3,
        env_kwargs={"n_steps": 2, "prior": nb201_model.noise.marginals, "diffusion_steps": 100},
    )
    with pytest.raises(LedgerError, match="3 different ledgers"):
        DGPO("GraphDiffusionPolicy", env, batch_size=3, max_queries=10, policy_kwargs={"model": nb201_model})


def test_dgpo_budget_is_exact_across_worker_processes(nb201_model: DiffusionModel, tmp_path: Path) -> None:
    ledger = SQLiteLedger(tmp_path / "q.sqlite")
    env = make_vec_env(
        "dgpo_env:dgpo_env/NB201-CIFAR10-v0",
        n_envs=4,
        seed=0,
        vec_env_cls=SubprocVecEnv,
        env_kwargs={"n_steps": 2, "prior": nb201_model.noise.marginals, "diffusion_steps": 100, "ledger": ledger},
    )
    try:
        agent = DGPO(
            "GraphDiffusionPolicy",
            env,
            batch_size=8,
            max_queries=10,
            seed=0,
            learning_rate=1e-3,
            policy_kwargs={"model": nb201_model},
        )
        agent.learn(10_000)
    finally:
        env.close()
    assert agent.stop_reason == "budget" and agent.n_queries == 10 == ledger.n_queries == ledger.max_queries


def test_dgpo_max_queries_must_agree_with_the_ledger_budget(nb201_model: DiffusionModel) -> None:
    ledger = InMemoryLedger(max_queries=5)
    with pytest.raises(ValueError, match="already has a budget of 5"):
        DGPO.for_env_id(nb201_model, None, benchmark=NB201Benchmark(ledger=ledger), n_steps=2, max_queries=10)


def test_searchers_check_the_budget_before_resetting_the_ledger() -> None:
    toy = ToyBenchmark()
    toy.query(toy.oracle.cell)
    for bad in (2.9, True, "5", None):
        with pytest.raises(TypeError, match="integer"):
            SEARCHERS["rs"]().run(toy, 0, bad)  # type: ignore[arg-type]
    assert toy.n_queries == 1
    assert type(SEARCHERS["rs"]().run(toy, 0, np.int64(3)).max_queries) is int


def test_a_ledger_of_another_kind_plugs_in() -> None:
    class Named(InMemoryLedger):
        @property
        def ledger_id(self) -> str:
            return "redis-queries-db0"

    ledger = Named()
    env = DummyVecEnv([lambda: GraphDenoiseEnv(benchmark=ToyBenchmark(ledger=ledger), n_steps=1)] * 2)
    assert env_ledger(env) is ledger
