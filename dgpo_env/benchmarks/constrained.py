"""A benchmark under hard budgets: an over-budget cell reads as accuracy 0 (docs/howto-constrained.md).

:class:`ConstrainedBenchmark` wraps another benchmark so that *every* searcher — random search,
evolution, TPE, SMAC, the RL methods — optimises the same constrained task without knowing about
it: a cell that meets every budget of an :class:`~dgpo_env.rewards.AccuracyUnderBudget` is answered
unchanged, and an over-budget cell is answered with validation accuracy 0 (below every feasible
cell), no test accuracy and ``extra["over_budget"] = True``. Its costs (latency, parameters, training
time) are kept, so a report can still show how far over budget it was.

The look-up is still one query of the ledger whatever the answer: the searcher paid for learning
that the cell is over budget. :attr:`ConstrainedBenchmark.oracle` is the best *feasible* cell, read
from every cell of the space without counting (like the unconstrained oracle, it is for reports).
"""

from __future__ import annotations

import dataclasses
from functools import cached_property

import numpy as np

from dgpo_env.benchmarks.base import Benchmark, CellResult, Oracle
from dgpo_env.diffusion.marginals import Marginals
from dgpo_env.ledger import QueryLedger
from dgpo_env.rewards import AccuracyUnderBudget
from dgpo_env.search_spaces.dag import DAG

OVER_BUDGET_ACCURACY = 0.0
"""Validation accuracy (percent) an over-budget cell reads as: at or below every real accuracy."""

_NAME_PARTS = {"latency": ("lat", "ms"), "params": ("params", "M"), "train_time": ("train", "s")}
"""Metric name -> (short name, unit of its budget) for :attr:`ConstrainedBenchmark.name`."""


class ConstrainedBenchmark(Benchmark):
    """``inner`` with every over-budget cell answered as accuracy :data:`OVER_BUDGET_ACCURACY`.

    Args:
        inner: The benchmark whose cells are looked up (its own ledger is not used).
        budget: The budgets; only :meth:`~dgpo_env.rewards.AccuracyUnderBudget.feasible` is used,
            so its ``infeasible_reward``, ``graded`` and ``scale`` do not matter here.
        ledger: Where look-ups are recorded (default: a new in-memory ledger).

    Attributes:
        inner: The wrapped benchmark.
        budget: The budgets.
        name: ``<inner name>-<budgets>``, e.g. ``"nb201-cifar10-lat12ms"`` (file-name safe).

    Raises:
        TypeError: If ``inner`` is not a :class:`Benchmark` or ``budget`` not an
            :class:`~dgpo_env.rewards.AccuracyUnderBudget`.
    """

    def __init__(self, inner: Benchmark, budget: AccuracyUnderBudget, ledger: QueryLedger | None = None) -> None:
        if not isinstance(inner, Benchmark):
            raise TypeError(f"inner must be a Benchmark, got {type(inner).__name__}")
        if not isinstance(budget, AccuracyUnderBudget):
            raise TypeError(f"budget must be an AccuracyUnderBudget (dgpo_env.rewards), got {type(budget).__name__}")
        super().__init__(ledger)
        self.inner = inner
        self.budget = budget
        self.search_space = inner.search_space
        self.chance_accuracy = inner.chance_accuracy
        parts = [f"{_NAME_PARTS[m.name][0]}{limit:g}{_NAME_PARTS[m.name][1]}" for m, limit in budget.limits]
        self.name = f"{inner.name}-{'-'.join(parts)}"

    def _lookup(self, key: str, cell: DAG, rng: np.random.Generator | None) -> CellResult:
        result = self.inner.peek(cell, rng)  # not counted there: this benchmark's ledger counts it
        if not result.valid or self.budget.feasible(result):
            return result
        return dataclasses.replace(
            result,
            val_acc=OVER_BUDGET_ACCURACY,
            val_acc_mean=OVER_BUDGET_ACCURACY,
            test_acc=None,
            extra={**(result.extra or {}), "over_budget": True},
        )

    @cached_property
    def oracle(self) -> Oracle:  # type: ignore[override]
        """The best feasible cell by mean validation accuracy (every cell read once, not counted).

        Raises:
            ValueError: If the space cannot enumerate its cells, or no cell meets the budgets.
        """
        try:
            cells = list(self.search_space.enumerate_cells())
        except NotImplementedError as err:
            raise ValueError(
                f"{self.inner.name}: the best cell under a budget needs every cell, and this space cannot "
                "enumerate them; search it under the budget with `dgpo finetune --max-...` instead"
            ) from err
        best: tuple[float, CellResult, DAG] | None = None
        for cell in cells:
            result = self.inner.peek(cell)
            if result.valid and result.val_acc_mean is not None and self.budget.feasible(result):
                if best is None or result.val_acc_mean > best[0]:
                    best = (result.val_acc_mean, result, cell)
        if best is None:
            raise ValueError(f"no cell of {self.inner.name} meets the budgets ({self.describe_budgets()}); loosen them")
        value, result, cell = best
        assert result.key is not None
        return Oracle(val_acc=value, key=result.key, cell=cell, test_acc=result.test_acc, index=result.index)

    def describe_budgets(self) -> str:
        """The budgets in words, e.g. ``"latency <= 12 ms, params <= 0.8 M"``."""
        return ", ".join(f"{m.name} <= {limit:g} {_NAME_PARTS[m.name][1]}" for m, limit in self.budget.limits)

    def marginals(self) -> Marginals:
        """The wrapped benchmark's marginals (the budget does not change the space)."""
        return self.inner.marginals()


__all__ = ["OVER_BUDGET_ACCURACY", "ConstrainedBenchmark"]
