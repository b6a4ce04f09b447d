"""Writing and reading DGPO agent files: the bodies of ``DGPO.save`` and ``DGPO.load``.

:meth:`~agents.dgpo.dgpo.DGPO.save` and :meth:`~agents.dgpo.dgpo.DGPO.load` call these functions, as SB3
keeps its file handling apart from its algorithms (``save_util``). The file layout and its trust rules are
in :mod:`agents.dgpo.files`; the methods' docstrings describe the arguments and the errors.
"""

from __future__ import annotations

import dataclasses
import io
import json
import pathlib
import warnings
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import torch
from stable_baselines3.common.type_aliases import GymEnv
from stable_baselines3.common.utils import check_for_correct_spaces

from agents.dgpo import files
from agents.dgpo.losses import TrajectoryBatch
from agents.diffusion.model import DiffusionModel, package_version
from agents.policies.compat import check_model_task
from dgpo_env.diffusion.marginals import Marginals
from dgpo_env.envs.graph_denoise import DenoiseTask

if TYPE_CHECKING:
    from agents.dgpo.dgpo import DGPO

SelfDGPO = TypeVar("SelfDGPO", bound="DGPO")


def save_agent(agent: DGPO, path: str | pathlib.Path | io.BufferedIOBase) -> None:
    """Write ``agent`` to ``path`` as plain data, atomically (:meth:`DGPO.save <agents.dgpo.dgpo.DGPO.save>`).

    Raises:
        ValueError: If a setting or policy keyword argument is not plain data.
        CheckpointError: If the model's weights hold NaN or infinite values.
    """
    model = agent.policy.model
    checkpoint = model.finite_checkpoint("save the agent")
    policy_kwargs = {k: v for k, v in agent.policy_kwargs.items() if k not in ("model", "task")}
    task = agent.policy.task
    assert agent.ep_info_buffer is None or isinstance(agent.ep_info_buffer, deque)
    meta = {
        "format": files.AGENT_FORMAT,
        "format_version": files.AGENT_FORMAT_VERSION,
        "package_version": package_version(),
        "class": type(agent).__name__,
        "settings": {name: files.plain_json(getattr(agent, name).to_dict(), name) for name in agent.settings_sources},
        "constructor": {
            "max_queries": agent.max_queries,
            "max_stale_batches": agent.max_stale_batches,
            "stats_window_size": agent._stats_window_size,
            "tensorboard_log": agent.tensorboard_log,
            "verbose": agent.verbose,
            "seed": agent.seed,
        },
        "n_envs": agent.n_envs,
        "policy_kwargs": files.encode_kwargs(policy_kwargs),
        "model_path": agent.policy.model_path,
        "task": {
            "search_space": task.search_space,
            "diffusion_steps": int(task.diffusion_steps),
            "timesteps": np.asarray(task.timesteps).tolist(),
            "prior_nodes": task.prior.nodes.tolist(),
            "prior_edges": task.prior.edges.tolist(),
        },
        "observation_space": files.encode_space(agent.observation_space),
        "action_space": files.encode_space(agent.action_space),
        "state": files.plain_json(
            {
                "num_timesteps": agent.num_timesteps,
                "total_timesteps": agent._total_timesteps,
                "n_updates": agent._n_updates,
                "episode_num": agent._episode_num,
                "progress_remaining": agent._current_progress_remaining,
                "n_queries": agent.n_queries,
                "best": agent.best,
                "stale_batches": agent.stale_batches,
                "stop_reason": agent.stop_reason,
                "normalizer": {
                    "mean": agent.normalizer.mean,
                    "std": agent.normalizer.std,
                    "n_updates": agent.normalizer.n_updates,
                },
                "ep_info_buffer": list(agent.ep_info_buffer or []),
                "extra": agent._extra_state(),
            },
            "state",
        ),
    }
    tensors = {
        "policy": {k: v for k, v in agent.policy.state_dict().items() if not k.startswith("model.")},
        "optimizer": agent.policy.optimizer.state_dict(),
        "generator": agent._generator.get_state(),
    }
    if agent.reference_model is not None:  # the starting model (KL term, exploration copies, restarts)
        tensors["reference"] = agent.reference_model.state_dict()
    if agent.explore_archive.kept is not None:  # the kept starting-model trajectories (DGPOConfig.explore_memory)
        tensors["explore_memory"] = dataclasses.asdict(agent.explore_archive.kept)
    members = {
        files.META: json.dumps(meta, indent=1, allow_nan=True).encode("utf-8"),
        files.MODEL: files.torch_bytes(checkpoint),
        files.STATE: files.torch_bytes(tensors),
    }
    files.write_agent_file(path, members)


def load_agent(
    cls: type[SelfDGPO],
    path: str | pathlib.Path | io.BufferedIOBase,
    env: GymEnv | None,
    device: torch.device | str,
    **kwargs: Any,
) -> SelfDGPO:
    """An agent of ``cls`` read from ``path`` (:meth:`DGPO.load <agents.dgpo.dgpo.DGPO.load>`); nothing is unpickled.

    Raises:
        UnsafeAgentFileError: If the file carries pickled objects.
        AgentFileError: If the file is missing, damaged or not a DGPO agent file.
        CheckpointError: If its model is damaged or holds NaN or infinite weights.
        ValueError: If the file was saved by another class, or ``env``'s spaces or task (search space,
            ``T``, step schedule, prior) differ from the saved ones.
    """
    meta, checkpoint, tensors, source = files.read_agent_file(path)
    settings = meta.get("settings")
    if not isinstance(settings, dict):
        raise files.AgentFileError(f"{source}: the settings are missing")
    foreign = [name for name in settings if name not in cls.settings_sources]
    if foreign:
        raise ValueError(
            f"the saved agent has settings {', '.join(foreign)} that {cls.__name__} does not use; "
            "load it with the class that saved it"
        )
    missing = [name for name in cls.settings_sources if name not in settings]
    if missing:
        raise ValueError(
            f"the saved agent ({meta.get('class')}) has no {', '.join(missing)} settings, which "
            f"{cls.__name__} needs; load it with the class that saved it"
        )
    try:
        model = DiffusionModel.from_checkpoint(checkpoint, source=f"{source} ({files.MODEL})")
        task_data = meta["task"]
        task = DenoiseTask(
            search_space=str(task_data["search_space"]),
            diffusion_steps=int(task_data["diffusion_steps"]),
            timesteps=np.asarray(task_data["timesteps"], dtype=np.int64),
            prior=Marginals(np.asarray(task_data["prior_nodes"]), np.asarray(task_data["prior_edges"])),
        )
        policy_kwargs = {**files.decode_kwargs(meta["policy_kwargs"], source), "model": model, "task": task}
        constructor = dict(meta["constructor"])
        constructor_n_envs = int(meta["n_envs"])
        sources: dict[str, Any] = {name: cls.settings_classes[name](**values) for name, values in settings.items()}
        observation_space = files.decode_space(meta["observation_space"], source)
        action_space = files.decode_space(meta["action_space"], source)
        state = dict(meta["state"])
    except (KeyError, TypeError, AttributeError) as err:
        raise files.AgentFileError(f"{source} is damaged: {type(err).__name__}: {err}") from err
    agent = cls(
        "GraphDiffusionPolicy",
        env,
        **sources,
        **constructor,
        policy_kwargs=policy_kwargs,
        device=device,
        _init_setup_model=False,
    )
    if agent.env is None:
        agent.observation_space, agent.action_space = observation_space, action_space
        agent.n_envs = int(constructor_n_envs)
    else:
        check_for_correct_spaces(agent.env, observation_space, action_space)
        # the saved policy acts on the saved schedule's steps: an env of another schedule would fail at learn
        env_task = agent.env.get_attr("task")[0]
        check_model_task(model, env_task)
        saved_steps, env_steps = np.asarray(task.timesteps).tolist(), np.asarray(env_task.timesteps).tolist()
        if saved_steps != env_steps:
            raise ValueError(
                f"the agent was saved for the step schedule {saved_steps[:-1]} ({len(saved_steps) - 1} steps) but "
                f"env steps through {env_steps[:-1]}; load it with an env of n_steps={len(saved_steps) - 1}"
            )
    agent.__dict__.update(kwargs)  # SB3's load: attributes to change; settings are folded into the config
    agent._setup_model()
    agent.policy.model_path = meta.get("model_path")
    missing_keys, unexpected = agent.policy.load_state_dict(tensors.get("policy", {}), strict=False)
    if unexpected or any(not key.startswith("model.") for key in missing_keys):
        raise files.AgentFileError(
            f"{source}: the policy weights do not fit (missing {missing_keys}, unexpected {unexpected})"
        )
    if getattr(agent, "restart_after", 0) and "reference" not in tensors:
        raise ValueError(
            f"{source} was saved without a copy of the model its fine-tuning started from, so restarts would go "
            "back to the loaded weights; load it with restart_after=0, or start a new agent from the pretrained "
            "model with restart_after=... (docs/dgpo.md §4)"
        )
    try:
        agent.policy.optimizer.load_state_dict(tensors["optimizer"])
        if agent.reference_model is not None and "reference" in tensors:
            agent.reference_model.load_state_dict(tensors["reference"])
        if "explore_memory" in tensors:
            agent.explore_archive.kept = TrajectoryBatch(**tensors["explore_memory"])
        if "seed" not in kwargs:
            agent._generator.set_state(tensors["generator"])
        restore_state(agent, state)
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise files.AgentFileError(f"{source} is damaged: {type(err).__name__}: {err}") from err
    continue_count(agent)
    return agent


def continue_count(agent: DGPO) -> None:
    """Keep a loaded agent's query count and budget exact when its environments' ledger holds fewer cells.

    An agent resumed on another ledger (a fresh in-memory benchmark) would otherwise count from that
    ledger's zero and spend its whole ``max_queries`` again. Its count continues from the saved one
    (``query_offset``: the cells the ledger does not hold), and the ledger's budget is what is left; a
    cell looked up before counts again if it is looked up anew. A warning says so and names the exact way:
    resume on the run's own ledger (an ``SQLiteLedger`` file, docs/ledger.md).
    """
    ledger = agent.ledger
    if ledger is None or ledger.n_queries >= agent.n_queries:
        return
    agent.query_offset = agent.n_queries - ledger.n_queries
    left = None if agent.max_queries is None else max(0, agent.max_queries - agent.n_queries)
    if left:  # with none left the agent is at its budget and learn() stops at once
        ledger.set_budget(ledger.n_queries + left)
    warnings.warn(
        f"the agent had counted {agent.n_queries} distinct cells but its environments' query ledger holds "
        f"{ledger.n_queries}: its count continues from {agent.n_queries}"
        + ("" if left is None else f" with {left} of max_queries={agent.max_queries} left")
        + " (a cell looked up before counts again); resume on the run's own ledger (SQLiteLedger) for an exact count",
        stacklevel=3,
    )


def restore_state(agent: DGPO, state: dict[str, Any]) -> None:
    """Put back the bookkeeping :func:`save_agent` stored (its ``state`` entry), then the subclass's extra state."""
    agent.num_timesteps = int(state["num_timesteps"])
    agent._total_timesteps = int(state["total_timesteps"])
    agent._n_updates = int(state["n_updates"])
    agent._episode_num = int(state["episode_num"])
    agent._current_progress_remaining = float(state["progress_remaining"])
    agent.n_queries = int(state["n_queries"])
    agent.best = state["best"]
    agent.stale_batches = int(state["stale_batches"])
    agent.stop_reason = state["stop_reason"]
    normalizer = state["normalizer"]
    agent.normalizer.mean = None if normalizer["mean"] is None else float(normalizer["mean"])
    agent.normalizer.std = None if normalizer["std"] is None else float(normalizer["std"])
    agent.normalizer.n_updates = int(normalizer["n_updates"])
    agent.ep_info_buffer = deque(state["ep_info_buffer"], maxlen=agent._stats_window_size)
    agent._restore_extra_state(state["extra"])


class AgentFilesMixin:
    """``save``/``load`` of a DGPO agent as plain data (SB3's signatures; nothing unpickled).

    Must precede the SB3 algorithm class in the bases, so these replace ``BaseAlgorithm.save``/``load``;
    subclasses add their own state through :meth:`_extra_state` and :meth:`_restore_extra_state`.
    """

    def save(
        self,
        path: str | pathlib.Path | io.BufferedIOBase,
        exclude: Iterable[str] | None = None,
        include: Iterable[str] | None = None,
    ) -> None:
        """Write the agent to ``path`` (``.zip`` appended without a suffix) as plain data, atomically.

        The file (:mod:`agents.dgpo.files`) holds the settings, the spaces, the environment task, the
        bookkeeping (queries, best cell, reward normaliser, :meth:`_extra_state`) as JSON, the fine-tuned
        model's checkpoint and the other tensors (policy, optimizer, generator) for
        ``torch.load(weights_only=True)``: :meth:`load` unpickles nothing (README.md, "Files and trust").
        It is written whole to a temporary file and renamed over ``path``
        (:func:`dgpo_env.io.atomic_write_bytes`), so a failed save leaves an existing file as it was.

        Args:
            path: The file, or an open binary file.
            exclude: Not supported (SB3's argument; every part of the agent is saved).
            include: Not supported (SB3's argument).

        Raises:
            ValueError: If a setting or policy keyword argument is not plain data (e.g. a learning-rate
                schedule), or ``exclude`` / ``include`` is given.
            CheckpointError: If the model's weights hold NaN or infinite values.
        """
        if exclude or include:
            raise ValueError(f"{type(self).__name__}.save saves the whole agent; exclude= and include= do not apply")
        save_agent(self, path)  # type: ignore[arg-type]

    @classmethod
    def load(  # type: ignore[misc]  # cls is a DGPO class: the mixin only ever precedes DGPO
        cls: type[SelfDGPO],
        path: str | pathlib.Path | io.BufferedIOBase,
        env: GymEnv | None = None,
        device: torch.device | str = "cpu",
        custom_objects: dict[str, Any] | None = None,
        print_system_info: bool = False,
        force_reset: bool = True,
        **kwargs: Any,
    ) -> SelfDGPO:
        """Read an agent written by :meth:`save`; nothing in the file is unpickled.

        Args:
            path: The file (``.zip`` appended when ``path`` has no suffix and does not exist), or an open
                binary file.
            env: The environment to continue in (its spaces must be the saved ones); ``None``: predict only.
            device: Torch device.
            custom_objects: Not supported (SB3's replacement of unpickled objects; the file has none).
            print_system_info: Not supported (the file records the package version only).
            force_reset: Reset the environment before the next ``learn`` (always the case here).
            **kwargs: Attributes to change when loading, as SB3's ``load`` (settings such as
                ``batch_size``; ``learning_rate``; ``seed`` re-seeds the generator instead of restoring it).

        Raises:
            UnsafeAgentFileError: If the file carries pickled objects (an agent saved by Stable-Baselines3's
                own ``save``, or a crafted file); nothing in it runs.
            AgentFileError: If the file is missing, damaged or not a DGPO agent file.
            CheckpointError: If its model is damaged or holds NaN or infinite weights.
            ValueError: If the file was saved by another class (``EliteDGPO`` vs ``DGPO``), or ``env``'s
                spaces differ from the saved ones.
        """
        if custom_objects:
            raise ValueError(f"{cls.__name__} agent files hold no pickled objects: custom_objects does not apply")
        del print_system_info, force_reset
        return load_agent(cls, path, env, device, **kwargs)

    def _extra_state(self) -> dict[str, Any]:
        """JSON-ready state a subclass adds to the agent file; none here."""
        return {}

    def _restore_extra_state(self, extra: dict[str, Any]) -> None:
        """Put back what :meth:`_extra_state` saved; nothing here."""


__all__ = ["AgentFilesMixin", "load_agent", "restore_state", "save_agent"]
