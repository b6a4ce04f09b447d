"""Pretraining the graph-diffusion model on a benchmark's cells (docs/diffusion.md §7).

The loss is DiGress's: noise a training cell ``G_0`` to ``G_t`` at a uniformly random ``t ∈ 1..T``
and score the denoiser's clean-graph prediction ``p̂_θ(G_0 | G_t)`` by cross-entropy against ``G_0``::

    loss = CE_nodes + λ_E · CE_edges      (+ λ_y · CE_y, unused)

DiGress's ``lambda_train = [λ_E, λ_y]`` and the official DGPO setting is ``[5, 0]``
(docs/diffusion.md §7): edges weigh 5 times the nodes and there is no graph-level target. Each CE is the
mean over the *free* positions of its kind (fixed positions have a single allowed value, so their
CE is exactly 0 and would only dilute the mean). On NAS-Bench-201 every edge is fixed, so the loss
is the node term alone.

Training sets are chosen by :func:`~agents.diffusion.training_cells.select_training_cells` (re-exported
here): every cell of the space, a random ``fraction`` of it, and/or the cells whose validation accuracy is
below ``max_val_acc``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.nn.functional import cross_entropy
from tqdm.auto import tqdm

from agents.diffusion.architectures import AnyDenoiserConfig, check_trainable
from agents.diffusion.denoiser import DenoiserConfig
from agents.diffusion.mlp_denoiser import MLPDenoiserConfig
from agents.diffusion.model import DiffusionModel, DivergenceError, non_finite_tensors
from agents.diffusion.training_cells import CellSelection, check_selection, select_training_cells
from dgpo_env.benchmarks.base import Benchmark
from dgpo_env.diffusion.marginals import Marginals
from dgpo_env.diffusion.schedule import DEFAULT_DIFFUSION_STEPS
from dgpo_env.search_spaces.base import SearchSpace
from dgpo_env.search_spaces.dag import DAG
from dgpo_env.validation import check_bool, check_choice, check_count, check_real

LAMBDA_TRAIN: tuple[float, float] = (5.0, 0.0)
"""DiGress/DGPO ``lambda_train = [λ_E, λ_y]``: edge-loss weight and graph-level-loss weight (docs/diffusion.md §7)."""

LR_SCHEDULES = ("cosine", "constant")
"""Allowed :attr:`PretrainConfig.lr_schedule` values."""

FILTER_THRESHOLD_NB201 = 85.0
"""The paper's out-of-distribution filter on NB201: pretrain on cells with validation accuracy < 85% (§4)."""


@dataclass(frozen=True)
class PretrainConfig:
    """Hyper-parameters of :func:`pretrain`.

    The official run is 2,000 epochs, batch 512, lr 2e-4 for an 8 x 256 model on a GPU
    (docs/diffusion.md §7); the defaults here fit the small CPU model on all 15,625 NB201 cells in
    under a minute on one CPU core (522 steps, 9 epochs; ``benchmarks/pretrain.py`` measures the time
    and the samples). Spaces with free edges learn more slowly: the shipped NB-101 and toy models
    use 1,500 steps at lr 2e-3 (the defaults until the NB201 run was cut to 500 steps at lr 4e-3).

    Training length is ``steps`` gradient steps (the same compute whatever the data-set size), or
    ``epochs`` passes over the training cells when ``epochs`` is given.

    Attributes:
        steps: Gradient steps (rounded up to whole epochs) when ``epochs`` is ``None``.
        epochs: Passes over the training cells; overrides ``steps``.
        batch_size: Cells per gradient step.
        lr: AdamW learning rate (peak).
        lr_schedule: ``"cosine"`` (decay to ``lr_final_ratio · lr`` over all steps) or ``"constant"``.
        lr_final_ratio: Final / peak learning rate of the cosine schedule.
        weight_decay: AdamW weight decay.
        edge_weight: ``λ_E`` (:data:`LAMBDA_TRAIN`).
        grad_clip: Gradient-norm clip (``None``: off).
        val_fraction: Share of the selected cells held out for the validation loss.
        val_every: Compute the validation loss every this many epochs (and after the last).
        diffusion_steps: ``T``.
        marginal_smoothing: Pseudo-count of :meth:`Marginals.from_cells` (the prior ``m``).
        seed: Seeds initialisation, batching, noise and the validation split.
        denoiser: Network architecture and size: a :class:`DenoiserConfig` (the graph transformer, the
            default) or an :class:`~agents.diffusion.mlp_denoiser.MLPDenoiserConfig` (the fast MLP).
    """

    steps: int = 500
    epochs: int | None = None
    batch_size: int = 256
    lr: float = 4e-3
    lr_schedule: str = "cosine"
    lr_final_ratio: float = 0.02
    weight_decay: float = 1e-2
    edge_weight: float = LAMBDA_TRAIN[0]
    grad_clip: float | None = 1.0
    val_fraction: float = 0.05
    val_every: int = 5
    diffusion_steps: int = DEFAULT_DIFFUSION_STEPS
    marginal_smoothing: float = 0.0
    seed: int = 0
    denoiser: AnyDenoiserConfig = field(default_factory=DenoiserConfig)

    def __post_init__(self) -> None:
        """Validate every field (no coercion: ``2.9`` is not a count, ``"1e-3"`` not a rate).

        Raises:
            TypeError: For a field of the wrong type (``denoiser`` must be a :class:`DenoiserConfig` or an
                :class:`~agents.diffusion.mlp_denoiser.MLPDenoiserConfig`).
            ValueError: For a field out of range.
        """
        for name in ("steps", "batch_size", "val_every", "diffusion_steps"):
            check_count(f"PretrainConfig.{name}", getattr(self, name), minimum=1)
        if self.epochs is not None:
            check_count("PretrainConfig.epochs", self.epochs, minimum=1)
        check_real("PretrainConfig.lr", self.lr, 0.0, open_minimum=True)
        check_choice("PretrainConfig.lr_schedule", self.lr_schedule, LR_SCHEDULES)
        check_real("PretrainConfig.lr_final_ratio", self.lr_final_ratio, 0.0, 1.0)
        check_real("PretrainConfig.weight_decay", self.weight_decay, 0.0)
        check_real("PretrainConfig.edge_weight", self.edge_weight, 0.0)
        if self.grad_clip is not None:
            check_real("PretrainConfig.grad_clip", self.grad_clip, 0.0, open_minimum=True)
        if check_real("PretrainConfig.val_fraction", self.val_fraction, 0.0, 1.0) == 1.0:
            raise ValueError(f"PretrainConfig.val_fraction must be in [0, 1), got {self.val_fraction!r}")
        check_real("PretrainConfig.marginal_smoothing", self.marginal_smoothing, 0.0)
        check_count("PretrainConfig.seed", self.seed, minimum=0)
        if not isinstance(self.denoiser, DenoiserConfig | MLPDenoiserConfig):
            raise TypeError(
                f"PretrainConfig.denoiser must be a DenoiserConfig or an MLPDenoiserConfig, got {self.denoiser!r} "
                f"({type(self.denoiser).__name__})"
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (checkpoint-safe); ``denoiser`` as its own ``to_dict()`` (an MLP's carries its tag)."""
        return {**asdict(self), "denoiser": self.denoiser.to_dict()}

    def n_epochs(self, n_train: int) -> int:
        """Epochs to run on ``n_train`` cells: ``epochs``, or enough whole epochs for ``steps``."""
        if self.epochs is not None:
            return self.epochs
        batches = -(-n_train // self.batch_size)
        return max(1, -(-self.steps // batches))


def cells_to_tensors(cells: Sequence[DAG]) -> tuple[Tensor, Tensor]:
    """Stack cells into ``(nodes int64[C, N], edges int64[C, M])``."""
    nodes = torch.from_numpy(np.stack([c.nodes for c in cells]))
    edges = torch.from_numpy(np.stack([c.edges for c in cells]))
    return nodes, edges


def denoising_loss(
    model: DiffusionModel,
    nodes0: Tensor,
    edges0: Tensor,
    generator: torch.Generator,
    edge_weight: float = LAMBDA_TRAIN[0],
) -> tuple[Tensor, Tensor, Tensor]:
    """The pretraining loss on a batch of clean graphs at random times ``t ∈ 1..T``.

    Args:
        model: The model.
        nodes0: ``int64[B, N]`` clean node types.
        edges0: ``int64[B, M]`` clean edge types.
        generator: Draws ``t`` and the noise.
        edge_weight: ``λ_E``.

    Returns:
        ``(loss, node_ce, edge_ce)`` scalars; each CE is the mean over free positions of its kind
        (0 when there are none).
    """
    batch = nodes0.shape[0]
    t = torch.randint(1, model.diffusion_steps + 1, (batch,), generator=generator)
    nodes_t, edges_t = model.noise.forward_sample(nodes0, edges0, t, generator)
    node_logits, edge_logits = model.logits(nodes_t, edges_t, t)  # [B, N, K], [B, M, K_e]
    free = ~torch.from_numpy(model.space.fixed_mask.copy())
    node_free, edge_free = free[: model.space.n_nodes], free[model.space.n_nodes :]
    node_ce = _masked_ce(node_logits[:, node_free], nodes0[:, node_free])
    edge_ce = _masked_ce(edge_logits[:, edge_free], edges0[:, edge_free])
    return node_ce + edge_weight * edge_ce, node_ce, edge_ce


def _masked_ce(logits: Tensor, target: Tensor) -> Tensor:
    """Mean cross-entropy over ``[B, P]`` positions (``0`` for ``P = 0``)."""
    if target.numel() == 0:
        return logits.new_zeros(())
    return cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1))


def pretrain(
    space: SearchSpace,
    cells: Sequence[DAG],
    config: PretrainConfig | None = None,
    progress: bool = True,
    info: dict[str, Any] | None = None,
    callback: Callable[[int, dict[str, list[float]]], None] | None = None,
) -> tuple[DiffusionModel, dict[str, Any]]:
    """Train a fresh :class:`DiffusionModel` on ``cells``.

    The prior ``m`` is :meth:`Marginals.from_cells` of all ``cells``; a random ``val_fraction`` of
    them is held out for the validation loss, computed with a fixed generator so values are
    comparable across epochs. Everything is seeded by ``config.seed`` (the global torch RNG is
    forked, not touched).

    Args:
        space: The search space.
        cells: Valid training cells.
        config: Hyper-parameters.
        progress: Show a tqdm progress bar.
        info: Extra entries for the model's ``info`` (stored in checkpoints).
        callback: Called as ``callback(epoch, history)`` after every epoch.

    Returns:
        ``(model, history)``; ``history`` holds per-epoch ``train_loss``, ``node_loss``,
        ``edge_loss``, the ``val_epoch``/``val_loss`` pairs, ``wall_time_s``, ``n_train``,
        ``n_val``, ``n_parameters``, ``epochs`` and ``steps``. The model's ``info["train_cells"]``
        holds every selected cell (both splits) as flat ``uint8`` rows, the novelty reference.

    Raises:
        ValueError: If ``cells`` is empty or holds an invalid cell, or if the space fixes every entry.
        DivergenceError: If a training loss, or a weight at the end, is NaN or infinite (the training
            diverged, typically from too large a learning rate); no model is returned.
    """
    config = config or PretrainConfig()
    if not cells:
        raise ValueError("pretrain needs at least one training cell")
    if space.free_positions.size == 0:
        raise ValueError(
            f"every node and edge of the space {space.name!r} is fixed (one cell only): nothing to learn; "
            "let the types of some positions vary (for --graphs: give graphs that differ, or --choices all)"
        )
    for cell in cells:
        reason = space.validate(cell)
        if reason is not None:
            raise ValueError(f"training cell {cell} is not a valid {space.name} cell: {reason}")
    check_trainable(space, config.denoiser)
    marginals = Marginals.from_cells(space, cells, smoothing=config.marginal_smoothing)
    nodes, edges = cells_to_tensors(cells)
    flat = torch.cat([nodes, edges], 1)
    split = np.random.default_rng(config.seed).permutation(len(cells))
    n_val = round(config.val_fraction * len(cells)) if len(cells) > 1 else 0
    val_idx, train_idx = torch.from_numpy(split[:n_val]), torch.from_numpy(split[n_val:])
    model_info = {
        "pretrain_config": config.to_dict(),
        "n_train": len(train_idx),
        "n_val": n_val,
        "train_cells": flat.to(torch.uint8) if flat.max() < 256 else flat,
        **(info or {}),
    }
    model = DiffusionModel.create(space, marginals, config.diffusion_steps, config.denoiser, config.seed, model_info)
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    n_epochs = config.n_epochs(len(train_idx))
    total_steps = n_epochs * -(-len(train_idx) // config.batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, _lr_factor(config, total_steps))
    history: dict[str, Any] = {
        "train_loss": [],
        "node_loss": [],
        "edge_loss": [],
        "val_epoch": [],
        "val_loss": [],
        "n_train": len(train_idx),
        "n_val": n_val,
        "n_parameters": model.denoiser.n_parameters(),
        "epochs": n_epochs,
        "steps": total_steps,
    }
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)  # dropout, if any
        gen = torch.Generator().manual_seed(config.seed)
        bar = tqdm(range(1, n_epochs + 1), desc=f"pretrain {space.name}", disable=not progress, unit="epoch")
        for epoch in bar:
            model.train()
            sums = np.zeros(3)
            order = train_idx[torch.randperm(len(train_idx), generator=gen)]
            for step, batch in enumerate(order.split(config.batch_size), start=1):
                loss, node_ce, edge_ce = denoising_loss(model, nodes[batch], edges[batch], gen, config.edge_weight)
                if not bool(torch.isfinite(loss)):
                    bar.close()
                    raise DivergenceError(
                        f"pretraining diverged: the loss is {loss.item()} at epoch {epoch}, step {step} "
                        f"(lr={config.lr:g}); lower the learning rate (--lr) and train again"
                    )
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                if config.grad_clip is not None:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                optimiser.step()
                scheduler.step()
                sums += np.array([loss.item(), node_ce.item(), edge_ce.item()]) * len(batch)
            means = sums / len(train_idx)
            for key, value in zip(("train_loss", "node_loss", "edge_loss"), means.tolist(), strict=True):
                history[key].append(value)
            postfix = {"loss": f"{means[0]:.4f}"}
            if n_val and (epoch % config.val_every == 0 or epoch == n_epochs):
                val = validation_loss(model, nodes[val_idx], edges[val_idx], config.seed, config.edge_weight)
                history["val_epoch"].append(epoch)
                history["val_loss"].append(val)
                postfix["val"] = f"{val:.4f}"
            bar.set_postfix(postfix)
            if callback is not None:
                callback(epoch, history)
    model.eval()
    bad = non_finite_tensors(model.denoiser.state_dict())
    if bad:
        raise DivergenceError(
            f"pretraining diverged: {len(bad)} weight tensor(s) hold NaN or infinite values after the last step "
            f"(first: {bad[0]!r}; lr={config.lr:g}); lower the learning rate (--lr) and train again"
        )
    history["wall_time_s"] = time.perf_counter() - start
    model.info["final_train_loss"] = history["train_loss"][-1]
    if history["val_loss"]:
        model.info["final_val_loss"] = history["val_loss"][-1]
    return model, history


def _lr_factor(config: PretrainConfig, total_steps: int) -> Callable[[int], float]:
    """Multiplier of the peak learning rate after ``step`` optimiser steps."""
    if config.lr_schedule == "constant":
        return lambda step: 1.0
    low = config.lr_final_ratio

    def cosine(step: int) -> float:
        progress = min(step / max(total_steps, 1), 1.0)
        return low + (1.0 - low) * 0.5 * (1.0 + float(np.cos(np.pi * progress)))

    return cosine


@torch.no_grad()
def validation_loss(
    model: DiffusionModel, nodes0: Tensor, edges0: Tensor, seed: int, edge_weight: float = LAMBDA_TRAIN[0]
) -> float:
    """The loss on held-out cells with a fixed generator (same ``t`` and noise every call)."""
    was_training = model.training
    model.eval()
    gen = torch.Generator().manual_seed(seed + 1)
    total = 0.0
    for start in range(0, nodes0.shape[0], 1024):
        chunk = slice(start, start + 1024)
        loss, _, _ = denoising_loss(model, nodes0[chunk], edges0[chunk], gen, edge_weight)
        total += loss.item() * nodes0[chunk].shape[0]
    model.train(was_training)
    return total / nodes0.shape[0]


def pretrain_on_benchmark(
    benchmark: Benchmark | SearchSpace,
    config: PretrainConfig | None = None,
    fraction: float | None = None,
    max_val_acc: float | None = None,
    progress: bool = True,
    n_random: int | None = None,
) -> tuple[DiffusionModel, dict[str, Any]]:
    """Select a training set from ``benchmark`` (:func:`select_training_cells`) and :func:`pretrain` on it.

    ``benchmark`` may be a search space alone: a structure prior that reads no data (``info["benchmark"]``
    is then ``"space:<name>"``). The model's ``info`` records the benchmark, the selection rule and the
    queries it cost;
    ``history["n_queries"]`` repeats the query count.

    Raises:
        TypeError: For a ``config`` that is not a :class:`PretrainConfig`, a ``fraction`` or
            ``max_val_acc`` that is not a real number, an ``n_random`` that is not an integer, or a
            non-bool ``progress``.
        ValueError: For a ``fraction`` outside ``(0, 1]``, a non-finite ``max_val_acc``,
            ``n_random < 1``, or as :func:`select_training_cells` and :func:`pretrain`.
    """
    config = PretrainConfig() if config is None else config
    if not isinstance(config, PretrainConfig):
        raise TypeError(f"config must be a PretrainConfig or None, got {config!r} ({type(config).__name__})")
    fraction, max_val_acc, n_random = check_selection(fraction, max_val_acc, n_random)
    progress = check_bool("progress", progress)
    selection = select_training_cells(benchmark, fraction, max_val_acc, config.seed, n_random)
    space = benchmark if isinstance(benchmark, SearchSpace) else benchmark.search_space
    info = {
        "benchmark": f"space:{space.name}" if isinstance(benchmark, SearchSpace) else benchmark.name,
        "selection": selection.description,
        "fraction": fraction,
        "max_val_acc": max_val_acc,
        "n_selected": len(selection.cells),
        "n_candidates": selection.n_candidates,
        "selection_queries": selection.n_queries,
    }
    model, history = pretrain(space, selection.cells, config, progress, info)
    history["n_queries"] = selection.n_queries
    history["n_selected"] = len(selection.cells)
    return model, history


def pretraining_summary(model: DiffusionModel, history: dict[str, Any]) -> dict[str, Any]:
    """The figures every report of a :func:`pretrain_on_benchmark` run shows (JSON-ready).

    Returns:
        Selection rule, cells, selection queries, parameters, epochs, gradient steps, wall time and
        the final training and validation losses (``None`` when no validation set was held out).
    """
    return {
        "selection": model.info["selection"],
        "n_cells": history["n_selected"],
        "selection_queries": history["n_queries"],
        "n_parameters": history["n_parameters"],
        "epochs": history["epochs"],
        "gradient_steps": history["steps"],
        "wall_time_s": history["wall_time_s"],
        "final_train_loss": history["train_loss"][-1],
        "final_val_loss": history["val_loss"][-1] if history["val_loss"] else None,
    }


__all__ = [
    "LAMBDA_TRAIN",
    "LR_SCHEDULES",
    "CellSelection",
    "PretrainConfig",
    "cells_to_tensors",
    "denoising_loss",
    "pretrain",
    "pretrain_on_benchmark",
    "pretraining_summary",
    "select_training_cells",
    "validation_loss",
]
