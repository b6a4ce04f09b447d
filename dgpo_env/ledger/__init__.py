"""Query ledgers: where every distinct benchmark look-up is recorded and the query budget enforced.

See :mod:`dgpo_env.ledger.base` for the interface and docs/ledger.md for the guarantees.
"""

from dgpo_env.ledger.base import BUDGET_EXHAUSTED, Admission, LedgerError, QueryLedger, QueryRecord, check_budget
from dgpo_env.ledger.memory import InMemoryLedger
from dgpo_env.ledger.ray import RayLedger  # imports Ray only when a RayLedger is made
from dgpo_env.ledger.sqlite import SQLiteLedger

__all__ = [
    "BUDGET_EXHAUSTED",
    "Admission",
    "InMemoryLedger",
    "LedgerError",
    "QueryLedger",
    "QueryRecord",
    "RayLedger",
    "SQLiteLedger",
    "check_budget",
]
