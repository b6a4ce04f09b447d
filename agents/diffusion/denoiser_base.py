"""What every denoiser ``p̂_θ(G_0 | G_t)`` shares: the search space's masks, input checks, masked logits.

:class:`MaskedDenoiser` is the base of :class:`~agents.diffusion.denoiser.GraphTransformerDenoiser` and
:class:`~agents.diffusion.mlp_denoiser.MLPDenoiser` (docs/diffusion.md §6). A subclass builds its network
after ``super().__init__(node_allowed, edge_allowed)``, calls :meth:`check_inputs` first in ``forward``
and returns :meth:`masked` logits: values a position may not take get ``-inf``, so their probability is
exactly 0 and a fixed position's single value has probability exactly 1.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from dgpo_env.search_spaces.base import SearchSpace


class MaskedDenoiser(nn.Module):
    """The search space's masks as non-persistent buffers, and the checks and masking built on them.

    Args:
        node_allowed: ``bool[N, K]`` the values each node may take (``SearchSpace.allowed[0]``).
        edge_allowed: ``bool[M, K_e]`` the values each upper-triangle entry may take.

    Raises:
        ValueError: If ``M`` is not ``N (N - 1) / 2`` or a position allows no value.
    """

    node_allowed: Tensor  # bool[N, K] buffer
    edge_allowed: Tensor  # bool[M, K_e] buffer

    def __init__(self, node_allowed: np.ndarray | Tensor, edge_allowed: np.ndarray | Tensor) -> None:
        super().__init__()
        node_mask = np.array(node_allowed, dtype=bool)  # checked in numpy: works under torch.device("meta") too
        edge_mask = np.array(edge_allowed, dtype=bool)
        n, k = node_mask.shape
        m, ke = edge_mask.shape
        if m != n * (n - 1) // 2:
            raise ValueError(
                f"edge_allowed has {m} rows; an {n}-node DAG has {n * (n - 1) // 2} upper-triangle entries"
            )
        if not (node_mask.any(1).all() and edge_mask.any(1).all()):
            raise ValueError("every position needs at least one allowed value")
        nodes, edges = torch.tensor(node_mask), torch.tensor(edge_mask)
        self.n_nodes, self.n_node_types, self.n_edges, self.n_edge_types = n, k, m, ke
        self.register_buffer("node_allowed", nodes, persistent=False)
        self.register_buffer("edge_allowed", edges, persistent=False)

    @classmethod
    def for_space(cls, space: SearchSpace, config: Any = None) -> Any:
        """A denoiser of this class with ``space``'s shapes and masks (``config``: the class's own)."""
        node_allowed, edge_allowed = space.allowed
        return cls(node_allowed, edge_allowed, config)  # type: ignore[call-arg]

    def n_parameters(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def check_inputs(self, nodes: Tensor, edges: Tensor, t_frac: Tensor) -> None:
        """Refuse inputs of the wrong shape: ``nodes [B, N, K]``, ``edges [B, M, K_e]``, ``t_frac [B]``.

        Raises:
            ValueError: Naming the tensor and the shape it must have.
        """
        b = nodes.shape[0]
        if nodes.shape[1:] != (self.n_nodes, self.n_node_types):
            raise ValueError(f"nodes must be [B, {self.n_nodes}, {self.n_node_types}], got {list(nodes.shape)}")
        if edges.shape != (b, self.n_edges, self.n_edge_types):
            raise ValueError(f"edges must be [{b}, {self.n_edges}, {self.n_edge_types}], got {list(edges.shape)}")
        if t_frac.shape != (b,):
            raise ValueError(f"t_frac must be [{b}], got {list(t_frac.shape)}")

    def masked(self, node_logits: Tensor, edge_logits: Tensor) -> tuple[Tensor, Tensor]:
        """``([B, N, K], [B, M, K_e])`` logits with ``-inf`` on the values a position may not take."""
        return (
            torch.where(self.node_allowed, node_logits, float("-inf")),
            torch.where(self.edge_allowed, edge_logits, float("-inf")),
        )
