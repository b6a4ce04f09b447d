"""A small, free-topology DAG space for fast tests and teaching (no benchmark data needed).

Six nodes: node 0 ``input``, node 5 ``output``, nodes 1..4 one of ``conv, pool, skip``; all 15
upper-triangle edges are free. A cell is valid when a directed path leads from the input to the
output. Cells are identified by their raw encoding (no isomorphism merging), so the space holds
``3**4 * 2**15 = 2,654,208`` encodings — too many for random search to stumble on the optimum of
:class:`~dgpo_env.benchmarks.toy.ToyBenchmark` (probability ``3.8e-7`` per draw).
"""

from __future__ import annotations

import networkx as nx
import numpy as np

from dgpo_env.search_spaces.base import BoolArray, OpCellSearchSpace
from dgpo_env.search_spaces.dag import DAG

TOY_OPS: tuple[str, ...] = ("conv", "pool", "skip")


class ToySearchSpace(OpCellSearchSpace):
    """Six-node DAGs with three ops and free edges; valid when the input reaches the output."""

    name = "toy"
    node_types = ("input", "output", *TOY_OPS)
    n_nodes = 6
    n_edge_types = 2

    def allowed_values(self) -> tuple[BoolArray, BoolArray]:
        """Input/output nodes fixed, inner nodes one of the ops, every edge free."""
        return self.op_node_allowed(), np.ones((self.n_edges, self.n_edge_types), dtype=bool)

    def validate(self, dag: DAG) -> str | None:
        """Why ``dag`` is not a toy cell, or ``None``."""
        if dag.n_nodes != self.n_nodes:
            return f"toy cells have {self.n_nodes} nodes, got {dag.n_nodes}"
        violations = self.mask_violations(dag)
        if violations.size:
            return f"entries {violations.tolist()} hold values not allowed there"
        if not nx.has_path(self.to_networkx(dag), 0, self.n_nodes - 1):
            return "no path from the input to the output"
        return None

    def canonical_key(self, dag: DAG) -> str:
        """The flat encoding as digits (the toy space merges no isomorphic cells)."""
        return "".join(map(str, dag.flat().tolist()))

    def describe(self, dag: DAG) -> str:
        """Ops of nodes 1..4 and the edge list."""
        ops = [self.node_types[t] for t in dag.nodes.tolist()]
        return f"ops={ops[1:-1]} edges={dag.edge_list()}"
