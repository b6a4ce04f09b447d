"""An exact query budget for RL agents: a benchmark view that refuses new cells beyond ``max_queries``.

Vectorised environments finish several episodes in one step, so a stop rule checked after each
step can overshoot a budget of distinct queries by up to ``n_envs - 1``. Giving the environments
:class:`BudgetedBenchmark` instead makes the budget exact: once ``max_queries`` distinct cells were
looked up, a cell not seen before is answered as invalid (reason "query budget exhausted", not
looked up, not counted) while known cells are still answered. The agent then stops on the count
(``max_queries`` of :class:`~agents.dgpo.DGPO`, or :class:`~agents.policies.callbacks.QueryBudgetCallback`).
"""

from __future__ import annotations

import numpy as np

from dgpo_env.benchmarks.base import Benchmark, CellResult, Oracle, QueryRecord
from dgpo_env.diffusion.marginals import Marginals
from dgpo_env.search_spaces.dag import DAG

BUDGET_EXHAUSTED = "query budget exhausted"
"""``CellResult.reason`` of a new cell proposed after the budget was spent."""


class BudgetedBenchmark(Benchmark):
    """``inner`` with at most ``max_queries`` distinct cells looked up; all counts are ``inner``'s.

    Args:
        inner: The benchmark that answers and counts (its history is the run's record).
        max_queries: The budget of distinct cells.

    Raises:
        ValueError: If ``max_queries < 1``.
    """

    def __init__(self, inner: Benchmark, max_queries: int) -> None:
        super().__init__()
        if max_queries < 1:
            raise ValueError(f"max_queries must be >= 1, got {max_queries}")
        self.inner = inner
        self.max_queries = int(max_queries)
        self.search_space = inner.search_space
        self.name = inner.name
        self.chance_accuracy = inner.chance_accuracy

    def query(self, cell: DAG, rng: np.random.Generator | None = None) -> CellResult:
        """``inner.query(cell)``, unless ``cell`` is new and the budget is spent (then an uncounted refusal)."""
        if self.exhausted:
            self.search_space.check_shape(cell)
            if self.search_space.validate(cell) is None:
                key = self.search_space.canonical_key(cell)
                if not self.inner.was_queried(key):
                    return CellResult(key=None, valid=False, reason=BUDGET_EXHAUSTED)
        return self.inner.query(cell, rng)

    @property
    def exhausted(self) -> bool:
        """Whether ``max_queries`` distinct cells have been looked up."""
        return self.inner.n_queries >= self.max_queries

    # ------------------------------------------------------------------ delegation
    def _lookup(self, key: str, cell: DAG, rng: np.random.Generator | None) -> CellResult:
        return self.inner._lookup(key, cell, rng)

    def peek(self, cell: DAG, rng: np.random.Generator | None = None) -> CellResult:
        """``inner.peek`` (uncounted; analysis only)."""
        return self.inner.peek(cell, rng)

    @property
    def oracle(self) -> Oracle:
        """``inner``'s oracle."""
        return self.inner.oracle

    def marginals(self) -> Marginals:
        """``inner``'s marginals."""
        return self.inner.marginals()

    @property
    def n_queries(self) -> int:
        """``inner``'s distinct-query count."""
        return self.inner.n_queries

    @property
    def n_lookups(self) -> int:
        """``inner``'s look-up count."""
        return self.inner.n_lookups

    @property
    def history(self) -> list[QueryRecord]:
        """``inner``'s history."""
        return self.inner.history

    def was_queried(self, key: str) -> bool:
        """Whether ``inner`` has looked the cell up."""
        return self.inner.was_queried(key)

    def best_so_far(self) -> np.ndarray:
        """``inner``'s best-so-far curve."""
        return self.inner.best_so_far()

    def reset_counter(self) -> None:
        """Reset ``inner``'s counters."""
        self.inner.reset_counter()
