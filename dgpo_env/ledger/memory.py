"""The in-process query ledger: the default, as fast as a dict.

It lives in one Python process. Sending it to another process (pickling it into a
``SubprocVecEnv`` or ``AsyncVectorEnv`` worker, a ``multiprocessing`` pool) would silently fork the
count — each copy would count on its own and the budget would no longer hold — so it refuses to be
pickled, and a copy inherited by ``fork`` refuses to record; both say what to use instead
(docs/ledger.md, "Worker processes"). ``copy.deepcopy`` in the same process returns the ledger itself,
so a copied environment or benchmark keeps counting into it.
"""

from __future__ import annotations

import os
import threading
import uuid
from array import array
from typing import Any, NoReturn

import numpy as np

from dgpo_env.ledger.base import Admission, LedgerError, QueryLedger, as_float, check_budget


class InMemoryLedger(QueryLedger):
    """A :class:`~dgpo_env.ledger.base.QueryLedger` held in this process's memory.

    Records are kept compactly (a dict from key to position, and two ``float64`` arrays), about
    100 bytes per distinct cell beside the key string itself.

    Args:
        max_queries: Budget of distinct cells (``None``: no limit).

    Raises:
        TypeError: If ``max_queries`` is not an integer or ``None``.
        ValueError: If it is below 1.
    """

    def __init__(self, max_queries: int | None = None) -> None:
        self._max_queries = check_budget(max_queries)
        self._pid = os.getpid()
        self._id = f"memory:{self._pid}:{uuid.uuid4().hex}"
        self._lock = threading.Lock()
        self._position: dict[str, int] = {}
        self._keys: list[str] = []
        self._val = array("d")
        self._test = array("d")
        self._n_lookups = 0

    def record(self, key: str, val_acc_mean: float | None, test_acc: float | None) -> Admission:
        """Record one look-up (see :meth:`QueryLedger.record`).

        Raises:
            LedgerError: In a process forked after the ledger was made (the count would fork).
        """
        if os.getpid() != self._pid:
            raise LedgerError(f"{_FORKED} {_USE_SHARED}")
        with self._lock:
            if key in self._position:
                self._n_lookups += 1
                return Admission.KNOWN
            if self._max_queries is not None and len(self._keys) >= self._max_queries:
                return Admission.REFUSED
            self._position[key] = len(self._keys)
            self._keys.append(key)
            self._val.append(as_float(val_acc_mean))
            self._test.append(as_float(test_acc))
            self._n_lookups += 1
            return Admission.NEW

    @property
    def ledger_id(self) -> str:
        """``"memory:<pid>:<uuid>"``: unique to this ledger object."""
        return self._id

    @property
    def max_queries(self) -> int | None:
        """The budget of distinct cells, ``None`` for no limit."""
        return self._max_queries

    def set_budget(self, max_queries: int | None) -> None:
        """Set the budget (see :meth:`QueryLedger.set_budget`)."""
        self._max_queries = check_budget(max_queries)

    def counts(self) -> tuple[int, int]:
        """``(n_queries, n_lookups)``."""
        return len(self._keys), self._n_lookups

    def was_queried(self, key: str) -> bool:
        """Whether ``key`` has been recorded."""
        return key in self._position

    def _records(self) -> tuple[list[str], np.ndarray, np.ndarray]:
        with self._lock:
            return list(self._keys), np.array(self._val, dtype=np.float64), np.array(self._test, dtype=np.float64)

    def reset(self) -> None:
        """Forget every record and count (the budget stays)."""
        with self._lock:
            self._position.clear()
            self._keys.clear()
            self._val = array("d")
            self._test = array("d")
            self._n_lookups = 0

    def __reduce__(self) -> NoReturn:
        raise LedgerError(f"{_PICKLED} {_USE_SHARED}")

    def __deepcopy__(self, memo: dict[int, Any]) -> InMemoryLedger:
        """The ledger itself: a copy made in this process (of an env, a benchmark, a spec) counts into it."""
        return self


_PICKLED = (
    "an in-process InMemoryLedger cannot be sent to another process: each copy would count on its own "
    "and the query budget would not hold."
)
_FORKED = (
    "this InMemoryLedger was inherited by a forked process: its count would fork from the parent's "
    "and the query budget would not hold."
)
_USE_SHARED = (
    "For environments in worker processes (SubprocVecEnv, gym.make_vec(..., vectorization_mode='async')) "
    "give them one cross-process ledger, e.g. env_kwargs={'ledger': SQLiteLedger('runs/queries.sqlite', "
    "max_queries=...)} (from dgpo_env.ledger import SQLiteLedger); see docs/ledger.md"
)


__all__ = ["InMemoryLedger"]
