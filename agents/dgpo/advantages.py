"""DGPO's advantages: EMA-normalised, clipped terminal rewards (docs/dgpo.md §1, GDPO).

For a batch of trajectories with terminal rewards ``R``:

* invalid samples get advantage 0;
* a cell that occurs several times in the batch is counted once (its first occurrence; the others
  get advantage 0), both in the statistics and in the loss;
* ``μ``, ``σ`` are exponential moving averages of the counted rewards' batch mean and std:
  ``μ ← (1 - β) μ + β mean(R)``, ``σ ← (1 - β) σ + β std(R)`` with smoothing ``β`` (official 0.1),
  initialised with the first informative batch;
* ``A = clip((R - μ) / σ, -c, c)`` (official ``c = 5``);
* a batch whose counted rewards are all equal (or that has fewer than two) is uninformative: no
  statistics update and no gradient step.

Two settings of this project change that (``DGPOConfig.count_repeats`` and ``DGPOConfig.baseline``,
docs/dgpo.md §3; both off in DGPO as published):

* ``count_repeats=True``: every valid copy of a repeated cell is counted, in the statistics and in the
  loss (the plain Monte-Carlo policy gradient over the batch's samples);
* ``baseline="batch"``: ``A = clip((R - mean_b(R)) / std_b(R), -c, c)`` with the mean and std of the
  current batch's counted rewards (a group-relative baseline, as GRPO's); the moving averages are still
  updated, for the logs.

The advantages of cells drawn by the starting model (``DGPOConfig.explore_copies``) are in
:mod:`agents.dgpo.explore`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

REWARD_SMOOTHING = 0.1
"""Official NB201 / GDPO: weight of a new batch in the reward mean/std EMAs (docs/dgpo.md §3)."""

ADVANTAGE_CLIP = 5.0
"""Official NB201 / GDPO: advantages are clipped to ``[-5, 5]`` (``DGPOConfig.advantage_clip``, docs/dgpo.md §3)."""

Baseline = Literal["ema", "batch"]
BASELINES: tuple[str, ...] = ("ema", "batch")
"""``"ema"``: the moving averages (published); ``"batch"``: the current batch's mean and std."""


def first_occurrences(keys: list[str | None], valid: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """``bool[B]``: the valid samples whose cell (canonical key) has not occurred earlier in the batch.

    Args:
        keys: Canonical key per sample (``None`` for invalid samples).
        valid: ``bool[B]`` validity per sample.
    """
    assert len(keys) == len(valid), "one key per sample"
    seen: set[str] = set()
    counted = np.zeros(len(keys), dtype=bool)
    for i, (key, ok) in enumerate(zip(keys, valid, strict=True)):
        if ok and key is not None and key not in seen:
            seen.add(key)
            counted[i] = True
    return counted


@dataclass
class RewardNormalizer:
    """Running reward statistics and the clipped advantage.

    Attributes:
        smoothing: ``β``, the weight of a new batch in the moving averages (official 0.1).
        clip: ``c``, the advantage bound (official 5).
        mean: Running ``μ`` (``None`` until the first informative batch).
        std: Running ``σ`` (``None`` until the first informative batch).
        n_updates: Number of informative batches seen.
    """

    smoothing: float = REWARD_SMOOTHING
    clip: float = ADVANTAGE_CLIP
    mean: float | None = None
    std: float | None = None
    n_updates: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.smoothing <= 1.0:
            raise ValueError(f"smoothing must be in (0, 1], got {self.smoothing}")
        if self.clip <= 0:
            raise ValueError(f"clip must be > 0, got {self.clip}")

    def update(self, rewards: NDArray[np.floating]) -> bool:
        """Fold one batch's counted rewards into ``μ``, ``σ``; returns whether the batch is informative.

        Args:
            rewards: ``float[n]`` rewards of the counted (valid, first-occurrence) samples.
        """
        rewards = np.asarray(rewards, dtype=np.float64)
        if rewards.size < 2 or float(rewards.std()) == 0.0:
            return False
        mean, std = float(rewards.mean()), float(rewards.std())
        if self.mean is None or self.std is None:
            self.mean, self.std = mean, std
        else:
            beta = self.smoothing
            self.mean = (1.0 - beta) * self.mean + beta * mean
            self.std = (1.0 - beta) * self.std + beta * std
        self.n_updates += 1
        assert self.std > 0.0, "an EMA of positive stds is positive"
        return True

    def advantages(self, rewards: NDArray[np.floating]) -> NDArray[np.float64]:
        """``clip((R - μ) / σ, -c, c)``.

        Raises:
            RuntimeError: Before the first informative :meth:`update`.
        """
        if self.mean is None or self.std is None:
            raise RuntimeError("no informative batch yet: call update() with varied rewards first")
        z = (np.asarray(rewards, dtype=np.float64) - self.mean) / self.std
        return np.clip(z, -self.clip, self.clip)


def batch_advantages(
    rewards: NDArray[np.floating],
    valid: NDArray[np.bool_],
    keys: list[str | None],
    normalizer: RewardNormalizer,
    count_repeats: bool = False,
    baseline: Baseline = "ema",
) -> tuple[NDArray[np.float64], NDArray[np.bool_], bool]:
    """Advantages of one batch (see the module docstring); updates ``normalizer``.

    Args:
        rewards: ``float[B]`` terminal rewards.
        valid: ``bool[B]``.
        keys: ``B`` canonical keys (``None`` when invalid).
        normalizer: The running statistics.
        count_repeats: Count every valid copy of a repeated cell (published: only the first).
        baseline: ``"ema"`` (published) or ``"batch"``; see the module docstring.

    Returns:
        ``(advantages float[B], counted bool[B], informative)``; all advantages are 0 when the
        batch is not informative.

    Raises:
        ValueError: For an unknown ``baseline``.
    """
    if baseline not in BASELINES:
        raise ValueError(f"baseline must be one of {BASELINES}, got {baseline!r}")
    rewards = np.asarray(rewards, dtype=np.float64)
    valid = np.asarray(valid, dtype=bool)
    counted = valid.copy() if count_repeats else first_occurrences(keys, valid)
    advantages = np.zeros_like(rewards)
    informative = normalizer.update(rewards[counted])
    if informative and baseline == "batch":
        group = rewards[counted]
        advantages[counted] = np.clip((group - group.mean()) / group.std(), -normalizer.clip, normalizer.clip)
    elif informative:
        advantages[counted] = normalizer.advantages(rewards[counted])
    assert np.all(advantages[~counted] == 0.0)
    return advantages, counted, informative
