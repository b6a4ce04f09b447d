"""DGPO: advantages, losses, settings, the SB3-style algorithm, budgets, save/load, seeding, and that it learns."""

from __future__ import annotations

import csv
import importlib
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import configure

from agents.cli import main
from agents.dgpo import DGPO, DGPOConfig, RewardNormalizer, batch_advantages, first_occurrences, freeze_layers
from agents.dgpo.advantages import ADVANTAGE_CLIP, REWARD_SMOOTHING
from agents.dgpo.compare_methods import LAZY_METHODS
from agents.dgpo.losses import TIMESTEP_FRACTION
from agents.diffusion.denoiser import DenoiserConfig
from agents.diffusion.model import DiffusionModel
from agents.diffusion.sampling import mean_sample_accuracy
from agents.policies.envs import make_env_for_model
from dgpo_env.benchmarks import ToyBenchmark
from dgpo_env.search_spaces import NB201SearchSpace, ToySearchSpace

TINY = DenoiserConfig(hidden_dim=16, edge_dim=8, n_layers=2, n_heads=2, time_dim=8)
T = 100
TOY = "dgpo_env/ToyDAG-v0"
NB201 = "dgpo_env/NB201-CIFAR10-v0"


@pytest.fixture(scope="module")
def toy_model() -> DiffusionModel:
    return DiffusionModel.create(ToySearchSpace(), diffusion_steps=T, config=TINY, seed=0)


@pytest.fixture(scope="module")
def nb201_model() -> DiffusionModel:
    return DiffusionModel.create(NB201SearchSpace(), diffusion_steps=T, config=TINY, seed=0)


def toy_mean_reward(model: DiffusionModel, n: int = 200, n_steps: int = 4) -> float:
    """Mean toy accuracy (invalid cells score 0, as the environment rewards them) of fresh samples, uncounted."""
    return mean_sample_accuracy(model, ToyBenchmark(), n, n_steps, seed=123)


# ---------------------------------------------------------------------------------------------- advantages
def test_duplicates_and_invalid_samples_are_counted_once_or_not_at_all() -> None:
    keys = ["a", None, "b", "a", "c"]
    valid = np.array([True, False, True, True, True])
    np.testing.assert_array_equal(first_occurrences(keys, valid), [True, False, True, False, True])


def test_advantages_follow_the_ema_and_are_clipped() -> None:
    norm = RewardNormalizer(smoothing=0.1, clip=5.0)
    rewards = np.array([0.2, 0.4, 0.9, 0.4, 0.0])
    valid = np.array([True, True, True, True, False])
    keys = ["a", "b", "c", "b", None]
    adv, counted, informative = batch_advantages(rewards, valid, keys, norm)
    first = rewards[:3]
    assert informative and norm.mean == pytest.approx(first.mean()) and norm.std == pytest.approx(first.std())
    np.testing.assert_allclose(adv[:3], (first - first.mean()) / first.std())
    assert adv[3] == 0.0 and adv[4] == 0.0 and counted.tolist() == [True, True, True, False, False]
    # second batch: EMA with weight 0.1 on the new statistics; an outlier is clipped at 5
    second = np.array([0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 9.0])
    adv2, _, _ = batch_advantages(second, np.ones(10, bool), [str(i) for i in range(10)], norm)
    assert norm.mean == pytest.approx(0.9 * first.mean() + 0.1 * second.mean())
    assert norm.std == pytest.approx(0.9 * first.std() + 0.1 * second.std())
    assert adv2[-1] == 5.0


def test_all_equal_rewards_give_no_update() -> None:
    norm = RewardNormalizer()
    adv, _, informative = batch_advantages(np.full(4, 0.7), np.ones(4, bool), list("abcd"), norm)
    assert not informative and norm.mean is None and not adv.any()


def test_freeze_layers_freezes_the_first_share(toy_model: DiffusionModel) -> None:
    model = DiffusionModel.create(ToySearchSpace(), diffusion_steps=T, config=TINY, seed=0)
    names = freeze_layers(model, 0.75)  # 2 layers -> 1 frozen, plus the embeddings
    assert "layers.0" in names and "layers.1" not in names and "node_in" in names
    assert not any(p.requires_grad for p in model.denoiser.layers[0].parameters())
    assert all(p.requires_grad for p in model.denoiser.layers[1].parameters())
    assert freeze_layers(toy_model, 0.0) == [] and all(p.requires_grad for p in toy_model.parameters())


# ---------------------------------------------------------------------------------------------- the algorithm
class _Counter(BaseCallback):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def _on_step(self) -> bool:
        self.calls += 1
        return True


@pytest.mark.parametrize("env_id", [TOY, NB201])
@pytest.mark.parametrize("gradient", ["eager", "ddpo"])
def test_learn_runs_logs_and_updates(
    toy_model: DiffusionModel, nb201_model: DiffusionModel, env_id: str, gradient: str, tmp_path: Path
) -> None:
    model = toy_model if env_id == TOY else nb201_model
    agent = DGPO.for_env_id(
        model, env_id, n_envs=4, n_steps=4, batch_size=8, learning_rate=1e-3, gradient=gradient, seed=0
    )
    frozen = [p.detach().clone() for p in agent.policy.model.denoiser.layers[0].parameters()]
    head = [p.detach().clone() for p in agent.policy.model.denoiser.node_head.parameters()]
    agent.set_logger(configure(str(tmp_path), ["csv"]))
    callback = _Counter()
    agent.learn(3 * 8 * 4, callback=callback)
    assert agent.num_timesteps == 96 and callback.calls == 24
    with open(tmp_path / "progress.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 3
    for key in ("rollout/ep_rew_mean", "dgpo/n_queries", "dgpo/best_val_acc", "train/n_counted", "time/fps"):
        assert rows[-1][key] != "", key
    assert int(rows[-1]["dgpo/n_queries"]) == agent.n_queries
    if agent._n_updates:
        assert any(row["train/loss"] != "" and row["train/advantage_mean"] != "" for row in rows)
    assert agent.n_queries > 0 and agent.best is not None and 0.0 < agent.best["val_acc"] <= 100.0
    assert agent.ep_info_buffer is not None and len(agent.ep_info_buffer) == 24
    # official layer freezing (75% of 2 layers = 1): the first layer is untouched, the heads moved
    assert all(
        torch.equal(a, b) for a, b in zip(agent.policy.model.denoiser.layers[0].parameters(), frozen, strict=True)
    )
    if agent._n_updates:  # at least one informative batch
        assert any(
            not torch.equal(a, b) for a, b in zip(agent.policy.model.denoiser.node_head.parameters(), head, strict=True)
        )


@pytest.mark.filterwarnings("ignore::tqdm.TqdmExperimentalWarning")  # SB3's rich progress bar
def test_max_queries_stops_learning(nb201_model: DiffusionModel) -> None:
    agent = DGPO.for_env_id(nb201_model, NB201, n_envs=4, n_steps=3, batch_size=8, max_queries=10, seed=1)
    agent.learn(10**6, progress_bar=True)
    env = agent.get_env()
    assert env is not None
    benchmark = env.get_attr("benchmark")[0]
    assert agent.budget_exhausted and benchmark.n_queries == 10 == agent.n_queries
    assert agent.num_timesteps <= 3 * 3 * 8  # stopped long before total_timesteps


def test_seeded_runs_are_identical_and_save_load_round_trips(toy_model: DiffusionModel, tmp_path: Path) -> None:
    def run() -> DGPO:
        agent = DGPO.for_env_id(toy_model, TOY, n_envs=4, n_steps=4, batch_size=8, learning_rate=1e-3, seed=7)
        return agent.learn(2 * 8 * 4)

    first, second = run(), run()
    for a, b in zip(first.policy.parameters(), second.policy.parameters(), strict=True):
        assert torch.equal(a, b)
    assert first.best == second.best and first.normalizer == second.normalizer
    first.save(tmp_path / "dgpo")
    env = first.get_env()
    assert env is not None
    loaded = DGPO.load(tmp_path / "dgpo", env=env)
    obs = env.reset()
    assert isinstance(obs, dict)
    np.testing.assert_array_equal(first.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0])
    assert loaded.normalizer == first.normalizer and loaded.frozen_modules == first.frozen_modules
    assert type(loaded) is DGPO and loaded.config == first.config
    loaded.learn(8 * 4)  # a loaded agent keeps training
    assert loaded.num_timesteps == 32
    # SB3's load(..., name=value) overrides a setting; the learning rate is SB3's own attribute
    changed = DGPO.load(tmp_path / "dgpo", env=env, batch_size=4, learning_rate=2e-3)
    assert changed.config == first.config.replace(batch_size=4, learning_rate=2e-3)
    assert changed.lr_schedule(1.0) == 2e-3  # the optimizer takes it at the next update (SB3)
    other_schedule = make_env_for_model(toy_model, TOY, n_envs=4, n_steps=5)  # same spaces, other step schedule
    with pytest.raises(ValueError, match="schedule"):
        DGPO.load(tmp_path / "dgpo", env=other_schedule)


def test_settings_are_checked(toy_model: DiffusionModel) -> None:
    with pytest.raises(ValueError, match="multiple of the number of environments"):
        DGPO.for_env_id(toy_model, TOY, n_envs=4, n_steps=4, batch_size=6)
    with pytest.raises(ValueError, match=r"DGPOConfig.gradient must be one of \('eager', 'ddpo'\), got 'ppo'"):
        DGPO.for_env_id(toy_model, TOY, n_envs=2, n_steps=4, batch_size=2, gradient="ppo")
    with pytest.raises(ValueError, match=r"DGPOConfig.timestep_fraction must be a real number in \(0, 1\], got 0.0"):
        DGPO.for_env_id(toy_model, TOY, n_envs=2, n_steps=4, batch_size=2, timestep_fraction=0.0)


# ---------------------------------------------------------------------------------------------- settings
def test_default_settings_are_the_official_nb201_settings() -> None:
    config = DGPOConfig()
    assert config.to_dict() == {
        "learning_rate": 5e-7,
        "batch_size": 15,
        "n_inner_passes": 4,
        "timestep_fraction": 0.3,
        "reward_smoothing": 0.1,
        "advantage_clip": 5.0,
        "max_grad_norm": 2.0,
        "freeze_fraction": 0.75,
        "gradient_accumulation": 2,
        "gradient": "eager",
        # this project's additions, each off (docs/dgpo.md §3)
        "count_repeats": False,
        "baseline": "ema",
        "entropy_coef": 0.0,
        "kl_coef": 0.0,
        "kl_schedule": "constant",
        "kl_anneal_fraction": 1.0,
        "kl_direction": "reverse",
        "explore_copies": 0,
        "explore_baseline": "best",
        "explore_memory": 0,
        "explore_advantage": "scaled",
    }
    # the lower-level defaults of the loss and the normaliser agree with the settings
    assert (config.timestep_fraction, config.reward_smoothing, config.advantage_clip) == (
        TIMESTEP_FRACTION,
        REWARD_SMOOTHING,
        ADVANTAGE_CLIP,
    )


@pytest.mark.parametrize(
    ("field", "value", "error", "words"),
    [
        ("batch_size", 2.0, TypeError, ["DGPOConfig.batch_size", "an int >= 1", "2.0", "float"]),
        ("batch_size", True, TypeError, ["DGPOConfig.batch_size", "an int >= 1", "True", "bool"]),
        ("batch_size", "15", TypeError, ["DGPOConfig.batch_size", "an int >= 1", "'15'", "str"]),
        ("batch_size", 0, ValueError, ["DGPOConfig.batch_size", "an int >= 1", "got 0"]),
        ("n_inner_passes", -1, ValueError, ["DGPOConfig.n_inner_passes", "an int >= 1", "got -1"]),
        ("n_inner_passes", np.float64(4), TypeError, ["DGPOConfig.n_inner_passes", "an int >= 1", "float64"]),
        ("gradient_accumulation", np.bool_(True), TypeError, ["DGPOConfig.gradient_accumulation", "bool"]),
        ("gradient_accumulation", 0, ValueError, ["DGPOConfig.gradient_accumulation", "an int >= 1", "got 0"]),
        ("timestep_fraction", 1.5, ValueError, ["DGPOConfig.timestep_fraction", "in (0, 1]", "got 1.5"]),
        ("timestep_fraction", "0.3", TypeError, ["DGPOConfig.timestep_fraction", "a real number", "str"]),
        ("timestep_fraction", True, TypeError, ["DGPOConfig.timestep_fraction", "a real number", "bool"]),
        ("reward_smoothing", 0.0, ValueError, ["DGPOConfig.reward_smoothing", "in (0, 1]", "got 0.0"]),
        ("advantage_clip", -5.0, ValueError, ["DGPOConfig.advantage_clip", "> 0", "got -5.0"]),
        ("max_grad_norm", 0, ValueError, ["DGPOConfig.max_grad_norm", "> 0", "got 0"]),
        ("max_grad_norm", math.nan, ValueError, ["DGPOConfig.max_grad_norm", "> 0", "nan"]),
        ("freeze_fraction", 1.01, ValueError, ["DGPOConfig.freeze_fraction", "in [0, 1]", "got 1.01"]),
        ("freeze_fraction", None, TypeError, ["DGPOConfig.freeze_fraction", "a real number", "None"]),
        ("learning_rate", 0.0, ValueError, ["DGPOConfig.learning_rate", "> 0", "schedule", "got 0.0"]),
        ("learning_rate", "1e-3", TypeError, ["DGPOConfig.learning_rate", "> 0", "schedule", "str"]),
        ("gradient", "ppo", ValueError, ["DGPOConfig.gradient", "'eager', 'ddpo'", "'ppo'"]),
        ("gradient", 1, TypeError, ["DGPOConfig.gradient", "'eager', 'ddpo'", "int"]),
    ],
)
def test_config_refuses_wrong_types_and_out_of_range_values(
    field: str, value: Any, error: type[Exception], words: list[str]
) -> None:
    with pytest.raises(error) as info:
        DGPOConfig(**{field: value})
    for word in words:
        assert word in str(info.value), (word, str(info.value))
    with pytest.raises(error):  # a checked copy is checked the same way
        DGPOConfig().replace(**{field: value})


def test_config_normalises_numpy_numbers_and_accepts_schedules() -> None:
    config = DGPOConfig(
        batch_size=np.int64(6), timestep_fraction=np.float32(0.5), advantage_clip=3, max_grad_norm=math.inf
    )
    assert type(config.batch_size) is int and config.batch_size == 6
    assert type(config.timestep_fraction) is float and type(config.advantage_clip) is float
    schedule = lambda progress: 1e-3 * progress  # noqa: E731
    assert DGPOConfig(learning_rate=schedule).learning_rate is schedule
    with pytest.raises(AttributeError):
        config.batch_size = 3  # type: ignore[misc]  # frozen


def test_unknown_setting_names_are_refused_with_the_known_ones(toy_model: DiffusionModel) -> None:
    with pytest.raises(TypeError, match=r"unknown DGPOConfig setting\(s\) 'batch'; known settings: learning_rate, "):
        DGPOConfig().replace(batch=3)
    with pytest.raises(
        TypeError, match=r"DGPO got unknown setting\(s\) 'lr'; known settings: learning_rate, batch_size"
    ):
        DGPO.for_env_id(toy_model, TOY, n_envs=2, n_steps=4, lr=1e-3)
    # an elite setting is not one of published DGPO's
    with pytest.raises(
        TypeError, match=r"DGPO got unknown setting\(s\) 'anchor_prob'; .*\(EliteDGPO, SurrogateDGPO.* take them\)"
    ):
        DGPO.for_env_id(toy_model, TOY, n_envs=2, n_steps=4, batch_size=2, anchor_prob=0.5)
    with pytest.raises(TypeError, match="config must be a DGPOConfig or None, got dict"):
        DGPO.for_env_id(toy_model, TOY, n_envs=2, n_steps=4, config={"batch_size": 2})


def test_config_and_overrides_combine_and_are_read_only(toy_model: DiffusionModel) -> None:
    config = DGPOConfig(learning_rate=1e-3, batch_size=4, n_inner_passes=2)
    agent = DGPO.for_env_id(toy_model, TOY, n_steps=4, config=config, batch_size=2, seed=0)  # the keyword wins
    assert agent.config == config.replace(batch_size=2) and agent.n_envs == 2  # n_envs defaults to the batch size
    assert (agent.batch_size, agent.n_inner_passes, agent.learning_rate) == (2, 2, 1e-3)
    assert agent.policy.optimizer.param_groups[0]["lr"] == 1e-3
    assert agent.settings_dict() == agent.config.to_dict()
    with pytest.raises(AttributeError, match=r"batch_size is read from .config"):
        agent.batch_size = 4  # type: ignore[misc]


def test_dgpo_raises_toy_reward_and_inverse_dgpo_lowers_it(toy_model: DiffusionModel) -> None:
    """Fixed seeds; measured 38.0 -> 61.2 (DGPO) and 38.0 -> 21.9 (inverse), 15 batches of 16 (seeds 1, 2 in
    benchmarks/dgpo_finetune.py: +7..+23 and -15..-23)."""
    before = toy_mean_reward(toy_model)
    after = {}
    for inverse in (False, True):
        agent = DGPO.for_env_id(
            toy_model,
            TOY,
            n_steps=4,
            batch_size=16,
            learning_rate=5e-3,
            freeze_fraction=0.0,
            seed=0,
            env_kwargs={"inverse": inverse},
        )
        agent.learn(15 * 16 * 4)
        after[inverse] = toy_mean_reward(agent.policy.model)
    assert after[False] >= before + 10.0, (before, after)
    assert after[True] <= before - 8.0, (before, after)


# ---------------------------------------------------------------------------------------------- CLI and harness
def test_finetune_command_prints_best_cell_and_queries(
    toy_model: DiffusionModel, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = toy_model.save(tmp_path / "toy.pt")
    args = ["finetune", str(path), "--env", TOY, "--max-queries", "12", "--n-steps", "3", "--batch-size", "4"]
    assert main([*args, "--lr", "1e-3", "--no-progress", "--save-model", str(tmp_path / "tuned.pt")]) == 0
    out = capsys.readouterr().out
    assert "best cell: ops=" in out and "validation accuracy" in out and "test accuracy" in out
    found = re.search(r"queries: (\d+) distinct cells", out)
    assert found is not None
    queries = int(found.group(1))
    assert queries == 12
    assert DiffusionModel.load(tmp_path / "tuned.pt").space.name == "toy"


def test_finetune_command_refuses_a_checkpoint_of_another_space(
    nb201_model: DiffusionModel, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = nb201_model.save(tmp_path / "nb201.pt")
    assert main(["finetune", str(path), "--env", TOY, "--max-queries", "5", "--no-progress"]) == 2
    assert "mismatch" in capsys.readouterr().err


def test_compare_methods_respect_the_budget(toy_model: DiffusionModel, tmp_path: Path) -> None:
    path = toy_model.save(tmp_path / "toy.pt")
    for name, target in LAZY_METHODS.items():
        if name in ("dgpo-mo", "dgpo-mo-gp"):
            continue  # its objectives (latency) are not in the toy benchmark; tests/test_pareto.py runs it on NB201
        module, attr = target.split(":")
        fn = getattr(importlib.import_module(module), attr)
        extra = {} if name == "ppo-mlp" else {"checkpoint": path, "n_steps": 3}
        result = fn({"name": "toy"}, 0, 15, **extra)
        assert result.method == name and result.stop_reason == "budget" and result.n_queries == 15
        assert result.best_val_acc is not None and len(result.curve) == result.n_queries


def test_a_converged_policy_stops_after_stale_batches(nb201_model: DiffusionModel) -> None:
    agent = DGPO.for_env_id(nb201_model, NB201, n_envs=4, n_steps=2, batch_size=4, max_stale_batches=2, seed=0)
    head = agent.policy.model.denoiser.node_head
    assert isinstance(head, torch.nn.Sequential)
    last = head[-1]
    assert isinstance(last, torch.nn.Linear)
    last.bias.data[:] = torch.tensor([0.0, 0.0, 50.0, 0.0, 0.0, 0.0, 0.0])
    agent.learn(10**6)  # the model now proposes (almost) one cell: no new cells after the first batch
    assert agent.stop_reason == "converged" and agent.stale_batches == 2 and agent.num_timesteps <= 4 * 2 * 4


def test_finetune_inverse_reports_where_the_model_went(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--inverse`` lowers accuracy: the summary gives the fresh-sample mean, not only the best cell passed."""
    config = DenoiserConfig(hidden_dim=16, edge_dim=8, n_layers=1, n_heads=2, time_dim=8)
    path = DiffusionModel.create(NB201SearchSpace(), diffusion_steps=50, config=config, seed=0).save(tmp_path / "m.pt")
    args = ["finetune", str(path), "--max-queries", "8", "--n-steps", "2", "--batch-size", "4", "--no-progress"]
    assert main([*args, "--inverse"]) == 0
    out = capsys.readouterr().out
    assert "stopped: the query budget is spent" in out
    line = next(x for x in out.splitlines() if "inverse control:" in x)
    mean = float(line.split("500 fresh samples ")[1].split("%")[0])
    assert 0.0 <= mean <= 100.0 and "most accurate one the run looked up" in line


def test_finetune_refuses_kl_shape_flags_without_a_kl_term(capsys: pytest.CaptureFixture[str]) -> None:
    """``--kl-schedule`` and friends would do nothing without ``--kl-coef > 0``: refused, not ignored."""
    assert main(["finetune", "--pretrained", "toy", "--env", "dgpo_env/ToyDAG-v0", "--kl-direction", "forward"]) == 2
    assert "--kl-direction: only with a KL term, give --kl-coef > 0" in capsys.readouterr().err


def test_resumed_on_a_fresh_ledger_the_count_and_budget_continue(toy_model: DiffusionModel, tmp_path: Path) -> None:
    """A loaded agent on a ledger that lost its cells neither recounts from zero nor spends its budget twice."""
    agent = DGPO.for_env_id(toy_model, TOY, n_envs=4, n_steps=4, batch_size=8, seed=3, max_queries=30)
    agent.learn(8 * 4)  # one batch: some distinct cells, fewer than the budget
    saved = agent.n_queries
    assert 0 < saved < 30
    agent.save(tmp_path / "dgpo")
    fresh = make_env_for_model(toy_model, TOY, n_envs=4, n_steps=4)  # a new benchmark: its ledger is empty
    with pytest.warns(UserWarning, match=f"continues from {saved} with {30 - saved} of max_queries=30 left"):
        loaded = DGPO.load(tmp_path / "dgpo", env=fresh)
    assert loaded.query_offset == saved and loaded.n_queries == saved
    loaded.learn(100 * 8 * 4)
    ledger = fresh.get_attr("benchmark")[0].ledger
    assert loaded.stop_reason == "budget" and loaded.n_queries == 30
    assert ledger.n_queries == 30 - saved  # only what was left was spent on the new ledger
    first = DGPO.for_env_id(toy_model, TOY, n_envs=4, n_steps=4, batch_size=8, seed=3, max_queries=30)
    first.learn(8 * 4)
    first.save(tmp_path / "again")
    same = DGPO.load(tmp_path / "again", env=first.get_env())  # on its own ledger: nothing to continue
    assert same.query_offset == 0 and same.n_queries == first.n_queries


def test_the_cached_comparison_model_is_trained_on_one_torch_thread_whoever_asks(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Pretraining with two threads gives another model under the same cache key; the caller's count is kept."""
    import agents.dgpo.compare_methods as compare_methods
    from agents.diffusion.pretrain import PretrainConfig

    seen: list[int] = []
    real_pretrain = compare_methods.pretrain

    def recording_pretrain(*args: Any, **kwargs: Any) -> Any:
        seen.append(torch.get_num_threads())
        return real_pretrain(*args, **kwargs)

    monkeypatch.setenv("DGPO_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(compare_methods, "pretrain", recording_pretrain)
    config = PretrainConfig(epochs=1, denoiser=DenoiserConfig(hidden_dim=8, edge_dim=4, n_layers=1, n_heads=1))
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        path = compare_methods.cached_checkpoint({"name": "toy"}, config)
        assert torch.get_num_threads() == 2  # the caller's count is back
    finally:
        torch.set_num_threads(previous)
    assert seen == [compare_methods.CACHED_MODEL_THREADS] == [1] and path.is_file()


@pytest.mark.parametrize("bad", [0, 1.5, True, "2"])
def test_torch_threads_takes_a_positive_int_only(bad: object) -> None:
    from agents.threads import torch_threads

    with pytest.raises(ValueError, match="positive int"), torch_threads(bad):  # type: ignore[arg-type]
        pass
