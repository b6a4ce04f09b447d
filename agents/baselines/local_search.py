"""Best-improvement local search (hill climbing) with random restarts.

White, Nolen & Savani (2021) "Exploring the Loss Landscape in Neural Architecture Search"
(UAI 2021), Algorithm 1: from a random cell, query **every** neighbour (one-entry change), move to
the best neighbour if it beats the current cell, otherwise the current cell is a local optimum and
the search restarts from a new random cell. docs/benchmarks.md §5 lists its NAS-Bench-201 reference numbers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agents.baselines.base import PROPOSALS_PER_QUERY, QueryBudget, Searcher, score
from dgpo_env.search_spaces.dag import DAG

N_INIT = 1
"""Random cells queried before the first climb starts from the best of them (White et al. 2021: 1;
NASLib's ``num_init`` option generalises it)."""


class LocalSearch(Searcher):
    """Best-improvement hill climbing over one-entry neighbours with random restarts.

    Neighbours are queried in a random order (it matters only for where a run stops when the budget
    runs out mid-neighbourhood, and for ties, which go to the first queried). Neighbours that are
    already known cost no budget.

    Args:
        n_init: Random cells queried before the first climb, which starts from the best of them
            (default :data:`N_INIT`). Restarts start from a single random cell.
        proposals_per_query: See :class:`~agents.baselines.base.Searcher`.
    """

    name = "ls"

    def __init__(self, n_init: int = N_INIT, proposals_per_query: int = PROPOSALS_PER_QUERY) -> None:
        super().__init__(proposals_per_query)
        if n_init < 1:
            raise ValueError(f"n_init must be >= 1, got {n_init}")
        self.n_init = n_init

    def settings(self) -> dict[str, Any]:
        """Hyper-parameters (JSON-ready)."""
        return {**super().settings(), "n_init": self.n_init}

    def _search(self, budget: QueryBudget, rng: np.random.Generator) -> None:
        current, current_score = self._random_start(budget, rng, self.n_init)
        while True:
            neighbours = list(budget.space.neighbours(current))
            best, best_score = current, current_score
            for i in rng.permutation(len(neighbours)).tolist():
                value = score(budget.query(neighbours[i]))
                if value > best_score:
                    best, best_score = neighbours[i], value
            if best_score > current_score:
                current, current_score = best, best_score
            else:  # a local optimum: restart
                current, current_score = self._random_start(budget, rng, 1)

    @staticmethod
    def _random_start(budget: QueryBudget, rng: np.random.Generator, n: int) -> tuple[DAG, float]:
        """Query ``n`` uniform random cells; return the best with its score."""
        starts = [budget.space.sample_uniform(rng) for _ in range(n)]
        scores = [score(budget.query(cell)) for cell in starts]
        best = int(np.argmax(scores))
        return starts[best], scores[best]
