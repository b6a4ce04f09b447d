"""Regularised (aging) evolution with the NAS-Bench-201 settings of docs/benchmarks.md §5.

Real, Aggarwal, Huang & Le (2019) "Regularized Evolution for Image Classifier Architecture Search",
Algorithm 1.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from agents.baselines.base import PROPOSALS_PER_QUERY, QueryBudget, Searcher, random_mutation, score
from dgpo_env.search_spaces.dag import DAG

POPULATION_SIZE = 10
"""Population size of the NAS-Bench-201 REA setting (docs/benchmarks.md §5): 10."""

SAMPLE_SIZE = 3
"""Tournament (sample) size of the NAS-Bench-201 REA setting (docs/benchmarks.md §5): 3."""


class RegularizedEvolution(Searcher):
    """Aging evolution: tournament selection, one-entry mutation, the oldest member dies.

    1. Fill the population with ``population_size`` uniform random cells.
    2. Repeat: draw ``sample_size`` members uniformly without replacement, mutate the best of them
       (:func:`~agents.baselines.base.random_mutation`: one free entry changed), query the child,
       append it and remove the oldest member.

    A child that is a known cell costs no budget and still joins the population (as in the
    original, where the benchmark is a cached table).

    Args:
        population_size: Population size ``P`` (default :data:`POPULATION_SIZE`).
        sample_size: Tournament size ``S`` (default :data:`SAMPLE_SIZE`), ``1 <= S <= P``.
        proposals_per_query: See :class:`~agents.baselines.base.Searcher`.

    Raises:
        ValueError: If the sizes are inconsistent.
    """

    name = "rea"

    def __init__(
        self,
        population_size: int = POPULATION_SIZE,
        sample_size: int = SAMPLE_SIZE,
        proposals_per_query: int = PROPOSALS_PER_QUERY,
    ) -> None:
        super().__init__(proposals_per_query)
        if not 1 <= sample_size <= population_size:
            raise ValueError(
                f"need 1 <= sample_size <= population_size, got sample_size={sample_size}, "
                f"population_size={population_size}"
            )
        self.population_size = population_size
        self.sample_size = sample_size

    def settings(self) -> dict[str, Any]:
        """Hyper-parameters (JSON-ready)."""
        return {**super().settings(), "population_size": self.population_size, "sample_size": self.sample_size}

    def _search(self, budget: QueryBudget, rng: np.random.Generator) -> None:
        population: deque[tuple[DAG, float]] = deque()
        while len(population) < self.population_size:
            cell = budget.space.sample_uniform(rng)
            population.append((cell, score(budget.query(cell))))
        while True:
            picks = rng.choice(len(population), size=self.sample_size, replace=False)
            parent = max((population[int(i)] for i in picks), key=lambda member: member[1])[0]
            child = random_mutation(budget.space, parent, rng)
            population.append((child, score(budget.query(child))))
            population.popleft()
