"""SB3 callbacks for denoising environments."""

from __future__ import annotations

from stable_baselines3.common.callbacks import BaseCallback


class QueryBudgetCallback(BaseCallback):
    """Stop ``learn`` once the environment's benchmark has looked up ``max_queries`` distinct cells.

    Reads ``info["n_queries"]`` of finished episodes (the count of the environment's benchmark;
    global when the vectorised copies share one benchmark, as
    :func:`~agents.policies.envs.make_env_for_model` builds them). Works with any SB3 algorithm
    whose rollout loop exposes ``infos`` (PPO, A2C, MaskablePPO, DGPO).

    Args:
        max_queries: The budget of distinct cells.
        verbose: SB3 verbosity.

    Raises:
        ValueError: If ``max_queries < 1``.
    """

    def __init__(self, max_queries: int, verbose: int = 0) -> None:
        super().__init__(verbose)
        if max_queries < 1:
            raise ValueError(f"max_queries must be >= 1, got {max_queries}")
        self.max_queries = int(max_queries)
        self.n_queries = 0

    def _on_step(self) -> bool:
        for info in self.locals.get("infos", ()):
            if "n_queries" in info:
                self.n_queries = max(self.n_queries, int(info["n_queries"]))
        if self.n_queries >= self.max_queries and self.verbose:
            print(f"query budget reached: {self.n_queries} >= {self.max_queries} distinct cells")
        return self.n_queries < self.max_queries
