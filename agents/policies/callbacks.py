"""SB3 callbacks for denoising environments."""

from __future__ import annotations

from stable_baselines3.common.callbacks import BaseCallback

from agents.policies.budget import apply_budget, env_ledger
from dgpo_env.ledger import QueryLedger, check_budget


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
