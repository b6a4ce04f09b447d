"""Exploration copies: the starting model draws some copies of each batch (``DGPOConfig.explore_copies``).

Inverse-reward fine-tuning (docs/benchmarks.md, "Towards chance on every seed") can settle on a family of
cells whose neighbours all score worse while the cells it should reach are several edits away; once the
policy has left them it stops sampling them. The model fine-tuning started from (the KL term's reference,
kept fixed) still draws them now and then, so the last ``explore_copies`` environment copies of every round
take their denoising steps from it (:meth:`DGPO._reverse_step_probs <agents.dgpo.dgpo.DGPO._reverse_step_probs>`).

Their cells are not the policy's samples, so they take no part in the advantages' statistics, and a cell
is learnt from only when it beats the policy's own copies, towards it and never away from it: its
advantage is ``clip((R - b) / σ, 0, c)`` with ``b`` the best (``explore_baseline="best"``) or the mean
reward of the policy's counted copies, ``σ`` their std (the moving-average std when they are all equal)
and ``c`` the advantage clip (:func:`explore_advantages`). This is the positive-part advantage of
self-imitation learning (Oh et al., "Self-Imitation Learning", ICML 2018), which learns from past
episodes only where they did better than the current policy. With ``explore_advantage="clip"`` such a
cell gets ``c`` itself, whatever its margin: the policy's own batch can spread over tens of points while it
moves between two families of cells, and ``σ`` with it, so the scaled advantage of a far better cell falls
to a fraction of the policy's own (docs/benchmarks.md, "Chance on every seed"). As there, such cells are kept
(``explore_memory`` of them, the best rewards, one per cell; :class:`ExploreMemory`) and scored again
against every later batch, and learnt from again while they still beat it.

Example:
    >>> memory = ExploreMemory(capacity=2)
    >>> memory.size
    0
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from numpy.typing import NDArray

from agents.dgpo.advantages import RewardNormalizer
from agents.dgpo.losses import TrajectoryBatch

ExploreBaseline = Literal["best", "mean"]
EXPLORE_BASELINES: tuple[str, ...] = ("best", "mean")
"""What a starting-model cell must beat: the best reward of the policy's copies, or their mean."""
ExploreAdvantage = Literal["scaled", "clip"]
EXPLORE_ADVANTAGES: tuple[str, ...] = ("scaled", "clip")
"""A starting-model cell that beats the bar gets ``clip((R - b) / σ, 0, c)`` (``"scaled"``) or ``c`` (``"clip"``)."""


def explore_advantages(
    rewards: NDArray[np.floating],
    explored: NDArray[np.bool_],
    own_rewards: NDArray[np.floating],
    normalizer: RewardNormalizer,
    explore_baseline: ExploreBaseline = "best",
    explore_advantage: ExploreAdvantage = "scaled",
) -> NDArray[np.float64]:
    """Advantages of cells the starting model drew: ``clip((R - b) / σ, 0, c)``, or ``c`` where ``R > b``.

    See the module docstring.

    Args:
        rewards: ``float[B]`` terminal rewards.
        explored: ``bool[B]`` the valid samples the starting model drew (the others get 0).
        own_rewards: ``float[n]`` rewards of the policy's counted samples of the batch.
        normalizer: The running statistics: ``c``, and ``σ`` when ``own_rewards`` are all equal.
        explore_baseline: ``b``: ``"best"``, the largest of ``own_rewards``, or ``"mean"``, their mean.
        explore_advantage: ``"scaled"``: ``clip((R - b) / σ, 0, c)``; ``"clip"``: ``c`` where ``R > b``.

    Returns:
        ``float64[B]``, ``>= 0``; all zero when ``own_rewards`` is empty or (``"scaled"``) no ``σ > 0`` is known.

    Raises:
        ValueError: For an unknown ``explore_baseline`` or ``explore_advantage``, or ``"clip"`` with an infinite clip.
    """
    if explore_baseline not in EXPLORE_BASELINES:
        raise ValueError(f"explore_baseline must be one of {EXPLORE_BASELINES}, got {explore_baseline!r}")
    if explore_advantage not in EXPLORE_ADVANTAGES:
        raise ValueError(f"explore_advantage must be one of {EXPLORE_ADVANTAGES}, got {explore_advantage!r}")
    rewards = np.asarray(rewards, dtype=np.float64)
    own = np.asarray(own_rewards, dtype=np.float64)
    advantages = np.zeros_like(rewards)
    if own.size == 0:
        return advantages
    bar = float(own.max()) if explore_baseline == "best" else float(own.mean())
    chosen = np.asarray(explored, dtype=bool)
    if explore_advantage == "clip":  # no scale needed
        if not np.isfinite(normalizer.clip):
            raise ValueError("explore_advantage='clip' gives the advantage clip, which must be finite, got inf")
        advantages[chosen] = np.where(rewards[chosen] > bar, normalizer.clip, 0.0)
        return advantages
    scale = float(own.std()) if own.size > 1 else 0.0
    if scale == 0.0:
        scale = normalizer.std or 0.0
    if scale > 0.0:
        advantages[chosen] = np.clip((rewards[chosen] - bar) / scale, 0.0, normalizer.clip)
    return advantages


def select(batch: TrajectoryBatch, rows: NDArray[np.int64]) -> TrajectoryBatch:
    """The trajectories ``rows`` of ``batch``, as a batch of their own."""
    index = torch.from_numpy(np.asarray(rows, dtype=np.int64))
    return TrajectoryBatch(
        nodes=batch.nodes[index],
        edges=batch.edges[index],
        times=batch.times,
        rewards=batch.rewards[index],
        valid=batch.valid[index],
        keys=[batch.keys[int(i)] for i in index],
        val_acc=batch.val_acc[index],
    )


def concatenate(first: TrajectoryBatch, second: TrajectoryBatch) -> TrajectoryBatch:
    """``first`` followed by ``second`` (both on the same step schedule)."""
    assert torch.equal(first.times, second.times), "only trajectories on the same schedule join one batch"
    return TrajectoryBatch(
        nodes=torch.cat([first.nodes, second.nodes]),
        edges=torch.cat([first.edges, second.edges]),
        times=first.times,
        rewards=torch.cat([first.rewards, second.rewards]),
        valid=torch.cat([first.valid, second.valid]),
        keys=[*first.keys, *second.keys],
        val_acc=torch.cat([first.val_acc, second.val_acc]),
    )


@dataclass
class ExploreMemory:
    """Starting-model trajectories that beat the policy's copies: the ``capacity`` best rewards, one per cell.

    Attributes:
        capacity: How many are kept (0: none).
        kept: The kept trajectories (``None`` while empty), highest reward first.
    """

    capacity: int
    kept: TrajectoryBatch | None = field(default=None)

    @property
    def size(self) -> int:
        """Trajectories kept."""
        return 0 if self.kept is None else self.kept.size

    def add(self, batch: TrajectoryBatch, rows: NDArray[np.int64]) -> None:
        """Keep trajectories ``rows`` of ``batch`` (valid cells), then only the ``capacity`` best, one per cell."""
        if self.capacity == 0 or len(rows) == 0:
            return
        new = select(batch, rows)
        if self.kept is not None and not torch.equal(self.kept.times, batch.times):
            self.kept = None  # another step schedule: the kept trajectories no longer fit the batches
        joined = new if self.kept is None else concatenate(self.kept, new)
        order = np.argsort(-joined.rewards.numpy(), kind="stable")
        seen: set[str | None] = set()
        keep = []
        for i in order:
            key = joined.keys[int(i)]
            if key not in seen:
                seen.add(key)
                keep.append(int(i))
        self.kept = select(joined, np.asarray(keep[: self.capacity], dtype=np.int64))

    def replay(
        self,
        batch: TrajectoryBatch,
        own_rewards: NDArray[np.floating],
        normalizer: RewardNormalizer,
        explore_baseline: ExploreBaseline,
        explore_advantage: ExploreAdvantage = "scaled",
    ) -> tuple[TrajectoryBatch, NDArray[np.float64]]:
        """The kept trajectories that beat the policy's copies of ``batch`` now, with their advantages.

        Cells ``batch`` holds are left out (the batch's own copy is scored with the batch).

        Returns:
            ``(trajectories, float64[k] advantages > 0)``; ``k`` may be 0.
        """
        empty = (select(batch, np.zeros(0, dtype=np.int64)), np.zeros(0))
        if self.kept is None or not torch.equal(self.kept.times, batch.times):
            return empty
        fresh = np.array([key not in set(batch.keys) for key in self.kept.keys])
        advantages = explore_advantages(
            self.kept.rewards.numpy(), fresh, own_rewards, normalizer, explore_baseline, explore_advantage
        )
        rows = np.flatnonzero(advantages > 0.0)
        return select(self.kept, rows), advantages[rows]


@dataclass(frozen=True)
class ExploreStep:
    """A batch with the exploration copies scored and the kept trajectories that still beat it appended.

    Attributes:
        batch: The batch, then the replayed kept trajectories (``B + k`` of them).
        advantages: ``float64[B + k]``: the policy's copies as given, the starting model's by
            :func:`explore_advantages`, the replayed ones by the same rule against this batch.
        scored: ``bool[B + k]``: the counted copies, the valid exploration copies and the replayed ones.
        n_found: Exploration copies of this batch learnt from (advantage > 0).
        n_replayed: Kept trajectories appended (``k``).
    """

    batch: TrajectoryBatch
    advantages: NDArray[np.float64]
    scored: NDArray[np.bool_]
    n_found: int
    n_replayed: int


def explore_step(
    batch: TrajectoryBatch,
    advantages: NDArray[np.float64],
    counted: NDArray[np.bool_],
    explored: NDArray[np.bool_],
    normalizer: RewardNormalizer,
    explore_baseline: ExploreBaseline,
    memory: ExploreMemory,
    explore_advantage: ExploreAdvantage = "scaled",
) -> ExploreStep:
    """Score the exploration copies of ``batch``, replay ``memory`` against it, then keep the new finds in it.

    Args:
        batch: The batch (``B`` trajectories).
        advantages: ``float64[B]`` the policy's advantages (0 for the exploration copies).
        counted: ``bool[B]`` the policy's counted copies.
        explored: ``bool[B]`` the valid copies the starting model drew (disjoint from ``counted``).
        normalizer: The running statistics.
        explore_baseline: What a starting-model cell must beat.
        memory: The kept trajectories (updated with this batch's finds).
        explore_advantage: How a cell that beats the bar is weighted (:func:`explore_advantages`).

    Raises:
        ValueError: If ``explored`` and ``counted`` overlap.
    """
    if np.any(explored & counted):
        raise ValueError("a sample cannot be both drawn by the starting model and counted as the policy's")
    own = batch.rewards.numpy()[counted]
    found = explore_advantages(batch.rewards.numpy(), explored, own, normalizer, explore_baseline, explore_advantage)
    replayed, replay_advantages = memory.replay(batch, own, normalizer, explore_baseline, explore_advantage)
    memory.add(batch, np.flatnonzero(found > 0.0))
    return ExploreStep(
        batch=concatenate(batch, replayed),
        advantages=np.concatenate([advantages + found, replay_advantages]),
        scored=np.concatenate([counted | explored, np.ones(replayed.size, dtype=bool)]),
        n_found=int((found > 0.0).sum()),
        n_replayed=replayed.size,
    )


__all__ = [
    "EXPLORE_ADVANTAGES",
    "EXPLORE_BASELINES",
    "ExploreAdvantage",
    "ExploreBaseline",
    "ExploreMemory",
    "ExploreStep",
    "concatenate",
    "explore_advantages",
    "explore_step",
    "select",
]
