"""The fused product-of-categoricals equals SB3's and sb3-contrib's per-entry ``Categorical`` implementations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sb3_contrib.common.maskable.distributions import MaskableMultiCategoricalDistribution
from stable_baselines3.common.distributions import MultiCategoricalDistribution

from agents.policies import LOG_ZERO
from agents.policies.distributions import (
    FusedMultiCategoricalDistribution,
    MaskableFusedMultiCategoricalDistribution,
)

DIMS = [3, 1, 5, 2, 4, 5, 2]
"""Entries with different numbers of values, one of them fixed (a single value)."""
BATCH = 64
TOL = {"atol": 1e-6, "rtol": 1e-6}


def _logits(seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``[B, sum(DIMS)]`` random logits, some at ``LOG_ZERO`` (probability 0, as the diffusion policy gives).

    As in the policy, every entry keeps a value of positive probability (all ``LOG_ZERO`` is no distribution).
    """
    gen = torch.Generator().manual_seed(seed)
    logits = 3.0 * torch.randn(BATCH, sum(DIMS), generator=gen, dtype=dtype)
    zero = torch.rand(BATCH, sum(DIMS), generator=gen) < 0.3
    for start, n in zip(np.cumsum(DIMS) - DIMS, DIMS, strict=True):
        zero[zero[:, start : start + n].all(dim=1), start] = False
    return torch.where(zero, torch.full_like(logits, LOG_ZERO), logits)


def _masks(seed: int) -> np.ndarray:
    """``bool[B, sum(DIMS)]`` random masks: mostly allowed, some entries fully masked."""
    rng = np.random.default_rng(seed)
    return rng.random((BATCH, sum(DIMS))) < 0.7


def _actions(seed: int) -> torch.Tensor:
    """``[B, E]`` any values of the entries (masked and probability-0 ones included), as a buffer stores them."""
    rng = np.random.default_rng(seed + 1)
    return torch.as_tensor(np.stack([rng.integers(0, n, BATCH) for n in DIMS], axis=1), dtype=torch.float32)


def _pair(masked: bool, logits: torch.Tensor, masks: np.ndarray | None):
    if masked:
        reference, fused = MaskableMultiCategoricalDistribution(DIMS), MaskableFusedMultiCategoricalDistribution(DIMS)
    else:
        reference, fused = MultiCategoricalDistribution(DIMS), FusedMultiCategoricalDistribution(DIMS)
    ref_logits, fused_logits = logits.clone().requires_grad_(True), logits.clone().requires_grad_(True)
    reference.proba_distribution(ref_logits)
    fused.proba_distribution(fused_logits)
    if masks is not None:
        reference.apply_masking(masks)
        fused.apply_masking(masks)
    return (reference, ref_logits), (fused, fused_logits)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", ["sb3", "contrib-unmasked", "contrib-masked"])
def test_log_prob_entropy_and_gradients_equal_per_entry_categoricals(seed: int, dtype: torch.dtype, case: str) -> None:
    logits, actions = _logits(seed, dtype), _actions(seed)
    masks = _masks(seed) if case == "contrib-masked" else None
    (reference, ref_logits), (fused, fused_logits) = _pair(case != "sb3", logits, masks)
    ref_lp, fused_lp = reference.log_prob(actions), fused.log_prob(actions)
    ref_h, fused_h = reference.entropy(), fused.entropy()
    torch.testing.assert_close(fused_lp, ref_lp, **TOL)
    torch.testing.assert_close(fused_h, ref_h, **TOL)
    assert torch.isfinite(fused_h).all()
    if masks is not None:  # masked values hold the contrib's -1e8 logit: their log-probabilities agree too
        assert float(fused_lp.detach().min()) < -1e7
    # the same gradient reaches the logits (PPO's loss mixes both)
    ((ref_lp * 0.3).sum() + ref_h.sum()).backward()
    ((fused_lp * 0.3).sum() + fused_h.sum()).backward()
    assert ref_logits.grad is not None and fused_logits.grad is not None
    assert torch.isfinite(fused_logits.grad).all()
    torch.testing.assert_close(fused_logits.grad, ref_logits.grad, **TOL)


@pytest.mark.parametrize("masked", [False, True])
def test_seeded_samples_and_modes_equal_per_entry_categoricals(masked: bool) -> None:
    logits, masks = _logits(7), _masks(7) if masked else None
    (reference, _), (fused, _) = _pair(masked, logits, masks)
    for seed in range(5):
        torch.manual_seed(seed)
        expected = reference.sample()
        torch.manual_seed(seed)
        np.testing.assert_array_equal(fused.sample().numpy(), expected.numpy())
    np.testing.assert_array_equal(fused.mode().numpy(), reference.mode().numpy())
    assert fused.sample().shape == (BATCH, len(DIMS)) and fused.sample().dtype == torch.int64


def test_sampling_and_mode_respect_masks() -> None:
    logits = _logits(11)
    positive = (logits > LOG_ZERO).numpy()
    masks = _masks(11) & positive  # as the environment's masks: every entry keeps an allowed value
    for start, n in zip(np.cumsum(DIMS) - DIMS, DIMS, strict=True):
        block = masks[:, start : start + n]
        none = ~block.any(axis=1)
        block[none] = positive[none, start : start + n]
    fused = MaskableFusedMultiCategoricalDistribution(DIMS).proba_distribution(logits)
    fused.apply_masking(masks)
    offsets = torch.as_tensor(np.cumsum(DIMS) - DIMS)
    torch.manual_seed(0)
    for actions in [*(fused.sample() for _ in range(200)), fused.mode()]:
        assert masks[np.arange(BATCH)[:, None], (actions + offsets).numpy()].all()
    # removing the masks restores the unmasked distribution
    fused.apply_masking(None)
    unmasked = FusedMultiCategoricalDistribution(DIMS).proba_distribution(logits)
    torch.testing.assert_close(fused.entropy(), unmasked.entropy(), atol=0.0, rtol=0.0)
    assert fused.masks is None


def test_refuses_nan_logits_and_actions_out_of_range() -> None:
    fused = FusedMultiCategoricalDistribution(DIMS)
    with pytest.raises(RuntimeError, match="no parameters"):
        fused.entropy()
    with pytest.raises(ValueError, match="NaN"):
        fused.proba_distribution(torch.full((2, sum(DIMS)), float("nan")))
    fused.proba_distribution(_logits(0))
    bad = torch.zeros(BATCH, len(DIMS))
    bad[0, 1] = 1  # entry 1 has a single value
    with pytest.raises(ValueError, match=r"0 \.\. nvec - 1"):
        fused.log_prob(bad)
    with pytest.raises(ValueError, match="at least one value"):
        FusedMultiCategoricalDistribution([3, 0])


# ------------------------------------------------------------------ free entries (the diffusion policy's fast path)
FREE = torch.tensor([0, 2, 4, 6])
"""Free entries among DIMS; the others keep their current value with probability 1."""


def _free_parameters(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(values [B, E], probs [B, F, K_max], log_probs)`` as the reverse step hands them (float32, padding 0)."""
    gen = torch.Generator().manual_seed(seed)
    k_max = max(DIMS)
    values = torch.stack([torch.randint(0, n, (BATCH,), generator=gen) for n in DIMS], dim=1)
    valid = torch.arange(k_max) < torch.tensor(DIMS)[FREE][:, None]  # [F, K_max]
    zero = torch.rand(BATCH, len(FREE), k_max, generator=gen) < 0.3
    zero[..., 0] = False  # every entry keeps a value of positive probability
    weights = torch.where(valid & ~zero, torch.rand(BATCH, len(FREE), k_max, generator=gen), 0.0)
    probs = weights / weights.sum(-1, keepdim=True)
    log_probs = torch.where(probs > 0, torch.log(torch.where(probs > 0, probs, 1.0)), LOG_ZERO)
    return values, probs, torch.where(valid, log_probs, float("-inf"))


def _dense(values: torch.Tensor, probs: torch.Tensor, log_probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The full ``[B, E, K_max]`` tensors: a fixed entry is the one-hot of its value."""
    k_max = max(DIMS)
    valid = torch.arange(k_max) < torch.tensor(DIMS)[:, None]
    hot = torch.nn.functional.one_hot(values, k_max).bool()
    full_probs = hot.float().index_copy(1, FREE, probs)
    full_logs = torch.where(hot & valid, 0.0, torch.where(valid, LOG_ZERO, float("-inf")))
    return full_probs, full_logs.index_copy(1, FREE, log_probs)


@pytest.mark.parametrize("masked", [False, True])
def test_free_entries_equal_the_full_tensors_bitwise(masked: bool) -> None:
    """Set from its free entries, the distribution gives bitwise the values and gradients of the full tensors."""
    cls = MaskableFusedMultiCategoricalDistribution if masked else FusedMultiCategoricalDistribution
    values, probs, log_probs = _free_parameters(3)
    actions = values.clone()  # as in a rollout: fixed entries at their value, free ones drawn
    actions[:, FREE] = torch.as_tensor(
        np.stack([np.random.default_rng(4).integers(0, DIMS[e], BATCH) for e in FREE.tolist()], 1)
    )
    outputs = []
    for free in (True, False):
        p, lp = probs.clone().requires_grad_(True), log_probs.clone().requires_grad_(True)
        dist = cls(DIMS)
        if free:
            dist.proba_distribution_from_free_entries(values, FREE, p, lp)
        else:
            dist.proba_distribution_from_probs(*_dense(values, p, lp))
        if masked:
            dist.apply_masking(_masks(5) | np.isin(np.arange(sum(DIMS)), np.cumsum(DIMS) - DIMS))
        log_prob, entropy = dist.log_prob(actions), dist.entropy()
        ((log_prob * 0.3).sum() + entropy.sum()).backward()
        torch.manual_seed(0)
        outputs.append((log_prob, entropy, dist.sample(), dist.mode(), dist.probs, dist.logits, p.grad, lp.grad))
    for fast, full in zip(*outputs, strict=True):  # (masks recompute the probabilities: no gradient reaches probs)
        assert (fast is None and full is None) if masked and fast is None else torch.equal(fast, full)
    assert outputs[0][-1] is not None and (masked or outputs[0][-2] is not None)
    wrong = actions.clone()
    wrong[:, 1] = 1 - values[:, 1]  # entry 1 has one value: 1 is out of range (0 is its only value)
    with pytest.raises(ValueError, match=r"0 \.\. nvec - 1"):
        FusedMultiCategoricalDistribution(DIMS).proba_distribution_from_free_entries(
            values, FREE, probs, log_probs
        ).log_prob(wrong)


def test_free_entries_check_shapes_and_nan() -> None:
    values, probs, log_probs = _free_parameters(0)
    fused = FusedMultiCategoricalDistribution(DIMS)
    with pytest.raises(ValueError, match="values must be"):
        fused.proba_distribution_from_free_entries(values[:, 1:], FREE, probs, log_probs)
    with pytest.raises(ValueError, match="log_probs must have the shape"):
        fused.proba_distribution_from_free_entries(values, FREE, probs, log_probs[:, 1:])
    with pytest.raises(ValueError, match="NaN"):
        fused.proba_distribution_from_free_entries(values, FREE, torch.full_like(probs, float("nan")), log_probs)
    # a fixed entry that is not at its value has log-probability LOG_ZERO, as in the full tensors
    fused.proba_distribution_from_free_entries(values, FREE, probs, log_probs)
    moved = values.clone()
    moved[:, 3] = (values[:, 3] + 1) % DIMS[3]
    assert bool((fused.log_prob(moved) < -1e30).all())
