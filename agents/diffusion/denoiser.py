"""A direction-aware graph-transformer denoiser ``p̂_θ(G_0 | G_t)`` (docs/diffusion.md §6).

The network reads a noisy DAG — one-hot node types ``[B, N, K]`` and one-hot types of the strict
upper-triangle edge entries ``[B, M, K_e]`` — and the diffusion time ``t / T``, and returns logits of
the clean node types and clean edge types.

Architecture (DiGress-style node/edge attention, written for this project):

* Node features: a linear embedding of the type, plus a sinusoidal positional encoding of the node
  index (the topological position: upstream vs downstream), plus a time embedding.
* Edge features live on the full directed ``N x N`` grid. Entry ``(i, j)`` with ``i < j`` embeds the
  type of edge ``i -> j`` seen *forwards*, entry ``(j, i)`` embeds the same type seen *backwards*
  (separate learned projections and direction embeddings), and the diagonal has its own learned
  embedding. So the model knows which end of an edge is the source.
* Each layer: per-head attention scores ``q_i · k_j / √d`` are modulated by the edge features
  (FiLM: ``· (1 + W_g e_ij) + W_b e_ij``); attention over ``j`` pools both the values ``v_j`` and the
  edge features ``e_ij`` into node ``i`` (so edges reach the nodes even when all nodes look alike);
  the edge features are updated from the node pair (``W_s x_i + W_t x_j``) and the pair's scores.
  Residual, LayerNorm and feed-forward blocks for nodes and edges; the time embedding is added to both.
* Heads: node logits from the node features; the logits of upper-triangle entry ``(i, j)`` from the
  concatenated forward and backward edge features.

Values a position may not take (the search space's masks) get logit ``-inf``, so their
probability is exactly 0 and a fixed position's single value has probability exactly 1.
``-inf`` is safe in ``softmax``, ``log_softmax`` and ``cross_entropy`` against an allowed target;
callers must not multiply such log-probabilities by zero probabilities (``0 · -inf = NaN``).
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from agents.diffusion.denoiser_base import MaskedDenoiser
from dgpo_env.search_spaces.dag import upper_indices
from dgpo_env.validation import check_bool, check_count, check_mapping, check_real

SINUSOID_BASE = 10_000.0
"""Wavelength base of the sinusoidal encodings (Vaswani et al. 2017, §3.5)."""


@dataclass(frozen=True)
class DenoiserConfig:
    """Size and shape of a :class:`GraphTransformerDenoiser`.

    The published DGPO model is 8 layers of width 256 on a GPU (docs/diffusion.md §6); the defaults here
    are sized to pretrain on all 15,625 NB201 cells in about a minute on one CPU core (197,001 parameters
    on NB201, a 1.4 MB checkpoint; ``benchmarks/pretrain.py`` measures it).

    Attributes:
        hidden_dim: Node feature width.
        edge_dim: Edge feature width.
        n_layers: Number of transformer layers.
        n_heads: Attention heads (must divide ``hidden_dim``).
        ff_mult: Width multiplier of the feed-forward blocks.
        time_dim: Width of the sinusoidal time features.
        dropout: Dropout rate in the residual branches.
        positional_encoding: Add the sinusoidal encoding of the node index (off only for ablations
            and the permutation test).
    """

    architecture: ClassVar[str] = "transformer"
    hidden_dim: int = 64
    edge_dim: int = 16
    n_layers: int = 4
    n_heads: int = 4
    ff_mult: int = 2
    time_dim: int = 32
    dropout: float = 0.0
    positional_encoding: bool = True

    def __post_init__(self) -> None:
        """Validate every field (no coercion: ``2.0`` is not a width, ``"yes"`` not a bool).

        Raises:
            TypeError: For a field of the wrong type.
            ValueError: For a field out of range, ``n_heads`` not dividing ``hidden_dim`` or an odd
                ``time_dim``.
        """
        for name in ("hidden_dim", "edge_dim", "n_layers", "n_heads", "ff_mult", "time_dim"):
            check_count(f"DenoiserConfig.{name}", getattr(self, name), minimum=1)
        if self.hidden_dim % self.n_heads:
            raise ValueError(
                f"DenoiserConfig.n_heads={self.n_heads!r} must divide DenoiserConfig.hidden_dim={self.hidden_dim!r}"
            )
        if self.time_dim % 2:
            raise ValueError(f"DenoiserConfig.time_dim must be even (sine and cosine pairs), got {self.time_dim!r}")
        if check_real("DenoiserConfig.dropout", self.dropout, 0.0, 1.0) == 1.0:
            raise ValueError(f"DenoiserConfig.dropout must be in [0, 1), got {self.dropout!r}")
        check_bool("DenoiserConfig.positional_encoding", self.positional_encoding)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (checkpoint-safe)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DenoiserConfig:
        """Inverse of :meth:`to_dict`.

        Raises:
            TypeError: If ``data`` is not a mapping.
            ValueError: On unknown keys.
        """
        check_mapping("denoiser config", data)
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown DenoiserConfig fields {sorted(unknown)}")
        return cls(**data)


TIME_SCALE = 1000.0
"""Multiplier of ``t / T`` in the denoisers' (and the policy critic's) sinusoidal time features: ``t / T`` in
``[0, 1]`` spread over the frequencies as a position in ``0 .. 1000`` (the DDPM convention)."""


def sinusoidal_features(x: Tensor, dim: int, scale: float) -> Tensor:
    """Transformer sinusoids ``[sin(x s ω_k), cos(x s ω_k)]`` with ``ω_k = base^(-2k/dim)``.

    Args:
        x: ``[...]`` real positions.
        dim: Even output width.
        scale: Multiplier applied to ``x`` first (spreads ``t / T ∈ [0, 1]`` over the frequencies).

    Returns:
        ``[..., dim]`` features.
    """
    angles = x.to(torch.float32)[..., None] * scale * _frequencies(dim, x.device)  # [..., dim/2]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)


@functools.lru_cache(maxsize=64)
def _frequencies(dim: int, device: torch.device) -> Tensor:
    """``ω_k = base^(-2k/dim)``, ``k < dim/2``: ``float32[dim/2]`` on ``device``.

    Cached per width and device (every forward pass needs them). The cached tensor is shared: callers
    must not modify it in place.
    """
    half = dim // 2
    return torch.exp(-math.log(SINUSOID_BASE) * torch.arange(half, dtype=torch.float32, device=device) / half)


class _EdgeGatedAttention(nn.Module):
    """One node/edge layer: edge-gated attention scores, attention over nodes, edge update.

    Everything on the ``N x N`` grid is kept at edge width ``de`` or head count ``H`` (not the node
    width), which keeps the layer cheap on a CPU.
    """

    def __init__(self, cfg: DenoiserConfig) -> None:
        super().__init__()
        h, de, heads = cfg.hidden_dim, cfg.edge_dim, cfg.n_heads
        self.n_heads, self.head_dim = heads, h // heads
        self.qkv = nn.Linear(h, 3 * h)
        self.edge_film = nn.Linear(de, 2 * heads)  # per-head gate and bias of the scores
        self.edge_value = nn.Linear(heads * de, h)  # attention-pooled edges -> node update
        self.node_out = nn.Linear(h, h)
        self.pair_src, self.pair_dst = nn.Linear(h, de), nn.Linear(h, de, bias=False)
        self.score_to_edge = nn.Linear(heads, de, bias=False)
        self.time_node = nn.Linear(h, h)
        self.time_edge = nn.Linear(h, de)
        self.node_norm1, self.node_norm2 = nn.LayerNorm(h), nn.LayerNorm(h)
        self.edge_norm1, self.edge_norm2 = nn.LayerNorm(de), nn.LayerNorm(de)
        self.node_ff = _feed_forward(h, cfg.ff_mult, cfg.dropout)
        self.edge_ff = _feed_forward(de, cfg.ff_mult, cfg.dropout)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: Tensor, e: Tensor, temb: Tensor) -> tuple[Tensor, Tensor]:
        """``x [B, N, h]``, ``e [B, N, N, de]``, ``temb [B, h]`` -> updated ``(x, e)``."""
        b, n, h = x.shape
        q, k, v = (z.view(b, n, self.n_heads, self.head_dim) for z in self.qkv(x).chunk(3, dim=-1))
        scores = torch.einsum("bihd,bjhd->bijh", q, k) / math.sqrt(self.head_dim)  # [B, N(i), N(j), H]
        gate, bias = self.edge_film(e).chunk(2, dim=-1)  # [B, N, N, H] each
        scores = scores * (1.0 + gate) + bias  # FiLM of the scores by the directed edge features
        attn = torch.softmax(scores, dim=2)  # over the source nodes j
        pooled = torch.einsum("bijh,bjhd->bihd", attn, v).reshape(b, n, h)  # [B, N, h]
        # attention-weighted edge features e_ij carry edges (and their direction) into node i
        pooled_edges = torch.einsum("bijh,bijd->bihd", attn, e).reshape(b, n, -1)  # [B, N, H de]
        update = self.node_out(pooled) + self.edge_value(pooled_edges)
        x_new = self.node_norm1(x + self.dropout(update) + self.time_node(temb)[:, None])
        x_new = self.node_norm2(x_new + self.dropout(self.node_ff(x_new)))
        # edges from the node pair (source i, target j) and the pair's attention scores
        pair = self.pair_src(x)[:, :, None] + self.pair_dst(x)[:, None] + self.score_to_edge(scores)  # [B,N,N,de]
        e = self.edge_norm1(e + self.dropout(pair) + self.time_edge(temb)[:, None, None])
        e = self.edge_norm2(e + self.dropout(self.edge_ff(e)))
        return x_new, e


def _feed_forward(width: int, mult: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(width, mult * width), nn.GELU(), nn.Dropout(dropout), nn.Linear(mult * width, width))


class GraphTransformerDenoiser(MaskedDenoiser):
    """Predicts the clean graph's node and edge types from a noisy DAG and ``t / T``.

    Args:
        node_allowed: ``bool[N, K]`` the values each node may take (``SearchSpace.allowed[0]``).
        edge_allowed: ``bool[M, K_e]`` the values each upper-triangle entry may take.
        config: Network size (default :class:`DenoiserConfig`).

    Example:
        >>> from dgpo_env.search_spaces import NB201SearchSpace
        >>> net = GraphTransformerDenoiser.for_space(NB201SearchSpace())
        >>> x = torch.nn.functional.one_hot(torch.tensor([[0, 2, 3, 4, 5, 6, 2, 1]]), 7).float()
        >>> e = torch.nn.functional.one_hot(torch.zeros(1, 28, dtype=torch.long), 2).float()
        >>> node_logits, edge_logits = net(x, e, torch.tensor([0.5]))
        >>> tuple(node_logits.shape), tuple(edge_logits.shape)
        ((1, 8, 7), (1, 28, 2))
    """

    rows: Tensor  # buffers, typed for mypy
    cols: Tensor
    node_pe: Tensor

    def __init__(
        self, node_allowed: np.ndarray | Tensor, edge_allowed: np.ndarray | Tensor, config: DenoiserConfig | None = None
    ) -> None:
        super().__init__(node_allowed, edge_allowed)
        self.config = cfg = config or DenoiserConfig()
        n, k, ke = self.n_nodes, self.n_node_types, self.n_edge_types
        rows, cols = upper_indices(n)
        self.register_buffer("rows", torch.from_numpy(rows.copy()), persistent=False)
        self.register_buffer("cols", torch.from_numpy(cols.copy()), persistent=False)
        self.register_buffer("node_pe", sinusoidal_features(torch.arange(n), cfg.hidden_dim, 1.0), persistent=False)

        h, de = cfg.hidden_dim, cfg.edge_dim
        self.node_in = nn.Linear(k, h)
        self.edge_fwd_in = nn.Linear(ke, de, bias=False)
        self.edge_bwd_in = nn.Linear(ke, de, bias=False)
        self.direction = nn.Embedding(3, de)  # 0: forward i->j (i<j), 1: backward view (j<-i), 2: diagonal
        self.time_mlp = nn.Sequential(nn.Linear(cfg.time_dim, h), nn.GELU(), nn.Linear(h, h))
        self.layers = nn.ModuleList(_EdgeGatedAttention(cfg) for _ in range(cfg.n_layers))
        self.node_head = nn.Sequential(nn.Linear(h, h), nn.GELU(), nn.Linear(h, k))
        self.edge_head = nn.Sequential(nn.Linear(2 * de, de), nn.GELU(), nn.Linear(de, ke))

    def _edge_grid(self, edges: Tensor) -> Tensor:
        """Directed ``[B, N, N, de]`` edge features from upper-triangle one-hots ``[B, M, K_e]``."""
        b, n = edges.shape[0], self.n_nodes
        de = self.config.edge_dim
        fwd = self.edge_fwd_in(edges) + self.direction.weight[0]  # [B, M, de]
        bwd = self.edge_bwd_in(edges) + self.direction.weight[1]  # [B, M, de]
        grid = self.direction.weight[2].expand(b, n, n, de).clone()  # diagonal embedding everywhere
        grid[:, self.rows, self.cols] = fwd
        grid[:, self.cols, self.rows] = bwd
        return grid

    def trunk(self, x: Tensor, e: Tensor, temb: Tensor) -> tuple[Tensor, Tensor]:
        """The transformer layers on node features ``[B, N, h]`` and the directed grid ``[B, N, N, de]``.

        Equivariant to node permutations applied to ``x`` and to both axes of ``e``: all order
        information comes from the positional encoding and the forward/backward edge views.
        """
        for layer in self.layers:
            x, e = layer(x, e, temb)
        return x, e

    def forward(self, nodes: Tensor, edges: Tensor, t_frac: Tensor) -> tuple[Tensor, Tensor]:
        """Clean-graph logits.

        Args:
            nodes: ``[B, N, K]`` one-hot (or soft) noisy node types.
            edges: ``[B, M, K_e]`` one-hot noisy upper-triangle edge types.
            t_frac: ``[B]`` diffusion time ``t / T`` in ``[0, 1]``.

        Returns:
            ``(node_logits [B, N, K], edge_logits [B, M, K_e])``; disallowed values are ``-inf``.
        """
        self.check_inputs(nodes, edges, t_frac)
        nodes, edges = nodes.float(), edges.float()
        # t/T in [0, 1] is spread over the sinusoid frequencies as a position in 0..1000 (DDPM convention)
        temb = self.time_mlp(sinusoidal_features(t_frac, self.config.time_dim, TIME_SCALE))  # [B, h]
        x = self.node_in(nodes) + temb[:, None]  # [B, N, h]
        if self.config.positional_encoding:
            x = x + self.node_pe
        x, e = self.trunk(x, self._edge_grid(edges), temb)  # [B, N, h], [B, N, N, de]
        node_logits = self.node_head(x)  # [B, N, K]
        pair = torch.cat([e[:, self.rows, self.cols], e[:, self.cols, self.rows]], dim=-1)  # [B, M, 2 de]
        edge_logits = self.edge_head(pair)  # [B, M, K_e]
        return self.masked(node_logits, edge_logits)
