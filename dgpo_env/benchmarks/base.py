"""The benchmark interface: look a cell up, count the look-ups in a query ledger (docs/ledger.md).

The budget that matters in NAS is the number of **distinct cells whose benchmark value was looked
up** ("queries"). Every method in this project — RL agents, evaluation snapshots, pretraining-set
selection, baselines — goes through :meth:`Benchmark.query`, which records each look-up in the
benchmark's :class:`~dgpo_env.ledger.QueryLedger`: one counter sees everything, the ledger's budget
is enforced there, and :attr:`Benchmark.history` gives the best-so-far curve for any method.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from dgpo_env.diffusion.marginals import Marginals
from dgpo_env.ledger import BUDGET_EXHAUSTED, Admission, InMemoryLedger, QueryLedger, QueryRecord
from dgpo_env.search_spaces.base import SearchSpace
from dgpo_env.search_spaces.dag import DAG


@dataclass(frozen=True)
class CellResult:
    """What a benchmark knows about one cell. Accuracies are in percent.

    Attributes:
        key: The cell's canonical key (arch string, graph hash), or ``None`` when invalid.
        valid: Whether the DAG is a valid cell of the search space with a benchmark entry.
        reason: Why it is not valid (``None`` when valid).
        val_acc: Validation accuracy: mean over seeds, or one seed's value in noisy mode.
        val_acc_mean: Mean validation accuracy over seeds (what reports use).
        test_acc: Mean test accuracy, when the benchmark has it.
        params_m: Trainable parameters, millions.
        latency_s: Inference latency, seconds.
        train_time_s: Training time, seconds.
        index: The official index, when the benchmark has one.
        extra: Further metrics a benchmark reports (a JSON object; :class:`~dgpo_env.benchmarks.CallableBenchmark`).
    """

    key: str | None
    valid: bool
    reason: str | None = None
    val_acc: float | None = None
    val_acc_mean: float | None = None
    test_acc: float | None = None
    params_m: float | None = None
    latency_s: float | None = None
    train_time_s: float | None = None
    index: int | None = None
    extra: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, object]:
        """Plain dict (JSON-ready)."""
        return asdict(self)


@dataclass(frozen=True)
class Oracle:
    """The best cell of a benchmark by mean validation accuracy.

    Attributes:
        val_acc: Its mean validation accuracy (percent).
        key: Its canonical key.
        cell: Its DAG.
        test_acc: Its mean test accuracy, when known.
        index: Its official index, when the benchmark has one.
    """

    val_acc: float
    key: str
    cell: DAG
    test_acc: float | None = None
    index: int | None = None


class Benchmark(ABC):
    """A look-up table (or cheap function) from cells to training results, with query counting.

    Subclasses implement :meth:`_lookup` for valid cells and :attr:`oracle`, and pass ``ledger`` on.

    Args:
        ledger: Where look-ups are recorded and the budget enforced (default: a new
            :class:`~dgpo_env.ledger.InMemoryLedger`). Benchmarks that share a ledger share one count.

    Attributes:
        search_space: The cells' search space.
        name: Identifier such as ``"nb201-cifar10"``.
        chance_accuracy: Accuracy of a random classifier on the task (percent).
    """

    search_space: SearchSpace
    name: str
    chance_accuracy: float

    def __init__(self, ledger: QueryLedger | None = None) -> None:
        self.ledger = InMemoryLedger() if ledger is None else ledger

    @property
    def ledger(self) -> QueryLedger:
        """Where this benchmark's look-ups are recorded and its budget enforced (assignable)."""
        return self._ledger

    @ledger.setter
    def ledger(self, ledger: QueryLedger) -> None:
        if not isinstance(ledger, QueryLedger):
            raise TypeError(
                f"ledger must be a QueryLedger (InMemoryLedger, SQLiteLedger from dgpo_env.ledger), "
                f"got {type(ledger).__name__}"
            )
        self._ledger = ledger

    # ------------------------------------------------------------------ subclass API
    @abstractmethod
    def _lookup(self, key: str, cell: DAG, rng: np.random.Generator | None) -> CellResult:
        """Result for a valid cell with canonical key ``key`` (one seed drawn with ``rng`` if given)."""

    @property
    @abstractmethod
    def oracle(self) -> Oracle:
        """The best cell by mean validation accuracy."""

    def marginals(self) -> Marginals:
        """Per-position type marginals of the benchmark's cells: the environment's default prior.

        The default is uniform over each position's allowed values, which is exact for spaces whose
        table holds every combination (NAS-Bench-201); data-driven benchmarks override it.
        """
        return Marginals.uniform(self.search_space)

    # ------------------------------------------------------------------ queries
    def query(self, cell: DAG, rng: np.random.Generator | None = None) -> CellResult:
        """Look a cell up, recording it in :attr:`ledger`.

        Invalid cells are answered from the search space's rules without a look-up and are not
        recorded. Every valid cell is one look-up; the first look-up of a cell is also one distinct
        query and appends to :attr:`history`. A new cell proposed once the ledger's budget is spent
        is answered as invalid with reason :data:`~dgpo_env.ledger.BUDGET_EXHAUSTED` and not counted.

        Args:
            cell: The cell's DAG.
            rng: If given, ``val_acc`` is one training seed drawn with this generator (the official
                APIs' noisy mode); otherwise the mean over seeds.

        Returns:
            The cell's :class:`CellResult`.
        """
        result = self.peek(cell, rng)
        if result.key is None:
            return result
        if self._ledger.record(result.key, result.val_acc_mean, result.test_acc) is Admission.REFUSED:
            return CellResult(key=None, valid=False, reason=BUDGET_EXHAUSTED)
        return result

    def peek(self, cell: DAG, rng: np.random.Generator | None = None) -> CellResult:
        """Like :meth:`query` but **not counted**: for analysis and plots only, never for search."""
        self.search_space.check_shape(cell)
        reason = self.search_space.validate(cell)
        if reason is not None:
            return CellResult(key=None, valid=False, reason=reason)
        return self._lookup(self.search_space.canonical_key(cell), cell, rng)

    @property
    def n_queries(self) -> int:
        """Distinct cells recorded in :attr:`ledger` (by every benchmark that shares it)."""
        return self._ledger.n_queries

    @property
    def n_lookups(self) -> int:
        """Look-ups recorded in :attr:`ledger`, repeats included."""
        return self._ledger.n_lookups

    @property
    def history(self) -> list[QueryRecord]:
        """The distinct queries in first-seen order (a copy)."""
        return self._ledger.history

    def was_queried(self, key: str) -> bool:
        """Whether a cell with this canonical key has been recorded in :attr:`ledger`."""
        return self._ledger.was_queried(key)

    def best_so_far(self) -> np.ndarray:
        """``float64[n_queries]``: best mean validation accuracy after each distinct query."""
        return self._ledger.best_so_far()

    def reset_counter(self) -> None:
        """Forget all queries of :attr:`ledger` (counts and history; for every benchmark sharing it)."""
        self._ledger.reset()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, queries={self.n_queries}, lookups={self.n_lookups})"
