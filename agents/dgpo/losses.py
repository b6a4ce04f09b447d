"""DGPO's policy-gradient losses on stored denoising trajectories (docs/dgpo.md §1-§2).

A batch holds ``B`` trajectories of ``L`` steps: graphs ``G_{t_0} .. G_{t_L}`` (``t_0 = T``,
``t_L = 0``) as ``nodes [B, L + 1, N]``, ``edges [B, L + 1, M]`` and ``times [L + 1]``.

* **eager** (GDPO, default): ``-A · mean_{k ∈ S} log p̂_θ(G_0 | G_{t_k})`` — the denoiser's
  clean-graph prediction scored against the trajectory's *final* graph;
* **ddpo**: ``-A · mean_{k ∈ S} log p_θ(G_{t_{k+1}} | G_{t_k})`` — the per-step reverse transition
  (DDPO's REINFORCE form, reported by GDPO to work poorly on graphs).

``S`` is a random subset of ``⌈f L⌉``-ish steps per trajectory (official fraction ``f = 0.3``,
``ppo_sr``); a mean over ``S`` (instead of a sum) keeps the loss scale independent of ``L``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from agents.diffusion.model import DiffusionModel, DivergenceError

Gradient = Literal["eager", "ddpo"]
GRADIENTS: tuple[str, ...] = ("eager", "ddpo")

TIMESTEP_FRACTION = 0.3
"""Official NB201 / GDPO ``ppo_sr``: share of a trajectory's timesteps in each loss (docs/dgpo.md §3)."""


@dataclass(frozen=True)
class TrajectoryBatch:
    """Whole denoising trajectories with their outcomes.

    Attributes:
        nodes: ``int64[B, L + 1, N]`` node types of ``G_{t_0} .. G_{t_L}`` (the last is ``G_0``).
        edges: ``int64[B, L + 1, M]`` edge types.
        times: ``int64[L + 1]`` the schedule ``T .. 0``.
        rewards: ``float64[B]`` terminal rewards.
        valid: ``bool[B]`` whether ``G_0`` is a valid cell.
        keys: ``B`` canonical keys (``None`` when invalid).
        val_acc: ``float64[B]`` mean validation accuracy (percent; NaN when invalid).
    """

    nodes: Tensor
    edges: Tensor
    times: Tensor
    rewards: Tensor
    valid: Tensor
    keys: list[str | None]
    val_acc: Tensor

    def __post_init__(self) -> None:
        b, l1 = self.nodes.shape[:2]
        assert self.edges.shape[:2] == (b, l1) and self.times.shape == (l1,), "inconsistent trajectory shapes"
        assert self.rewards.shape == (b,) and self.valid.shape == (b,) and len(self.keys) == b
        assert int(self.times[-1]) == 0, "trajectories must end at t = 0"

    @property
    def size(self) -> int:
        """Number of trajectories ``B``."""
        return int(self.nodes.shape[0])

    @property
    def n_steps(self) -> int:
        """Steps per trajectory ``L``."""
        return int(self.nodes.shape[1]) - 1


def n_loss_steps(n_steps: int, fraction: float) -> int:
    """Steps per trajectory in a loss: ``max(1, round(fraction · n_steps))``.

    Raises:
        ValueError: Unless ``0 < fraction <= 1``.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"timestep fraction must be in (0, 1], got {fraction}")
    return max(1, round(fraction * n_steps))


def sample_step_subsets(n_traj: int, n_steps: int, k: int, generator: torch.Generator) -> Tensor:
    """``int64[n_traj, k]``: for each trajectory, ``k`` distinct step indices in ``0 .. n_steps - 1``."""
    assert 1 <= k <= n_steps
    return torch.rand(n_traj, n_steps, generator=generator).argsort(dim=1)[:, :k]


def clean_log_likelihood(
    model: DiffusionModel, nodes_t: Tensor, edges_t: Tensor, t: Tensor, nodes0: Tensor, edges0: Tensor
) -> Tensor:
    """``log p̂_θ(G_0 | G_t)`` summed over nodes and edges: ``[B]`` (differentiable).

    Fixed positions contribute ``log 1 = 0``. ``G_0`` must hold allowed values only.
    """
    node_logits, edge_logits = model.logits(nodes_t, edges_t, t)  # [B, N, K], [B, M, K_e]
    node_lp = torch.log_softmax(node_logits, -1).gather(2, nodes0[:, :, None])[:, :, 0]  # [B, N]
    edge_lp = torch.log_softmax(edge_logits, -1).gather(2, edges0[:, :, None])[:, :, 0]  # [B, M]
    return node_lp.sum(1) + edge_lp.sum(1)


def trajectory_log_likelihood(
    model: DiffusionModel, batch: TrajectoryBatch, traj: Tensor, steps: Tensor, gradient: Gradient
) -> Tensor:
    """Mean over the chosen steps of each chosen trajectory's log-likelihood term: ``[b]``.

    Args:
        model: The diffusion model being fine-tuned.
        batch: The trajectories.
        traj: ``int64[b]`` trajectory indices.
        steps: ``int64[b, k]`` step indices per trajectory.
        gradient: ``"eager"`` (``log p̂_θ(G_0 | G_t)``) or ``"ddpo"`` (``log p_θ(G_s | G_t)``).
    """
    b, k = steps.shape
    rows = traj[:, None].expand(b, k).reshape(-1)  # [b k]
    cols = steps.reshape(-1)  # [b k]
    nodes_t, edges_t, t = batch.nodes[rows, cols], batch.edges[rows, cols], batch.times[cols]
    if gradient == "eager":
        logp = clean_log_likelihood(model, nodes_t, edges_t, t, batch.nodes[rows, -1], batch.edges[rows, -1])
    elif gradient == "ddpo":
        s = batch.times[cols + 1]
        logp = model.log_prob(nodes_t, edges_t, t, batch.nodes[rows, cols + 1], batch.edges[rows, cols + 1], s)
    else:
        raise ValueError(f"gradient must be one of {GRADIENTS}, got {gradient!r}")
    logp = logp.view(b, k)
    if bool(logp.isnan().any()):
        raise DivergenceError(
            "training diverged: log p̂_θ(G_0 | G_t) of a sampled graph is NaN (the model's weights are no longer "
            "finite); lower the learning rate, or start again from the pretrained model"
        )
    if not bool(torch.isfinite(logp).all()):
        raise RuntimeError("a sampled graph has probability 0 under the model it was sampled from")
    return logp.mean(1)


def freeze_layers(model: DiffusionModel, fraction: float) -> list[str]:
    """Freeze the first ``⌊fraction · n_layers⌋`` transformer layers (and, then, the input embeddings).

    The official NB201 fine-tuning freezes 75% of the layers (docs/dgpo.md §3). The input embeddings
    (the denoiser's sub-modules registered before ``layers``) feed the frozen layers, so they are
    frozen with them; the heads and the remaining layers stay trainable.

    Args:
        model: The model whose ``denoiser.layers`` (an ``nn.ModuleList``) are frozen in place.
        fraction: Share of layers to freeze, in ``[0, 1]``.

    Returns:
        Names of the frozen sub-modules.

    Raises:
        ValueError: If ``fraction`` is outside ``[0, 1]`` or the denoiser has no ``layers`` list.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"freeze fraction must be in [0, 1], got {fraction}")
    layers = getattr(model.denoiser, "layers", None)
    if not isinstance(layers, nn.ModuleList):
        raise ValueError(f"{type(model.denoiser).__name__} has no `layers` ModuleList; use freeze_fraction=0")
    n_frozen = int(fraction * len(layers) + 1e-9)
    if n_frozen == 0:
        return []
    frozen: list[tuple[str, nn.Module]] = [(f"layers.{i}", layers[i]) for i in range(n_frozen)]
    for name, module in model.denoiser.named_children():  # registration order: inputs, layers, heads
        if name == "layers":
            break
        frozen.append((name, module))
    for _, module in frozen:
        module.requires_grad_(False)
    return [name for name, _ in frozen]
