"""Collect episodes with Tianshou: a vectorised collector over masked environments and a masked random policy.

Tianshou's masked policies read the mask as ``obs.mask`` beside the observation ``obs.obs``, which is the
layout of ``ActionMaskObservation(env, mask_key="mask", nest_key="obs")`` (docs/integrations.md). The
mask is the flat vector of length ``sum(nvec)`` of the ``MultiDiscrete(nvec)`` action space; Tianshou's
own random masked policy (``MARLRandomDiscreteMaskedOffPolicyAlgorithm.Policy``) takes one ``argmax``
over the whole mask, i.e. one ``Discrete`` action, so this example defines a Tianshou ``Policy`` that
splits the mask per action entry and samples each entry among its allowed values (Gymnasium's
``MultiDiscrete.sample(mask=...)``). On NAS-Bench-201 every collected cell is then valid
(``info["valid"]`` is true at every episode end); on ToyDAG the mask cannot express "a path from the
input to the output", so some random cells are still invalid, for that reason only.

Needs Tianshou: ``pip install torch==2.13.0 -e ".[tianshou]"`` (not part of the ``dev`` extra: it pulls
numba, pandas and TensorBoard, about 380 MB).

Run::

    python examples/tianshou_collect.py                                 # 4 environments, 8 episodes of NB201
    python examples/tianshou_collect.py --env dgpo_env/ToyDAG-v0 --n-envs 2 --episodes 4
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

import dgpo_env  # noqa: F401  (registers the ids)
from dgpo_env.wrappers import ActionMaskObservation

try:
    from tianshou.algorithm.algorithm_base import Policy
    from tianshou.data import Batch, Collector, VectorReplayBuffer
    from tianshou.env import DummyVectorEnv
except ImportError:  # an optional dependency
    raise SystemExit('this example needs Tianshou: pip install torch==2.13.0 -e ".[tianshou]"') from None


def make_env(env_id: str) -> gym.Env[Any, Any]:
    """``env_id`` with its observation under ``"obs"`` and the action mask under ``"mask"`` (Tianshou's layout)."""
    return ActionMaskObservation(gym.make(env_id), mask_key="mask", nest_key="obs")


class MaskedMultiDiscreteRandomPolicy(Policy):
    """A Tianshou policy that samples each entry of a ``MultiDiscrete`` action among its allowed values.

    Args:
        action_space: The environments' ``MultiDiscrete(nvec)`` action space (one-dimensional ``nvec``).
        seed: Seed of the sampling.

    Raises:
        TypeError: If ``action_space`` is not a one-dimensional ``MultiDiscrete`` space.
    """

    def __init__(self, action_space: gym.spaces.MultiDiscrete, seed: int | None = None) -> None:
        if not isinstance(action_space, gym.spaces.MultiDiscrete) or action_space.nvec.ndim != 1:
            raise TypeError(f"a one-dimensional MultiDiscrete action space is needed, got {action_space}")
        super().__init__(action_space=action_space, action_bound_method=None)
        self._space = gym.spaces.MultiDiscrete(action_space.nvec, seed=seed)  # an own copy: its own generator
        self._offsets = np.cumsum(action_space.nvec)[:-1]
        self._length = int(action_space.nvec.sum())

    def forward(self, batch: Any, state: Any = None, **kwargs: Any) -> Any:
        """One masked random action per row of ``batch.obs.mask`` (``[B, sum(nvec)]``, 1 = allowed).

        Raises:
            ValueError: If the mask has another width, or allows no value for some action entry.
        """
        masks = np.asarray(batch.obs.mask).astype(bool)
        if masks.ndim != 2 or masks.shape[1] != self._length:
            raise ValueError(f"obs.mask must have shape [B, {self._length}], got {masks.shape}")
        actions = []
        for row in masks:
            parts = tuple(part.astype(np.int8) for part in np.split(row, self._offsets))
            if not all(part.any() for part in parts):
                raise ValueError("the mask allows no value for some action entry")
            actions.append(self._space.sample(mask=parts))
        return Batch(act=np.stack(actions), state=state)


def collect(env_id: str, n_envs: int, episodes: int, seed: int) -> dict[str, Any]:
    """Collect ``episodes`` episodes over ``n_envs`` environments with the masked random policy.

    Args:
        env_id: A registered id.
        n_envs: Environments of the ``DummyVectorEnv``; positive.
        episodes: Episodes to collect; at least ``n_envs``.
        seed: Seed of the environments and of the policy.

    Returns:
        ``episodes`` (collected), ``returns`` (one per episode), ``valid`` (``info["valid"]`` at the
        episode ends), ``invalid_reasons`` (``info["invalid_reason"]`` of the invalid cells) and
        ``disallowed`` (collected actions outside the mask: 0 when masking works).

    Raises:
        ValueError: If ``n_envs`` or ``episodes`` is not a positive integer, or ``episodes < n_envs``.
    """
    for name, value in (("n_envs", n_envs), ("episodes", episodes)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if episodes < n_envs:
        raise ValueError(f"episodes ({episodes}) must be at least n_envs ({n_envs}): Tianshou collects per env")
    factories: list[Callable[[], gym.Env[Any, Any]]] = [lambda: make_env(env_id) for _ in range(n_envs)]
    envs = DummyVectorEnv(factories)
    envs.seed([seed + i for i in range(n_envs)])
    action_space = envs.action_space[0]
    policy = MaskedMultiDiscreteRandomPolicy(action_space, seed=seed)
    episode_length = int(envs.get_env_attr("n_steps", 0)[0])  # denoising steps per episode
    # Room for every transition: Tianshou may finish up to n_envs - 1 extra episodes in the last step.
    buffer = VectorReplayBuffer((episodes + n_envs) * episode_length, n_envs)
    collector = Collector(policy, envs, buffer)
    stats = collector.collect(n_episode=episodes, reset_before_collect=True)
    envs.close()
    data = buffer.sample(0)[0]  # every stored transition
    ends = np.asarray(data.done, dtype=bool)
    offsets = np.concatenate([[0], np.cumsum(action_space.nvec)[:-1]])  # entry i, value v: offsets[i] + v
    allowed = np.take_along_axis(np.asarray(data.obs.mask), offsets + np.asarray(data.act), axis=1).astype(bool)
    end_infos = data.info[ends]
    return {
        "episodes": int(stats.n_collected_episodes),
        "returns": [float(r) for r in stats.returns],
        "valid": [bool(valid) for valid in end_infos.valid],
        "invalid_reasons": sorted(
            {str(r) for r, ok in zip(end_infos.invalid_reason, end_infos.valid, strict=True) if not ok}
        ),
        "disallowed": int((~allowed).any(axis=1).sum()),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Command line: run :func:`collect` and print a summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="dgpo_env/NB201-CIFAR10-v0", help="registered id (default: %(default)s)")
    parser.add_argument("--n-envs", type=int, default=4, help="environments (default: %(default)s)")
    parser.add_argument("--episodes", type=int, default=8, help="episodes to collect (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        result = collect(args.env, args.n_envs, args.episodes, args.seed)
    except ValueError as err:
        parser.error(str(err))
    print(
        f"{args.env}: {result['episodes']} episodes over {args.n_envs} environments, "
        f"{sum(result['valid'])}/{len(result['valid'])} valid cells, "
        f"returns {[round(r, 4) for r in result['returns']]}; {result['disallowed']} actions outside the mask"
        + "".join(f"; invalid: {reason}" for reason in result["invalid_reasons"])
    )
    return result


if __name__ == "__main__":
    main()
