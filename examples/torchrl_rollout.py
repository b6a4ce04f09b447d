"""A masked random rollout with TorchRL: ``GymEnv``, ``check_env_specs`` and the ``ActionMask`` transform.

``GymEnv(id, mask_in_obs=True)`` turns the ``MultiDiscrete(nvec)`` action space into TorchRL's
``MultiOneHot`` spec (one vector of length ``sum(nvec)``, the concatenated one-hot entries) and the
``action_mask`` observation (``MultiBinary(sum(nvec))``, docs/integrations.md) into a ``Binary`` spec of
the same length, so the mask lines up with the action entry for entry (with ``--categorical`` the
actions are ``MultiCategorical``, one index per entry, and the same mask applies). TorchRL's ``ActionMask``
transform takes ``MultiOneHot`` action specs but only boolean masks, so a ``DTypeCastTransform`` casts
the ``int8`` mask to ``bool`` first. With the mask in place, the action spec samples only allowed
actions, so ``env.rollout`` without a policy is a masked random policy.

Needs TorchRL: ``pip install torch==2.13.0 -e ".[integrations]"`` (the ``dev`` extra includes it).

Run::

    python examples/torchrl_rollout.py                                  # 50 steps of ToyDAG, a few seconds
    python examples/torchrl_rollout.py --env dgpo_env/NB201-CIFAR10-v0 --steps 100
    python examples/torchrl_rollout.py --categorical                    # MultiCategorical actions
"""

from __future__ import annotations

import argparse
from typing import Any

import torch

import dgpo_env  # noqa: F401  (registers the ids)


def make_masked_env(env_id: str, categorical: bool = False, mask_key: str = "action_mask") -> Any:
    """A TorchRL environment of ``env_id`` whose action spec follows the action mask.

    Args:
        env_id: A registered id, e.g. ``"dgpo_env/ToyDAG-v0"``.
        categorical: ``GymEnv``'s ``categorical_action_encoding``: actions as ``MultiCategorical`` (one
            index per entry, shape ``[len(nvec)]``) instead of ``MultiOneHot`` (shape ``[sum(nvec)]``);
            ``ActionMask`` takes the same flat mask for both.
        mask_key: Key of the mask in the observation (``gym.make``'s ``mask_in_obs=True`` uses ``"action_mask"``).

    Returns:
        ``TransformedEnv(GymEnv(env_id, mask_in_obs=True), Compose(DTypeCastTransform, ActionMask))``.

    Raises:
        SystemExit: If TorchRL is not installed (with the command that installs it).
        TypeError: If ``categorical`` is not a ``bool``.
    """
    try:
        from torchrl.envs import Compose, DTypeCastTransform, GymEnv, TransformedEnv
        from torchrl.envs.transforms import ActionMask
    except ImportError:  # an optional dependency
        raise SystemExit('this example needs TorchRL: pip install torch==2.13.0 -e ".[integrations]"') from None
    if not isinstance(categorical, bool):
        raise TypeError(f"categorical must be a bool, got {categorical!r}")
    base = GymEnv(env_id, mask_in_obs=True, categorical_action_encoding=categorical)
    cast = DTypeCastTransform(torch.int8, torch.bool, in_keys=[mask_key])  # ActionMask takes boolean masks only
    return TransformedEnv(base, Compose(cast, ActionMask(mask_key=mask_key)))


def masked_rollout(env_id: str, steps: int, seed: int, categorical: bool = False) -> dict[str, Any]:
    """Check the specs of the masked environment and run ``steps`` steps of the masked random policy.

    Args:
        env_id: A registered id.
        steps: Environment steps (episodes restart when they end); positive.
        seed: Seed of the environment and of TorchRL's spec sampling.
        categorical: Actions as ``MultiCategorical`` instead of ``MultiOneHot`` (:func:`make_masked_env`).

    Returns:
        ``steps``, ``episodes`` (finished), ``returns`` (final rewards of the finished episodes),
        ``disallowed`` (actions outside the mask: 0 when masking works) and ``mask_fraction`` (share of
        ``(entry, value)`` pairs the mask allows).

    Raises:
        ValueError: If ``steps`` is not a positive integer.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    from torchrl.envs.utils import check_env_specs

    env = make_masked_env(env_id, categorical)
    check_env_specs(env, seed=seed)
    torch.manual_seed(seed)
    env.set_seed(seed)
    rollout = env.rollout(steps, break_when_any_done=False)  # no policy: samples of the masked action spec
    spec = env.full_action_spec["action"]
    env.close()
    actions, masks = rollout["action"], rollout["action_mask"]
    actions = (spec.to_one_hot(actions) if categorical else actions).bool()  # [steps, sum(nvec)] either way
    done = rollout["next", "done"].squeeze(-1)
    return {
        "steps": int(actions.shape[0]),
        "episodes": int(done.sum()),
        "returns": rollout["next", "reward"].squeeze(-1)[done].tolist(),
        "disallowed": int((actions & ~masks).any(-1).sum()),
        "mask_fraction": float(masks.float().mean()),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Command line: run :func:`masked_rollout` and print a summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="dgpo_env/ToyDAG-v0", help="registered id (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=50, help="environment steps (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed (default: %(default)s)")
    parser.add_argument("--categorical", action="store_true", help="MultiCategorical actions instead of MultiOneHot")
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error(f"--steps must be positive, got {args.steps}")
    result = masked_rollout(args.env, args.steps, args.seed, args.categorical)
    print(
        f"{args.env}: {result['steps']} steps, {result['episodes']} finished episodes, "
        f"final rewards {[round(r, 4) for r in result['returns']]}; "
        f"{result['disallowed']} actions outside the mask (the mask allows {result['mask_fraction']:.0%} of the values)"
    )
    return result


if __name__ == "__main__":
    main()
