"""DGPO's policy-gradient losses on stored denoising trajectories (docs/dgpo.md §1-§2).

A batch holds ``B`` trajectories of ``L`` steps: graphs ``G_{t_0} .. G_{t_L}`` (``t_0 = T``,
``t_L = 0``) as ``nodes [B, L + 1, N]``, ``edges [B, L + 1, M]`` and ``times [L + 1]``.

* **eager** (GDPO, default): ``-A · mean_{k ∈ S} log p̂_θ(G_0 | G_{t_k})`` — the denoiser's
  clean-graph prediction scored against the trajectory's *final* graph;
* **ddpo**: ``-A · mean_{k ∈ S} log p_θ(G_{t_{k+1}} | G_{t_k})`` — the per-step reverse transition
  (DDPO's REINFORCE form, reported by GDPO to work poorly on graphs).

``S`` is a random subset of ``⌈f L⌉``-ish steps per trajectory (official fraction ``f = 0.3``,
``ppo_sr``); a mean over ``S`` (instead of a sum) keeps the loss scale independent of ``L``.

Two optional terms of this project, both off in DGPO as published (docs/dgpo.md §3): an entropy bonus on
``p̂_θ(· | G_t)`` and a KL term between ``p̂_θ(· | G_t)`` and a fixed reference model's prediction
(:func:`policy_gradient_loss`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

from agents.diffusion.model import DiffusionModel, DivergenceError

Gradient = Literal["eager", "ddpo"]
GRADIENTS: tuple[str, ...] = ("eager", "ddpo")
KLDirection = Literal["reverse", "forward"]
KL_DIRECTIONS: tuple[str, ...] = ("reverse", "forward")
"""``"reverse"``: ``KL(p̂_θ ‖ p̂_ref)`` (mode-seeking); ``"forward"``: ``KL(p̂_ref ‖ p̂_θ)`` (mass-covering)."""

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
    return _clean_terms(model, nodes_t, edges_t, t, nodes0, edges0).log_likelihood


@dataclass(frozen=True)
class LossTerms:
    """Per-trajectory terms of DGPO's loss, each a mean over the chosen steps: ``[b]`` (differentiable).

    Attributes:
        log_likelihood: The gradient's log-likelihood (:func:`trajectory_log_likelihood`).
        entropy: Entropy of the clean-graph prediction ``p̂_θ(· | G_t)`` (nats, summed over nodes and
            edges), or ``None`` when not asked for.
        kl: ``KL(p̂_θ(· | G_t) ‖ p̂_ref(· | G_t))`` to a reference model (nats, summed over nodes and edges),
            or ``None`` without a reference.
    """

    log_likelihood: Tensor
    entropy: Tensor | None = None
    kl: Tensor | None = None


def _masked(log_probs: Tensor) -> Tensor:
    """``log_probs`` with the ``-inf`` of disallowed values set to 0: ``p · log p`` and its gradient are 0, not NaN."""
    return log_probs.masked_fill(torch.isneginf(log_probs), 0.0)


def _clean_terms(
    model: DiffusionModel,
    nodes_t: Tensor,
    edges_t: Tensor,
    t: Tensor,
    nodes0: Tensor,
    edges0: Tensor,
    entropy: bool = False,
    reference: DiffusionModel | None = None,
    kl_direction: KLDirection = "reverse",
) -> LossTerms:
    """``log p̂_θ(G_0 | G_t)`` ``[B]`` and, if asked, the entropy of ``p̂_θ(· | G_t)`` and its KL to ``reference``.

    ``kl_direction``: ``"reverse"`` for ``KL(p̂_θ ‖ p̂_ref)``, ``"forward"`` for ``KL(p̂_ref ‖ p̂_θ)``.

    All from one forward pass of ``model`` (and one of ``reference``, without gradient), summed over nodes
    and edges; disallowed values (probability 0) and fixed positions (one allowed value) add 0.
    """
    node_logits, edge_logits = model.logits(nodes_t, edges_t, t)  # [B, N, K], [B, M, K_e]
    node_lsm, edge_lsm = torch.log_softmax(node_logits, -1), torch.log_softmax(edge_logits, -1)
    node_lp = node_lsm.gather(2, nodes0[:, :, None])[:, :, 0]  # [B, N]
    edge_lp = edge_lsm.gather(2, edges0[:, :, None])[:, :, 0]  # [B, M]
    logp = node_lp.sum(1) + edge_lp.sum(1)
    h: Tensor | None = None
    kl: Tensor | None = None
    if entropy:
        h = -sum((lsm.exp() * _masked(lsm)).sum((1, 2)) for lsm in (node_lsm, edge_lsm))  # type: ignore[assignment]
    if reference is not None:
        with torch.no_grad():
            ref_nodes, ref_edges = reference.logits(nodes_t, edges_t, t)
        pairs = ((node_lsm, torch.log_softmax(ref_nodes, -1)), (edge_lsm, torch.log_softmax(ref_edges, -1)))
        if kl_direction == "reverse":  # KL(p̂_θ ‖ p̂_ref): mode-seeking
            kl = sum((lsm.exp() * (_masked(lsm) - _masked(ref))).sum((1, 2)) for lsm, ref in pairs)  # type: ignore[assignment]
        else:  # KL(p̂_ref ‖ p̂_θ): mass-covering
            kl = sum((ref.exp() * (_masked(ref) - _masked(lsm))).sum((1, 2)) for lsm, ref in pairs)  # type: ignore[assignment]
    return LossTerms(logp, h, kl)


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
    return trajectory_terms(model, batch, traj, steps, gradient).log_likelihood


def trajectory_terms(
    model: DiffusionModel,
    batch: TrajectoryBatch,
    traj: Tensor,
    steps: Tensor,
    gradient: Gradient,
    entropy: bool = False,
    reference: DiffusionModel | None = None,
    kl_direction: KLDirection = "reverse",
) -> LossTerms:
    """:func:`trajectory_log_likelihood` and, if asked, the entropy and the KL to ``reference``, over the same steps.

    The entropy and the KL are those of the denoiser's clean-graph prediction ``p̂_θ(· | G_t)`` at each
    chosen intermediate graph, for either ``gradient`` (``DGPOConfig.entropy_coef`` and ``kl_coef`` weigh them).
    """
    b, k = steps.shape
    rows = traj[:, None].expand(b, k).reshape(-1)  # [b k]
    cols = steps.reshape(-1)  # [b k]
    nodes_t, edges_t, t = batch.nodes[rows, cols], batch.edges[rows, cols], batch.times[cols]
    nodes0, edges0 = batch.nodes[rows, -1], batch.edges[rows, -1]
    if gradient == "eager":
        terms = _clean_terms(model, nodes_t, edges_t, t, nodes0, edges0, entropy, reference, kl_direction)
        logp = terms.log_likelihood
    elif gradient == "ddpo":
        s = batch.times[cols + 1]
        logp = model.log_prob(nodes_t, edges_t, t, batch.nodes[rows, cols + 1], batch.edges[rows, cols + 1], s)
        terms = LossTerms(logp)
        if entropy or reference is not None:
            terms = _clean_terms(model, nodes_t, edges_t, t, nodes0, edges0, entropy, reference, kl_direction)
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
    return LossTerms(
        logp.mean(1),
        None if terms.entropy is None else terms.entropy.view(b, k).mean(1),
        None if terms.kl is None else terms.kl.view(b, k).mean(1),
    )


def policy_gradient_loss(
    model: DiffusionModel,
    batch: TrajectoryBatch,
    traj: Tensor,
    steps: Tensor,
    advantages: Tensor,
    gradient: Gradient,
    entropy_coef: float = 0.0,
    reference: DiffusionModel | None = None,
    kl_coef: float = 0.0,
    kl_direction: KLDirection = "reverse",
) -> tuple[Tensor, LossTerms]:
    """DGPO's loss on trajectories ``traj`` of ``batch``: ``-Σ_i (A_i · ℓ_i + λ · H_i - β · KL_i) / B`` (a scalar).

    ``ℓ_i`` is :func:`trajectory_log_likelihood` over ``steps``; ``H_i`` and ``KL_i`` the mean entropy of
    ``p̂_θ(· | G_t)`` and its KL to ``reference`` over the same steps (:func:`trajectory_terms`);
    ``λ = entropy_coef``, ``β = kl_coef`` and ``B = batch.size`` (a mean over the whole batch whichever
    trajectories ``traj`` holds). A term whose weight is 0 (published: both) is not computed.

    Args:
        model: The diffusion model being fine-tuned.
        batch: The trajectories.
        traj: ``int64[b]`` trajectory indices.
        steps: ``int64[b, k]`` step indices per trajectory.
        advantages: ``[B]`` advantages of the whole batch.
        gradient: ``"eager"`` or ``"ddpo"``.
        entropy_coef: ``λ >= 0``.
        reference: The model the KL is measured to (needed when ``kl_coef > 0``).
        kl_coef: ``β >= 0``.
        kl_direction: ``"reverse"``: ``KL(p̂_θ ‖ p̂_ref)``; ``"forward"``: ``KL(p̂_ref ‖ p̂_θ)``.

    Returns:
        ``(loss, terms)``.

    Raises:
        ValueError: If ``kl_coef > 0`` without a ``reference``.
    """
    if kl_coef > 0.0 and reference is None:
        raise ValueError("kl_coef > 0 needs the reference model the KL is measured to")
    terms = trajectory_terms(
        model, batch, traj, steps, gradient, entropy_coef > 0.0, reference if kl_coef > 0.0 else None, kl_direction
    )
    objective = advantages[traj].to(terms.log_likelihood.dtype) * terms.log_likelihood
    if terms.entropy is not None:
        objective = objective + entropy_coef * terms.entropy
    if terms.kl is not None:
        objective = objective - kl_coef * terms.kl
    return -objective.sum() / batch.size, terms


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


def check_finite_loss(loss: torch.Tensor, what: str, n_updates: int, learning_rate: Any) -> None:
    """Raise :class:`~agents.diffusion.model.DivergenceError` if ``loss`` is NaN or infinite."""
    if not bool(torch.isfinite(loss).all()):
        raise DivergenceError(
            f"training diverged: {what} is {float(loss.detach())} after {n_updates} updates "
            f"(learning_rate={learning_rate}); lower the learning rate, or start again from the pretrained model"
        )
