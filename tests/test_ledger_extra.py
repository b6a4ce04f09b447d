"""Ledger extensions: extra metrics per cell, reading one record back, the SQLite format-1 -> 2 migration."""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from dgpo_env.ledger import Admission, InMemoryLedger, LedgerError, QueryLedger, QueryRecord, SQLiteLedger
from dgpo_env.ledger.sqlite import FORMAT_VERSION


@pytest.fixture(params=["memory", "sqlite"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> QueryLedger:
    return InMemoryLedger() if request.param == "memory" else SQLiteLedger(tmp_path / "q.sqlite")


def test_extra_is_stored_with_new_cells_only(ledger: QueryLedger) -> None:
    assert ledger.record_with_extra("a", 90.0, 89.0, {"latency_ms": 3, "tags": ["x"]}) is Admission.NEW
    assert ledger.record_with_extra("a", 10.0, None, {"latency_ms": 99}) is Admission.KNOWN
    assert ledger.record("b", 80.0, None) is Admission.NEW
    assert ledger.stored("a") == QueryRecord("a", 90.0, 89.0, {"latency_ms": 3, "tags": ["x"]})
    assert ledger.stored("b") == QueryRecord("b", 80.0, None, None)
    assert ledger.stored("c") is None
    assert ledger.counts() == (2, 3)  # stored() counts nothing
    assert [r.key for r in ledger.history] == ["a", "b"]
    with pytest.raises(TypeError, match="finite numbers"):
        ledger.record_with_extra("d", 1.0, None, {"loss": math.inf})
    assert not ledger.was_queried("d")


class ListLedger(QueryLedger):
    """A minimal ledger with only the abstract members (as another engine would start)."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, float, float]] = []
        self.lookups = 0

    def record(self, key: str, val_acc_mean: float | None, test_acc: float | None) -> Admission:
        self.lookups += 1
        if self.was_queried(key):
            return Admission.KNOWN
        self.rows.append(
            (key, math.nan if val_acc_mean is None else val_acc_mean, math.nan if test_acc is None else test_acc)
        )
        return Admission.NEW

    @property
    def ledger_id(self) -> str:
        return "list"

    @property
    def max_queries(self) -> int | None:
        return None

    def set_budget(self, max_queries: int | None) -> None:
        raise NotImplementedError

    def counts(self) -> tuple[int, int]:
        return len(self.rows), self.lookups

    def was_queried(self, key: str) -> bool:
        return any(r[0] == key for r in self.rows)

    def _records(self) -> tuple[list[str], np.ndarray, np.ndarray]:
        return [r[0] for r in self.rows], np.array([r[1] for r in self.rows]), np.array([r[2] for r in self.rows])

    def reset(self) -> None:
        self.rows.clear()


def test_defaults_for_ledgers_with_only_the_abstract_members() -> None:
    ledger = ListLedger()
    assert ledger.record_with_extra("a", 70.0, None, None) is Admission.NEW
    assert ledger.stored("a") == QueryRecord("a", 70.0, None) and ledger.stored("z") is None
    with pytest.raises(LedgerError, match="does not store extra metrics"):
        ledger.record_with_extra("b", 70.0, None, {"x": 1})
    assert not ledger.was_queried("b")


FORMAT_1 = """
CREATE TABLE state (
    id INTEGER PRIMARY KEY CHECK (id = 0), format INTEGER NOT NULL, ledger_uuid TEXT NOT NULL,
    max_queries INTEGER, n_queries INTEGER NOT NULL, n_lookups INTEGER NOT NULL
);
CREATE TABLE queries (seq INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, val_acc_mean REAL, test_acc REAL);
INSERT INTO state VALUES (0, 1, 'old-uuid', 5, 2, 3);
INSERT INTO queries (key, val_acc_mean, test_acc) VALUES ('a', 91.5, 90.0), ('b', 70.0, NULL);
"""


def test_a_format_1_file_is_migrated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:
        db.executescript(FORMAT_1)
    db.close()
    ledger = SQLiteLedger(path)
    assert ledger.ledger_id.startswith("sqlite:old-uuid:") and ledger.max_queries == 5
    assert ledger.counts() == (2, 3) and [r.key for r in ledger.history] == ["a", "b"]
    assert ledger.stored("a") == QueryRecord("a", 91.5, 90.0, None)
    assert ledger.record_with_extra("c", 60.0, None, {"k": 1}) is Admission.NEW
    assert SQLiteLedger(path).stored("c") == QueryRecord("c", 60.0, None, {"k": 1})
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT format FROM state").fetchone() == (FORMAT_VERSION,)
    db.close()


def test_a_file_of_a_later_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.sqlite"
    SQLiteLedger(path).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE state SET format = ?", (FORMAT_VERSION + 1,))
    db.close()
    with pytest.raises(LedgerError, match=f"format {FORMAT_VERSION + 1}"):
        SQLiteLedger(path)
