"""DGPO's exploration copies (``DGPOConfig.explore_copies``): the starting model draws some copies of a batch.

Checked against docs/dgpo.md §3: which copies the starting model draws, the advantage of their cells (the
positive part of ``(R - b) / σ``, or the advantage clip where ``R > b``, ``b`` the best or mean reward of the
policy's copies), the checks of the
settings, and that the policy learns while the starting model stays fixed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from agents.cli import main
from agents.dgpo import DGPO, DGPOConfig, RewardNormalizer
from agents.dgpo.advantages import batch_advantages
from agents.dgpo.explore import ExploreMemory, explore_advantages, explore_step
from agents.dgpo.losses import TrajectoryBatch
from agents.diffusion.denoiser import DenoiserConfig
from agents.diffusion.model import DiffusionModel
from dgpo_env.search_spaces import NB201SearchSpace

TINY = DenoiserConfig(hidden_dim=16, edge_dim=8, n_layers=2, n_heads=2, time_dim=8)
NB201 = "dgpo_env/NB201-CIFAR10-v0"


def test_explore_settings_are_checked_and_off_by_default() -> None:
    assert (DGPOConfig().explore_copies, DGPOConfig().explore_baseline) == (0, "best")
    assert DGPOConfig(explore_copies=np.int64(3)).explore_copies == 3
    for bad in (2.0, True, "3"):
        with pytest.raises(TypeError, match="explore_copies must be an int >= 0"):
            DGPOConfig(explore_copies=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="explore_copies must be an int >= 0"):
        DGPOConfig(explore_copies=-1)
    with pytest.raises(ValueError, match="explore_baseline must be one of"):
        DGPOConfig(explore_baseline="worst")  # type: ignore[arg-type]
    model = DiffusionModel.create(NB201SearchSpace(), diffusion_steps=100, config=TINY, seed=0)
    with pytest.raises(ValueError, match="fewer than 2 of the n_envs=4"):
        DGPO.for_env_id(model, NB201, n_envs=4, n_steps=3, batch_size=8, explore_copies=3)


def test_explore_advantage_is_the_positive_part_against_the_policys_copies() -> None:
    rewards = np.array([-0.5, -0.3, -0.1, -0.3, -0.05, -0.9, 0.0])
    valid = np.array([True, True, True, True, True, True, False])
    explored = np.array([False, False, False, False, True, True, False])  # the starting model drew 4, 5 (and 6)
    _, counted, informative = batch_advantages(
        rewards, valid & ~explored, [str(r) for r in rewards], RewardNormalizer(), True, "batch"
    )
    assert informative and counted.tolist() == [True] * 4 + [False] * 3
    own = rewards[:4]
    best = explore_advantages(rewards, explored & valid, own, RewardNormalizer(), "best")
    mean = explore_advantages(rewards, explored & valid, own, RewardNormalizer(), "mean")
    np.testing.assert_allclose(best, [0, 0, 0, 0, (-0.05 + 0.1) / own.std(), 0, 0])  # -0.9 is worse: 0, not < 0
    np.testing.assert_allclose(mean, [0, 0, 0, 0, (-0.05 - own.mean()) / own.std(), 0, 0])
    flat = RewardNormalizer(std=0.1)  # equal own rewards: the moving-average std, then the clip
    assert explore_advantages(np.array([0.0, 0.0, 9.0]), np.array([0, 0, 1], bool), np.zeros(2), flat).tolist() == [
        0.0,
        0.0,
        5.0,
    ]
    assert not explore_advantages(rewards, explored & valid, np.zeros(0), RewardNormalizer()).any()
    with pytest.raises(ValueError, match="explore_baseline must be one of"):
        explore_advantages(rewards, explored, own, RewardNormalizer(), "worst")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="explore_advantage must be one of"):
        explore_advantages(rewards, explored, own, RewardNormalizer(), "best", "max")  # type: ignore[arg-type]


def test_explore_advantage_clip_gives_a_better_cell_the_clip_whatever_its_margin() -> None:
    own = np.array([-0.9, -0.5, -0.1, -0.6])  # the policy's copies, spread over 0.8
    rewards = np.array([*own, -0.08, -0.2, -0.1])  # 4 beats the best own copy by 0.02; 5 does not; 6 ties
    explored = np.array([0, 0, 0, 0, 1, 1, 1], bool)
    scaled = explore_advantages(rewards, explored, own, RewardNormalizer(), "best", "scaled")
    clip = explore_advantages(rewards, explored, own, RewardNormalizer(clip=3.0), "best", "clip")
    np.testing.assert_allclose(scaled, [0, 0, 0, 0, 0.02 / own.std(), 0, 0])  # a tenth of one std
    assert clip.tolist() == [0, 0, 0, 0, 3.0, 0, 0]  # the clip; a tie is not a win
    mean = explore_advantages(rewards, explored, own, RewardNormalizer(), "mean", "clip")
    assert mean.tolist() == [0, 0, 0, 0, 5.0, 5.0, 5.0]  # all three beat the mean -0.525
    assert not explore_advantages(rewards, explored, np.zeros(0), RewardNormalizer(), "best", "clip").any()
    flat = explore_advantages(np.array([1.0, 1.0, 9.0]), np.array([0, 0, 1], bool), np.ones(2), RewardNormalizer())
    assert not flat.any()  # scaled: equal own rewards and no moving-average std yet, no scale to measure by
    clip_flat = explore_advantages(
        np.array([1.0, 1.0, 9.0]), np.array([0, 0, 1], bool), np.ones(2), RewardNormalizer(), "best", "clip"
    )
    assert clip_flat.tolist() == [0.0, 0.0, 5.0]  # clip: no scale needed
    with pytest.raises(ValueError, match="must be finite"):
        explore_advantages(rewards, explored, own, RewardNormalizer(clip=float("inf")), "best", "clip")
    memory = ExploreMemory(capacity=2)
    first = _batch([-0.5, -0.4, -0.39, -0.45], ["a", "b", "c", "d"])  # c beats the policy by 0.01
    counted, found = np.array([1, 1, 0, 0], bool), np.array([0, 0, 1, 1], bool)
    step = explore_step(first, np.zeros(4), counted, found, RewardNormalizer(), "best", memory, "clip")
    assert step.advantages.tolist() == [0, 0, 5.0, 0] and memory.kept is not None and memory.kept.keys == ["c"]
    second = _batch([-0.9, -0.395, -0.9, -0.9], ["e", "f", "g", "h"])  # the kept c still beats -0.395
    step = explore_step(second, np.zeros(4), counted, found, RewardNormalizer(), "best", memory, "clip")
    assert step.n_replayed == 1 and step.advantages[4] == 5.0
    with pytest.raises(ValueError, match="explore_advantage must be one of"):
        DGPOConfig(explore_advantage="max")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="set a finite advantage_clip"):
        DGPOConfig(explore_advantage="clip", advantage_clip=float("inf"))


def _batch(rewards: list[float], keys: list[str]) -> TrajectoryBatch:
    """A hand-built batch of 2-step trajectories whose final node values tell them apart."""
    b = len(rewards)
    nodes = torch.arange(b)[:, None, None].expand(b, 3, 2).clone()
    return TrajectoryBatch(
        nodes=nodes,
        edges=torch.zeros(b, 3, 1, dtype=torch.int64),
        times=torch.tensor([10, 5, 0]),
        rewards=torch.tensor(rewards, dtype=torch.float64),
        valid=torch.ones(b, dtype=torch.bool),
        keys=list(keys),
        val_acc=-100 * torch.tensor(rewards, dtype=torch.float64),
    )


def test_memory_keeps_the_best_finds_and_replays_those_that_still_beat_the_batch() -> None:
    memory = ExploreMemory(capacity=2)
    first = _batch([-0.5, -0.4, -0.1, -0.45], ["a", "b", "c", "d"])  # 2, 3 drawn by the starting model
    counted, explored = np.array([1, 1, 0, 0], bool), np.array([0, 0, 1, 1], bool)
    with pytest.raises(ValueError, match="both drawn by the starting model and counted"):
        explore_step(first, np.zeros(4), counted, counted, RewardNormalizer(), "best", memory)
    step = explore_step(first, np.array([-1.0, 1.0, 0, 0]), counted, explored, RewardNormalizer(), "best", memory)
    np.testing.assert_allclose(step.advantages, [-1.0, 1.0, 5.0, 0.0])  # (-0.1 + 0.4) / 0.05 = 6, clipped to 5
    assert (step.n_found, step.n_replayed, step.batch.size) == (1, 0, 4) and step.scored.all()
    assert memory.size == 1 and memory.kept is not None and memory.kept.keys == ["c"]
    second = _batch([-0.3, -0.2, -0.05, -0.1], ["e", "f", "g", "c"])  # "c" drawn again: scored with the batch
    step = explore_step(second, np.zeros(4), counted, explored, RewardNormalizer(), "best", memory)
    assert (step.n_found, step.n_replayed) == (2, 0)  # g and c beat -0.2; the kept c is in the batch, not replayed
    assert memory.kept is not None and memory.kept.keys == ["g", "c"]  # the best two, one copy each
    third = _batch([-0.15, -0.12, -0.9, -0.9], ["h", "i", "j", "k"])
    step = explore_step(third, np.zeros(4), counted, explored, RewardNormalizer(), "best", memory)
    assert (step.n_found, step.n_replayed, step.batch.size) == (0, 2, 6)  # g (-0.05) and c (-0.1) beat -0.12
    assert step.batch.keys[4:] == ["g", "c"] and step.scored.tolist() == [True, True, True, True, True, True]
    np.testing.assert_allclose(step.advantages[4:], [(-0.05 + 0.12) / 0.015, (-0.1 + 0.12) / 0.015])
    torch.testing.assert_close(step.batch.nodes[4], second.nodes[2])  # the kept trajectory itself
    fourth = _batch([-0.01, -0.3, -0.9, -0.9], ["l", "m", "n", "o"])  # the policy now beats them: no replay
    assert explore_step(fourth, np.zeros(4), counted, explored, RewardNormalizer(), "best", memory).n_replayed == 0
    assert ExploreMemory(capacity=0).size == 0


def test_the_last_copies_draw_from_the_fixed_starting_model_while_the_policy_learns(tmp_path: Path) -> None:
    model = DiffusionModel.create(NB201SearchSpace(), diffusion_steps=100, config=TINY, seed=0)
    agent = DGPO.for_env_id(
        model, NB201, n_envs=4, n_steps=3, batch_size=8, learning_rate=3e-2, explore_copies=2, explore_memory=3, seed=0
    )
    assert DGPO.for_env_id(model, NB201, n_envs=4, n_steps=3, batch_size=8, seed=0).reference_model is None
    reference = agent.reference_model
    assert reference is not None and not any(p.requires_grad for p in reference.parameters())
    start = {k: v.clone() for k, v in reference.state_dict().items()}
    assert agent.explored_mask(8).tolist() == [False, False, True, True] * 2
    agent.learn(agent.timesteps_for_epochs(4))
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(value, start[key])
    assert any(not torch.equal(v, start[k]) for k, v in agent.policy.model.state_dict().items()), "the policy moved"
    obs = agent.env.reset()
    nodes, edges = torch.as_tensor(obs["nodes"]).long(), torch.as_tensor(obs["edges"]).long()
    t = torch.as_tensor(obs["t"]).long().reshape(-1)
    s = agent.policy.next_times(t)
    node_probs, edge_probs = agent._reverse_step_probs(nodes, edges, t, s)
    with torch.no_grad():
        own = agent.policy.model.reverse_step_probs(nodes, edges, t, s)
        ref = reference.reverse_step_probs(nodes, edges, t, s)
    for mixed, mine, theirs in zip((node_probs, edge_probs), own, ref, strict=True):
        torch.testing.assert_close(mixed[:2], mine[:2])  # the policy's copies
        torch.testing.assert_close(mixed[2:], theirs[2:])  # the starting model's copies
    assert not torch.allclose(own[0], ref[0])  # which differ after learning (the operations: NB201 nodes)
    agent.save(tmp_path / "agent.zip")
    loaded = DGPO.load(tmp_path / "agent.zip")
    kept, back = agent.explore_archive.kept, loaded.explore_archive.kept
    assert kept is not None and back is not None and 0 < kept.size <= 3 and back.keys == kept.keys
    torch.testing.assert_close(back.nodes, kept.nodes)
    torch.testing.assert_close(back.rewards, kept.rewards)


def test_finetune_refuses_explore_flags_without_exploration_copies(capsys: pytest.CaptureFixture[str]) -> None:
    """``--explore-memory`` would do nothing without ``--explore-copies > 0``: refused, not ignored."""
    assert main(["finetune", "--pretrained", "toy", "--env", "dgpo_env/ToyDAG-v0", "--explore-memory", "4"]) == 2
    assert "--explore-memory: only with exploration copies, give --explore-copies > 0" in capsys.readouterr().err
