"""An MLP denoiser ``p̂_θ(G_0 | G_t)`` over the flattened graph (docs/diffusion.md §6).

The alternative to :class:`~agents.diffusion.denoiser.GraphTransformerDenoiser` for speed. A search
space's DAGs have a fixed size and their nodes a fixed (topological) order, so the graph can be read
as one vector: the one-hot node types ``[B, N, K]`` and upper-triangle edge types ``[B, M, K_e]``
flattened and concatenated, plus sinusoidal features of ``t / T``. A residual MLP maps it to the
logits of every entry. This is the denoiser of D3PM's small discrete experiments (an MLP over a
fixed-length sequence, Austin et al. 2021) applied to the graph's entries.

What it gives up: the transformer's equivariance to node permutations and its weight sharing
across positions, which do not matter for a fixed-order cell of 6 (NB201) or 26 (NB-101) free
entries. What it gains: about ten tensor operations per forward pass instead of about a hundred,
which is what a PPO gradient step on a CPU pays for (docs/environment.md §5).

Values a position may not take get logit ``-inf``, as in the transformer.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from agents.diffusion.denoiser import TIME_SCALE, sinusoidal_features
from agents.diffusion.denoiser_base import MaskedDenoiser
from dgpo_env.validation import check_count, check_mapping, check_real

MLP_ARCHITECTURE = "mlp"
"""The ``architecture`` tag an MLP denoiser's configuration carries in a checkpoint."""


@dataclass(frozen=True)
class MLPDenoiserConfig:
    """Size of an :class:`MLPDenoiser`.

    The defaults are this project's choice for a fast policy (docs/environment.md §5): one residual
    block of width 64 (24,112 parameters on NB201). On all NB201 cells its samples match the
    transformer's in validity, operation frequencies and accuracy (``benchmarks/pretrain.py --denoiser mlp``).

    Attributes:
        hidden_dim: Width of the hidden layers.
        n_blocks: Residual blocks (each LayerNorm, Linear, SiLU, Linear).
        time_dim: Width of the sinusoidal time features.
        dropout: Dropout rate in the residual branches.
    """

    architecture: ClassVar[str] = MLP_ARCHITECTURE
    hidden_dim: int = 64
    n_blocks: int = 1
    time_dim: int = 16
    dropout: float = 0.0

    def __post_init__(self) -> None:
        """Validate every field (no coercion).

        Raises:
            TypeError: For a field of the wrong type.
            ValueError: For a field out of range or an odd ``time_dim``.
        """
        for name in ("hidden_dim", "n_blocks", "time_dim"):
            check_count(f"MLPDenoiserConfig.{name}", getattr(self, name), minimum=1)
        if self.time_dim % 2:
            raise ValueError(f"MLPDenoiserConfig.time_dim must be even (sine and cosine pairs), got {self.time_dim!r}")
        if check_real("MLPDenoiserConfig.dropout", self.dropout, 0.0, 1.0) == 1.0:
            raise ValueError(f"MLPDenoiserConfig.dropout must be in [0, 1), got {self.dropout!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (checkpoint-safe), tagged with ``"architecture": "mlp"``."""
        return {"architecture": self.architecture, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MLPDenoiserConfig:
        """Inverse of :meth:`to_dict`.

        Raises:
            TypeError: If ``data`` is not a mapping.
            ValueError: On unknown keys or another architecture tag.
        """
        check_mapping("denoiser config", data)
        fields = dict(data)
        tag = fields.pop("architecture", cls.architecture)
        if tag != cls.architecture:
            raise ValueError(f"denoiser config is for architecture {tag!r}, not {cls.architecture!r}")
        unknown = set(fields) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown MLPDenoiserConfig fields {sorted(unknown)}")
        return cls(**fields)


class _ResidualBlock(nn.Module):
    """``h + W_2 SiLU(W_1 LayerNorm(h))`` (pre-norm residual MLP block).

    SiLU (swish), the activation of DDPM's denoiser (Ho et al. 2020), rather than the transformer's GELU:
    the same smooth shape, and its backward pass is about three times cheaper on a CPU.
    """

    def __init__(self, width: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(width), nn.Linear(width, width), nn.SiLU(), nn.Dropout(dropout), nn.Linear(width, width)
        )

    def forward(self, h: Tensor) -> Tensor:
        """``[B, width]`` -> ``[B, width]``."""
        return h + self.net(h)


class MLPDenoiser(MaskedDenoiser):
    """Predicts the clean graph's node and edge types from the flattened noisy DAG and ``t / T``.

    Same interface as :class:`~agents.diffusion.denoiser.GraphTransformerDenoiser`.

    Args:
        node_allowed: ``bool[N, K]`` the values each node may take (``SearchSpace.allowed[0]``).
        edge_allowed: ``bool[M, K_e]`` the values each upper-triangle entry may take.
        config: Network size (default :class:`MLPDenoiserConfig`).

    Raises:
        ValueError: If the masks have inconsistent shapes or a position allows no value.

    Example:
        >>> from dgpo_env.search_spaces import NB201SearchSpace
        >>> net = MLPDenoiser.for_space(NB201SearchSpace())
        >>> x = torch.nn.functional.one_hot(torch.tensor([[0, 2, 3, 4, 5, 6, 2, 1]]), 7).float()
        >>> e = torch.nn.functional.one_hot(torch.zeros(1, 28, dtype=torch.long), 2).float()
        >>> node_logits, edge_logits = net(x, e, torch.tensor([0.5]))
        >>> tuple(node_logits.shape), tuple(edge_logits.shape)
        ((1, 8, 7), (1, 28, 2))
    """

    def __init__(
        self,
        node_allowed: np.ndarray | Tensor,
        edge_allowed: np.ndarray | Tensor,
        config: MLPDenoiserConfig | None = None,
    ) -> None:
        super().__init__(node_allowed, edge_allowed)
        self.config = cfg = config or MLPDenoiserConfig()
        n, k, m, ke = self.n_nodes, self.n_node_types, self.n_edges, self.n_edge_types
        width_in = n * k + m * ke  # the flattened one-hot graph
        self.input = nn.Linear(width_in + cfg.time_dim, cfg.hidden_dim)
        # named `layers` (input before it, output after) as the transformer's, so DGPO's freeze_fraction applies
        self.layers = nn.ModuleList(_ResidualBlock(cfg.hidden_dim, cfg.dropout) for _ in range(cfg.n_blocks))
        self.output = nn.Sequential(nn.LayerNorm(cfg.hidden_dim), nn.SiLU(), nn.Linear(cfg.hidden_dim, width_in))

    def forward(self, nodes: Tensor, edges: Tensor, t_frac: Tensor) -> tuple[Tensor, Tensor]:
        """Clean-graph logits ``([B, N, K], [B, M, K_e])``, disallowed values ``-inf`` (as the transformer's).

        Inputs: noisy one-hot ``nodes [B, N, K]`` and ``edges [B, M, K_e]``, times ``t_frac [B]`` in ``[0, 1]``.

        Raises:
            ValueError: On inputs of the wrong shape (:meth:`~MaskedDenoiser.check_inputs`).
        """
        self.check_inputs(nodes, edges, t_frac)
        # t/T in [0, 1] spread over the sinusoid frequencies as a position in 0..1000 (as the transformer)
        temb = sinusoidal_features(t_frac, self.config.time_dim, TIME_SCALE)  # [B, time_dim]
        flat = torch.cat([nodes.float().flatten(1), edges.float().flatten(1), temb], dim=1)  # [B, NK + MK_e + d_t]
        return self.forward_flat(flat)

    def forward_flat(self, flat: Tensor) -> tuple[Tensor, Tensor]:
        """:meth:`forward` from the network's input vector: one-hot nodes and edges flattened, then time features.

        ``flat [B, N K + M K_e + time_dim]`` is what :meth:`forward` builds from its arguments; the
        diffusion policy's critic reads the same vector
        (:class:`~agents.policies.observations.GraphCriticFeatures`), so the policy computes it once.

        Raises:
            ValueError: If ``flat`` is not ``[B, N K + M K_e + time_dim]``.
        """
        logits = self.flat_logits(flat)  # [B, NK + MK_e]
        b = flat.shape[0]
        node_logits = logits[:, : self.n_nodes * self.n_node_types].view(b, self.n_nodes, self.n_node_types)
        edge_logits = logits[:, self.n_nodes * self.n_node_types :].view(b, self.n_edges, self.n_edge_types)
        return self.masked(node_logits, edge_logits)

    def flat_logits(self, flat: Tensor) -> Tensor:
        """The network's output before masking: ``[B, N K + M K_e]``, the nodes' logits then the edges', flattened.

        Values a position may not take are not yet ``-inf`` (:meth:`forward_flat` masks them); the
        diffusion policy picks and masks only the free positions' (``ScheduledReverseStep.free_logits``).

        Raises:
            ValueError: If ``flat`` is not ``[B, N K + M K_e + time_dim]``.
        """
        if flat.ndim != 2 or flat.shape[1] != self.input.in_features:
            raise ValueError(f"flat must be [B, {self.input.in_features}], got {list(flat.shape)}")
        h = self.input(flat)  # [B, hidden]
        for block in self.layers:
            h = block(h)
        return self.output(h)  # type: ignore[no-any-return]
