"""The NAS-Bench-101 cell as a 7-node DAG, with the official pruning and graph hash (docs/encodings.md §4).

An NB101 cell has at most 7 vertices: the input (node 0), up to 5 inner ops from
``conv3x3-bn-relu, conv1x1-bn-relu, maxpool3x3`` and the output (node 6); edges go forward only.
Every 7-node DAG with those node types is an *encoding*; the official API (google-research/nasbench,
``model_spec.ModelSpec`` and ``api.NASBench._check_spec``) turns it into a cell by

1. **pruning** every vertex that is not on a directed input -> output path (the survivors keep their
   order, so the pruned matrix is still upper triangular, of side ``n <= 7``);
2. **validating** the pruned graph: the input must reach the output and the pruned graph may have at
   most 9 edges;
3. **hashing** the pruned graph with an iterated neighbourhood hash (MD5) that is invariant under
   relabelling of the vertices, so isomorphic cells share a hash. The data set is keyed by it.

The hash (``graph_util.hash_module``) labels vertex ``v`` with ``(out-degree, in-degree, label)``,
where the label is ``-1`` for the input, ``-2`` for the output and the op's index in
``[conv3x3-bn-relu, conv1x1-bn-relu, maxpool3x3]`` otherwise; each vertex starts from the MD5 hex
digest of ``str`` of that tuple. Then ``V`` times (``V`` = number of vertices), every vertex becomes
the MD5 of ``sorted in-neighbour digests joined + "|" + sorted out-neighbour digests joined + "|" +
own digest``. The fingerprint is the MD5 of ``str`` of the sorted list of final digests.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import networkx as nx
import numpy as np
from numpy.typing import ArrayLike

from dgpo_env.search_spaces.base import BoolArray, OpCellSearchSpace
from dgpo_env.search_spaces.dag import DAG, IntArray, check_upper_triangular, check_zero_one

NB101_OPS: tuple[str, ...] = ("conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3")
"""The three inner ops in the official canonical order (``config['available_ops']``); hash labels index it."""

INPUT = "input"
OUTPUT = "output"
N_VERTICES = 7
"""Official ``config['module_vertices']``: at most 7 vertices per cell."""
MAX_EDGES = 9
"""Official ``config['max_edges']``: at most 9 edges in the pruned cell."""
INPUT_LABEL = -1
OUTPUT_LABEL = -2
"""Hash labels of the input and output vertices (official ``ModelSpec.hash_spec``)."""


@dataclass(frozen=True, eq=False)
class NB101Spec:
    """An official ``(matrix, ops)`` model spec, as stored in the NAS-Bench-101 data set.

    Attributes:
        matrix: ``int64[n, n]`` 0/1 strictly upper-triangular adjacency, ``2 <= n <= 7`` (read-only).
        ops: ``n`` op names, ``ops[0] == "input"``, ``ops[-1] == "output"``, the rest from :data:`NB101_OPS`.
    """

    matrix: IntArray
    ops: tuple[str, ...]

    def __post_init__(self) -> None:
        raw = np.asarray(self.matrix)
        if isinstance(self.ops, str):
            raise TypeError(f"ops must be a sequence of op names, got the string {self.ops!r}")
        ops = tuple(self.ops)
        n = len(ops)
        if raw.ndim != 2 or raw.shape != (n, n):
            raise ValueError(f"an NB101 spec with {n} ops needs an {n}x{n} matrix, got shape {raw.shape}")
        if not 2 <= n <= N_VERTICES:
            raise ValueError(f"an NB101 spec has 2..{N_VERTICES} vertices, got {n}")
        check_upper_triangular("the adjacency matrix", raw)
        check_zero_one("the adjacency matrix", raw)
        matrix = raw.astype(np.int64)
        if ops[0] != INPUT or ops[-1] != OUTPUT:
            raise ValueError(f"ops must start with 'input' and end with 'output', got {list(ops)}")
        unknown = [op for op in ops[1:-1] if op not in NB101_OPS]
        if unknown:
            raise ValueError(f"unknown NB101 ops {unknown}; choose from {NB101_OPS}")
        matrix.flags.writeable = False
        object.__setattr__(self, "matrix", matrix)
        object.__setattr__(self, "ops", ops)

    @property
    def n_vertices(self) -> int:
        """Number of vertices ``n``."""
        return len(self.ops)

    @property
    def n_edges(self) -> int:
        """Number of edges."""
        return int(self.matrix.sum())

    def labels(self) -> list[int]:
        """The official hash labels: ``-1`` input, op index in :data:`NB101_OPS`, ``-2`` output."""
        return [INPUT_LABEL, *(NB101_OPS.index(op) for op in self.ops[1:-1]), OUTPUT_LABEL]

    def graph_hash(self) -> str:
        """The official MD5 graph hash of this spec as given (prune first to get the data-set key)."""
        return graph_hash(self.matrix, self.labels())

    def adjacency_string(self) -> str:
        """The row-major 0/1 string of the matrix (the data set's ``raw_adjacency`` field)."""
        return "".join(str(int(v)) for v in self.matrix.reshape(-1))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NB101Spec):
            return NotImplemented
        return self.ops == other.ops and np.array_equal(self.matrix, other.matrix)

    def __hash__(self) -> int:
        return hash((self.matrix.tobytes(), self.ops))

    def __repr__(self) -> str:
        return f"NB101Spec(matrix={self.matrix.tolist()}, ops={list(self.ops)})"


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()  # official hash is MD5


def graph_hash(matrix: ArrayLike, labels: Sequence[int]) -> str:
    """The NAS-Bench-101 iterated neighbourhood MD5 hash of a labelled DAG (``graph_util.hash_module``).

    Args:
        matrix: ``[n, n]`` 0/1 adjacency (``matrix[i, j] = 1`` for an edge ``i -> j``).
        labels: ``n`` integer labels (``-1`` input, ``-2`` output, op index otherwise).

    Returns:
        The 32-character hex fingerprint; equal for isomorphic labelled graphs.

    Raises:
        ValueError: If the matrix is not square, holds a value other than 0 and 1, or ``labels`` has
            the wrong length.
    """
    adj = np.asarray(matrix)
    if adj.ndim != 2 or adj.shape[0] != adj.shape[1] or adj.shape[0] != len(labels):
        raise ValueError(f"need a square matrix with one label per vertex, got {adj.shape} and {len(labels)} labels")
    check_zero_one("the adjacency matrix", adj)
    return _graph_hash_cached(adj.astype(bool).tobytes(), adj.shape[0], tuple(int(x) for x in labels))


@lru_cache(maxsize=65_536)
def _graph_hash_cached(adj_bytes: bytes, n: int, labels: tuple[int, ...]) -> str:
    adj = np.frombuffer(adj_bytes, dtype=bool).reshape(n, n)  # [n, n]
    out_degree = adj.sum(axis=1).tolist()
    in_degree = adj.sum(axis=0).tolist()
    preds = [np.flatnonzero(adj[:, v]).tolist() for v in range(n)]
    succs = [np.flatnonzero(adj[v, :]).tolist() for v in range(n)]
    # Initial digest of vertex v: MD5 of str((out-degree, in-degree, label)), e.g. "(2, 0, -1)".
    digests = [_md5(str((out_degree[v], in_degree[v], labels[v]))) for v in range(n)]
    for _ in range(n):  # official: as many rounds as vertices (at least the diameter)
        digests = [
            _md5(
                "".join(sorted(digests[w] for w in preds[v]))
                + "|"
                + "".join(sorted(digests[w] for w in succs[v]))
                + "|"
                + digests[v]
            )
            for v in range(n)
        ]
    return _md5(str(sorted(digests)))


def live_vertices(matrix: ArrayLike) -> IntArray:
    """Vertices on a directed path from vertex 0 to vertex ``n - 1`` (empty if there is no such path).

    Args:
        matrix: ``[n, n]`` 0/1 upper-triangular adjacency.

    Returns:
        ``int64[k]`` sorted vertex indices, ``k = 0`` or ``2 <= k <= n``.
    """
    adj = np.asarray(matrix).astype(bool)  # [n, n]
    n = adj.shape[0]
    from_input = np.zeros(n, dtype=bool)
    from_input[0] = True
    for v in range(1, n):  # topological order: predecessors are settled first
        from_input[v] = bool((adj[:v, v] & from_input[:v]).any())
    to_output = np.zeros(n, dtype=bool)
    to_output[n - 1] = True
    for v in range(n - 2, -1, -1):
        to_output[v] = bool((adj[v, v + 1 :] & to_output[v + 1 :]).any())
    live = from_input & to_output
    assert live[0] == live[n - 1], "input and output are live together or not at all"
    return np.flatnonzero(live).astype(np.int64)


class NB101SearchSpace(OpCellSearchSpace):
    """NAS-Bench-101: 7 nodes, node 0 ``input``, node 6 ``output``, 21 free edge bits.

    Node vocabulary (type ids): ``0 input, 1 output, 2 conv3x3-bn-relu, 3 conv1x1-bn-relu,
    4 maxpool3x3``. A 7-node DAG is a valid cell when its pruned graph (see the module docstring)
    connects the input to the output with at most 9 edges; its canonical key is the official hash of
    the pruned graph, so encodings that differ only in dead vertices or by an isomorphism share a key.
    """

    name = "nb101"
    node_types = (INPUT, OUTPUT, *NB101_OPS)
    n_nodes = N_VERTICES
    n_edge_types = 2

    def allowed_values(self) -> tuple[BoolArray, BoolArray]:
        """Input/output nodes fixed, inner nodes one of the three ops, all 21 edges free."""
        return self.op_node_allowed(), np.ones((self.n_edges, self.n_edge_types), dtype=bool)

    # ------------------------------------------------------------------ pruning and validity
    def _check_node_types(self, dag: DAG) -> str | None:
        if dag.n_nodes != self.n_nodes:
            return f"NB101 cells have {self.n_nodes} nodes, got a DAG with {dag.n_nodes}"
        if dag.nodes[0] != self.input_type or dag.nodes[-1] != self.output_type:
            return f"node 0 must be 'input' and node {self.n_nodes - 1} 'output'"
        inner = dag.nodes[1:-1]
        bad = np.flatnonzero((inner < self.op_offset) | (inner >= self.n_node_types))
        if bad.size:
            names = [self.node_types[t] if 0 <= t < self.n_node_types else str(t) for t in inner[bad].tolist()]
            return f"inner nodes {(bad + 1).tolist()} hold {names}, not one of {NB101_OPS}"
        if not np.isin(dag.edges, (0, 1)).all():
            return "edge entries must be 0 (absent) or 1 (present)"
        return None

    def prune(self, dag: DAG) -> NB101Spec | None:
        """The official pruned ``(matrix, ops)`` spec, or ``None`` if the input does not reach the output.

        Raises:
            ValueError: If the DAG does not have this space's node types (see :meth:`validate`).
        """
        reason = self._check_node_types(dag)
        if reason is not None:
            raise ValueError(f"cannot prune: {reason}")
        adj = dag.adjacency()  # [7, 7]
        live = live_vertices(adj)
        if live.size == 0:
            return None
        ops = tuple(self.node_types[t] for t in dag.nodes[live].tolist())
        return NB101Spec(adj[np.ix_(live, live)], ops)

    def validate(self, dag: DAG) -> str | None:
        """Why ``dag`` is not an NB101 cell under the official rules, or ``None`` if it is.

        The rules (``api.NASBench._check_spec`` on the pruned spec): node types as in this space,
        a directed path from the input to the output, at most 9 edges after pruning.
        """
        reason = self._check_node_types(dag)
        if reason is not None:
            return reason
        spec = self.prune(dag)
        if spec is None:
            return "the input is not connected to the output: no directed path from node 0 to node 6"
        if spec.n_edges > MAX_EDGES:
            return (
                f"the pruned cell has {spec.n_edges} edges but NAS-Bench-101 allows at most {MAX_EDGES}; "
                f"remove {spec.n_edges - MAX_EDGES} edge(s)"
            )
        return None

    def _require_spec(self, dag: DAG) -> NB101Spec:
        reason = self.validate(dag)
        if reason is not None:
            raise ValueError(f"not a valid NAS-Bench-101 cell: {reason}")
        spec = self.prune(dag)
        assert spec is not None
        return spec

    # ------------------------------------------------------------------ keys
    def graph_hash(self, dag: DAG) -> str:
        """The official hash of the pruned cell: the data set's ``module_hash``.

        Raises:
            ValueError: If ``dag`` is not a valid cell.
        """
        return self._require_spec(dag).graph_hash()

    def canonical_key(self, dag: DAG) -> str:
        """The official graph hash of the pruned cell (equal for isomorphic cells)."""
        return self.graph_hash(dag)

    def describe(self, dag: DAG) -> str:
        """Hash prefix, pruned ops and edges, or why the DAG is not a cell."""
        reason = self.validate(dag)
        if reason is not None:
            return f"<invalid: {reason}>"
        spec = self._require_spec(dag)
        rows, cols = np.nonzero(spec.matrix)
        edges = list(zip(rows.tolist(), cols.tolist(), strict=True))
        return f"nb101:{spec.graph_hash()[:8]} ops={list(spec.ops[1:-1])} edges={edges}"

    # ------------------------------------------------------------------ conversions
    def to_spec(self, dag: DAG, prune: bool = True) -> NB101Spec:
        """The official ``(matrix, ops)`` spec of a DAG.

        Args:
            dag: A 7-node DAG of this space.
            prune: Return the pruned spec (the data set's form; requires a valid cell) instead of
                the raw 7-vertex one.

        Raises:
            ValueError: If ``prune`` and the DAG is not a valid cell, or the node types are wrong.
        """
        if prune:
            return self._require_spec(dag)
        reason = self._check_node_types(dag)
        if reason is not None:
            raise ValueError(f"not an NB101 encoding: {reason}")
        return NB101Spec(dag.adjacency(), tuple(self.node_types[t] for t in dag.nodes.tolist()))

    def from_spec(self, matrix: ArrayLike | NB101Spec, ops: Sequence[str] | None = None) -> DAG:
        """The 7-node DAG of an official spec (``n <= 7`` vertices).

        A spec with ``n < 7`` vertices keeps vertices ``0 .. n-2`` in place and moves its output to
        node 6; the unused inner nodes ``n-1 .. 5`` get ``conv3x3-bn-relu`` and no edges, so pruning
        removes them and the DAG's key is the spec's hash.

        Args:
            matrix: ``[n, n]`` adjacency, or an :class:`NB101Spec` (then ``ops`` must be ``None``).
            ops: ``n`` op names starting with ``input`` and ending with ``output``.

        Raises:
            ValueError: If the spec is malformed (see :class:`NB101Spec`).
        """
        if isinstance(matrix, NB101Spec):
            if ops is not None:
                raise ValueError("pass either an NB101Spec or (matrix, ops), not both")
            spec = matrix
        else:
            if ops is None:
                raise ValueError("from_spec(matrix, ops) needs the op list")
            spec = NB101Spec(np.asarray(matrix), tuple(ops))
        n = spec.n_vertices
        place = np.array([*range(n - 1), self.n_nodes - 1], dtype=np.int64)  # spec vertex -> node
        adj = np.zeros((self.n_nodes, self.n_nodes), dtype=np.int64)
        adj[np.ix_(place, place)] = spec.matrix
        nodes = np.full(self.n_nodes, self.op_offset, dtype=np.int64)
        nodes[place] = [self.node_types.index(op) for op in spec.ops]
        return DAG.from_adjacency(nodes, adj)

    def from_adjacency_bits(self, bits: str, ops: Sequence[str]) -> DAG:
        """A DAG from 21 upper-triangle bits (row-major, e.g. ``"1101..."``) and the 5 inner op names.

        Raises:
            ValueError: If there are not 21 bits of ``0``/``1`` or not 5 known ops.
        """
        if len(bits) != self.n_edges or set(bits) - {"0", "1"}:
            raise ValueError(f"need {self.n_edges} characters of 0/1 (row-major upper triangle), got {bits!r}")
        if len(ops) != self.n_nodes - 2:
            raise ValueError(f"need {self.n_nodes - 2} inner ops, got {len(ops)}: {list(ops)}")
        unknown = [op for op in ops if op not in NB101_OPS]
        if unknown:
            raise ValueError(f"unknown NB101 ops {unknown}; choose from {NB101_OPS}")
        nodes = [self.input_type, *(self.node_types.index(op) for op in ops), self.output_type]
        return DAG(np.array(nodes), np.array([int(b) for b in bits]))

    def spec_to_networkx(self, spec: NB101Spec) -> nx.DiGraph:
        """A ``networkx.DiGraph`` of an official spec: nodes ``0..n-1`` with attribute ``op``."""
        graph = nx.DiGraph(search_space=self.name)
        for i, op in enumerate(spec.ops):
            graph.add_node(i, op=op)
        rows, cols = np.nonzero(spec.matrix)
        graph.add_edges_from(zip(rows.tolist(), cols.tolist(), strict=True), type=1)
        return graph

    def from_networkx(self, graph: nx.DiGraph) -> DAG:
        """A DAG from a graph with nodes ``0..n-1`` (``n <= 7``), attribute ``op``, forward edges.

        Seven-node graphs map node for node (as :meth:`to_networkx` writes them); smaller graphs are
        read as official specs (see :meth:`from_spec`).

        Raises:
            ValueError: If the nodes are not ``0..n-1``, an ``op`` is missing or unknown, or an edge
                goes backwards.
        """
        n = graph.number_of_nodes()
        if n == self.n_nodes:
            return super().from_networkx(graph)
        if sorted(graph.nodes) != list(range(n)):
            raise ValueError(f"graph nodes must be 0..{n - 1}, got {sorted(graph.nodes)}")
        try:
            ops = [str(graph.nodes[i]["op"]) for i in range(n)]
        except KeyError as err:
            raise ValueError(f"every node needs an 'op' attribute: missing on node {err}") from err
        matrix = np.zeros((n, n), dtype=np.int64)
        for i, j in graph.edges:
            matrix[i, j] = 1
        return self.from_spec(matrix, ops)
