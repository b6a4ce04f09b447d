"""Per-position categorical marginals: the diffusion prior ``p(G_T)`` and the limit of ``Q̄_t``.

DiGress-style marginal transitions noise every node and edge towards ``m``, the distribution of
types in the training graphs (docs/diffusion.md §1). Here ``m`` is stored per position, so fixed
entries (input/output nodes, NB201's adjacency) get a one-hot row: noise never moves them, and the
same object clamps them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from dgpo_env.search_spaces.base import SearchSpace
from dgpo_env.search_spaces.dag import DAG

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class Marginals:
    """Categorical distributions for every node and every upper-triangle edge entry.

    Attributes:
        nodes: ``float64[N, K]``, rows sum to 1.
        edges: ``float64[M, K_e]``, rows sum to 1.
    """

    nodes: FloatArray
    edges: FloatArray

    def __post_init__(self) -> None:
        for name in ("nodes", "edges"):
            probs = np.array(getattr(self, name), dtype=np.float64)
            if probs.ndim != 2:
                raise ValueError(f"Marginals.{name} must be 2-D (positions x types), got shape {probs.shape}")
            if (probs < 0).any() or not np.allclose(probs.sum(1), 1.0, atol=1e-6):
                raise ValueError(f"Marginals.{name}: every row must be a probability vector (>= 0, sums to 1)")
            probs = probs / probs.sum(1, keepdims=True)
            probs.flags.writeable = False
            object.__setattr__(self, name, probs)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def uniform(cls, space: SearchSpace) -> Marginals:
        """Uniform over the allowed values of each position."""
        node_allowed, edge_allowed = space.allowed
        return cls(_normalise(node_allowed), _normalise(edge_allowed))

    @classmethod
    def from_cells(cls, space: SearchSpace, cells: Iterable[DAG], smoothing: float = 0.0) -> Marginals:
        """DiGress marginals of a training set: type frequencies pooled over the free positions.

        Node-type frequencies are pooled over all free node positions and edge-type frequencies over
        all free edge positions, then restricted to each position's allowed values and renormalised.

        Args:
            space: The search space.
            cells: The training cells.
            smoothing: Pseudo-count added to every allowed value (keeps rare types reachable).

        Raises:
            ValueError: If ``cells`` is empty.
        """
        node_allowed, edge_allowed = space.allowed
        node_free, edge_free = ~space.fixed_mask[: space.n_nodes], ~space.fixed_mask[space.n_nodes :]
        node_counts = np.zeros(space.n_node_types)
        edge_counts = np.zeros(space.n_edge_types)
        n = 0
        for dag in cells:
            node_counts += np.bincount(dag.nodes[node_free], minlength=space.n_node_types)
            edge_counts += np.bincount(dag.edges[edge_free], minlength=space.n_edge_types)
            n += 1
        if n == 0:
            raise ValueError("Marginals.from_cells needs at least one cell")
        node_probs = node_allowed * (node_counts + smoothing)
        edge_probs = edge_allowed * (edge_counts + smoothing)
        # a fixed position keeps its single value even if the pooled counts give it no mass
        node_probs[~node_free] = node_allowed[~node_free]
        edge_probs[~edge_free] = edge_allowed[~edge_free]
        return cls(_normalise(node_probs), _normalise(edge_probs))

    # ------------------------------------------------------------------ use
    @property
    def flat(self) -> list[FloatArray]:
        """One probability row per flat entry (nodes then edges)."""
        return list(self.nodes) + list(self.edges)

    def sample(self, rng: np.random.Generator) -> NDArray[np.int64]:
        """Draw a flat vector ``concat(nodes, edges)``, every entry independently."""
        return np.concatenate([_sample_rows(self.nodes, rng), _sample_rows(self.edges, rng)])

    def check_compatible(self, space: SearchSpace) -> None:
        """Raise ``ValueError`` unless shapes match ``space`` and no mass lies on disallowed values."""
        node_allowed, edge_allowed = space.allowed
        if self.nodes.shape != node_allowed.shape or self.edges.shape != edge_allowed.shape:
            raise ValueError(
                f"prior shapes nodes{self.nodes.shape}/edges{self.edges.shape} do not fit search space "
                f"{space.name} (nodes{node_allowed.shape}/edges{edge_allowed.shape})"
            )
        if (self.nodes[~node_allowed] > 0).any() or (self.edges[~edge_allowed] > 0).any():
            raise ValueError(f"the prior puts mass on values the {space.name} search space does not allow")


def _normalise(weights: NDArray[np.floating] | NDArray[np.bool_]) -> FloatArray:
    weights = np.asarray(weights, dtype=np.float64)
    return weights / weights.sum(1, keepdims=True)


def _sample_rows(probs: FloatArray, rng: np.random.Generator) -> NDArray[np.int64]:
    """One categorical draw per row of ``probs`` (inverse-CDF, vectorised)."""
    cdf = np.cumsum(probs, axis=1)  # [P, K]
    u = rng.random((probs.shape[0], 1)) * cdf[:, -1:]  # [P, 1]
    return np.minimum((cdf <= u).sum(1), probs.shape[1] - 1).astype(np.int64)
