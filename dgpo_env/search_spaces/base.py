"""The search-space interface: what a family of cells looks like as typed DAGs.

A search space fixes the number of nodes ``N``, the node-type vocabulary, the number of edge types,
and which values every position of the flat vector ``concat(nodes, edges)`` may take. Positions
that admit a single value (the input and output nodes, NAS-Bench-201's whole adjacency) are
*fixed*: the environment clamps them and masks them out of the action, and the diffusion process
never changes them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from functools import cached_property

import networkx as nx
import numpy as np
from numpy.typing import ArrayLike, NDArray

from dgpo_env.search_spaces.dag import DAG, IntArray, n_upper, upper_indices

BoolArray = NDArray[np.bool_]


class SearchSpace(ABC):
    """A family of cells encoded as topologically ordered typed DAGs.

    Subclasses set :attr:`name`, :attr:`node_types`, :attr:`n_nodes` and implement
    :meth:`allowed_values`, :meth:`validate`, :meth:`canonical_key` and :meth:`describe`.

    Attributes:
        name: Short identifier, e.g. ``"nb201"``; checkpoints record it.
        node_types: The node-type vocabulary; a node's type is an index into it.
        n_edge_types: Number of edge types (``2``: absent / present).
        n_nodes: Number of nodes ``N``.
    """

    name: str
    node_types: tuple[str, ...]
    n_edge_types: int = 2
    n_nodes: int

    # ------------------------------------------------------------------ shape
    @property
    def n_node_types(self) -> int:
        """Size ``K`` of the node-type vocabulary."""
        return len(self.node_types)

    @property
    def n_edges(self) -> int:
        """Number ``M = N (N - 1) / 2`` of upper-triangle edge entries."""
        return n_upper(self.n_nodes)

    @property
    def n_entries(self) -> int:
        """Length ``N + M`` of the flat vector."""
        return self.n_nodes + self.n_edges

    @cached_property
    def nvec(self) -> IntArray:
        """Number of values per flat entry: ``[K] * N + [K_e] * M`` (the ``MultiDiscrete`` nvec)."""
        nvec = np.array([self.n_node_types] * self.n_nodes + [self.n_edge_types] * self.n_edges, np.int64)
        nvec.flags.writeable = False
        return nvec

    # ------------------------------------------------------------------ masks
    @abstractmethod
    def allowed_values(self) -> tuple[BoolArray, BoolArray]:
        """Which values each position may take.

        Returns:
            ``(node_allowed, edge_allowed)``: ``bool[N, K]`` and ``bool[M, K_e]``, each row with at
            least one ``True``.
        """

    @cached_property
    def allowed(self) -> tuple[BoolArray, BoolArray]:
        """Cached, read-only, checked :meth:`allowed_values`."""
        node_allowed, edge_allowed = (np.array(a, dtype=bool) for a in self.allowed_values())
        assert node_allowed.shape == (self.n_nodes, self.n_node_types), node_allowed.shape
        assert edge_allowed.shape == (self.n_edges, self.n_edge_types), edge_allowed.shape
        assert node_allowed.any(1).all() and edge_allowed.any(1).all(), "every position needs a value"
        node_allowed.flags.writeable = False
        edge_allowed.flags.writeable = False
        return node_allowed, edge_allowed

    @cached_property
    def flat_action_mask(self) -> BoolArray:
        """``bool[sum(nvec)]``: the per-entry allowed values concatenated (sb3-contrib's contract)."""
        node_allowed, edge_allowed = self.allowed
        mask = np.concatenate([node_allowed.reshape(-1), edge_allowed.reshape(-1)])
        mask.flags.writeable = False
        return mask

    @cached_property
    def fixed_mask(self) -> BoolArray:
        """``bool[N + M]``: entries that admit exactly one value."""
        node_allowed, edge_allowed = self.allowed
        fixed = np.concatenate([node_allowed.sum(1) == 1, edge_allowed.sum(1) == 1])
        fixed.flags.writeable = False
        return fixed

    @cached_property
    def fixed_values(self) -> IntArray:
        """``int64[N + M]``: the value of every fixed entry (the first allowed value elsewhere)."""
        node_allowed, edge_allowed = self.allowed
        values = np.concatenate([node_allowed.argmax(1), edge_allowed.argmax(1)]).astype(np.int64)
        values.flags.writeable = False
        return values

    @property
    def free_positions(self) -> IntArray:
        """Indices into the flat vector of the entries that are not fixed."""
        return np.flatnonzero(~self.fixed_mask)

    def clamp(self, flat: IntArray) -> IntArray:
        """Return ``flat`` with every fixed entry set to its value (a new array)."""
        return np.where(self.fixed_mask, self.fixed_values, flat)

    # ------------------------------------------------------------------ cells
    @abstractmethod
    def validate(self, dag: DAG) -> str | None:
        """Why ``dag`` is not a valid cell of this space, or ``None`` if it is."""

    @abstractmethod
    def canonical_key(self, dag: DAG) -> str:
        """A string that is equal for two DAGs exactly when they are the same cell.

        It identifies a cell for query counting and benchmark look-up (an arch string for
        NAS-Bench-201, the official graph hash for NAS-Bench-101). ``dag`` must be valid.
        """

    @abstractmethod
    def describe(self, dag: DAG) -> str:
        """A human-readable one-line description of a cell (e.g. its arch string)."""

    def check_shape(self, dag: DAG) -> None:
        """Raise ``ValueError`` unless ``dag`` has this space's node count and value ranges."""
        if dag.n_nodes != self.n_nodes:
            raise ValueError(f"{self.name} cells have {self.n_nodes} nodes, got a DAG with {dag.n_nodes}")
        flat = dag.flat()
        bad = np.flatnonzero((flat < 0) | (flat >= self.nvec))
        if bad.size:
            raise ValueError(f"{self.name}: entries {bad.tolist()} are out of range for nvec {self.nvec.tolist()}")

    def mask_violations(self, dag: DAG) -> IntArray:
        """Indices of flat entries holding a value this space does not allow at that position."""
        node_allowed, edge_allowed = self.allowed
        ok_nodes = node_allowed[np.arange(self.n_nodes), dag.nodes]
        ok_edges = edge_allowed[np.arange(self.n_edges), dag.edges]
        return np.flatnonzero(~np.concatenate([ok_nodes, ok_edges]))

    def sample_uniform(self, rng: np.random.Generator, max_tries: int = 10_000) -> DAG:
        """Draw a valid cell by rejection: every free entry uniform over its allowed values.

        Args:
            rng: The caller's random generator (never the global one).
            max_tries: Give up after this many rejected draws.

        Raises:
            RuntimeError: If no valid cell was drawn in ``max_tries`` attempts.
        """
        node_allowed, edge_allowed = self.allowed
        values = [np.flatnonzero(row) for row in (*node_allowed, *edge_allowed)]  # allowed values per entry
        n_values = np.array([v.size for v in values])  # [N + M]
        for _ in range(max_tries):
            # One bounded integer per entry, in entry order: the same draws as one ``rng.choice`` per
            # entry (the cells drawn for a seed are unchanged), in one call.
            picks = rng.integers(0, n_values)  # [N + M]
            flat = np.array([v[i] for v, i in zip(values, picks.tolist(), strict=True)], dtype=np.int64)
            dag = DAG(flat[: self.n_nodes], flat[self.n_nodes :])
            if self.validate(dag) is None:
                return dag
        raise RuntimeError(f"{self.name}: no valid cell in {max_tries} uniform draws")

    def neighbours(self, dag: DAG) -> Iterator[DAG]:
        """Every valid cell that differs from ``dag`` in exactly one free entry (a one-step mutation)."""
        flat = dag.flat()
        node_allowed, edge_allowed = self.allowed
        allowed_rows = list(node_allowed) + list(edge_allowed)
        for pos in self.free_positions.tolist():
            for value in np.flatnonzero(allowed_rows[pos]).tolist():
                if value == flat[pos]:
                    continue
                mutated = flat.copy()
                mutated[pos] = value
                candidate = DAG.from_flat(mutated, self.n_nodes)
                if self.validate(candidate) is None:
                    yield candidate

    def enumerate_cells(self) -> Iterator[DAG]:
        """Every valid cell of the space, if the space is small enough to list.

        Raises:
            NotImplementedError: For spaces too large to enumerate.
        """
        raise NotImplementedError(f"{self.name} does not enumerate its cells")

    # ------------------------------------------------------------------ graphs
    def to_networkx(self, dag: DAG) -> nx.DiGraph:
        """A ``networkx.DiGraph`` with node attribute ``op`` (type name) and edge attribute ``type``."""
        graph = nx.DiGraph(search_space=self.name)
        for i, t in enumerate(dag.nodes.tolist()):
            graph.add_node(i, op=self.node_types[t])
        rows, cols = upper_indices(dag.n_nodes)
        for i, j, t in zip(rows.tolist(), cols.tolist(), dag.edges.tolist(), strict=True):
            if t:
                graph.add_edge(i, j, type=t)
        return graph

    def from_networkx(self, graph: nx.DiGraph) -> DAG:
        """Inverse of :meth:`to_networkx`: nodes ``0..N-1`` with an ``op`` attribute, forward edges.

        Raises:
            ValueError: If the nodes are not ``0..N-1``, an ``op`` is unknown, or an edge goes backwards.
        """
        if sorted(graph.nodes) != list(range(self.n_nodes)):
            raise ValueError(f"{self.name} graphs have nodes 0..{self.n_nodes - 1}, got {sorted(graph.nodes)}")
        try:
            nodes = [self.node_types.index(graph.nodes[i]["op"]) for i in range(self.n_nodes)]
        except (KeyError, ValueError) as err:
            raise ValueError(f"every node needs an 'op' attribute from {self.node_types}: {err}") from err
        adj = np.zeros((self.n_nodes, self.n_nodes), dtype=np.int64)
        for i, j, data in graph.edges(data=True):
            adj[i, j] = data.get("type", 1)
        return DAG.from_adjacency(nodes, adj)

    def from_flat(self, flat: ArrayLike) -> DAG:
        """Build a DAG of this space from the flat vector ``concat(nodes, edges)``."""
        return DAG.from_flat(flat, self.n_nodes)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(N={self.n_nodes}, node_types={self.node_types})"


class OpCellSearchSpace(SearchSpace):
    """A space whose node 0 is ``input``, node ``N - 1`` ``output`` and inner nodes carry an op.

    The vocabulary is ``("input", "output", *ops)``, so op types start at :attr:`op_offset`.
    """

    input_type = 0
    output_type = 1
    op_offset = 2

    def op_node_allowed(self) -> BoolArray:
        """``bool[N, K]``: input and output nodes fixed, every inner node one of the ops."""
        node_allowed = np.zeros((self.n_nodes, self.n_node_types), dtype=bool)
        node_allowed[0, self.input_type] = True
        node_allowed[-1, self.output_type] = True
        node_allowed[1:-1, self.op_offset :] = True
        return node_allowed
