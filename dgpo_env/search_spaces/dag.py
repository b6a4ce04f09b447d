"""The DAG encoding shared by every search space (docs/encodings.md §1).

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


def _integer_array(name: str, values: ArrayLike) -> IntArray:
    """``values`` as a new ``int64`` array if every entry is an integer (integral floats such as ``2.0`` too).

    Raises:
        ValueError: Naming ``name`` and showing the entries as given (``0.5``, NaN, a string, ``2**64 - 1``).
    """
    raw = np.asarray(values)
    if raw.dtype.kind in "iu" and (raw.dtype.kind == "i" or raw.size == 0 or raw.max() <= np.iinfo(np.int64).max):
        return raw.astype(np.int64)
    if raw.dtype.kind == "f":
        bad = ~(np.isfinite(raw) & (np.mod(raw, 1) == 0) & (np.abs(raw) < 2.0**63))
    elif raw.dtype.kind == "b":
        bad = np.zeros(raw.shape, dtype=bool)
    else:  # large unsigned, objects, strings
        flat = raw.reshape(-1).tolist()
        bad = np.array(
            [not (isinstance(v, (int, np.integer)) and -(2**63) <= v < 2**63) for v in flat], dtype=bool
        ).reshape(raw.shape)
    if bad.any():
        shown = raw[bad].tolist()[:10]
        raise ValueError(f"{name} must hold integers (int64), got {shown} (dtype {raw.dtype})")
    return raw.astype(np.int64)


def check_upper_triangular(name: str, matrix: np.ndarray) -> None:
    """Refuse a square matrix with a nonzero entry on or below the diagonal.

    Raises:
        ValueError: ``"<name> is not upper triangular"``, with the offending entries.
    """
    try:
        lower = np.tril(matrix) != 0
    except TypeError:  # strings, objects: check_zero_one says what is wrong
        return
    if lower.any():
        where = [(int(i), int(j)) for i, j in zip(*np.nonzero(lower), strict=True)][:10]
        raise ValueError(
            f"{name} is not upper triangular: nonzero entries on or below the diagonal at {where} "
            f"(values {matrix[lower].tolist()[:10]}); it must be strictly upper triangular: number the nodes "
            "in a topological order so that every edge goes from a lower to a higher index"
        )


def check_zero_one(name: str, matrix: np.ndarray) -> None:
    """Refuse a matrix holding anything but exact 0 and 1 (``0.5``, ``0.7``, ``2``, NaN are not rounded).

    Raises:
        ValueError: Naming the first offending entries and their values as given.
    """
    if matrix.dtype.kind in "biufO":
        ok = np.asarray((matrix == 0) | (matrix == 1), dtype=bool)
    else:  # strings, bytes, dates
        ok = np.zeros(matrix.shape, dtype=bool)
    if not ok.all():
        where = [tuple(int(x) for x in idx) for idx in zip(*np.nonzero(~ok), strict=True)][:10]
        raise ValueError(
            f"{name} must hold only 0 and 1 (no edge / edge), got values {matrix[~ok].tolist()[:10]} at {where}"
        )


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
        nodes = _integer_array("DAG nodes", self.nodes).reshape(-1)
        edges = _integer_array("DAG edges", self.edges).reshape(-1)
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
        flat = _integer_array("flat DAG vector", flat).reshape(-1)
        return cls(flat[:n_nodes], flat[n_nodes:])

    @classmethod
    def from_adjacency(cls, nodes: ArrayLike, adjacency: ArrayLike) -> DAG:
        """Build a DAG from node types and a square 0/1 adjacency matrix.

        Like the official NAS-Bench-101 API, the matrix must be upper triangular (nodes in a
        topological order) and hold only exact 0/1 values: ``0.5`` is refused, not rounded.

        Raises:
            ValueError: If the matrix is not square of side ``len(nodes)``, has a nonzero entry on or
                below the diagonal ("not upper triangular"), or holds a value other than 0 and 1.
        """
        nodes = _integer_array("DAG nodes", nodes).reshape(-1)
        raw = np.asarray(adjacency)
        n = nodes.size
        if raw.shape != (n, n):
            raise ValueError(f"adjacency must have shape ({n}, {n}) for {n} nodes, got {raw.shape}")
        check_upper_triangular("adjacency", raw)
        check_zero_one("adjacency", raw)
        rows, cols = upper_indices(n)
        return cls(nodes, raw[rows, cols].astype(np.int64))

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
