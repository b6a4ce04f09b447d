"""SB3 callbacks for denoising environments."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from agents.policies.budget import apply_budget, env_ledger
from dgpo_env.ledger import QueryLedger, check_budget
from dgpo_env.validation import check_count


class QueryBudgetCallback(BaseCallback):
    """Stop ``learn`` once the environments' query ledger holds ``max_queries`` distinct cells.

    At the start of training it checks that every environment copy counts into one ledger
    (:func:`~agents.policies.budget.env_ledger`, which refuses copies with separate ledgers) and
    gives that ledger the budget, so new cells beyond it are refused by the environments themselves
    and the count is exact even with many copies. Works with any SB3 algorithm (PPO, A2C,
    MaskablePPO, DGPO).

    Args:
        max_queries: The budget of distinct cells.
        verbose: SB3 verbosity.

    Raises:
        TypeError: If ``max_queries`` is not an integer.
        ValueError: If ``max_queries < 1``.
    """

    def __init__(self, max_queries: int, verbose: int = 0) -> None:
        super().__init__(verbose)
        budget = check_budget(max_queries)
        if budget is None:
            raise ValueError("max_queries must be an integer >= 1, got None")
        self.max_queries = budget
        self.n_queries = 0
        self.ledger: QueryLedger | None = None

    def _on_training_start(self) -> None:
        self.ledger = env_ledger(self.training_env)
        apply_budget(self.ledger, self.max_queries)

    def _on_step(self) -> bool:
        assert self.ledger is not None, "the callback was not started by learn()"
        self.n_queries = self.ledger.n_queries
        if self.n_queries >= self.max_queries and self.verbose:
            print(f"query budget reached: {self.n_queries} >= {self.max_queries} distinct cells")
        return self.n_queries < self.max_queries


class QueryProgressCallback(BaseCallback):
    """Print one line each time the query ledger passes another ``every`` distinct cells.

    A progress report that reads well in a terminal and in a log file alike (no carriage returns):
    queries used (of the budget, when the ledger has one), the best mean validation accuracy so far
    and the query that found it, and the wall time since training started. Works with any SB3
    algorithm on denoising environments (PPO, A2C, MaskablePPO, DGPO).

    Args:
        every: Print after every this many new distinct cells (>= 1).
        print_fn: Where the lines go (default :func:`print`, flushed).

    Raises:
        TypeError: If ``every`` is not an integer.
        ValueError: If ``every < 1``.
    """

    def __init__(self, every: int, print_fn: Callable[[str], None] | None = None) -> None:
        super().__init__(0)
        self.every = check_count("every", every, minimum=1)
        self.print_fn = print_fn if print_fn is not None else _print_flushed
        self.ledger: QueryLedger | None = None
        self._next = self.every
        self._start = 0.0

    def _on_training_start(self) -> None:
        self.ledger = env_ledger(self.training_env)
        self._next = (self.ledger.n_queries // self.every + 1) * self.every
        self._start = time.perf_counter()

    def _on_step(self) -> bool:
        assert self.ledger is not None, "the callback was not started by learn()"
        n_queries = self.ledger.n_queries
        if n_queries >= self._next:
            self._next = (n_queries // self.every + 1) * self.every
            self.print_fn(self.line(n_queries))
        return True

    def line(self, n_queries: int) -> str:
        """The progress line for ``n_queries`` distinct cells used."""
        assert self.ledger is not None
        budget = self.ledger.max_queries
        used = f"{n_queries}" if budget is None else f"{n_queries}/{budget}"
        curve = self.ledger.best_so_far()  # [H] best validation accuracy after each valued query
        if curve.size:
            found = int(np.argmax(curve == curve[-1])) + 1
            best = f"best val {curve[-1]:.4f}% (query {found})"
        else:
            best = "no valued cell yet"
        return f"  queries {used}  {best}  {time.perf_counter() - self._start:.0f} s"


def _print_flushed(line: str) -> None:
    print(line, flush=True)
