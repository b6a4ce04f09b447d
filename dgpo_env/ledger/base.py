"""The query-ledger interface: the one place where distinct look-ups are recorded and a budget enforced.

The budget of a NAS run is the number of **distinct cells whose benchmark value was looked up**
("queries"; docs/ledger.md). Every :class:`~dgpo_env.benchmarks.Benchmark` counts through one
:class:`QueryLedger`; several benchmarks (environment copies, worker processes) that share one
ledger share one exact count and one budget. A ledger answers one atomic question per look-up —
"record this cell if it is new and the budget allows" — and keeps the record of what was looked
up, in order.

Implementations: :class:`~dgpo_env.ledger.memory.InMemoryLedger` (one process, the default) and
:class:`~dgpo_env.ledger.sqlite.SQLiteLedger` (worker processes on one machine). A ledger served by
another engine only has to implement the abstract members below. Two optional members,
:meth:`QueryLedger.record_with_extra` (store a JSON mapping of extra metrics with a new cell) and
:meth:`QueryLedger.stored` (read one cell's record back, for resuming without re-evaluating), have
working defaults; the two ledgers here override them with indexed, extra-aware versions.
"""

from __future__ import annotations

import enum
import json
import math
import numbers
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

BUDGET_EXHAUSTED = "query budget exhausted"
"""``CellResult.reason`` of a new cell proposed after the budget was spent (it is not looked up)."""


class LedgerError(RuntimeError):
    """A ledger cannot do what was asked: shared across processes it cannot reach, damaged, or mismatched."""


class Admission(enum.Enum):
    """The ledger's answer to one look-up.

    Attributes:
        NEW: The cell was not known and the budget allowed it: it is now recorded (one more query).
        KNOWN: The cell was looked up before: free, counted as a look-up only.
        REFUSED: The cell is new but the budget is spent: not recorded, not to be looked up.
    """

    NEW = "new"
    KNOWN = "known"
    REFUSED = "refused"


@dataclass(frozen=True)
class QueryRecord:
    """One distinct query, in the order it was first made.

    Attributes:
        key: Canonical key of the cell.
        val_acc_mean: Its mean validation accuracy (percent).
        test_acc: Its test accuracy (percent), when known.
        extra: Extra metrics stored with the cell (a JSON object, :meth:`QueryLedger.record_with_extra`),
            when any; :attr:`QueryLedger.history` leaves them out, :meth:`QueryLedger.stored` reads them.
    """

    key: str
    val_acc_mean: float
    test_acc: float | None
    extra: dict[str, Any] | None = None


def check_budget(max_queries: object) -> int | None:
    """``max_queries`` as a budget: ``None`` (no limit) or an integer >= 1.

    Raises:
        TypeError: For a bool, a float or any other non-integer (``2.9`` is not a count).
        ValueError: For an integer below 1.
    """
    if max_queries is None:
        return None
    if isinstance(max_queries, bool) or not isinstance(max_queries, numbers.Integral):
        raise TypeError(
            f"max_queries must be an integer >= 1 or None, got {max_queries!r} ({type(max_queries).__name__})"
        )
    if int(max_queries) < 1:
        raise ValueError(f"max_queries must be >= 1 or None, got {max_queries}")
    return int(max_queries)


class QueryLedger(ABC):
    """Records distinct look-ups in first-seen order and enforces an optional budget of distinct cells.

    Every look-up of a valid cell is one call to :meth:`record`, which atomically (also across
    processes, for ledgers that span them) decides :class:`Admission` and updates the counts.
    """

    # ------------------------------------------------------------------ the five primitives
    @abstractmethod
    def record(self, key: str, val_acc_mean: float | None, test_acc: float | None) -> Admission:
        """Record one look-up of the cell ``key``: a new cell if the budget allows, a known one always.

        Args:
            key: The cell's canonical key.
            val_acc_mean: Its mean validation accuracy (percent); ``None`` when the benchmark has no value.
            test_acc: Its test accuracy (percent), when known.

        Returns:
            :attr:`Admission.NEW`, :attr:`Admission.KNOWN` or :attr:`Admission.REFUSED` (a new cell
            beyond the budget: nothing is recorded, the caller must not look it up).
        """

    @property
    @abstractmethod
    def ledger_id(self) -> str:
        """An identifier equal for every handle on the same ledger (``"memory:<pid>:<uuid>"``, ``"sqlite:..."``)."""

    @property
    @abstractmethod
    def max_queries(self) -> int | None:
        """The budget of distinct cells, ``None`` for no limit."""

    @abstractmethod
    def set_budget(self, max_queries: int | None) -> None:
        """Set the budget of distinct cells (``None``: no limit); it applies to every handle of the ledger.

        Raises:
            TypeError: If ``max_queries`` is not an integer (or ``None``).
            ValueError: If it is below 1.
        """

    @abstractmethod
    def counts(self) -> tuple[int, int]:
        """``(n_queries, n_lookups)``: distinct cells recorded, and look-ups including repeats."""

    @abstractmethod
    def was_queried(self, key: str) -> bool:
        """Whether the cell ``key`` has been recorded."""

    @abstractmethod
    def _records(self) -> tuple[list[str], np.ndarray, np.ndarray]:
        """``(keys, val float64[Q], test float64[Q])`` of every recorded cell, first-seen order; NaN = unknown."""

    @abstractmethod
    def reset(self) -> None:
        """Forget every record and count (the budget stays)."""

    # ------------------------------------------------------------------ optional members (with defaults)
    def record_with_extra(
        self, key: str, val_acc_mean: float | None, test_acc: float | None, extra: Mapping[str, Any] | None
    ) -> Admission:
        """:meth:`record`, storing ``extra`` (a JSON object of further metrics) with a new cell.

        ``extra`` is kept only when the cell is new (a known cell keeps what it has). This default
        stores no extras: it records when ``extra`` is ``None`` and refuses otherwise; ledgers that can
        keep them (:class:`~dgpo_env.ledger.InMemoryLedger`, :class:`~dgpo_env.ledger.SQLiteLedger`)
        override it.

        Raises:
            TypeError: If ``extra`` is not a JSON object of finite numbers, strings, booleans, ``None``,
                lists and objects (:func:`encode_extra`).
            LedgerError: If ``extra`` is given and this ledger cannot store it.
        """
        if extra is not None:
            encode_extra(extra)
            raise LedgerError(
                f"{type(self).__name__} does not store extra metrics; use an InMemoryLedger or a SQLiteLedger, "
                "or return only a score"
            )
        return self.record(key, val_acc_mean, test_acc)

    def stored(self, key: str) -> QueryRecord | None:
        """The record of the cell ``key`` (values NaN-free: ``None`` when unknown), or ``None`` if not recorded.

        This default scans every record (``O(Q)``); the ledgers here answer from their index and
        include :attr:`QueryRecord.extra`. It counts nothing: record the look-up with :meth:`record`.
        """
        keys, val, test = self._records()
        try:
            k = keys.index(key)
        except ValueError:
            return None
        return QueryRecord(key, float(val[k]), None if np.isnan(test[k]) else float(test[k]))

    # ------------------------------------------------------------------ derived views
    @property
    def n_queries(self) -> int:
        """Distinct cells recorded."""
        return self.counts()[0]

    @property
    def n_lookups(self) -> int:
        """Look-ups of valid cells, repeats included (refused ones are not look-ups)."""
        return self.counts()[1]

    @property
    def exhausted(self) -> bool:
        """Whether the budget is spent (a new cell would be refused)."""
        budget = self.max_queries
        return budget is not None and self.n_queries >= budget

    @property
    def history(self) -> list[QueryRecord]:
        """The distinct queries with a value, in first-seen order."""
        keys, val, test = self._records()
        return [
            QueryRecord(k, float(v), None if np.isnan(t) else float(t))
            for k, v, t in zip(keys, val, test, strict=True)
            if not np.isnan(v)
        ]

    def best_so_far(self) -> np.ndarray:
        """``float64[H]``: best mean validation accuracy after each query of :attr:`history`."""
        _, val, _ = self._records()
        val = val[~np.isnan(val)]  # [H]
        return np.maximum.accumulate(val) if val.size else val

    def __repr__(self) -> str:
        n_queries, n_lookups = self.counts()
        return f"{type(self).__name__}(queries={n_queries}, lookups={n_lookups}, max_queries={self.max_queries})"


def as_float(value: float | None) -> float:
    """``None`` -> NaN, else ``float(value)`` (the ledgers store unknown values as NaN)."""
    return float("nan") if value is None else float(value)


def as_nullable(value: float | None) -> float | None:
    """``None`` and NaN -> ``None`` (stored as SQL NULL, read back as NaN by :func:`as_float`), else ``float``."""
    if value is None:
        return None
    number = float(value)
    return None if np.isnan(number) else number


def encode_extra(extra: Mapping[str, Any] | None) -> str | None:
    """``extra`` as canonical JSON text (sorted keys), ``None`` for ``None``.

    Raises:
        TypeError: If ``extra`` is not a mapping with string keys whose values are finite numbers,
            strings, booleans, ``None``, lists or such mappings (NaN and infinities are refused, not
            written as non-standard JSON); the message names the offending entry.
    """
    if extra is None:
        return None
    if not isinstance(extra, Mapping):
        raise TypeError(f"extra metrics must be a mapping of names to JSON values, got {type(extra).__name__}")
    return json.dumps(_plain("extra", extra), sort_keys=True, allow_nan=False, separators=(",", ":"))


def _plain(where: str, value: object) -> Any:
    """``value`` as plain Python JSON data (NumPy scalars become ``int``/``float``), checked on the way."""
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        if not math.isfinite(float(value)):
            raise TypeError(f"{where} is {value!r}: extra metrics must be finite numbers")
        return float(value)
    if isinstance(value, Mapping):
        bad = [k for k in value if not isinstance(k, str)]
        if bad:
            raise TypeError(f"{where} has the key {bad[0]!r}: keys of extra metrics must be strings")
        return {k: _plain(f"{where}[{k!r}]", v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(f"{where}[{i}]", v) for i, v in enumerate(value)]
    raise TypeError(
        f"{where} is a {type(value).__name__} ({value!r}): extra metrics must be JSON values "
        "(numbers, strings, booleans, None, lists, dicts)"
    )


def stored_record(key: str, val_acc_mean: float | None, test_acc: float | None, extra: str | None) -> QueryRecord:
    """A :class:`QueryRecord` from a stored row: SQL NULL values, extras as JSON text (both ledgers' layout)."""
    return QueryRecord(key, as_float(val_acc_mean), as_nullable(test_acc), decode_extra(extra))


def decode_extra(text: str | None) -> dict[str, Any] | None:
    """Inverse of :func:`encode_extra`."""
    if text is None:
        return None
    value = json.loads(text)
    if not isinstance(value, dict):
        raise LedgerError(f"stored extra metrics are not a JSON object: {text[:80]!r}")
    return value


__all__ = [
    "BUDGET_EXHAUSTED",
    "Admission",
    "LedgerError",
    "QueryLedger",
    "QueryRecord",
    "as_float",
    "as_nullable",
    "check_budget",
    "decode_extra",
    "encode_extra",
    "stored_record",
]
