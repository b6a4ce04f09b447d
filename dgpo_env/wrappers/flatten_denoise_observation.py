"""The denoising observation as one ``float32`` vector, for clients without ``Dict`` encoders."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from dgpo_env.validation import check_bool

GRAPH_KEYS = ("nodes", "edges", "t")
"""The keys of :class:`~dgpo_env.envs.GraphDenoiseEnv`'s observation."""


def _integer_box(space: spaces.Dict, key: str) -> spaces.Box:
    """``space[key]`` if it is a one-dimensional integer ``Box`` with lower bound 0."""
    box = space.spaces.get(key)
    if not (
        isinstance(box, spaces.Box)
        and np.issubdtype(box.dtype, np.integer)
        and len(box.shape) == 1
        and np.all(box.low == 0)
    ):
        raise TypeError(f"observation key {key!r} must be a one-dimensional integer Box from 0, got {box}")
    return box


class FlattenDenoiseObservation(gym.ObservationWrapper[np.ndarray, Any, Any], gym.utils.RecordConstructorArgs):
    """Turn the ``Dict(nodes, edges, t)`` observation into one ``float32`` vector.

    For clients whose policies take a flat vector only (an MLP over a ``Box``). Unlike Gymnasium's
    ``FlattenObservation``, which would feed the type indices as numbers, node and edge types are one-hot
    encoded (they are categories) and the time is scaled to [0, 1].

    ## Observation Space

    ``Box(0, 1, shape=(D,), float32)`` with, for ``N`` nodes of ``K`` types, ``M`` edges of ``K_e`` types
    and diffusion steps ``T``:

    * ``one_hot=True`` (default): ``concat(one_hot(nodes).ravel(), one_hot(edges).ravel(), [t / T])``,
      ``D = N * K + M * K_e + 1``; row ``i`` of ``one_hot(nodes)`` is node ``i``'s type as a one-hot
      vector of length ``K``.
    * ``one_hot=False``: ``concat(nodes / (K - 1), edges / (K_e - 1), [t / T])``, ``D = N + M + 1`` (a type
      index divided by the largest index; a key with a single value is 0).

    ``ActionMaskObservation(FlattenDenoiseObservation(env), nest_key="observations")`` puts the mask beside
    the vector (RLlib's layout); ``gym.make(id, flatten_obs=True, mask_in_obs=True)`` does the same.

    ## Arguments

    * ``env``: an environment with :class:`~dgpo_env.envs.GraphDenoiseEnv`'s observation space: a ``Dict``
      of one-dimensional integer ``Box``es ``nodes``, ``edges``, ``t`` with lower bounds 0.
    * ``one_hot``: ``bool``, one-hot type encoding (default) or scaled indices.

    Raises ``TypeError`` for another observation space or a ``one_hot`` that is not a ``bool``.

    Example::

        import gymnasium as gym
        import dgpo_env
        from dgpo_env.wrappers import FlattenDenoiseObservation

        env = FlattenDenoiseObservation(gym.make("dgpo_env/NB201-CIFAR10-v0"))
        obs, info = env.reset(seed=0)  # float32 vector
    """

    def __init__(self, env: gym.Env[Any, Any], one_hot: bool = True) -> None:
        one_hot = check_bool("one_hot", one_hot)
        gym.utils.RecordConstructorArgs.__init__(self, one_hot=one_hot)
        gym.ObservationWrapper.__init__(self, env)
        inner = env.observation_space
        if not isinstance(inner, spaces.Dict) or set(inner.spaces) != set(GRAPH_KEYS):
            raise TypeError(
                f"FlattenDenoiseObservation needs a Dict observation with keys {GRAPH_KEYS} "
                f"(GraphDenoiseEnv's), got {inner}"
            )
        nodes, edges, t = (_integer_box(inner, key) for key in GRAPH_KEYS)
        if t.shape != (1,):
            raise TypeError(f"observation key 't' must have shape (1,), got {t.shape}")
        self.one_hot = one_hot
        # Number of values of each entry (node or edge type; K or K_e), and T.
        self._n_types = (int(nodes.high.max()) + 1, int(edges.high.max()) + 1)
        self._t_max = max(int(t.high[0]), 1)
        sizes = (nodes.shape[0], edges.shape[0])
        width = sum(n * k for n, k in zip(sizes, self._n_types, strict=True)) if one_hot else sum(sizes)
        self.observation_space = spaces.Box(0.0, 1.0, shape=(width + 1,), dtype=np.float32)

    def _encode(self, values: np.ndarray, n_types: int) -> np.ndarray:
        """``float32``: one row of length ``n_types`` per value (``one_hot``), or the values scaled to [0, 1]."""
        if self.one_hot:
            return np.eye(n_types, dtype=np.float32)[values].ravel()
        return (values / max(n_types - 1, 1)).astype(np.float32)

    def observation(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        """``float32[D]``: the flat vector of the graph and the time (see Observation Space)."""
        parts = [
            self._encode(np.asarray(observation[key]), k) for key, k in zip(GRAPH_KEYS[:2], self._n_types, strict=True)
        ]
        t = np.asarray(observation["t"], dtype=np.float32) / self._t_max
        return np.concatenate([*parts, t]).astype(np.float32)
