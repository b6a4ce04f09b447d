"""The DAG encoding shared by every search space (DESIGN.md section 1).

A cell is a DAG on ``N`` nodes numbered in a topological order: node 0 is the input, node
``N - 1`` the output, and every edge goes from a lower to a higher index, so acyclicity holds by
construction. A graph is the pair ``(nodes, edges)``:

* ``nodes``: ``int64[N]``, the type of every node (an index into the search space's vocabulary);
* ``edges``: ``int64[M]`` with ``M = N (N - 1) / 2``, the type of every strict upper-triangle
  entry of the adjacency matrix in row-major order (``0`` = no edge, ``1`` = edge).

The flat vector ``concat(nodes, edges)`` of length ``N + M`` is what the environment's
``MultiDiscrete`` action and the diffusion model see.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
from numpy.typing import ArrayLike, NDArray

IntArray = NDArray[np.int64]


def n_upper(n_nodes: int) -> int:
    """Number of strict upper-triangle entries of an ``n_nodes x n_nodes`` matrix."""
    return n_nodes * (n_nodes - 1) // 2


@cache
def upper_indices(n_nodes: int) -> tuple[IntArray, IntArray]:
    """Row and column indices of the strict upper triangle, row-major.

    Args:
        n_nodes: Number of nodes ``N``.

    Returns:
        ``(rows, cols)``, each ``int64[N (N - 1) / 2]``; entry ``k`` of the edge vector is the edge
        ``rows[k] -> cols[k]``. The arrays are read-only and cached.
    """
    rows, cols = np.triu_indices(n_nodes, k=1)
    rows, cols = rows.astype(np.int64), cols.astype(np.int64)
    rows.flags.writeable = False
    cols.flags.writeable = False
    return rows, cols


def edge_position(i: int, j: int, n_nodes: int) -> int:
    """Index in the edge vector of the edge ``i -> j`` (requires ``0 <= i < j < n_nodes``)."""
    if not 0 <= i < j < n_nodes:
        raise ValueError(f"edge {i}->{j} is not a forward edge of a {n_nodes}-node topologically ordered DAG")
    return i * n_nodes - i * (i + 1) // 2 + (j - i - 1)


@dataclass(frozen=True, eq=False)
class DAG:
    """A topologically ordered DAG with typed nodes and typed upper-triangle edges.

    Instances are immutable (their arrays are read-only), hashable and compare by value, so they
    can key dictionaries and sets.

    Attributes:
        nodes: ``int64[N]`` node types.
        edges: ``int64[N (N - 1) / 2]`` edge types of the strict upper triangle, row-major.
    """

    nodes: IntArray
    edges: IntArray

    def __post_init__(self) -> None:
        nodes = np.array(self.nodes, dtype=np.int64).reshape(-1)
        edges = np.array(self.edges, dtype=np.int64).reshape(-1)
        if edges.size != n_upper(nodes.size):
            raise ValueError(
                f"a {nodes.size}-node DAG has {n_upper(nodes.size)} upper-triangle edge entries, "
                f"got {edges.size}; pass the strict upper triangle of the adjacency in row-major order"
            )
        nodes.flags.writeable = False
        edges.flags.writeable = False
        object.__setattr__(self, "nodes", nodes)
        object.__setattr__(self, "edges", edges)

    @property
    def n_nodes(self) -> int:
        """Number of nodes ``N``."""
        return int(self.nodes.size)

    @classmethod
    def from_flat(cls, flat: ArrayLike, n_nodes: int) -> DAG:
        """Build a DAG from the flat vector ``concat(nodes, edges)``."""
        flat = np.asarray(flat, dtype=np.int64).reshape(-1)
        return cls(flat[:n_nodes], flat[n_nodes:])

    @classmethod
    def from_adjacency(cls, nodes: ArrayLike, adjacency: ArrayLike) -> DAG:
        """Build a DAG from node types and a square adjacency matrix.

        Raises:
            ValueError: If the matrix is not square of side ``len(nodes)`` or has an entry on or
                below the diagonal (the nodes must be numbered in a topological order).
        """
        nodes = np.asarray(nodes, dtype=np.int64).reshape(-1)
        adjacency = np.asarray(adjacency, dtype=np.int64)
        n = nodes.size
        if adjacency.shape != (n, n):
            raise ValueError(f"adjacency must have shape ({n}, {n}) for {n} nodes, got {adjacency.shape}")
        if np.tril(adjacency).any():
            raise ValueError(
                "adjacency has entries on or below the diagonal: renumber the nodes in a topological "
                "order so that every edge goes from a lower to a higher index"
            )
        rows, cols = upper_indices(n)
        return cls(nodes, adjacency[rows, cols])

    def flat(self) -> IntArray:
        """The flat vector ``concat(nodes, edges)``, ``int64[N + M]``."""
        return np.concatenate([self.nodes, self.edges])

    def adjacency(self) -> IntArray:
        """The ``int64[N, N]`` adjacency matrix (edge types above the diagonal, zeros elsewhere)."""
        n = self.n_nodes
        adj = np.zeros((n, n), dtype=np.int64)
        rows, cols = upper_indices(n)
        adj[rows, cols] = self.edges
        return adj

    def edge_list(self) -> list[tuple[int, int]]:
        """The ``(i, j)`` pairs with a non-zero edge type, in row-major order."""
        rows, cols = upper_indices(self.n_nodes)
        present = self.edges != 0
        return list(zip(rows[present].tolist(), cols[present].tolist(), strict=True))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DAG):
            return NotImplemented
        return np.array_equal(self.nodes, other.nodes) and np.array_equal(self.edges, other.edges)

    def __hash__(self) -> int:
        return hash((self.nodes.tobytes(), self.edges.tobytes()))

    def __repr__(self) -> str:
        return f"DAG(nodes={self.nodes.tolist()}, edges={self.edge_list()})"
