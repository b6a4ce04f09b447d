"""The in-process query ledger: the default, compact and fast.

It lives in one Python process. Sending it to another process (pickling it into a
``SubprocVecEnv`` or ``AsyncVectorEnv`` worker, a ``multiprocessing`` pool) would silently fork the
count — each copy would count on its own and the budget would no longer hold — so it refuses to be
pickled, and a copy inherited by ``fork`` refuses to be used; both say what to use instead
(docs/ledger.md, "Worker processes"). ``copy.deepcopy`` in the same process returns the ledger itself,
so a copied environment or benchmark keeps counting into it.

The records live in an in-memory SQLite database (standard library) rather than in Python objects:
one B-tree row per distinct cell: about 40 bytes per cell with 21-character keys, where a ``dict`` of
``str`` keys with float arrays took about 200 (docs/ledger.md, "The in-process ledger").
"""

from __future__ import annotations

import os
import sqlite3
import threading
import uuid
from collections.abc import Mapping
from typing import Any, NoReturn

import numpy as np

from dgpo_env.ledger.base import (
    Admission,
    LedgerError,
    QueryLedger,
    QueryRecord,
    as_float,
    as_nullable,
    check_budget,
    encode_extra,
    stored_record,
)

_SCHEMA = """
CREATE TABLE queries (
    key TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    val_acc_mean REAL,
    test_acc REAL,
    extra TEXT
) WITHOUT ROWID
"""
_INSERT = "INSERT OR IGNORE INTO queries (key, seq, val_acc_mean, test_acc, extra) VALUES (?, ?, ?, ?, ?)"
_EXISTS = "SELECT 1 FROM queries WHERE key = ?"


class InMemoryLedger(QueryLedger):
    """A :class:`~dgpo_env.ledger.base.QueryLedger` held in this process's memory.

    Records are kept in a private in-memory SQLite table keyed by the cell's key: about 40 bytes per
    distinct cell with 21-character keys (31 MiB for 833,034 cells, ``benchmarks/ledger_memory.py``).
    A look-up costs a few microseconds.

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
        # One connection, used under ``_lock`` only (hence ``check_same_thread=False``).
        self._db = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        self._db.execute(_SCHEMA)
        self._n_queries = 0
        self._n_lookups = 0

    def _connection(self) -> sqlite3.Connection:
        """The database, in the process that made the ledger only.

        Raises:
            LedgerError: In a process forked after the ledger was made (the count would fork).
        """
        if os.getpid() != self._pid:
            raise LedgerError(f"{_FORKED} {_USE_SHARED}")
        return self._db

    def record(self, key: str, val_acc_mean: float | None, test_acc: float | None) -> Admission:
        """Record one look-up (see :meth:`QueryLedger.record`).

        Raises:
            LedgerError: In a process forked after the ledger was made (the count would fork).
        """
        return self.record_with_extra(key, val_acc_mean, test_acc, None)

    def record_with_extra(
        self, key: str, val_acc_mean: float | None, test_acc: float | None, extra: Mapping[str, Any] | None
    ) -> Admission:
        """Record one look-up, keeping ``extra`` with a new cell (see :meth:`QueryLedger.record_with_extra`).

        Raises:
            TypeError: If ``extra`` is not a JSON object of finite values.
            LedgerError: In a process forked after the ledger was made (the count would fork).
        """
        text = encode_extra(extra)
        db = self._connection()
        with self._lock:
            if self._max_queries is None or self._n_queries < self._max_queries:
                before = db.total_changes
                db.execute(_INSERT, (key, self._n_queries, as_nullable(val_acc_mean), as_nullable(test_acc), text))
                admission = Admission.NEW if db.total_changes != before else Admission.KNOWN
            elif db.execute(_EXISTS, (key,)).fetchone() is not None:
                admission = Admission.KNOWN
            else:
                return Admission.REFUSED
            self._n_queries += admission is Admission.NEW
            self._n_lookups += 1
            return admission

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
        return self._n_queries, self._n_lookups

    def was_queried(self, key: str) -> bool:
        """Whether ``key`` has been recorded."""
        db = self._connection()
        with self._lock:
            return db.execute(_EXISTS, (key,)).fetchone() is not None

    def stored(self, key: str) -> QueryRecord | None:
        """The record of ``key`` with its extra metrics, or ``None`` (see :meth:`QueryLedger.stored`)."""
        db = self._connection()
        with self._lock:
            row = db.execute("SELECT val_acc_mean, test_acc, extra FROM queries WHERE key = ?", (key,)).fetchone()
        return None if row is None else stored_record(key, *row)

    def _records(self) -> tuple[list[str], np.ndarray, np.ndarray]:
        db = self._connection()
        with self._lock:
            rows = db.execute("SELECT key, val_acc_mean, test_acc FROM queries ORDER BY seq").fetchall()
        keys = [str(row[0]) for row in rows]
        val = np.array([as_float(row[1]) for row in rows], dtype=np.float64)  # [Q]
        test = np.array([as_float(row[2]) for row in rows], dtype=np.float64)  # [Q]
        return keys, val, test

    def reset(self) -> None:
        """Forget every record and count (the budget stays)."""
        db = self._connection()
        with self._lock:
            db.execute("DELETE FROM queries")
            self._n_queries = 0
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
