"""A deterministic, data-free score on the toy DAG space, with a known optimum."""

from __future__ import annotations

from functools import cached_property

import numpy as np

from dgpo_env.benchmarks.base import Benchmark, CellResult, Oracle
from dgpo_env.ledger import QueryLedger
from dgpo_env.search_spaces.dag import DAG, edge_position
from dgpo_env.search_spaces.toy import ToySearchSpace

TOY_TARGET_OPS: tuple[str, ...] = ("conv", "pool", "conv", "skip")
"""Ops of nodes 1..4 of the optimal toy cell."""

TOY_TARGET_EDGES: tuple[tuple[int, int], ...] = ((0, 1), (0, 2), (1, 3), (2, 3), (2, 4), (3, 5), (4, 5))
"""Edges of the optimal toy cell."""


class ToyBenchmark(Benchmark):
    """Toy "accuracy": how much of a hidden target cell a valid DAG reproduces.

    The score of a valid cell is ``100 * (0.5 * ops matched / 4 + 0.5 * edges matched / 15)`` percent:
    a node-op term and an edge term, each the fraction of the target's free entries a cell matches.
    Exactly one cell (the target, :data:`TOY_TARGET_OPS` / :data:`TOY_TARGET_EDGES`) scores 100;
    a uniform random cell scores about 42 on average and matches the target with probability
    ``3**-4 * 2**-15 ≈ 3.8e-7``. Scores are deterministic (no seeds), there is no separate test
    score (``test_acc`` equals ``val_acc``), and ``chance_accuracy`` is 0.

    Args:
        ledger: Where look-ups are recorded and the budget enforced (default: a new
            :class:`~dgpo_env.ledger.InMemoryLedger`).
    """

    search_space: ToySearchSpace

    def __init__(self, ledger: QueryLedger | None = None) -> None:
        super().__init__(ledger)
        self.search_space = ToySearchSpace()
        self.name = "toy"
        self.chance_accuracy = 0.0
        space = self.search_space
        edges = np.zeros(space.n_edges, dtype=np.int64)
        for i, j in TOY_TARGET_EDGES:
            edges[edge_position(i, j, space.n_nodes)] = 1
        nodes = [space.input_type, *(space.node_types.index(op) for op in TOY_TARGET_OPS), space.output_type]
        self._target = DAG(np.array(nodes), edges)
        assert space.validate(self._target) is None

    def score(self, cell: DAG) -> float:
        """The toy accuracy (percent) of a valid cell; uncounted."""
        ops_matched = np.mean(cell.nodes[1:-1] == self._target.nodes[1:-1])
        edges_matched = np.mean(cell.edges == self._target.edges)
        return float(100.0 * (0.5 * ops_matched + 0.5 * edges_matched))

    def _lookup(self, key: str, cell: DAG, rng: np.random.Generator | None) -> CellResult:
        score = self.score(cell)
        return CellResult(key=key, valid=True, val_acc=score, val_acc_mean=score, test_acc=score)

    @cached_property
    def oracle(self) -> Oracle:
        """The target cell (score 100)."""
        key = self.search_space.canonical_key(self._target)
        return Oracle(100.0, key, self._target, test_acc=100.0)
