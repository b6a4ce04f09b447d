"""Denoising-environment observations as integer graphs, and the critic's features.

SB3 hands a policy its observations as tensors: ``int64`` when they come straight from the
environment (``predict``), ``float32`` when they come from a rollout buffer or SB3's
preprocessing. :func:`graph_from_obs` turns either back into exact integer graphs.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from gymnasium import spaces
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import Tensor

from agents.diffusion.denoiser import TIME_SCALE, sinusoidal_features


class GraphBatch(NamedTuple):
    """A batch of graphs ``G_t`` with their time indices.

    Attributes:
        nodes: ``int64[B, N]`` node types.
        edges: ``int64[B, M]`` upper-triangle edge types.
        t: ``int64[B]`` diffusion time indices.
    """

    nodes: Tensor
    edges: Tensor
    t: Tensor


def as_index(x: Tensor) -> Tensor:
    """Integer-valued tensor (``int`` or exactly integral ``float``) -> ``int64``.

    Raises:
        ValueError: If a float entry is not integral (the observation was normalised or corrupted).
    """
    if x.is_floating_point():
        rounded = x.round()
        if not torch.equal(rounded, x):
            raise ValueError(
                "graph observations must hold integers; got non-integral values (do not normalise the "
                "observations of a denoising environment, e.g. with VecNormalize(norm_obs=True))"
            )
        x = rounded
    return x.to(torch.int64)


def graph_from_obs(obs: dict[str, Tensor]) -> GraphBatch:
    """Split a batched ``{"nodes", "edges", "t"}`` observation into integer tensors.

    Args:
        obs: ``nodes [B, N]``, ``edges [B, M]``, ``t [B, 1]`` (any numeric dtype).

    Returns:
        The :class:`GraphBatch`.
    """
    nodes, edges, t = as_index(obs["nodes"]), as_index(obs["edges"]), as_index(obs["t"])
    return GraphBatch(nodes.reshape(nodes.shape[0], -1), edges.reshape(edges.shape[0], -1), t.reshape(-1))


def _box(space: spaces.Dict, key: str) -> spaces.Box:
    """``space[key]`` as a 1-D ``Box``.

    Raises:
        ValueError: If it is missing or not a 1-D ``Box``.
    """
    sub = space.spaces.get(key)
    if not isinstance(sub, spaces.Box) or len(sub.shape) != 1:
        raise ValueError(f"observation {key!r} must be a 1-D Box (a GraphDenoiseEnv observation), got {sub}")
    return sub


class GraphCriticFeatures(BaseFeaturesExtractor):
    """Critic input: one-hot node and edge types, flattened, plus sinusoidal features of ``t / T``.

    Reads the sizes from the observation space: ``K = nodes.high + 1``, ``K_e = edges.high + 1``,
    ``T = t.high``. It has no parameters; the critic's MLP comes after it.

    Args:
        observation_space: A ``GraphDenoiseEnv`` observation space.
        time_dim: Width of the time features (even).
    """

    node_one_hot: Tensor  # float32[K, K] identity: row k is the one-hot of node type k
    edge_one_hot: Tensor  # float32[K_e, K_e] identity

    def __init__(self, observation_space: spaces.Dict, time_dim: int = 16) -> None:
        if time_dim < 2 or time_dim % 2:
            raise ValueError(f"time_dim must be an even number >= 2, got {time_dim}")
        nodes, edges, t = (_box(observation_space, key) for key in ("nodes", "edges", "t"))
        n_node_types, n_edge_types = int(nodes.high.max()) + 1, int(edges.high.max()) + 1
        features = nodes.shape[0] * n_node_types + edges.shape[0] * n_edge_types + time_dim
        super().__init__(observation_space, features)
        self.n_node_types, self.n_edge_types = n_node_types, n_edge_types
        self.diffusion_steps = int(t.high.reshape(-1)[0])
        self.time_dim = time_dim
        # one-hot rows looked up (one index_select) rather than built by one_hot (min/max, zeros, scatter, cast)
        self.register_buffer("node_one_hot", torch.eye(n_node_types), persistent=False)
        self.register_buffer("edge_one_hot", torch.eye(n_edge_types), persistent=False)

    def forward(self, observations: dict[str, Tensor]) -> Tensor:  # type: ignore[override]
        """``[B, N K + M K_e + time_dim]`` float features."""
        return self.graph_features(graph_from_obs(observations))

    def graph_features(self, graph: GraphBatch) -> Tensor:
        """:meth:`forward` of observations already turned into integer graphs."""
        batch = graph.nodes.shape[0]
        x = self.node_one_hot.index_select(0, graph.nodes.flatten()).view(batch, -1)  # [B, N K] one-hot
        e = self.edge_one_hot.index_select(0, graph.edges.flatten()).view(batch, -1)  # [B, M K_e] one-hot
        time = sinusoidal_features(graph.t.float() / self.diffusion_steps, self.time_dim, TIME_SCALE)  # [B, time_dim]
        return torch.cat([x, e, time], dim=1)
