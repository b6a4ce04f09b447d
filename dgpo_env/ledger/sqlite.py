"""The cross-process query ledger on SQLite (standard library): one exact budget for many worker processes.

Every handle — the parent's, and the copies that pickling sends to ``SubprocVecEnv`` /
``AsyncVectorEnv`` / ``multiprocessing`` workers — opens the same database file. A look-up is one
``BEGIN IMMEDIATE`` transaction (SQLite's write lock) that checks the key, checks the budget and
inserts, so concurrent workers can never record more distinct cells than the budget together.

The database runs in WAL mode with ``synchronous=NORMAL``: a committed look-up survives the crash or
``SIGKILL`` of any process (the record of look-ups is kept); only an operating-system crash or power
loss can drop the last few commits. See docs/ledger.md for the schema and the guarantees.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

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

FORMAT_VERSION = 2
"""Schema version stored in the file. Version 1 files (no ``extra`` column) are migrated when opened;
files of a later version are refused."""

_MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: ("ALTER TABLE queries ADD COLUMN extra TEXT",),
}
"""Statements that bring a file of format ``k`` to format ``k + 1`` (run in the opening transaction)."""

BUSY_TIMEOUT_S = 60.0
"""How long a handle waits for another process's write lock before giving up (seconds)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS state (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    format INTEGER NOT NULL,
    ledger_uuid TEXT NOT NULL,
    max_queries INTEGER CHECK (max_queries IS NULL OR max_queries >= 1),
    n_queries INTEGER NOT NULL CHECK (n_queries >= 0),
    n_lookups INTEGER NOT NULL CHECK (n_lookups >= n_queries)
);
CREATE TABLE IF NOT EXISTS queries (
    seq INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    val_acc_mean REAL,
    test_acc REAL,
    extra TEXT
);
"""


class SQLiteLedger(QueryLedger):
    """A :class:`~dgpo_env.ledger.base.QueryLedger` in a SQLite file, shared by every process that opens it.

    Pickling a handle sends only the path and the ledger's identity; the copy reopens the file, so
    environment copies in worker processes count into the same ledger. A process that forks with an
    open handle reopens the file in the child on first use.

    Args:
        path: The database file; created (with its schema) if missing. Its folder must exist.
        max_queries: If given, the budget of distinct cells stored in the file (for every handle);
            ``None`` keeps the stored budget (no limit for a new file). Use :meth:`set_budget` to
            remove a budget.

    Raises:
        LedgerError: If the file is not a ledger of this format (not SQLite, damaged, another
            schema version) or cannot be opened; the message names the file.
        TypeError: If ``max_queries`` is not an integer or ``None``.
        ValueError: If it is below 1.

    Example:
        >>> ledger = SQLiteLedger("runs/queries.sqlite", max_queries=20)  # doctest: +SKIP
        >>> env = gym.make_vec(  # doctest: +SKIP
        ...     "dgpo_env/NB201-CIFAR10-v0", 4, vectorization_mode="async", ledger=ledger
        ... )
    """

    def __init__(self, path: str | os.PathLike[str], max_queries: int | None = None) -> None:
        budget = check_budget(max_queries)
        if not isinstance(path, (str, os.PathLike)) or str(path) in ("", ":memory:") or str(path).startswith("file:"):
            raise ValueError(
                f"path must name a ledger file that every process can open (e.g. 'runs/queries.sqlite'), got {path!r}"
            )
        self.path = Path(path).absolute()
        if not self.path.parent.is_dir():
            raise LedgerError(f"cannot create the query ledger {self.path}: its folder does not exist; create it first")
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        self._pid = -1
        self._file_id: tuple[int, int] | None = None
        self._uuid = self._initialise()
        if budget is not None:
            self.set_budget(budget)

    # ------------------------------------------------------------------ connection
    def _connect(self) -> sqlite3.Connection:
        """This process's connection (opened on first use, and again after a fork)."""
        if self._connection is None or self._pid != os.getpid():
            try:
                connection = sqlite3.connect(
                    self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
                )
                connection.execute("PRAGMA journal_mode=WAL")
                connection.execute("PRAGMA synchronous=NORMAL")
            except sqlite3.DatabaseError as err:
                raise LedgerError(_open_error(self.path, err)) from err
            stat = os.stat(self.path)
            self._connection, self._pid = connection, os.getpid()
            if self._file_id is None:
                self._file_id = (stat.st_dev, stat.st_ino)
        self._check_file()
        return self._connection

    def _check_file(self) -> None:
        """Refuse to go on if the ledger file was deleted or replaced while this handle used it."""
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            stat = None
        if stat is None or (stat.st_dev, stat.st_ino) != self._file_id:
            raise LedgerError(
                f"the query ledger {self.path} was deleted or replaced while in use: this handle's counts and "
                "budget no longer hold; start the run again with a new ledger"
            )

    def _transaction(self, body: Any) -> Any:
        """Run ``body(connection)`` inside ``BEGIN IMMEDIATE`` ... ``COMMIT`` (rolled back on error)."""
        with self._lock:
            connection = self._connect()
            try:
                connection.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as err:
                raise LedgerError(f"query ledger {self.path} is not usable: {err}") from err
            try:
                out = body(connection)
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
            return out

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._connect().execute(sql, args).fetchall()
            except sqlite3.Error as err:
                raise LedgerError(f"cannot read the query ledger {self.path}: {err}") from err

    def _initialise(self) -> str:
        """Create the schema if missing, check the format; return the ledger's uuid."""

        def body(connection: sqlite3.Connection) -> tuple[int, str]:
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if tables and not {"state", "queries"} <= tables:
                raise sqlite3.DatabaseError(
                    f"not a database of this format: it holds other tables: {', '.join(sorted(tables))}"
                )
            if not tables:
                for statement in filter(str.strip, _SCHEMA.split(";")):
                    connection.execute(statement)
                connection.execute("INSERT INTO state VALUES (0, ?, ?, NULL, 0, 0)", (FORMAT_VERSION, uuid.uuid4().hex))
            row = connection.execute("SELECT format, ledger_uuid FROM state WHERE id = 0").fetchone()
            if row is None:
                raise sqlite3.DatabaseError("not a database of this format: its state row is missing")
            fmt, ledger_uuid = row
            while fmt in _MIGRATIONS:  # an older file: bring it up to date in this transaction
                for statement in _MIGRATIONS[fmt]:
                    connection.execute(statement)
                fmt += 1
                connection.execute("UPDATE state SET format = ? WHERE id = 0", (fmt,))
            return fmt, ledger_uuid

        try:
            fmt, ledger_uuid = self._transaction(body)
        except sqlite3.DatabaseError as err:
            raise LedgerError(_open_error(self.path, err)) from err
        if fmt != FORMAT_VERSION:
            raise LedgerError(
                f"{self.path} is a query ledger of format {fmt}; this version reads formats 1 to {FORMAT_VERSION}: "
                "open it with the dgpo-env version that wrote it, or start a new ledger file"
            )
        return str(ledger_uuid)

    def close(self) -> None:
        """Close this process's connection (the next use reopens it)."""
        with self._lock:
            if self._connection is not None and self._pid == os.getpid():
                self._connection.close()
            self._connection = None

    # ------------------------------------------------------------------ pickling
    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return _reopen, (str(self.path), self._uuid)

    # ------------------------------------------------------------------ QueryLedger
    def record(self, key: str, val_acc_mean: float | None, test_acc: float | None) -> Admission:
        """Record one look-up in one write transaction (see :meth:`QueryLedger.record`)."""
        return self.record_with_extra(key, val_acc_mean, test_acc, None)

    def record_with_extra(
        self, key: str, val_acc_mean: float | None, test_acc: float | None, extra: Mapping[str, Any] | None
    ) -> Admission:
        """Record one look-up, keeping ``extra`` with a new cell (see :meth:`QueryLedger.record_with_extra`).

        Raises:
            TypeError: If ``extra`` is not a JSON object of finite values.
        """
        text = encode_extra(extra)

        def body(connection: sqlite3.Connection) -> Admission:
            if connection.execute("SELECT 1 FROM queries WHERE key = ?", (key,)).fetchone() is not None:
                connection.execute("UPDATE state SET n_lookups = n_lookups + 1 WHERE id = 0")
                return Admission.KNOWN
            n_queries, budget = connection.execute("SELECT n_queries, max_queries FROM state WHERE id = 0").fetchone()
            if budget is not None and n_queries >= budget:
                return Admission.REFUSED
            connection.execute(
                "INSERT INTO queries (key, val_acc_mean, test_acc, extra) VALUES (?, ?, ?, ?)",
                (key, as_nullable(val_acc_mean), as_nullable(test_acc), text),
            )
            connection.execute("UPDATE state SET n_queries = n_queries + 1, n_lookups = n_lookups + 1 WHERE id = 0")
            return Admission.NEW

        out: Admission = self._transaction(body)
        return out

    @property
    def ledger_id(self) -> str:
        """``"sqlite:<uuid>:<path>"``: the same for every handle on this file."""
        return f"sqlite:{self._uuid}:{self.path}"

    @property
    def max_queries(self) -> int | None:
        """The budget stored in the file."""
        value = self._read("SELECT max_queries FROM state WHERE id = 0")[0][0]
        return None if value is None else int(value)

    def set_budget(self, max_queries: int | None) -> None:
        """Store the budget for every handle (see :meth:`QueryLedger.set_budget`)."""
        budget = check_budget(max_queries)
        self._transaction(lambda c: c.execute("UPDATE state SET max_queries = ? WHERE id = 0", (budget,)))

    def counts(self) -> tuple[int, int]:
        """``(n_queries, n_lookups)`` as committed by all processes."""
        n_queries, n_lookups = self._read("SELECT n_queries, n_lookups FROM state WHERE id = 0")[0]
        return int(n_queries), int(n_lookups)

    def was_queried(self, key: str) -> bool:
        """Whether any process has recorded ``key``."""
        return bool(self._read("SELECT 1 FROM queries WHERE key = ?", (key,)))

    def stored(self, key: str) -> QueryRecord | None:
        """The record of ``key`` as committed by any process, with its extra metrics, or ``None``."""
        rows = self._read("SELECT val_acc_mean, test_acc, extra FROM queries WHERE key = ?", (key,))
        return stored_record(key, *rows[0]) if rows else None

    def _records(self) -> tuple[list[str], np.ndarray, np.ndarray]:
        rows = self._read("SELECT key, val_acc_mean, test_acc FROM queries ORDER BY seq")
        keys = [str(r[0]) for r in rows]
        val = np.array([as_float(r[1]) for r in rows], dtype=np.float64)  # [Q]
        test = np.array([as_float(r[2]) for r in rows], dtype=np.float64)  # [Q]
        return keys, val, test

    def reset(self) -> None:
        """Forget every record and count, for every process (the budget stays)."""

        def body(connection: sqlite3.Connection) -> None:
            connection.execute("DELETE FROM queries")
            connection.execute("UPDATE state SET n_queries = 0, n_lookups = 0 WHERE id = 0")

        self._transaction(body)


def _open_error(path: Path, err: sqlite3.DatabaseError) -> str:
    """The message for a ledger file SQLite cannot open: not a database, or not writable."""
    if "not a database" in str(err):  # SQLite's "file is not a database", or other tables
        return (
            f"cannot open the query ledger {path} ({err}); the file is not a dgpo-env query ledger: "
            "give a new file name or remove it"
        )
    return (
        f"cannot open the query ledger {path} ({err}); the ledger needs to write the file and its folder "
        "(SQLite's WAL mode): check that both exist and are writable"
    )


def _reopen(path: str, ledger_uuid: str) -> SQLiteLedger:
    """Unpickle a handle: reopen ``path`` and check it is still the same ledger."""
    ledger = SQLiteLedger(path)
    if ledger._uuid != ledger_uuid:
        raise LedgerError(
            f"the query ledger {path} was replaced by another ledger since this handle was made "
            f"(identity {ledger._uuid}, expected {ledger_uuid}); the counts would not be the same"
        )
    return ledger


__all__ = ["BUSY_TIMEOUT_S", "FORMAT_VERSION", "SQLiteLedger"]
