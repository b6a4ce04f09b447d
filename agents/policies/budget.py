"""One exact query budget for RL agents: every environment copy must count into one ledger.

The budget is enforced by the benchmark's :class:`~dgpo_env.ledger.QueryLedger` (docs/ledger.md):
once it holds ``max_queries`` distinct cells, a new cell is answered as invalid ("query budget
exhausted") and not counted, so vectorised environments, which finish several episodes in one
step, cannot overshoot. That only holds if all copies count into the **same** ledger;
:func:`env_ledger` checks it for any SB3 ``VecEnv`` (``DummyVecEnv``, ``SubprocVecEnv``) and returns
it, so the agent can read the count and stop.
"""

from __future__ import annotations

import os

from stable_baselines3.common.vec_env import VecEnv

from dgpo_env.ledger import BUDGET_EXHAUSTED, LedgerError, QueryLedger

SHARE_HINT = (
    "build the copies on one benchmark (agents.policies.make_env_for_model, DGPO.for_env_id), or give every "
    "copy one ledger: env_kwargs={'ledger': SQLiteLedger('runs/queries.sqlite')} "
    "(from dgpo_env.ledger import SQLiteLedger; it also works across worker processes); see docs/ledger.md"
)
"""How to make environment copies share one ledger (quoted in the errors)."""


def env_ledger(env: VecEnv) -> QueryLedger:
    """The one query ledger every copy of ``env`` counts into.

    Args:
        env: An SB3 vectorised environment of :class:`~dgpo_env.envs.GraphDenoiseEnv` copies.

    Returns:
        The shared ledger: the object itself for copies in this process, a handle on the same file
        for an :class:`~dgpo_env.ledger.SQLiteLedger` in worker processes.

    Raises:
        LedgerError: If the copies count into different ledgers (each would count on its own and a
            budget would not hold), or into an in-process ledger that lives in another process.
    """
    ids = [str(i) for i in env.get_attr("ledger_id")]
    if len(set(ids)) != 1:
        raise LedgerError(
            f"the {len(ids)} environment copies count queries into {len(set(ids))} different ledgers, so neither "
            f"their count nor a query budget is exact; {SHARE_HINT}"
        )
    kind, _, rest = ids[0].partition(":")
    owner = rest.partition(":")[0]
    if kind == "memory" and owner != str(os.getpid()):
        raise LedgerError(
            f"the environment copies count queries into an in-process ledger of another process (pid {owner}); "
            f"this process cannot read its count or enforce a budget; {SHARE_HINT}"
        )
    ledger = env.get_attr("ledger", [0])[0]
    assert isinstance(ledger, QueryLedger)
    return ledger


def apply_budget(ledger: QueryLedger, max_queries: int | None) -> None:
    """Give ``ledger`` the budget ``max_queries`` (nothing for ``None``).

    Raises:
        ValueError: If the ledger already has a different budget (say which to keep).
    """
    if max_queries is None:
        return
    current = ledger.max_queries
    if current is not None and current != max_queries:
        raise ValueError(
            f"the environments' query ledger already has a budget of {current} distinct cells, but max_queries="
            f"{max_queries} was asked for; pass max_queries={current} or set ledger.set_budget({max_queries}) first"
        )
    ledger.set_budget(max_queries)


__all__ = ["BUDGET_EXHAUSTED", "SHARE_HINT", "apply_budget", "env_ledger"]
