"""DGPO's settings beyond the published method: every copy counted, the batch baseline, the entropy bonus.

Each is checked on a hand-built batch against the formula of docs/dgpo.md §3, and the defaults against
DGPO as published (the recorded reference curves of ``tests/test_dgpo_elite.py`` pin the whole run).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from agents.dgpo import DGPO, DGPOConfig, RewardNormalizer, batch_advantages
from agents.dgpo.losses import TrajectoryBatch, clean_log_likelihood, policy_gradient_loss, trajectory_log_likelihood
from agents.diffusion.denoiser import DenoiserConfig
from agents.diffusion.model import DiffusionModel
from dgpo_env.search_spaces import NB201SearchSpace

TINY = DenoiserConfig(hidden_dim=16, edge_dim=8, n_layers=2, n_heads=2, time_dim=8)
NB201 = "dgpo_env/NB201-CIFAR10-v0"


def test_defaults_are_the_published_method() -> None:
    config = DGPOConfig()
    assert (config.count_repeats, config.baseline, config.entropy_coef, config.kl_coef) == (False, "ema", 0.0, 0.0)
    assert (config.kl_schedule, config.kl_anneal_fraction, config.kl_direction) == ("constant", 1.0, "reverse")
    rewards, keys = np.array([0.1, 0.1, 0.5, 0.2]), ["a", "a", "b", "c"]
    plain = batch_advantages(rewards, np.ones(4, bool), keys, RewardNormalizer())
    explicit = batch_advantages(rewards, np.ones(4, bool), keys, RewardNormalizer(), False, "ema")
    for a, b in zip(plain, explicit, strict=True):
        np.testing.assert_array_equal(a, b)


def test_count_repeats_counts_every_copy_in_the_statistics_and_the_advantages() -> None:
    rewards = np.array([0.0, 0.0, 3.0, 1.0, 2.0])
    valid = np.array([True, True, True, True, False])
    keys: list[str | None] = ["a", "a", "b", "c", None]
    once, counted_once, _ = batch_advantages(rewards, valid, keys, RewardNormalizer())
    every, counted_every, _ = batch_advantages(rewards, valid, keys, RewardNormalizer(), count_repeats=True)
    assert counted_once.tolist() == [True, False, True, True, False]
    assert counted_every.tolist() == [True, True, True, True, False]  # invalid samples still do not count
    first = rewards[[0, 2, 3]]
    np.testing.assert_allclose(once[[0, 2, 3]], (first - first.mean()) / first.std())
    assert once[1] == 0.0
    all_copies = rewards[:4]
    np.testing.assert_allclose(every[:4], (all_copies - all_copies.mean()) / all_copies.std())
    assert every[1] == every[0] < 0 and every[4] == 0.0


def test_batch_baseline_follows_the_batch_and_still_updates_the_moving_averages() -> None:
    ema, batch = RewardNormalizer(smoothing=0.1), RewardNormalizer(smoothing=0.1)
    first = np.array([0.0, 10.0, 20.0, 30.0])
    batch_advantages(first, np.ones(4, bool), list("abcd"), ema)
    batch_advantages(first, np.ones(4, bool), list("abcd"), batch, baseline="batch")
    second = np.array([50.0, 51.0, 52.0, 80.0])  # far from the moving averages
    adv_ema, _, _ = batch_advantages(second, np.ones(4, bool), list("efgh"), ema)
    adv_batch, _, _ = batch_advantages(second, np.ones(4, bool), list("efgh"), batch, baseline="batch")
    assert ema.mean == batch.mean == pytest.approx(0.9 * first.mean() + 0.1 * second.mean())
    assert (adv_ema[:3] > 0).all()  # the moving average lags: every cell of the batch looks good
    np.testing.assert_allclose(adv_batch, (second - second.mean()) / second.std())
    assert (adv_batch[:3] < 0).all() and adv_batch[3] > 0
    clipped, _, _ = batch_advantages(
        np.array([0.0] * 49 + [1.0]),
        np.ones(50, bool),
        [str(i) for i in range(50)],
        RewardNormalizer(clip=2.0),
        baseline="batch",
    )
    assert clipped[-1] == 2.0


def test_unknown_baseline_is_refused() -> None:
    with pytest.raises(ValueError, match="baseline must be one of"):
        batch_advantages(np.array([0.0, 1.0]), np.ones(2, bool), ["a", "b"], RewardNormalizer(), baseline="mean")  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def sampled_batch() -> tuple[DiffusionModel, TrajectoryBatch]:
    """Five whole 4-step trajectories of a tiny NB201 model, with hand-set rewards."""
    model = DiffusionModel.create(NB201SearchSpace(), diffusion_steps=100, config=TINY, seed=0)
    samples = model.sample(5, n_steps=4, generator=torch.Generator().manual_seed(0), return_trajectory=True)
    assert samples.trajectory is not None
    nodes = torch.stack([n for n, _ in samples.trajectory], 1)  # [5, 5, N]
    edges = torch.stack([e for _, e in samples.trajectory], 1)  # [5, 5, M]
    batch = TrajectoryBatch(
        nodes=nodes,
        edges=edges,
        times=torch.as_tensor(samples.times),
        rewards=torch.tensor([0.1, 0.5, 0.2, 0.9, 0.4], dtype=torch.float64),
        valid=torch.ones(5, dtype=torch.bool),
        keys=list("abcde"),
        val_acc=torch.tensor([10.0, 50.0, 20.0, 90.0, 40.0], dtype=torch.float64),
    )
    return model, batch


@pytest.mark.parametrize("gradient", ["eager", "ddpo"])
def test_entropy_bonus_subtracts_coef_times_the_clean_prediction_entropy(
    sampled_batch: tuple[DiffusionModel, TrajectoryBatch], gradient: str
) -> None:
    model, batch = sampled_batch
    traj = torch.tensor([0, 2, 3])
    steps = torch.tensor([[0, 3], [1, 2], [2, 0]])
    adv = torch.tensor([1.0, 0.0, -0.5, 2.0, 0.3], dtype=torch.float64)
    plain, plain_terms = policy_gradient_loss(model, batch, traj, steps, adv, gradient)  # type: ignore[arg-type]
    bonus, bonus_terms = policy_gradient_loss(model, batch, traj, steps, adv, gradient, entropy_coef=0.2)  # type: ignore[arg-type]
    assert plain_terms.entropy is None and plain_terms.kl is None
    entropy = bonus_terms.entropy
    assert entropy is not None
    logp = trajectory_log_likelihood(model, batch, traj, steps, gradient).detach()  # type: ignore[arg-type]
    assert float(plain.detach()) == pytest.approx(float(-(adv[traj] * logp).sum() / 5))
    # the entropy by hand: -Σ p log p of p̂_θ(· | G_t) over nodes and edges, averaged over each trajectory's steps
    expected = []
    for i, row in zip(traj.tolist(), steps.tolist(), strict=True):
        per_step = []
        for k in row:
            with torch.no_grad():
                node_p, edge_p = model.clean_probs(batch.nodes[i, k][None], batch.edges[i, k][None], batch.times[k])
            per_step.append(float(sum(torch.special.entr(p).sum() for p in (node_p, edge_p))))
        expected.append(np.mean(per_step))
    np.testing.assert_allclose(entropy.detach().numpy(), expected, rtol=1e-5)
    assert float(bonus.detach()) == pytest.approx(float(plain.detach()) - 0.2 * sum(expected) / 5, rel=1e-5)
    assert all(e > 0 for e in expected)


def test_clean_log_likelihood_is_unchanged_by_the_entropy_path(
    sampled_batch: tuple[DiffusionModel, TrajectoryBatch],
) -> None:
    model, batch = sampled_batch
    nodes_t, edges_t, t = batch.nodes[:, 1], batch.edges[:, 1], batch.times[1].repeat(5)
    direct = model.clean_log_prob(nodes_t, edges_t, t, batch.nodes[:, -1], batch.edges[:, -1])
    torch.testing.assert_close(
        clean_log_likelihood(model, nodes_t, edges_t, t, batch.nodes[:, -1], batch.edges[:, -1]), direct
    )


def test_settings_are_checked() -> None:
    with pytest.raises(TypeError, match="count_repeats must be a bool"):
        DGPOConfig(count_repeats="False")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="count_repeats must be a bool"):
        DGPOConfig(count_repeats=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="baseline must be one of"):
        DGPOConfig(baseline="median")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="entropy_coef must be a real number >= 0"):
        DGPOConfig(entropy_coef=-0.1)
    with pytest.raises(ValueError, match="kl_coef must be a real number >= 0"):
        DGPOConfig(kl_coef=math.inf)
    with pytest.raises(ValueError, match="kl_schedule must be one of"):
        DGPOConfig(kl_schedule="cosine")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="kl_direction must be one of"):
        DGPOConfig(kl_direction="both")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="kl_anneal_fraction must be a real number in"):
        DGPOConfig(kl_anneal_fraction=0.0)
    assert DGPOConfig(count_repeats=np.bool_(True)).count_repeats is True


@pytest.mark.parametrize("direction", ["reverse", "forward"])
def test_kl_term_adds_coef_times_the_kl_to_the_reference(
    sampled_batch: tuple[DiffusionModel, TrajectoryBatch], direction: str
) -> None:
    model, batch = sampled_batch
    traj, steps = torch.tensor([1, 4]), torch.tensor([[0, 2], [3, 1]])
    adv = torch.tensor([0.5, -1.0, 0.0, 2.0, 1.5], dtype=torch.float64)
    plain, _ = policy_gradient_loss(model, batch, traj, steps, adv, "eager")
    other = DiffusionModel.create(NB201SearchSpace(), diffusion_steps=100, config=TINY, seed=1)
    (_, same_terms), (loss, terms) = (
        policy_gradient_loss(
            model,
            batch,
            traj,
            steps,
            adv,
            "eager",
            reference=ref,
            kl_coef=2.0,
            kl_direction=direction,  # type: ignore[arg-type]
        )
        for ref in (model, other)
    )
    assert same_terms.kl is not None and float(same_terms.kl.detach().abs().max()) < 1e-6  # KL of a model to itself
    assert terms.kl is not None
    expected = []  # the KL by hand, summed over nodes and edges, averaged over each trajectory's steps
    for i, row in zip(traj.tolist(), steps.tolist(), strict=True):
        per_step = []
        for k in row:
            with torch.no_grad():
                mine = model.clean_probs(batch.nodes[i, k][None], batch.edges[i, k][None], batch.times[k])
                ref = other.clean_probs(batch.nodes[i, k][None], batch.edges[i, k][None], batch.times[k])
            if direction == "forward":  # KL(p̂_ref ‖ p̂_θ)
                mine, ref = ref, mine
            per_step.append(
                float(
                    sum(
                        torch.special.xlogy(p, p).sum() - torch.special.xlogy(p, q).sum()
                        for p, q in zip(mine, ref, strict=True)
                    )
                )
            )
        expected.append(np.mean(per_step))
    np.testing.assert_allclose(terms.kl.detach().numpy(), expected, rtol=1e-4)
    assert min(expected) > 0
    assert float(loss.detach()) == pytest.approx(float(plain.detach()) + 2.0 * sum(expected) / 5, rel=1e-5)
    with pytest.raises(ValueError, match="needs the reference model"):
        policy_gradient_loss(model, batch, traj, steps, adv, "eager", kl_coef=1.0)


def test_kl_reference_is_the_starting_model_kept_fixed_and_saved(tmp_path: Path) -> None:
    model = DiffusionModel.create(NB201SearchSpace(), diffusion_steps=100, config=TINY, seed=0)
    agent = DGPO.for_env_id(
        model, NB201, n_envs=4, n_steps=3, batch_size=8, learning_rate=1e-2, kl_coef=0.5, kl_schedule="linear", seed=0
    )
    assert DGPO.for_env_id(model, NB201, n_envs=4, n_steps=3, batch_size=8, seed=0).reference_model is None
    reference = agent.reference_model
    assert reference is not None and not any(p.requires_grad for p in reference.parameters())
    start = {k: v.clone() for k, v in reference.state_dict().items()}
    assert agent.current_kl_coef() == 0.5
    agent._current_progress_remaining = 0.75  # a quarter of the run done
    assert agent.current_kl_coef() == pytest.approx(0.375)
    assert agent.config.replace(kl_anneal_fraction=0.5).kl_anneal_fraction == 0.5
    half = DGPO.for_env_id(
        model, NB201, n_envs=4, n_steps=3, batch_size=8, kl_coef=0.5, kl_schedule="linear", kl_anneal_fraction=0.5
    )
    half._current_progress_remaining = 0.75
    assert half.current_kl_coef() == pytest.approx(0.25)  # half of the way to 0 ...
    half._current_progress_remaining = 0.4
    assert half.current_kl_coef() == 0.0  # ... and 0 once half the run is done
    agent._current_progress_remaining = 1.0
    agent.learn(agent.timesteps_for_epochs(3))
    assert agent.current_kl_coef() == pytest.approx(0.0, abs=1e-9)  # linear: down to 0 at the end of the run
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(value, start[key])
    moved = [k for k, v in agent.policy.model.state_dict().items() if not torch.equal(v, start[k])]
    assert moved, "the policy moves while its reference does not"
    agent.save(tmp_path / "agent.zip")
    loaded = DGPO.load(tmp_path / "agent.zip")
    assert loaded.reference_model is not None and loaded.config == agent.config
    for key, value in loaded.reference_model.state_dict().items():
        torch.testing.assert_close(value, start[key])
