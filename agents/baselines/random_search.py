"""Random search: uniform cells until the budget is spent (Li & Talwalkar 2019; docs/benchmarks.md §5)."""

from __future__ import annotations

import numpy as np

from agents.baselines.base import QueryBudget, Searcher


class RandomSearch(Searcher):
    """Query uniformly drawn valid cells (:meth:`SearchSpace.sample_uniform`) until the budget is spent.

    Repeated draws of a known cell cost no budget (they count as proposals only).
    """

    name = "rs"

    def _search(self, budget: QueryBudget, rng: np.random.Generator) -> None:
        while True:
            budget.query(budget.space.sample_uniform(rng))
