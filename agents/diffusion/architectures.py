"""The denoiser architectures a :class:`~agents.diffusion.model.DiffusionModel` can use (docs/diffusion.md §6).

Two networks predict ``p̂_θ(G_0 | G_t)`` behind the same interface (``forward(nodes, edges, t_frac)``
returning masked logits, ``node_allowed``/``edge_allowed`` buffers, ``config``):

* ``"transformer"``: :class:`~agents.diffusion.denoiser.GraphTransformerDenoiser` (the default);
* ``"mlp"``: :class:`~agents.diffusion.mlp_denoiser.MLPDenoiser`, the fast one.

A checkpoint stores the configuration's ``to_dict()``; an MLP's carries ``"architecture": "mlp"`` and a
dictionary without the tag is a transformer's (every checkpoint written before the MLP existed).
"""

from __future__ import annotations

import os
from typing import Any, TypeAlias

import torch

from agents.diffusion.denoiser import DenoiserConfig, GraphTransformerDenoiser
from agents.diffusion.mlp_denoiser import MLP_ARCHITECTURE, MLPDenoiser, MLPDenoiserConfig
from dgpo_env.search_spaces.base import SearchSpace
from dgpo_env.validation import check_mapping

AnyDenoiserConfig: TypeAlias = DenoiserConfig | MLPDenoiserConfig
"""The configuration of either architecture."""

Denoiser: TypeAlias = GraphTransformerDenoiser | MLPDenoiser
"""Either denoiser network."""

ARCHITECTURES: dict[str, type[DenoiserConfig] | type[MLPDenoiserConfig]] = {
    DenoiserConfig.architecture: DenoiserConfig,
    MLP_ARCHITECTURE: MLPDenoiserConfig,
}
"""Architecture name -> its configuration class (default sizes: ``ARCHITECTURES[name]()``)."""


def build_denoiser(space: SearchSpace, config: AnyDenoiserConfig | None = None) -> Denoiser:
    """A freshly initialised denoiser of ``config``'s architecture with ``space``'s shapes and masks.

    Args:
        space: The search space.
        config: Either configuration; ``None`` is the default transformer.

    Raises:
        TypeError: If ``config`` is not a denoiser configuration.
    """
    if config is None or isinstance(config, DenoiserConfig):
        return GraphTransformerDenoiser.for_space(space, config)
    if isinstance(config, MLPDenoiserConfig):
        return MLPDenoiser.for_space(space, config)
    raise TypeError(f"config must be a DenoiserConfig or an MLPDenoiserConfig, got {type(config).__name__}")


def denoiser_config_from_dict(data: dict[str, Any]) -> AnyDenoiserConfig:
    """The configuration a checkpoint's ``denoiser_config`` describes (untagged: the transformer).

    Raises:
        TypeError: If ``data`` is not a mapping.
        ValueError: For an unknown architecture or unknown fields.
    """
    check_mapping("denoiser config", data)
    name = data.get("architecture", DenoiserConfig.architecture)
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown denoiser architecture {name!r}; known: {sorted(ARCHITECTURES)}")
    if name == DenoiserConfig.architecture:
        return DenoiserConfig.from_dict({key: value for key, value in data.items() if key != "architecture"})
    return MLPDenoiserConfig.from_dict(data)


TRAINING_BYTES_PER_PARAMETER = 16
"""float32 weight, gradient and AdamW's two moments: 4 · 4 bytes per parameter while training."""


def count_parameters(space: SearchSpace, config: AnyDenoiserConfig | None = None) -> int:
    """Parameters the denoiser of ``config`` would have on ``space``, counted without allocating its weights.

    The network is built on PyTorch's ``meta`` device (shapes only, no memory).
    """
    with torch.device("meta"):
        network = build_denoiser(space, config)
    return network.n_parameters()


def physical_memory_bytes() -> int | None:
    """This machine's physical memory in bytes, ``None`` where the OS does not say (``os.sysconf``)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def check_trainable(space: SearchSpace, config: AnyDenoiserConfig | None = None) -> int:
    """The denoiser's parameter count, after checking that training it fits in this machine's memory.

    Training holds :data:`TRAINING_BYTES_PER_PARAMETER` bytes per parameter before any activation, so a
    network whose weights, gradients and optimiser state alone exceed the physical memory cannot train here.

    Raises:
        ValueError: If it cannot: names the size and the settings to lower.
    """
    n_parameters = count_parameters(space, config)
    memory = physical_memory_bytes()
    needed = n_parameters * TRAINING_BYTES_PER_PARAMETER
    if memory is not None and needed > memory:
        raise ValueError(
            f"a denoiser of {n_parameters:,} parameters needs at least {needed / 2**30:.1f} GiB to train "
            f"(weights, gradients, AdamW state) and this machine has {memory / 2**30:.1f} GiB; "
            "choose a smaller network (dgpo pretrain --width, --layers; --edge-width and --heads for the transformer)"
        )
    return n_parameters
