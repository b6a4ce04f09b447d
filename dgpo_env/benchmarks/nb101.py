"""NAS-Bench-101 look-ups from the official data file (no TensorFlow)."""

from __future__ import annotations

import numbers
import os
from functools import cached_property

import numpy as np

from dgpo_env.benchmarks.base import Benchmark, CellResult, Oracle
from dgpo_env.benchmarks.nb101_data import NB101Table, load_table
from dgpo_env.benchmarks.nb101_records import EPOCH_BUDGETS
from dgpo_env.ledger import QueryLedger
from dgpo_env.search_spaces.dag import DAG
from dgpo_env.search_spaces.nb101 import NB101SearchSpace
from dgpo_env.validation import check_choice

NOT_IN_TABLE = "not in the NAS-Bench-101 table"
"""Reason given for a valid cell whose hash the loaded table does not hold."""


class NB101Benchmark(Benchmark):
    """NAS-Bench-101 CIFAR-10 results, keyed by the official graph hash of the pruned cell.

    ``val_acc`` is the mean final validation accuracy over the three training seeds (percent), or
    one seed drawn with ``rng`` in noisy mode (the official API's behaviour). Invalid cells are
    answered with the search space's reason and not counted; valid cells absent from the table
    (possible with a partial file) are counted and answered ``valid=False`` with reason
    :data:`NOT_IN_TABLE`.

    Args:
        path: The official ``nasbench_only108.tfrecord`` (or ``nasbench_full.tfrecord``); ``None``
            reads ``$DGPO_NB101_PATH``. The first use converts it into a cache (a minute or so).
        epochs: Training budget to look up (108, or 4/12/36 with the full file).
        ledger: Where look-ups are recorded and the budget enforced (default: a new
            :class:`~dgpo_env.ledger.InMemoryLedger`).

    Raises:
        TypeError: If ``epochs`` is not an integer or ``path`` not a path (``str`` or :class:`os.PathLike`).
        ValueError: If ``epochs`` is not 4, 12, 36 or 108.
        BenchmarkDataError: If the file is missing or corrupt (see :func:`load_table`).
    """

    search_space: NB101SearchSpace

    def __init__(
        self, path: str | os.PathLike[str] | None = None, epochs: int = 108, ledger: QueryLedger | None = None
    ) -> None:
        if isinstance(epochs, (bool, np.bool_)) or not isinstance(epochs, (numbers.Integral, np.integer)):
            allowed = ", ".join(map(str, EPOCH_BUDGETS))
            raise TypeError(f"epochs must be an integer, one of {allowed}; got {epochs!r} ({type(epochs).__name__})")
        epochs = check_choice("epochs", int(epochs), EPOCH_BUDGETS)
        if path is not None and not isinstance(path, (str, os.PathLike)):
            raise TypeError(
                f"path must be a file path (str or os.PathLike) or None, got {path!r} ({type(path).__name__})"
            )
        super().__init__(ledger)
        self.search_space = NB101SearchSpace()
        self.epochs = epochs
        self.name = "nb101" if epochs == 108 else f"nb101-{epochs}ep"
        self.chance_accuracy = 10.0  # CIFAR-10
        self.table: NB101Table = load_table(path, epochs)

    def _lookup(self, key: str, cell: DAG, rng: np.random.Generator | None) -> CellResult:
        row = self.table.find(key)
        if row is None:
            return CellResult(key=key, valid=False, reason=NOT_IN_TABLE)
        return self._result(row, key, rng)

    def _result(self, row: int, key: str, rng: np.random.Generator | None) -> CellResult:
        t = self.table
        seeds = t.val_acc[row]  # [3]
        present = seeds[~np.isnan(seeds)]
        mean = float(present.mean())
        return CellResult(
            key=key,
            valid=True,
            val_acc=mean if rng is None else float(rng.choice(present)),
            val_acc_mean=mean,
            test_acc=float(np.nanmean(t.test_acc[row])),
            params_m=float(t.params[row]) / 1e6,
            train_time_s=float(np.nanmean(t.train_time_s[row])),
        )

    def lookup_hash(self, module_hash: str) -> CellResult:
        """Result for an official hash, **uncounted** (analysis only, like :meth:`peek`)."""
        row = self.table.find(module_hash)
        if row is None:
            return CellResult(key=module_hash, valid=False, reason=NOT_IN_TABLE)
        return self._result(row, module_hash, None)

    def cell_of_hash(self, module_hash: str) -> DAG:
        """The 7-node DAG of a table cell (its pruned spec placed as in :meth:`NB101SearchSpace.from_spec`).

        Raises:
            KeyError: If the table does not hold the hash.
        """
        row = self.table.find(module_hash)
        if row is None:
            raise KeyError(f"{module_hash!r} is {NOT_IN_TABLE}")
        return self.search_space.from_spec(self.table.spec(row))

    @cached_property
    def oracle(self) -> Oracle:
        """The cell with the highest mean validation accuracy."""
        val = self.table.val_acc_mean
        row = int(np.nanargmax(val))
        key = self.table.hash_at(row)
        cell = self.search_space.from_spec(self.table.spec(row))
        return Oracle(float(val[row]), key, cell, float(self.table.test_acc_mean[row]))
