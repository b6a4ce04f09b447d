"""An SB3 ``VecEnv`` whose environment copies are Ray actors: rewards of a batch computed concurrently on a cluster.

:class:`RayVecEnv` has the shape of SB3's ``SubprocVecEnv`` (a list of environment factories; the
same methods), but each copy lives in a Ray actor with the resources you ask for (CPUs, GPUs,
custom resources), on any node of the cluster Ray is connected to. :meth:`RayVecEnv.step_async`
sends every copy its action at once and :meth:`RayVecEnv.step_wait` gathers the answers, so the
final denoising step of a batch — where the reward (the benchmark look-up, or the training of
the generated network) is computed — runs on all actors at the same time.

Semantics are SB3's: a copy whose episode ends is reset at once, its last observation is
``info["terminal_observation"]`` and ``info["TimeLimit.truncated"]`` says whether it was cut by a
time limit; rewards are ``float32`` and observations are stacked in the observation space's
``dtype``, as ``DummyVecEnv`` returns them, so a seeded run gives the same numbers on both.

The copies must count into **one** query ledger for the query budget to be exact: give them an
:class:`~dgpo_env.ledger.SQLiteLedger` (one machine) or a ledger served by Ray (a cluster), see
docs/ledger.md and docs/ray.md. An in-process ledger cannot be sent to an actor and is refused.

Ray is imported only when a :class:`RayVecEnv` is built (``pip install "dgpo-env[ray]"``).
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from stable_baselines3.common.env_util import is_wrapped
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvObs, VecEnvStepReturn

from dgpo_env.ledger.ray import check_feasible, require_ray
from dgpo_env.validation import check_callable, check_mapping, check_real

RESOURCE_OPTIONS = ("num_cpus", "num_gpus")
"""Actor options set by :class:`RayVecEnv`'s own arguments (not allowed in ``actor_options``)."""

StepResult = tuple[Any, float, bool, dict[str, Any], dict[str, Any]]
"""One copy's answer to a step: observation, reward, done, info, reset info (empty unless it was reset)."""


class EnvActor:
    """One environment copy inside a Ray actor (the remote side of :class:`RayVecEnv`).

    Args:
        env_fn: Builds the environment (called once, in the actor's process).

    Raises:
        TypeError: If ``env_fn`` does not return a ``gymnasium.Env``.
    """

    def __init__(self, env_fn: Callable[[], gym.Env]) -> None:
        env = env_fn()
        if not isinstance(env, gym.Env):
            raise TypeError(f"the environment factory must return a gymnasium.Env, got {type(env).__name__}")
        self.env = env

    def spaces(self) -> tuple[spaces.Space, spaces.Space]:
        """``(observation_space, action_space)`` of the copy."""
        return self.env.observation_space, self.env.action_space

    def step(self, action: np.ndarray) -> StepResult:
        """One step with SB3's auto-reset: a finished episode is reset and its last observation kept in ``info``."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        done = bool(terminated or truncated)
        info["TimeLimit.truncated"] = bool(truncated and not terminated)
        reset_info: dict[str, Any] = {}
        if done:
            info["terminal_observation"] = obs
            obs, reset_info = self.env.reset()
        return obs, float(reward), done, info, reset_info

    def reset(self, seed: int | None, options: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        """``env.reset(seed=seed, options=options)``; empty ``options`` are not passed (as SB3 does)."""
        return self.env.reset(seed=seed, **({"options": options} if options else {}))

    def render(self) -> Any:
        """``env.render()``."""
        return self.env.render()

    def get_attr(self, name: str) -> Any:
        """An attribute of the copy, looked up through its wrappers."""
        return self.env.get_wrapper_attr(name)

    def has_attr(self, name: str) -> bool:
        """Whether :meth:`get_attr` finds ``name``."""
        try:
            self.env.get_wrapper_attr(name)
        except AttributeError:
            return False
        return True

    def set_attr(self, name: str, value: Any) -> None:
        """Set an attribute on the outermost wrapper (as SB3's VecEnvs do)."""
        setattr(self.env, name, value)

    def env_method(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Call a method of the copy, looked up through its wrappers."""
        return self.env.get_wrapper_attr(name)(*args, **kwargs)

    def is_wrapped(self, wrapper_class: type[gym.Wrapper]) -> bool:
        """Whether the copy is wrapped in ``wrapper_class``."""
        return is_wrapped(self.env, wrapper_class)

    def close(self) -> None:
        """``env.close()``."""
        self.env.close()


def writable(value: Any) -> Any:
    """``value`` with every read-only array in it (through dicts, lists, tuples and dataclasses) made a writable copy.

    Ray hands NumPy arrays back as read-only views of its object store; SB3's VecEnvs return
    arrays the caller may change (and torch warns on read-only ones), so do the same. A dataclass
    (e.g. the environment's :class:`~dgpo_env.envs.graph_denoise.DenoiseTask`) is rebuilt with
    ``dataclasses.replace`` when it holds such an array.
    """
    if isinstance(value, np.ndarray):
        return value if value.flags.writeable else value.copy()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = [f.name for f in dataclasses.fields(value) if f.init]
        changed = {name: writable(getattr(value, name)) for name in fields}
        if all(changed[name] is getattr(value, name) for name in fields):
            return value
        return dataclasses.replace(value, **changed)
    if isinstance(value, dict):
        return {key: writable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):  # not a named tuple
        return type(value)(writable(item) for item in value)
    return value


def stack_observations(observations: Sequence[Any], space: spaces.Space) -> VecEnvObs:
    """One observation per copy stacked along a new first axis, in the space's ``dtype``.

    Args:
        observations: ``n_envs`` observations (arrays, or dicts / tuples of arrays for ``Dict`` /
            ``Tuple`` spaces).
        space: The copies' observation space.

    Returns:
        An array ``[n_envs, *shape]``, or a dict / tuple of such arrays.
    """
    stacked: Any
    if isinstance(space, spaces.Dict):
        stacked = {
            key: stack_observations([obs[key] for obs in observations], sub) for key, sub in space.spaces.items()
        }
    elif isinstance(space, spaces.Tuple):
        stacked = tuple(stack_observations([obs[i] for obs in observations], sub) for i, sub in enumerate(space.spaces))
    else:
        stacked = np.stack(observations).astype(space.dtype, copy=False)
    return stacked


class RayVecEnv(VecEnv):
    """SB3's ``VecEnv`` with one Ray actor per environment copy; all copies step at the same time.

    Ray must be running or startable: ``ray.init()`` (a local runtime) or ``ray.init(address="auto")``
    (the cluster this machine joined with ``ray start``) before building it; otherwise the first
    actor starts a local runtime, as Ray does.

    Args:
        env_fns: One factory per copy, each building a fresh environment in its actor (what
            ``make_vec_env(..., vec_env_cls=RayVecEnv)`` passes). Everything a factory refers to is
            pickled to the actor, so an environment's ledger must be one other processes can reach.
        num_cpus: CPUs Ray reserves for each actor (may be fractional; ``0`` for copies that only wait
            on a remote trainer).
        num_gpus: GPUs Ray reserves for each actor (fractional shares allowed).
        actor_options: Further options of ``ray.remote`` for every actor, e.g.
            ``{"resources": {"trainer": 1}}``, ``{"scheduling_strategy": "SPREAD"}`` or a
            ``runtime_env``; not ``num_cpus``/``num_gpus``.

    Raises:
        ImportError: If Ray is not installed (the message gives the ``pip install`` line).
        TypeError: If ``env_fns`` is not a list of callables, a resource is not a number, or
            ``actor_options`` is not a mapping.
        ValueError: If ``env_fns`` is empty, a resource is negative, ``actor_options`` sets a
            resource that has its own argument, or the copies' spaces differ.
        LedgerError: If a factory carries an in-process query ledger (it cannot be sent to an actor).
        ray.exceptions.RayActorError: If a factory fails in its actor; Ray's message holds the factory's
            exception and traceback. The actors already started are ended.

    Example:
        >>> ledger = SQLiteLedger("runs/queries.sqlite", max_queries=300)  # doctest: +SKIP
        >>> env = make_vec_env(  # doctest: +SKIP
        ...     "dgpo_env/NB201-CIFAR10-v0", n_envs=8, vec_env_cls=RayVecEnv,
        ...     vec_env_kwargs={"num_cpus": 1}, env_kwargs={"ledger": ledger},
        ... )
    """

    def __init__(
        self,
        env_fns: Sequence[Callable[[], gym.Env]],
        num_cpus: float = 1.0,
        num_gpus: float = 0.0,
        actor_options: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(env_fns, Sequence) or isinstance(env_fns, (str, bytes)):
            raise TypeError(f"env_fns must be a list of environment factories, got {type(env_fns).__name__}")
        if not env_fns:
            raise ValueError("env_fns must hold at least one environment factory")
        for i, fn in enumerate(env_fns):
            check_callable(f"env_fns[{i}]", fn)
        options = dict(check_mapping("actor_options", actor_options or {}))
        clash = sorted(set(RESOURCE_OPTIONS) & set(options))
        if clash:
            raise ValueError(f"actor_options must not set {clash}; pass them as RayVecEnv arguments")
        options["num_cpus"] = check_real("num_cpus", num_cpus, minimum=0.0)
        options["num_gpus"] = check_real("num_gpus", num_gpus, minimum=0.0)
        self._ray = require_ray("RayVecEnv")
        self.actor_options = options
        if not self._ray.is_initialized():
            self._ray.init()  # what Ray's first remote call would do; the check below needs the cluster
        check_feasible(self._ray, options["num_cpus"], options["num_gpus"], "num_cpus / num_gpus")
        remote_class = self._ray.remote(EnvActor).options(**options)
        self.actors = [remote_class.remote(fn) for fn in env_fns]
        self._pending: list[Any] = []
        self.waiting = False
        self.closed = False
        try:  # every copy built (start-up is paid here, not in the first step) and with the same spaces
            all_spaces = self._ray.get([actor.spaces.remote() for actor in self.actors])
            different = [i for i, pair in enumerate(all_spaces) if pair != all_spaces[0]]
            if different:
                raise ValueError(
                    f"environment copies {different} have other observation or action spaces than copy 0: "
                    f"{all_spaces[different[0]]} vs {all_spaces[0]}"
                )
        except BaseException:
            for actor in self.actors:
                self._ray.kill(actor)
            raise
        super().__init__(len(self.actors), *all_spaces[0])

    # ------------------------------------------------------------------ stepping
    def step_async(self, actions: np.ndarray) -> None:
        """Send every copy its action; the copies step concurrently (gather with :meth:`step_wait`).

        Args:
            actions: ``[n_envs, *action_shape]``, one row per copy.

        Raises:
            ValueError: If ``actions`` does not have one row per copy.
        """
        if len(actions) != self.num_envs:
            raise ValueError(f"actions must have one row per environment copy ({self.num_envs}), got {len(actions)}")
        self._pending = [actor.step.remote(action) for actor, action in zip(self.actors, actions, strict=True)]
        self.waiting = True

    def step_wait(self) -> VecEnvStepReturn:
        """Gather the steps sent by :meth:`step_async`.

        Returns:
            ``(obs, rewards float32[n_envs], dones bool[n_envs], infos)``; a finished copy is already reset
            (``infos[i]["terminal_observation"]`` holds its last observation).

        Raises:
            Exception: The error a copy raised (Ray re-raises it as an instance of the original class).
        """
        try:
            results = self._ray.get(self._pending)
        finally:
            self._pending, self.waiting = [], False
        obs, rewards, dones, infos, reset_infos = zip(*results, strict=True)
        self.reset_infos = writable(list(reset_infos))
        return (
            stack_observations(obs, self.observation_space),
            np.array(rewards, dtype=np.float32),
            np.array(dones, dtype=bool),
            writable(list(infos)),
        )

    def reset(self) -> VecEnvObs:
        """Reset every copy with the seeds and options set by :meth:`seed` / ``set_options`` (used once)."""
        refs = [actor.reset.remote(self._seeds[i], self._options[i]) for i, actor in enumerate(self.actors)]
        obs, reset_infos = zip(*self._ray.get(refs), strict=True)
        self.reset_infos = writable(list(reset_infos))
        self._reset_seeds()
        self._reset_options()
        return stack_observations(obs, self.observation_space)

    def close(self) -> None:
        """Close every copy and end its actor (a step in flight is awaited first)."""
        if self.closed:
            return
        if self.waiting:
            self._ray.wait(self._pending, num_returns=len(self._pending))
            self._pending, self.waiting = [], False
        try:
            self._ray.get([actor.close.remote() for actor in self.actors])
        finally:
            for actor in self.actors:
                self._ray.kill(actor)
            self.closed = True

    def get_images(self) -> Sequence[np.ndarray | None]:
        """Each copy's ``render()`` in ``rgb_array`` mode (``None`` per copy, with a warning, otherwise)."""
        if self.render_mode != "rgb_array":
            warnings.warn(
                f"the render mode is {self.render_mode}, but images need render_mode='rgb_array'", stacklevel=2
            )
            return [None] * self.num_envs
        return self._ray.get([actor.render.remote() for actor in self.actors])

    # ------------------------------------------------------------------ attributes and methods of the copies
    def _call(self, method: str, indices: VecEnvIndices, *args: Any) -> list[Any]:
        """Call ``method`` of the actors at ``indices`` concurrently and return their answers in order."""
        return writable(
            self._ray.get([getattr(self.actors[i], method).remote(*args) for i in self._get_indices(indices)])
        )

    def has_attr(self, attr_name: str) -> bool:
        """Whether every copy has ``attr_name`` (through its wrappers)."""
        return all(self._call("has_attr", None, attr_name))

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """``attr_name`` of the copies at ``indices`` (through their wrappers), pickled back from the actors."""
        return self._call("get_attr", indices, attr_name)

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Set ``attr_name`` to ``value`` on the copies at ``indices``."""
        self._call("set_attr", indices, attr_name, value)

    def env_method(
        self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **method_kwargs: Any
    ) -> list[Any]:
        """Call ``method_name`` on the copies at ``indices`` (concurrently); e.g. ``action_masks`` for MaskablePPO."""
        return self._call("env_method", indices, method_name, method_args, method_kwargs)

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        """Whether each copy at ``indices`` is wrapped in ``wrapper_class``."""
        return self._call("is_wrapped", indices, wrapper_class)


__all__ = ["EnvActor", "RayVecEnv", "stack_observations", "writable"]
