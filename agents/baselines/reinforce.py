"""A REINFORCE controller without diffusion: independent categoricals over the free flat entries.

Williams (1992) REINFORCE with a moving-average baseline, as used for NAS by Zoph & Le (2017) and
benchmarked on NAS-Bench-101/201 (Ying et al. 2019 §5; Dong et al. 2021, NATS-Bench §6). The policy
is a product of independent categoricals, one per *free* entry of the flat vector
``concat(nodes, edges)`` (:attr:`SearchSpace.free_positions`), each over that position's allowed
values only; fixed entries are copied from :attr:`SearchSpace.fixed_values`. This is the RL-without-
prior baseline for DGPO: same action space, no diffusion.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from agents.baselines.base import PROPOSALS_PER_QUERY, QueryBudget, Searcher, score
from agents.threads import torch_threads
from dgpo_env.search_spaces.base import SearchSpace

LEARNING_RATE = 0.01
"""Adam learning rate: NATS-Bench's REINFORCE setting on the topology space (Dong et al. 2021 §6,
``exps/NATS-algos/reinforce.py --learning_rate 0.01``)."""

BASELINE_MOMENTUM = 0.9
"""Moving-average baseline ``b <- m b + (1 - m) R`` (Dong et al. 2021 / Ying et al. 2019: m = 0.9)."""

INVALID_REWARD = 0.0
"""Reward (percent) of a sampled cell that is not valid in the search space (e.g. a toy or NB101 DAG
whose input does not reach the output): zero accuracy, below every valid cell."""


class CategoricalController(torch.nn.Module):
    """Independent masked categoricals over the free entries of a search space's flat vector.

    Args:
        space: The search space.

    Attributes:
        positions: ``int64[P]`` free flat positions.
        logits: ``float[P, K]`` learnable logits (``K`` = largest value count among free positions),
            initialised to zero (uniform over allowed values).
        allowed: ``bool[P, K]`` buffer: which values each free position may take.
    """

    allowed: torch.Tensor

    def __init__(self, space: SearchSpace) -> None:
        super().__init__()
        self.space = space
        self.positions = space.free_positions  # [P]
        if self.positions.size == 0:
            raise ValueError(f"{space.name} has no free entries: there is nothing to search")
        k = int(space.nvec[self.positions].max())
        node_allowed, edge_allowed = space.allowed
        rows = [*node_allowed, *edge_allowed]
        allowed = np.zeros((self.positions.size, k), dtype=bool)  # [P, K]
        for row, pos in enumerate(self.positions.tolist()):
            allowed[row, : rows[pos].size] = rows[pos]
        self.register_buffer("allowed", torch.from_numpy(allowed))
        self.logits = torch.nn.Parameter(torch.zeros(allowed.shape, dtype=torch.float64))

    def log_probs(self) -> torch.Tensor:
        """``float[P, K]`` per-position log-probabilities, ``-inf`` at values that are not allowed."""
        masked = self.logits.masked_fill(~self.allowed, -torch.inf)
        return torch.log_softmax(masked, dim=-1)

    def sample(self, generator: torch.Generator) -> torch.Tensor:
        """``int64[P]``: one value per free position."""
        with torch.no_grad():
            probs = self.log_probs().exp()  # [P, K]
        return torch.multinomial(probs, 1, generator=generator).squeeze(1)

    def log_prob(self, values: torch.Tensor) -> torch.Tensor:
        """Scalar log-probability of ``values`` (``int64[P]``) under the product of categoricals."""
        return self.log_probs().gather(1, values[:, None]).sum()

    def to_flat(self, values: torch.Tensor) -> np.ndarray:
        """``int64[N + M]``: the flat vector with the free entries set to ``values``."""
        flat = self.space.fixed_values.copy()
        flat[self.positions] = values.numpy()
        return flat


class Reinforce(Searcher):
    """REINFORCE over the free entries, one sampled cell per update.

    Each step samples a cell, queries it (reward = mean validation accuracy in percent, or
    ``invalid_reward``), and takes an Adam step on ``-(R - b) log π(cell)`` where ``b`` is the
    moving-average baseline *before* this reward (initialised to the first reward, so the first
    step does nothing). Known cells cost no budget but still train the controller; a controller that
    has collapsed onto known cells ends at the proposal cap.

    Args:
        learning_rate: Adam step size (default :data:`LEARNING_RATE`).
        baseline_momentum: Baseline smoothing ``m`` in ``[0, 1)`` (default :data:`BASELINE_MOMENTUM`).
        invalid_reward: Reward of an invalid cell (default :data:`INVALID_REWARD`).
        proposals_per_query: See :class:`~agents.baselines.base.Searcher`.
    """

    name = "reinforce"

    def __init__(
        self,
        learning_rate: float = LEARNING_RATE,
        baseline_momentum: float = BASELINE_MOMENTUM,
        invalid_reward: float = INVALID_REWARD,
        proposals_per_query: int = PROPOSALS_PER_QUERY,
    ) -> None:
        super().__init__(proposals_per_query)
        if learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0, got {learning_rate}")
        if not 0.0 <= baseline_momentum < 1.0:
            raise ValueError(f"baseline_momentum must be in [0, 1), got {baseline_momentum}")
        self.learning_rate = learning_rate
        self.baseline_momentum = baseline_momentum
        self.invalid_reward = invalid_reward

    def settings(self) -> dict[str, Any]:
        """Hyper-parameters (JSON-ready)."""
        return {
            **super().settings(),
            "learning_rate": self.learning_rate,
            "baseline_momentum": self.baseline_momentum,
            "invalid_reward": self.invalid_reward,
        }

    def _search(self, budget: QueryBudget, rng: np.random.Generator) -> None:
        with torch_threads(1):  # the controller's tensors are tiny ([P, K])
            self._train(budget, torch.Generator().manual_seed(int(rng.integers(2**62))))

    def _train(self, budget: QueryBudget, generator: torch.Generator) -> None:
        """The REINFORCE loop, sampling with ``generator``; ends when ``budget.query`` raises."""
        controller = CategoricalController(budget.space)
        optimiser = torch.optim.Adam(controller.parameters(), lr=self.learning_rate)
        baseline: float | None = None
        while True:
            values = controller.sample(generator)  # [P]
            cell = budget.space.from_flat(controller.to_flat(values))
            reward = score(budget.query(cell), self.invalid_reward)
            baseline = reward if baseline is None else baseline
            advantage = reward - baseline
            baseline = self.baseline_momentum * baseline + (1.0 - self.baseline_momentum) * reward
            if advantage != 0.0:
                optimiser.zero_grad()
                (-advantage * controller.log_prob(values)).backward()
                optimiser.step()
