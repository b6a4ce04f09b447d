"""Peer optimisers as searchers: a search space as categorical parameters, and one ask/tell loop.

Black-box optimisers from other libraries (Optuna's TPE in :mod:`agents.baselines.tpe`, SMAC3 in
:mod:`agents.baselines.smac`) see a search space as named categorical parameters
(:class:`CategoricalEncoding`): one per *free* entry of the flat vector ``concat(nodes, edges)``
(:attr:`SearchSpace.free_positions`), over that position's allowed values. NAS-Bench-201 has six
(its six op nodes, five ops each); NAS-Bench-101 has five op nodes (three ops) and 21 edge bits.

:class:`AskTellSearcher` runs such an optimiser under the same rules as every searcher of this library
(docs/harness.md, "Peer optimisers"): every proposal goes through :meth:`QueryBudget.query`, so

* a **repeated cell** is free: the optimiser is told its known value and no budget is spent;
* an **invalid cell** (NB101, toy: the input does not reach the output, too many edges) is answered
  by the search space's rules without a look-up, and reported to the optimiser as a failed
  evaluation (each optimiser module says how);
* proposals are capped at :data:`~agents.baselines.base.PROPOSALS_PER_QUERY` per unit of query
  budget, so an optimiser that keeps proposing known or invalid cells still ends.

The optimisers' packages are the optional extra ``peers`` (:data:`PEERS_INSTALL`); this module
imports neither, so the harness can list the methods without them.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass

import numpy as np

from agents.baselines.base import QueryBudget, Searcher, SearchResult
from dgpo_env.benchmarks.base import Benchmark, CellResult
from dgpo_env.search_spaces.base import SearchSpace
from dgpo_env.search_spaces.dag import DAG, upper_indices
from dgpo_env.validation import check_count

PEERS_INSTALL = 'pip install "dgpo-env[peers]"'
"""The command that installs the peer optimisers' packages (the ``peers`` extra)."""

MAX_SEED = 2**32 - 1
"""Largest run seed of a peer optimiser (both libraries seed NumPy's ``RandomState``, which takes 32 bits)."""


class MissingExtraError(ImportError):
    """A method's optional package is not installed; the message names the install command.

    Args:
        method: The method's registered name (``"tpe"``).
        package: The missing package (``"optuna"``).
    """

    def __init__(self, method: str, package: str) -> None:
        super().__init__(f"method {method!r} needs {package}, which is not installed: {PEERS_INSTALL}")
        self.method = method
        self.package = package


@dataclass(frozen=True)
class Choice:
    """One categorical parameter: a free entry of the flat vector and its allowed values.

    Attributes:
        name: Parameter name: ``"node<i>"`` for node ``i``'s type, ``"edge<i>-<j>"`` for edge ``i -> j``.
        position: Index into the flat vector ``concat(nodes, edges)``.
        values: The allowed values at that position (ascending).
        labels: The optimiser's choices, one per value: node-type names (``"nor_conv_3x3"``) for
            nodes, the edge type as a string (``"0"``, ``"1"``) for edges.
    """

    name: str
    position: int
    values: tuple[int, ...]
    labels: tuple[str, ...]


class CategoricalEncoding:
    """A search space's free entries as named categorical parameters (see the module docstring).

    Args:
        space: The search space.

    Attributes:
        space: The search space.
        choices: One :class:`Choice` per free position, in flat-vector order.

    Raises:
        ValueError: If the space has no free entry (nothing to search).
    """

    def __init__(self, space: SearchSpace) -> None:
        positions = space.free_positions.tolist()
        if not positions:
            raise ValueError(f"{space.name} has no free entries: there is nothing to search")
        node_allowed, edge_allowed = space.allowed
        rows, cols = upper_indices(space.n_nodes)
        choices = []
        for pos in positions:
            if pos < space.n_nodes:
                values = np.flatnonzero(node_allowed[pos]).tolist()
                name, labels = f"node{pos}", tuple(space.node_types[v] for v in values)
            else:
                edge = pos - space.n_nodes
                values = np.flatnonzero(edge_allowed[edge]).tolist()
                name, labels = f"edge{rows[edge]}-{cols[edge]}", tuple(str(v) for v in values)
            choices.append(Choice(name, pos, tuple(values), labels))
        self.space = space
        self.choices: tuple[Choice, ...] = tuple(choices)

    def decode(self, assignment: Mapping[str, object]) -> DAG:
        """The cell of an optimiser's assignment ``{name: label}``; fixed entries take their only value.

        Raises:
            ValueError: If a parameter is missing or holds a label that is not one of its choices.
        """
        flat = self.space.fixed_values.copy()
        for choice in self.choices:
            if choice.name not in assignment:
                raise ValueError(f"the assignment has no value for {choice.name!r}: {dict(assignment)}")
            label = str(assignment[choice.name])
            if label not in choice.labels:
                raise ValueError(f"{choice.name!r} = {label!r} is not one of {choice.labels}")
            flat[choice.position] = choice.values[choice.labels.index(label)]
        return self.space.from_flat(flat)

    def encode(self, cell: DAG) -> dict[str, str]:
        """The assignment ``{name: label}`` of ``cell`` (inverse of :meth:`decode` on the free entries).

        Raises:
            ValueError: If a free entry of ``cell`` holds a value not allowed there.
        """
        flat = cell.flat()
        out = {}
        for choice in self.choices:
            value = int(flat[choice.position])
            if value not in choice.values:
                raise ValueError(f"{choice.name!r} = {value} is not one of the allowed values {choice.values}")
            out[choice.name] = choice.labels[choice.values.index(value)]
        return out


class Proposer(ABC):
    """One run's optimiser behind ask/tell: :meth:`ask` a cell, :meth:`tell` its value, repeat."""

    @abstractmethod
    def ask(self) -> Mapping[str, object] | None:
        """The next assignment ``{name: label}`` to evaluate, or ``None`` if the optimiser has none."""

    @abstractmethod
    def tell(self, value: float | None) -> None:
        """Report the last asked assignment's mean validation accuracy (percent); ``None`` = invalid cell."""

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op unless the optimiser holds resources
        """Release what the optimiser holds (temporary files); called once the run ends."""


@contextmanager
def quiet_logger(name: str, level: int = logging.WARNING) -> Iterator[None]:
    """Raise the level of the logger ``name`` to at least ``level`` for the block, then restore it.

    The optimisers log every trial at INFO; a run of the harness prints only warnings.
    """
    logger = logging.getLogger(name)
    previous = logger.level
    logger.setLevel(max(level, logger.getEffectiveLevel()))
    try:
        yield
    finally:
        logger.setLevel(previous)


class AskTellSearcher(Searcher):
    """A searcher driven by an external optimiser's ask/tell loop (see the module docstring).

    Subclasses set :attr:`name` and :attr:`logger_name` and implement :meth:`_proposer`. The
    optimiser is seeded with the run's seed itself (so ``tpe`` seed 3 is ``TPESampler(seed=3)``).
    """

    logger_name: str = ""
    """The optimiser library's logger, kept at :attr:`log_level` or above during a run (empty: left alone)."""

    log_level: int = logging.WARNING
    """The lowest level the optimiser's logger passes during a run."""

    _seed: int = 0
    """The current run's seed (set by :meth:`run`), which seeds the optimiser."""

    @abstractmethod
    def _proposer(self, encoding: CategoricalEncoding, seed: int, max_queries: int) -> Proposer:
        """A fresh optimiser over ``encoding`` seeded with ``seed`` for a budget of ``max_queries``."""

    def _tell(self, proposer: Proposer, result: CellResult) -> None:
        """Tell the optimiser a looked-up cell's mean validation accuracy (``None`` for an invalid cell).

        Multi-objective searchers (:mod:`agents.baselines.multi_objective`) tell a vector instead.
        """
        proposer.tell(result.val_acc_mean)

    def _run_context(self) -> AbstractContextManager[object]:
        """What the whole run executes in: the optimiser's logger kept quiet (subclasses may add to it)."""
        return quiet_logger(self.logger_name, self.log_level) if self.logger_name else nullcontext()

    def run(self, benchmark: Benchmark, seed: int, max_queries: int) -> SearchResult:
        """Search ``benchmark`` with ``max_queries`` distinct queries (:meth:`Searcher.run`).

        Args:
            benchmark: Any :class:`Benchmark`.
            seed: The run's seed; it seeds the optimiser.
            max_queries: The budget of distinct cells.

        Raises:
            TypeError: If ``seed`` is not an integer.
            ValueError: If ``seed`` is outside ``0 .. MAX_SEED``.
        """
        self._seed = check_count("seed", seed, minimum=0, maximum=MAX_SEED)
        return super().run(benchmark, seed, max_queries)

    def _search(self, budget: QueryBudget, rng: np.random.Generator) -> None:
        encoding = CategoricalEncoding(budget.space)
        seed = self._seed
        max_queries = budget.benchmark.ledger.max_queries
        assert max_queries is not None, "Searcher.run sets the ledger's budget"
        with self._run_context():
            proposer = self._proposer(encoding, seed, max_queries)
            try:
                while (assignment := proposer.ask()) is not None:
                    result = budget.query(encoding.decode(assignment))  # repeats: free; raises at the budget
                    self._tell(proposer, result)
            finally:
                proposer.close()


__all__ = [
    "MAX_SEED",
    "PEERS_INSTALL",
    "AskTellSearcher",
    "CategoricalEncoding",
    "Choice",
    "MissingExtraError",
    "Proposer",
    "quiet_logger",
]
