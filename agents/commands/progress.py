"""Progress lines of ``dgpo finetune`` under hard budgets: the best *feasible* cell (docs/howto-constrained.md)."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from agents.policies.callbacks import QueryProgressCallback
from dgpo_env.benchmarks.constrained import OVER_BUDGET_ACCURACY, ConstrainedBenchmark


class FeasibleProgressCallback(QueryProgressCallback):
    """:class:`~agents.policies.QueryProgressCallback` for a benchmark under hard budgets.

    The environments' benchmark is a :class:`~dgpo_env.benchmarks.ConstrainedBenchmark`, so the ledger
    holds an over-budget cell as accuracy 0: the best it reports is the best cell within the budgets, and
    before any is found the line says so instead of showing an accuracy of 0. Each line names the budgets.

    Args:
        every: Print after every this many new distinct cells (>= 1).
        benchmark: The environments' constrained benchmark (for the budgets' wording).
        print_fn: Where the lines go (default :func:`print`, flushed).

    Raises:
        TypeError: If ``every`` is not an integer or ``benchmark`` not a ``ConstrainedBenchmark``.
        ValueError: If ``every < 1``.
    """

    def __init__(
        self, every: int, benchmark: ConstrainedBenchmark, print_fn: Callable[[str], None] | None = None
    ) -> None:
        if not isinstance(benchmark, ConstrainedBenchmark):
            raise TypeError(f"benchmark must be a ConstrainedBenchmark, got {type(benchmark).__name__}")
        super().__init__(every, print_fn)
        self.budgets = benchmark.describe_budgets()

    def line(self, n_queries: int) -> str:
        """The progress line for ``n_queries`` distinct cells used: the best feasible cell so far."""
        assert self.ledger is not None
        budget = self.ledger.max_queries
        used = f"{n_queries}" if budget is None else f"{n_queries}/{budget}"
        curve = self.ledger.best_so_far()  # [H] best validation accuracy (over budget: 0) after each valued query
        if curve.size and curve[-1] > OVER_BUDGET_ACCURACY:
            found = int(np.argmax(curve == curve[-1])) + 1
            best = f"best feasible val {curve[-1]:.4f}% (query {found})"
        else:
            best = "no feasible cell yet"
        return f"  queries {used}  {best} [{self.budgets}]  {time.perf_counter() - self._start:.0f} s"


__all__ = ["FeasibleProgressCallback"]
