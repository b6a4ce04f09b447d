"""The action mask as part of the observation, for clients that read it there."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

MASK_KEY = "action_mask"
"""Default key of the mask: RLlib's action-masking example, TorchRL's ``ActionMask`` transform and PettingZoo use it."""


def _check_key(name: str, value: object) -> str:
    """``value`` if it is a non-empty string (a key of the observation ``Dict``)."""
    if not isinstance(value, str) or not value:
        raise TypeError(f"{name} must be a non-empty string (a key of the observation Dict), got {value!r}")
    return value


def mask_length(action_space: gym.Space[Any]) -> int:
    """Length of the flat action mask of ``action_space``: ``sum(nvec)`` or ``n``.

    Raises:
        TypeError: If ``action_space`` is neither a one-dimensional ``MultiDiscrete`` nor a ``Discrete`` space.
    """
    if isinstance(action_space, spaces.MultiDiscrete) and action_space.nvec.ndim == 1:
        return int(action_space.nvec.sum())
    if isinstance(action_space, spaces.Discrete):
        return int(action_space.n)
    raise TypeError(
        f"an action mask needs a Discrete or one-dimensional MultiDiscrete action space, got {action_space}"
    )


class ActionMaskObservation(gym.ObservationWrapper[dict[str, Any], Any, Any], gym.utils.RecordConstructorArgs):
    """Add the environment's action mask to every observation, under the key ``"action_mask"``.

    The mask is the flat vector of :meth:`~dgpo_env.envs.GraphDenoiseEnv.action_masks` (the sb3-contrib
    ``MaskablePPO`` contract, also in ``info["action_mask"]``): for a ``MultiDiscrete(nvec)`` action
    space, entry ``offset_i + v`` is 1 when entry ``i`` of the action may take the value ``v``
    (``offset_i = sum(nvec[:i])``), so the vector lines up with the concatenated per-entry logits of a
    multi-categorical policy. It is read from ``action_masks()`` at every ``reset`` and ``step``, so a mask
    that changes during an episode is reported as it is; ``action_masks()`` itself keeps working through
    this wrapper (``MaskablePPO`` still takes its masks from there).

    ## Observation Space

    ``Dict`` with the mask as ``MultiBinary(L)`` (``int8`` values 0/1, ``L = sum(nvec)``; Gymnasium's mask
    dtype, ``mask.astype(bool)`` for a boolean mask):

    * ``nest_key=None`` (default): the keys of the wrapped ``Dict`` observation (``nodes``, ``edges``, ``t``)
      plus ``mask_key``. One flat ``Dict`` is what Stable-Baselines3's ``MultiInputPolicy`` needs (it
      does not take nested ``Dict`` spaces). The wrapped observation must be a ``Dict``.
    * ``nest_key="observations"``: ``Dict(observations=<wrapped space>, action_mask=MultiBinary(L))``, the
      layout of RLlib's action-masking RLModule example (use it on top of
      :class:`~dgpo_env.wrappers.FlattenDenoiseObservation` for a ``Box`` under ``observations``).
      Tianshou's masked policies read ``obs.mask`` beside ``obs.obs``: ``nest_key="obs", mask_key="mask"``.

    ## Arguments

    * ``env``: an environment whose ``action_masks()`` (found through wrappers) returns the flat mask,
      with a ``Discrete`` or one-dimensional ``MultiDiscrete`` action space.
    * ``mask_key``: key of the mask, a non-empty string (default ``"action_mask"``).
    * ``nest_key``: ``None`` (add the mask beside the wrapped ``Dict``'s keys) or a non-empty string under
      which the wrapped observation is nested.

    Raises ``TypeError`` for an environment without ``action_masks()``, an unsupported action space, a
    non-``Dict`` observation with ``nest_key=None``, or keys that are not non-empty strings; ``ValueError``
    when the mask key collides with an observation key or ``action_masks()`` returns a vector of the wrong
    length.

    Example::

        import gymnasium as gym
        import dgpo_env
        from dgpo_env.wrappers import ActionMaskObservation

        env = ActionMaskObservation(gym.make("dgpo_env/ToyDAG-v0"))
        obs, info = env.reset(seed=0)  # obs keys: action_mask, edges, nodes, t

    ``gym.make(id, mask_in_obs=True)`` applies this wrapper (see :mod:`dgpo_env.registration`).
    """

    def __init__(self, env: gym.Env[Any, Any], mask_key: str = MASK_KEY, nest_key: str | None = None) -> None:
        mask_key = _check_key("mask_key", mask_key)
        if nest_key is not None:
            nest_key = _check_key("nest_key", nest_key)
        gym.utils.RecordConstructorArgs.__init__(self, mask_key=mask_key, nest_key=nest_key)
        gym.ObservationWrapper.__init__(self, env)
        try:
            masks = env.get_wrapper_attr("action_masks")
        except AttributeError:
            raise TypeError(
                f"ActionMaskObservation needs an environment with an action_masks() method, got {env}"
            ) from None
        self._masks: Callable[[], np.ndarray] = masks
        self._length = mask_length(env.action_space)
        self.mask_key = mask_key
        self.nest_key = nest_key
        mask_space = spaces.MultiBinary(self._length)
        inner = env.observation_space
        if nest_key is None:
            if not isinstance(inner, spaces.Dict):
                raise TypeError(
                    f"ActionMaskObservation with nest_key=None adds a key to a Dict observation, got {inner}; "
                    "pass nest_key='observations' to nest it"
                )
            if mask_key in inner.spaces:
                raise ValueError(f"mask_key {mask_key!r} is already a key of the observation {list(inner.spaces)}")
            self.observation_space = spaces.Dict({**inner.spaces, mask_key: mask_space})
        else:
            if nest_key == mask_key:
                raise ValueError(f"nest_key and mask_key must differ, both are {mask_key!r}")
            self.observation_space = spaces.Dict({nest_key: inner, mask_key: mask_space})

    def mask(self) -> np.ndarray:
        """``int8[L]``: the current action mask, checked for its length.

        Raises:
            ValueError: If ``action_masks()`` returns a vector of another shape.
        """
        mask = np.asarray(self._masks())
        if mask.shape != (self._length,):
            raise ValueError(f"action_masks() must return a flat vector of length {self._length}, got {mask.shape}")
        return mask.astype(np.int8)

    def observation(self, observation: Any) -> dict[str, Any]:
        """The wrapped observation with the mask added (see Observation Space)."""
        if self.nest_key is None:
            return {**observation, self.mask_key: self.mask()}
        return {self.nest_key: observation, self.mask_key: self.mask()}
