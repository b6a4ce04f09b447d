"""Agreement between a diffusion model and a denoising environment (docs/environment.md §5).

A diffusion policy is the reverse of *one* noise process: search space, ``T``, noise schedule and
prior ``p(G_T)``. Stepping an environment built with another process would silently give wrong
actions, so :func:`check_model_task` refuses it with a message that names the mismatch and the fix.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
from gymnasium import spaces

from agents.diffusion.model import DiffusionModel
from dgpo_env.envs.graph_denoise import DenoiseTask

PRIOR_ATOL = 1e-6
"""Largest difference between the model's and the environment's prior probabilities still accepted."""

ModelSpec = DiffusionModel | str | Path
"""A diffusion model, or the path of a checkpoint written by :meth:`DiffusionModel.save`."""


def resolve_model(model: ModelSpec | None, copy_model: bool = True) -> DiffusionModel:
    """Return a :class:`DiffusionModel` for ``model``.

    Args:
        model: A model or a checkpoint path.
        copy_model: Deep-copy a given model object, so fine-tuning never changes the caller's model.

    Returns:
        The model (a copy, or freshly loaded from the checkpoint).

    Raises:
        ValueError: If ``model`` is missing or of the wrong type (a
            :class:`~agents.diffusion.model.CheckpointError` for a bad checkpoint).
    """
    if model is None:
        raise ValueError(
            "a graph-diffusion policy needs a pretrained model: pass policy_kwargs={'model': <DiffusionModel or "
            "checkpoint path>, 'task': env.unwrapped.task}"
        )
    if isinstance(model, DiffusionModel):
        return copy.deepcopy(model) if copy_model else model
    if isinstance(model, str | Path):
        return DiffusionModel.load(model)
    raise ValueError(f"model must be a DiffusionModel or a checkpoint path, got {type(model).__name__}")


def check_model_task(model: DiffusionModel, task: DenoiseTask | None) -> None:
    """Raise ``ValueError`` unless ``task`` (the environment's) matches ``model``'s noise process.

    Checks, in order: the search space, ``T``, the step schedule (from ``T`` down to 0, strictly
    decreasing) and the prior marginals.

    Args:
        model: The diffusion model.
        task: ``env.unwrapped.task`` of the environment the policy will act in.

    Raises:
        ValueError: Naming the first mismatch and how to fix it.
    """
    if not isinstance(task, DenoiseTask):
        raise ValueError(
            "a graph-diffusion policy needs the environment's task: pass policy_kwargs={'model': ..., "
            f"'task': env.unwrapped.task}} (a DenoiseTask), got {type(task).__name__}"
        )
    if task.search_space != model.space.name:
        raise ValueError(
            f"search space mismatch: the environment generates {task.search_space!r} cells but the model was "
            f"pretrained on {model.space.name!r}; use a checkpoint pretrained on {task.search_space!r} or an "
            f"environment of the {model.space.name!r} space"
        )
    if task.diffusion_steps != model.diffusion_steps:
        raise ValueError(
            f"diffusion steps mismatch: the environment uses T={task.diffusion_steps} but the model was trained "
            f"with T={model.diffusion_steps}; build the env with diffusion_steps=model.diffusion_steps "
            f"(={model.diffusion_steps})"
        )
    times = np.asarray(task.timesteps)
    if times.ndim != 1 or times.size < 2 or times[0] != model.diffusion_steps or times[-1] != 0:
        raise ValueError(
            f"step schedule mismatch: the environment's schedule {times.tolist()} must run from "
            f"T={model.diffusion_steps} down to 0; build the env with diffusion_steps=model.diffusion_steps"
        )
    if np.any(np.diff(times) >= 0):
        raise ValueError(f"step schedule {times.tolist()} must be strictly decreasing")
    prior = model.noise.marginals
    for part in ("nodes", "edges"):
        mine, theirs = getattr(prior, part), getattr(task.prior, part)
        if mine.shape != theirs.shape or not np.allclose(mine, theirs, atol=PRIOR_ATOL):
            gap = float(np.abs(mine - theirs).max()) if mine.shape == theirs.shape else float("nan")
            raise ValueError(
                f"prior mismatch: the environment draws G_T from other {part} marginals than the model's "
                f"(largest difference {gap:.3g}); build the env with prior=model.noise.marginals"
            )


def check_model_spaces(model: DiffusionModel, observation_space: spaces.Space, action_space: spaces.Space) -> None:
    """Raise ``ValueError`` unless the spaces are a :class:`GraphDenoiseEnv`'s for ``model``'s search space.

    Args:
        model: The diffusion model.
        observation_space: Expected ``Dict(nodes Box[N], edges Box[M], t Box[1] with high T)``.
        action_space: Expected ``MultiDiscrete(model.space.nvec)``.

    Raises:
        ValueError: Naming the mismatch.
    """
    space = model.space
    if not isinstance(action_space, spaces.MultiDiscrete) or not np.array_equal(action_space.nvec, space.nvec):
        raise ValueError(
            f"action space mismatch: expected MultiDiscrete(nvec={space.nvec.tolist()}) of the {space.name!r} "
            f"space, got {action_space}; use the model with an environment of its search space"
        )
    expected = {"nodes": (space.n_nodes,), "edges": (space.n_edges,), "t": (1,)}
    if not isinstance(observation_space, spaces.Dict) or set(observation_space.spaces) != set(expected):
        raise ValueError(
            f"observation space mismatch: expected a Dict with keys {sorted(expected)} (a GraphDenoiseEnv), "
            f"got {observation_space}"
        )
    for key, shape in expected.items():
        sub = observation_space[key]
        if not isinstance(sub, spaces.Box) or sub.shape != shape:
            raise ValueError(f"observation space mismatch: {key!r} must be a Box of shape {shape}, got {sub}")
    t_space = observation_space["t"]
    assert isinstance(t_space, spaces.Box)
    t_high = int(np.asarray(t_space.high).reshape(-1)[0])
    if t_high != model.diffusion_steps:
        raise ValueError(
            f"diffusion steps mismatch: the observation's time runs to {t_high} but the model was trained with "
            f"T={model.diffusion_steps}; build the env with diffusion_steps=model.diffusion_steps"
        )
