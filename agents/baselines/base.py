"""Common pieces of the simple NAS searchers: the proposal cap, the result record, the run loop.

Every searcher works on any :class:`~dgpo_env.benchmarks.base.Benchmark` through
:meth:`Benchmark.query`, so the budget is the benchmark's query ledger's count of **distinct**
cells looked up, enforced by the ledger itself (docs/ledger.md). Re-querying a known cell costs no
budget; to keep a method that keeps proposing known cells from running forever, every method of
this library also caps its *proposals* at :data:`PROPOSALS_PER_QUERY` per unit of budget (a
searcher's valid look-ups plus invalid cells; an RL agent's episodes).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from dgpo_env.benchmarks.base import Benchmark, CellResult
from dgpo_env.benchmarks.constrained import OVER_BUDGET_ACCURACY, ConstrainedBenchmark
from dgpo_env.ledger import BUDGET_EXHAUSTED, check_budget
from dgpo_env.search_spaces.base import SearchSpace
from dgpo_env.search_spaces.dag import DAG

PROPOSALS_PER_QUERY = 50
"""Cap on proposals per unit of query budget, for every method (searchers: look-ups + invalid cells;
RL agents: episodes). Generous: the searchers of this library end on their query budget long before it."""

OPTIMUM_TOLERANCE = 1e-3
"""Accuracy gap (percentage points) under which a cell counts as the optimum.

NB201 CIFAR-10's best two cells differ by 0.053 points, and the packaged and extended tables
store the oracle's accuracy with float32 rounding (about 1e-6 apart), so 1e-3 separates them.
"""


class BudgetExhausted(Exception):
    """Raised by :meth:`QueryBudget.query` when the query budget or the proposal cap is used up."""


@dataclass(frozen=True)
class SearchResult:
    """What one search run found, as functions of the number of distinct queries.

    Attributes:
        method: Name of the searcher (``"rs"``, ``"rea"``, ...).
        seed: The run's seed.
        benchmark: The benchmark's name, e.g. ``"nb201-cifar10"``.
        max_queries: The query budget the run was given.
        best_key: Canonical key of the best cell found (by mean validation accuracy), ``None`` if
            no valid cell was queried, or, under hard budgets, no feasible one (docs/howto-constrained.md).
        best_val_acc: Its mean validation accuracy (percent), ``None`` if none.
        best_test_acc: Its test accuracy (percent), ``None`` when the benchmark has none.
        n_queries: Distinct cells looked up within the budget (at most ``max_queries``).
        n_lookups: Look-ups including repeats (invalid proposals are not look-ups).
        n_proposals: Look-ups plus invalid cells proposed.
        wall_time_s: Wall-clock time of the run, seconds.
        curve: ``best_so_far[i]`` = best mean validation accuracy after ``i + 1`` distinct queries
            (length ``n_queries``).
        stop_reason: ``"budget"`` (query budget reached), ``"proposal_cap"`` (too many repeats) or
            ``"finished"`` (the method ended on its own).
        settings: The searcher's hyper-parameters.
        excess_queries: Distinct cells looked up *beyond* ``max_queries`` (a vectorised RL method can
            overshoot by a batch); they are left out of the curve and the best cell.
        queried: Canonical keys of the distinct cells queried within the budget, in query order
            (length ``n_queries``); kept by multi-objective comparisons for their Pareto reports
            (docs/howto-pareto.md), empty otherwise.
    """

    method: str
    seed: int
    benchmark: str
    max_queries: int
    best_key: str | None
    best_val_acc: float | None
    best_test_acc: float | None
    n_queries: int
    n_lookups: int
    n_proposals: int
    wall_time_s: float
    curve: tuple[float, ...]
    stop_reason: str
    settings: dict[str, Any] = field(default_factory=dict)
    excess_queries: int = 0
    queried: tuple[str, ...] = ()

    def best_at(self, n_queries: int) -> float | None:
        """Best validation accuracy after at most ``n_queries`` distinct queries (``None`` if none yet).

        A run that stopped before ``n_queries`` (proposal cap) keeps its final best.
        """
        if n_queries < 1:
            raise ValueError(f"n_queries must be >= 1, got {n_queries}")
        if not self.curve:
            return None
        return self.curve[min(n_queries, len(self.curve)) - 1]

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-ready; the curve becomes a list)."""
        data = asdict(self)
        data["curve"] = list(self.curve)
        data["queried"] = list(self.queried)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SearchResult:
        """Inverse of :meth:`to_dict`."""
        queried = tuple(str(k) for k in data.get("queried", ()))
        return cls(**{**data, "curve": tuple(float(v) for v in data["curve"]), "queried": queried})


class QueryBudget:
    """A searcher's view of a benchmark: the ledger's query budget plus a cap on proposals.

    The query budget itself is the benchmark's ledger's (:attr:`Benchmark.ledger`, set by
    :meth:`Searcher.run`); this class only adds the proposal cap and turns "no budget left" into
    :class:`BudgetExhausted`.

    Args:
        benchmark: The benchmark; its ledger holds the budget.
        max_proposals: Stop once this many cells were proposed (valid look-ups, repeats included,
            plus invalid cells), so that a searcher stuck on known cells ends.

    Raises:
        ValueError: If ``max_proposals`` is below 1.
    """

    def __init__(self, benchmark: Benchmark, max_proposals: int) -> None:
        if max_proposals < 1:
            raise ValueError(f"max_proposals must be >= 1, got {max_proposals}")
        self.benchmark = benchmark
        self.max_proposals = max_proposals
        self.n_proposals = 0

    @property
    def space(self) -> SearchSpace:
        """The benchmark's search space."""
        return self.benchmark.search_space

    @property
    def queries_exhausted(self) -> bool:
        """Whether the ledger's budget of distinct queries is used up."""
        return self.benchmark.ledger.exhausted

    @property
    def exhausted(self) -> bool:
        """Whether either the query budget or the proposal cap is used up."""
        return self.n_proposals >= self.max_proposals or self.queries_exhausted

    def query(self, cell: DAG) -> CellResult:
        """Look ``cell`` up through the benchmark (counted in its ledger).

        Raises:
            BudgetExhausted: If no budget is left *before* the look-up, or the ledger refused the new
                cell (its budget was spent by another user of a shared ledger meanwhile); a look-up
                that is made is always returned, so the budget is never exceeded and always used fully.
        """
        if self.exhausted:
            raise BudgetExhausted
        self.n_proposals += 1
        result = self.benchmark.query(cell)
        if result.reason == BUDGET_EXHAUSTED:
            raise BudgetExhausted
        return result


def score(result: CellResult, invalid_reward: float | None = None) -> float:
    """The search objective of a looked-up cell: its mean validation accuracy (percent).

    Args:
        result: The look-up's result.
        invalid_reward: The score of an invalid cell; without it, an invalid cell is an error (for
            searchers that only propose valid cells by construction).

    Raises:
        ValueError: For an invalid cell when no ``invalid_reward`` is given.
    """
    if result.val_acc_mean is not None:
        return result.val_acc_mean
    if invalid_reward is None:
        raise ValueError(f"searcher proposed an invalid cell ({result.reason}); pass an invalid_reward to score it")
    return invalid_reward


def random_mutation(space: SearchSpace, cell: DAG, rng: np.random.Generator) -> DAG:
    """A uniformly chosen valid one-entry mutation of ``cell`` (:meth:`SearchSpace.neighbours`).

    For NAS-Bench-201 this is Real et al. (2019) / Dong & Yang (2020)'s op mutation: a random edge
    gets a random *different* op, every one of the 24 neighbours equally likely.

    Raises:
        ValueError: If ``cell`` has no valid neighbour.
    """
    options = list(space.neighbours(cell))
    if not options:
        raise ValueError(f"{space.name}: cell {space.describe(cell)} has no valid one-entry mutation")
    return options[int(rng.integers(len(options)))]


class Searcher(ABC):
    """A query-budgeted black-box optimiser over a benchmark's cells.

    Subclasses set :attr:`name` and implement :meth:`_search`, which proposes cells through
    ``budget.query`` until :class:`BudgetExhausted` is raised (or returns early); :meth:`run`
    does the bookkeeping.

    Args:
        proposals_per_query: The proposal cap is this times ``max_queries``
            (default :data:`PROPOSALS_PER_QUERY`).
    """

    name: str = "searcher"

    def __init__(self, proposals_per_query: int = PROPOSALS_PER_QUERY) -> None:
        if proposals_per_query < 1:
            raise ValueError(f"proposals_per_query must be >= 1, got {proposals_per_query}")
        self.proposals_per_query = proposals_per_query

    def settings(self) -> dict[str, Any]:
        """The searcher's hyper-parameters (JSON-ready); subclasses extend it."""
        return {"proposals_per_query": self.proposals_per_query}

    @abstractmethod
    def _search(self, budget: QueryBudget, rng: np.random.Generator) -> None:
        """Propose cells through ``budget.query`` until it raises :class:`BudgetExhausted`."""

    def run(self, benchmark: Benchmark, seed: int, max_queries: int) -> SearchResult:
        """Search ``benchmark`` with ``max_queries`` distinct queries.

        The benchmark's ledger is reset first, so the curve starts at the run's first query, and
        carries the budget ``max_queries`` during the run (its own budget is restored afterwards).

        Args:
            benchmark: Any :class:`Benchmark` (NB201, toy, NB101, ...).
            seed: Seeds the run's own generator (``np.random.default_rng(seed)``).
            max_queries: The budget of distinct cells.

        Returns:
            The run's :class:`SearchResult`.
        """
        budget_queries = check_budget(max_queries)
        if budget_queries is None:
            raise TypeError("max_queries must be an integer >= 1, got None")
        max_queries = budget_queries  # a plain int (numpy integers accepted), checked before the ledger is reset
        benchmark.reset_counter()
        ledger = benchmark.ledger
        previous = ledger.max_queries
        ledger.set_budget(max_queries)
        budget = QueryBudget(benchmark, self.proposals_per_query * max_queries)
        start = time.perf_counter()
        try:
            self._search(budget, np.random.default_rng(seed))
        except BudgetExhausted:
            pass
        finally:
            ledger.set_budget(previous)
        wall = time.perf_counter() - start
        assert benchmark.n_queries <= max_queries, (benchmark.n_queries, max_queries)
        return make_result(self.name, seed, benchmark, max_queries, budget, wall, self.settings())


def make_result(
    method: str,
    seed: int,
    benchmark: Benchmark,
    max_queries: int,
    budget: QueryBudget | None,
    wall_time_s: float,
    settings: dict[str, Any],
) -> SearchResult:
    """Build a :class:`SearchResult` from a benchmark's query history after a run.

    Other methods (DGPO, PPO) can use this too: pass ``budget=None`` when they count through the
    benchmark directly; then ``n_proposals`` equals ``n_lookups``. Only the first ``max_queries``
    distinct queries count: any beyond (a vectorised method overshooting by a batch) are left out of
    the curve and the best cell and reported as ``excess_queries``.

    Args:
        method: The method's name.
        seed: The run's seed.
        benchmark: The benchmark the run queried (its history is read, not changed).
        max_queries: The run's budget.
        budget: The run's :class:`QueryBudget`, if it used one.
        wall_time_s: The run's wall time.
        settings: The method's hyper-parameters.
    """
    history = benchmark.history[:max_queries]
    curve = benchmark.best_so_far()[:max_queries]  # [min(n_queries, max_queries)]
    best_key: str | None = None
    best_val: float | None = None
    best_test: float | None = None
    if history:
        best = history[int(np.argmax([r.val_acc_mean for r in history]))]
        best_key, best_val, best_test = best.key, float(best.val_acc_mean), best.test_acc
        if isinstance(benchmark, ConstrainedBenchmark) and best_val <= OVER_BUDGET_ACCURACY:
            best_key = None  # under a budget with no feasible cell found: no best cell, not an over-budget one
    if benchmark.n_queries >= max_queries:
        stop = "budget"
    elif budget is not None and budget.n_proposals >= budget.max_proposals:
        stop = "proposal_cap"
    else:
        stop = "finished"
    return SearchResult(
        method=method,
        seed=seed,
        benchmark=benchmark.name,
        max_queries=max_queries,
        best_key=best_key,
        best_val_acc=best_val,
        best_test_acc=None if best_test is None else float(best_test),
        n_queries=len(history),
        n_lookups=benchmark.n_lookups,
        n_proposals=benchmark.n_lookups if budget is None else budget.n_proposals,
        wall_time_s=wall_time_s,
        curve=tuple(float(v) for v in curve),
        stop_reason=stop,
        settings=settings,
        excess_queries=max(0, benchmark.n_queries - max_queries),
        queried=tuple(r.key for r in history),
    )
