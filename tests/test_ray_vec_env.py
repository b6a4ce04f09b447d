"""RayVecEnv on a real local Ray runtime: same numbers as DummyVecEnv, concurrent steps, SB3 agents and DGPO on it,
one exact query budget across actor copies; and the Ray Tune example in its smoke mode (docs/ray.md).

Actors take seconds to start, so most tests share four copies (a module fixture) counting into one
:class:`~dgpo_env.ledger.RayLedger`, emptied before each test. The module's tests run on one pytest-xdist
worker, with the other Ray tests (``xdist_group``).
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from sb3_contrib import MaskablePPO
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import VecEnv

from agents.dgpo import DGPO
from agents.diffusion.denoiser import DenoiserConfig
from agents.diffusion.model import DiffusionModel
from agents.diffusion.sampling import mean_sample_accuracy
from agents.policies import (
    GraphDiffusionPolicy,
    MaskableGraphDiffusionPolicy,
    RayVecEnv,
    env_ledger,
    make_env_for_model,
)
from dgpo_env.benchmarks import ToyBenchmark
from dgpo_env.envs.graph_denoise import GraphDenoiseEnv
from dgpo_env.ledger import BUDGET_EXHAUSTED, InMemoryLedger, LedgerError, QueryLedger, RayLedger, SQLiteLedger
from dgpo_env.search_spaces import ToySearchSpace

TINY = DenoiserConfig(hidden_dim=16, edge_dim=8, n_layers=2, n_heads=2, time_dim=8)
TOY = "dgpo_env/ToyDAG-v0"
N_ENVS = 4
ACTOR_CPUS = {"num_cpus": 0.25}  # 4 copies on one of the 2 logical CPUs the test runtime has

TUNE_EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "ray_tune_sweep.py"

pytestmark = pytest.mark.xdist_group("ray")

try:
    import ray
except ImportError:  # the tests that need it skip
    ray = None


@pytest.fixture(scope="module")
def toy_model() -> DiffusionModel:
    return DiffusionModel.create(ToySearchSpace(), diffusion_steps=100, config=TINY, seed=0)


@pytest.fixture(scope="module")
def shared(ray_runtime: None, toy_model: DiffusionModel) -> Iterator[Any]:
    """Four toy copies in Ray actors, built for the model, counting into one ledger actor."""
    ledger = RayLedger()
    env = make_env_for_model(
        toy_model,
        TOY,
        n_envs=N_ENVS,
        n_steps=4,
        benchmark=ToyBenchmark(ledger=ledger),
        vec_env_cls=RayVecEnv,
        vec_env_kwargs=ACTOR_CPUS,
    )
    yield env, ledger
    env.close()
    ledger.kill()


@pytest.fixture
def ray_env(shared: Any) -> tuple[VecEnv, QueryLedger]:
    """The shared actor copies with a fresh ledger (no records, no budget)."""
    env, ledger = shared
    ledger.reset()
    ledger.set_budget(None)
    return env, ledger


def _local_twin(model: DiffusionModel, seed: int) -> VecEnv:
    return make_env_for_model(model, TOY, n_envs=N_ENVS, n_steps=4, seed=seed)


def _allowed_actions(masks: np.ndarray, nvec: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One random allowed value per action entry and copy; ``masks``: ``bool[n_envs, sum(nvec)]``."""
    rows = []
    for mask in masks:
        per_entry = np.split(mask, np.cumsum(nvec)[:-1])
        rows.append([rng.choice(np.flatnonzero(ok)) for ok in per_entry])
    return np.array(rows, dtype=np.int64)


# ---------------------------------------------------------------------------------------------- the VecEnv contract
def test_same_observations_rewards_and_infos_as_dummy_vec_env(
    ray_env: tuple[VecEnv, QueryLedger], toy_model: DiffusionModel
) -> None:
    env, _ = ray_env
    local = _local_twin(toy_model, seed=5)
    env.seed(5)
    obs, ref = env.reset(), local.reset()
    assert all(np.array_equal(obs[k], ref[k]) and obs[k].dtype == ref[k].dtype for k in ref)
    rng = np.random.default_rng(0)
    finished = 0
    for _ in range(3 * 4):  # three episodes of four steps: auto-reset included
        masks = np.stack(env.env_method("action_masks"))
        np.testing.assert_array_equal(masks, np.stack(local.env_method("action_masks")))
        actions = _allowed_actions(masks, env.action_space.nvec, rng)  # type: ignore[attr-defined]
        (obs, rewards, dones, infos), (ref, ref_rewards, ref_dones, ref_infos) = env.step(actions), local.step(actions)
        assert all(np.array_equal(obs[k], ref[k]) for k in ref)
        assert rewards.dtype == ref_rewards.dtype == np.float32 and np.array_equal(rewards, ref_rewards)
        assert dones.dtype == ref_dones.dtype and np.array_equal(dones, ref_dones)
        for info, ref_info in zip(infos, ref_infos, strict=True):
            assert info.keys() == ref_info.keys() and info["TimeLimit.truncated"] is False
            if "terminal_observation" in info:
                finished += 1
                final = info["terminal_observation"]
                assert all(np.array_equal(final[k], ref_info["terminal_observation"][k]) for k in ref)
                assert all(final[k].flags.writeable for k in ref)  # as SB3's VecEnvs return them
                assert info["key"] == ref_info["key"] and info["episode"]["r"] == ref_info["episode"]["r"]
    assert finished == 3 * N_ENVS
    assert np.all(obs["t"] == toy_model.diffusion_steps)  # reset after the last episode, as SB3 does


def test_attributes_methods_and_wrappers_of_the_copies(ray_env: tuple[VecEnv, QueryLedger]) -> None:
    env, ledger = ray_env
    assert env.num_envs == N_ENVS and env.get_attr("ledger_id") == [ledger.ledger_id] * N_ENVS
    assert env.env_is_wrapped(Monitor) == [True] * N_ENVS and env.env_is_wrapped(gym.wrappers.TimeLimit, [0]) == [False]
    assert env.has_attr("action_masks") and not env.has_attr("no_such_attribute")
    env.set_attr("marker", "x", indices=[1, 2])
    assert env.get_attr("marker", [1, 2]) == ["x", "x"]
    with pytest.raises(AttributeError):
        env.get_attr("marker", [0])
    with pytest.raises(ValueError, match="one row per environment copy"):
        env.step_async(np.zeros((N_ENVS - 1, len(env.action_space.nvec)), dtype=np.int64))  # type: ignore[attr-defined]
    assert env.render_mode == "rgb_array"  # the registered ids' default
    env.reset()  # Gymnasium renders only after a reset
    images = env.get_images()
    assert len(images) == N_ENVS and all(image is not None and image.shape[-1] == 3 for image in images)


def test_an_error_in_a_copy_reaches_the_caller(ray_env: tuple[VecEnv, QueryLedger]) -> None:
    env, _ = ray_env
    env.reset()
    bad = np.full((N_ENVS, len(env.action_space.nvec)), 99, dtype=np.int64)  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="out of range"):  # the environment's own message, raised in the actor
        env.step(bad)
    assert not env.waiting
    env.reset()  # the copies are still usable


class _Barrier(gym.Wrapper):
    """At the end of an episode, wait until every copy reached the end of its own (a file per copy in ``folder``).

    If the copies stepped one after another, the first would wait forever: the test times out instead.
    """

    def __init__(self, env: gym.Env, folder: str, parties: int, timeout_s: float = 120.0) -> None:
        super().__init__(env)
        self.folder, self.parties, self.timeout_s = Path(folder), parties, timeout_s

    def step(self, action: Any) -> Any:
        result = self.env.step(action)
        if result[2] or result[3]:
            (self.folder / uuid.uuid4().hex).touch()
            deadline = time.monotonic() + self.timeout_s
            while len(list(self.folder.iterdir())) < self.parties:
                if time.monotonic() > deadline:
                    raise TimeoutError("the other copies never stepped while this one waited")
                time.sleep(0.01)
        return result


def test_copies_step_concurrently_and_share_an_sqlite_ledger(ray_runtime: None, tmp_path: Path) -> None:
    folder, parties = tmp_path / "barrier", 2
    folder.mkdir()
    ledger = SQLiteLedger(tmp_path / "queries.sqlite")  # one machine: a file every actor opens

    def make() -> gym.Env:
        return _Barrier(GraphDenoiseEnv(benchmark="toy", n_steps=1, ledger=ledger), str(folder), parties)

    env = RayVecEnv([make] * parties, **ACTOR_CPUS)
    try:
        assert env_ledger(env).ledger_id == ledger.ledger_id
        env.reset()
        actions = np.stack([env.action_space.sample() for _ in range(parties)])
        _, _, dones, infos = env.step(actions)  # returns only if both copies were inside step() together
        with pytest.warns(UserWarning, match="rgb_array"):  # built without a render mode
            assert env.get_images() == [None] * parties
    finally:
        env.close()
    assert dones.all() and len(list(folder.iterdir())) == parties and env.closed
    assert ledger.n_lookups == sum(info["valid"] for info in infos)  # both copies counted into the one file


# ---------------------------------------------------------------------------------------------- agents on it
def test_dgpo_learns_on_ray_copies_exactly_as_on_local_copies(
    ray_env: tuple[VecEnv, QueryLedger], toy_model: DiffusionModel
) -> None:
    """Measured: toy mean accuracy 38.0 -> 57.8 after 15 batches of 16 (seed 0), on both VecEnvs."""
    settings = {"batch_size": 16, "learning_rate": 5e-3, "freeze_fraction": 0.0, "seed": 0}
    env, ledger = ray_env
    before = mean_sample_accuracy(toy_model, ToyBenchmark(), 200, 4, seed=123)
    agents = []
    for vec_env in (env, _local_twin(toy_model, seed=0)):
        agent = DGPO("GraphDiffusionPolicy", vec_env, policy_kwargs={"model": toy_model}, **settings)
        agents.append(agent.learn(15 * 16 * 4))
    on_ray, on_local = agents
    for a, b in zip(on_ray.policy.parameters(), on_local.policy.parameters(), strict=True):
        assert torch.equal(a, b)
    assert on_ray.n_queries == ledger.n_queries == on_local.n_queries
    # the count a copy reads after its look-up may include copies that looked up at the same time
    ray_best, local_best = dict(on_ray.best or {}), dict(on_local.best or {})
    found_at = ray_best.pop("n_queries_when_found"), local_best.pop("n_queries_when_found")
    assert ray_best == local_best and abs(found_at[0] - found_at[1]) < N_ENVS
    after = mean_sample_accuracy(on_ray.policy.model, ToyBenchmark(), 200, 4, seed=123)
    assert after >= before + 10.0, (before, after)


def test_dgpo_budget_is_exact_across_actor_copies(
    ray_env: tuple[VecEnv, QueryLedger], toy_model: DiffusionModel
) -> None:
    env, ledger = ray_env
    agent = DGPO("GraphDiffusionPolicy", env, policy_kwargs={"model": toy_model}, batch_size=8, max_queries=10, seed=1)
    agent.learn(10**6)
    assert agent.stop_reason == "budget" and ledger.max_queries == 10
    assert agent.n_queries == ledger.n_queries == 10 == len({r.key for r in ledger.history})
    assert agent.num_timesteps <= 3 * 8 * 4  # stopped long before total_timesteps


def test_random_cells_never_overshoot_the_budget(ray_env: tuple[VecEnv, QueryLedger]) -> None:
    env, ledger = ray_env
    ledger.set_budget(20)
    env.reset()
    rng = np.random.default_rng(1)
    refused = 0
    for _ in range(200):
        actions = _allowed_actions(np.stack(env.env_method("action_masks")), env.action_space.nvec, rng)  # type: ignore[attr-defined]
        infos = env.step(actions)[3]
        refused += sum(info.get("invalid_reason") == BUDGET_EXHAUSTED for info in infos)
        if refused >= N_ENVS:
            break
    assert refused >= N_ENVS, "the budget was never reached"
    assert ledger.n_queries == 20 == len({r.key for r in ledger.history})


@pytest.mark.parametrize("algo", [PPO, A2C, MaskablePPO])
def test_sb3_algorithms_run_on_ray_copies(
    ray_env: tuple[VecEnv, QueryLedger], toy_model: DiffusionModel, algo: type
) -> None:
    env, ledger = ray_env
    kwargs = {"model": toy_model, "task": env.get_attr("task", [0])[0]}
    policy = MaskableGraphDiffusionPolicy if algo is MaskablePPO else GraphDiffusionPolicy
    extra = {"n_steps": 4} if algo is A2C else {"n_steps": 4, "batch_size": 16, "n_epochs": 1}
    agent = algo(policy, env, gamma=1.0, seed=0, policy_kwargs=kwargs, **extra)
    agent.learn(32)
    assert agent.num_timesteps == 32 and np.isfinite(agent.logger.name_to_value["train/value_loss"])
    assert ledger.n_lookups >= N_ENVS  # the copies' episodes ended and were looked up


# ---------------------------------------------------------------------------------------------- arguments
def test_a_failing_factory_is_reported_and_the_started_actors_ended(ray_runtime: None) -> None:
    assert ray is not None
    free = ray.available_resources().get("CPU", 0.0)
    with pytest.raises(ray.exceptions.RayActorError, match=r"must return a gymnasium\.Env, got int") as error:
        RayVecEnv([lambda: GraphDenoiseEnv(benchmark="toy"), lambda: 3], num_cpus=0.5)
    deadline = time.monotonic() + 60.0  # the good copy's actor (alive until killed: the traceback holds it)
    while ray.available_resources().get("CPU", 0.0) < free and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ray.available_resources().get("CPU", 0.0) >= free and error.value is not None


def test_copies_no_node_can_hold_are_refused_not_waited_for(ray_runtime: None) -> None:
    with pytest.raises(ValueError, match=r"has 3 CPUs and 0 GPUs.*lower num_cpus / num_gpus"):
        RayVecEnv([lambda: GraphDenoiseEnv(benchmark="toy")], num_cpus=3)


def test_in_process_ledger_is_refused(ray_runtime: None, toy_model: DiffusionModel) -> None:
    with pytest.raises(LedgerError, match="SQLiteLedger"):
        make_env_for_model(
            toy_model, TOY, n_envs=2, benchmark=ToyBenchmark(ledger=InMemoryLedger()), vec_env_cls=RayVecEnv
        )


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"env_fns": []}, ValueError, "at least one"),
        ({"env_fns": "toy"}, TypeError, "list of environment factories"),
        ({"env_fns": [1]}, TypeError, r"env_fns\[0\] must be a callable"),
        ({"num_cpus": -1}, ValueError, "num_cpus must be >= 0"),
        ({"num_gpus": "1"}, TypeError, "num_gpus must be a finite real number"),
        ({"num_cpus": True}, TypeError, "num_cpus must be a finite real number"),
        ({"actor_options": {"num_cpus": 2}}, ValueError, r"must not set \['num_cpus'\]"),
        ({"actor_options": [("resources", {})]}, TypeError, "actor_options must be a mapping"),
    ],
)
def test_arguments_are_checked(kwargs: dict[str, Any], error: type[Exception], match: str) -> None:
    arguments = {"env_fns": [lambda: GraphDenoiseEnv(benchmark="toy")], **kwargs}
    with pytest.raises(error, match=match):
        RayVecEnv(**arguments)


def test_missing_ray_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now fails as if it were not installed
    with pytest.raises(ImportError, match=r'RayVecEnv needs Ray.*pip install "dgpo-env\[ray\]"'):
        make_vec_env(TOY, n_envs=1, vec_env_cls=RayVecEnv)


# ---------------------------------------------------------------------------------------------- the Ray Tune example
@pytest.fixture(scope="module")
def tune_example() -> Iterator[ModuleType]:
    """examples/ray_tune_sweep.py as a module (importable by name, so Ray can send its trial function by value)."""
    spec = importlib.util.spec_from_file_location("ray_tune_sweep", TUNE_EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        if ray is not None:
            ray.cloudpickle.register_pickle_by_value(module)
        yield module
    finally:
        del sys.modules[spec.name]


def test_query_efficiency_is_the_mean_of_the_padded_best_so_far_curve(tune_example: ModuleType) -> None:
    query_efficiency = tune_example.query_efficiency
    assert query_efficiency(np.array([80.0, 85.0, 85.0, 90.0]), 4) == pytest.approx(85.0)
    assert query_efficiency(np.array([80.0, 90.0]), 4) == pytest.approx((80 + 90 * 3) / 4)  # stopped early
    assert np.isnan(query_efficiency(np.array([]), 4))


def test_tune_sweep_smoke_ranks_settings_and_reports_held_out_seeds(
    ray_runtime: None, tune_example: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("ray.tune", reason='needs Ray Tune: pip install "dgpo-env[ray]"')
    out = tmp_path / "sweep.json"
    argv = ["--smoke", "--cpus-per-trial", "0.5", "--storage", str(tmp_path / "tune"), "--out", str(out)]
    summary = tune_example.main(argv)
    trials = summary["trials"]
    assert {(t["learning_rate"], t["batch_size"]) for t in trials} == {(1e-4, 4), (1e-4, 8), (1e-3, 4), (1e-3, 8)}
    scores = [t["query_efficiency"] for t in trials]
    assert scores == sorted(scores, reverse=True) and all(50.0 < s <= 91.61 for s in scores)  # NB201 oracle 91.6067
    assert all(t["n_queries"] == 8 and t["query_efficiency"] <= t["best_val_acc"] for t in trials)
    assert summary["best"] == {k: trials[0][k] for k in ("learning_rate", "batch_size")}
    assert summary["held_out"]["n_queries"] == 8 and json.loads(out.read_text()) == summary
    assert "held-out seeds [100]" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--seeds", "0,100"], "--seeds must be below 100"),
        (["--report-seeds", "5"], "--report-seeds must be 100 or above"),
        (["--seeds", "1,1"], "distinct seeds"),
        (["--learning-rates", "0"], "expected a finite number > 0"),
        (["--batch-sizes", "2.5"], "expected an integer"),
    ],
)
def test_tune_example_arguments_are_checked(
    tune_example: ModuleType, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        tune_example.parse_args(argv)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
