"""One training iteration of RLlib PPO (new API stack) with action masking on a graph-denoising environment.

``gym.make(id, mask_in_obs=True, flatten_obs=True)`` gives the observation
``Dict(observations=Box(float32), action_mask=MultiBinary(sum(nvec)))`` (docs/integrations.md): the
layout of the action-masking RLModule that RLlib ships in its examples package
(``ray.rllib.examples.rl_modules.classes.action_masking_rlm.ActionMaskingTorchRLModule``). That module
builds RLlib's default PPO networks for the ``observations`` entry only, so the flat ``Box`` avoids
RLlib's "No default encoder config for obs space=Dict(...)" error of the default observation, and it
adds ``log(mask)`` (clamped to a large negative number) to the action-distribution inputs. For a
``MultiDiscrete(nvec)`` action space those inputs are the concatenated per-entry logits of RLlib's
multi-categorical distribution, the same layout as the mask, so each entry is sampled only among its
allowed values.

A callback counts, for every finished episode, the actions outside the mask (read from
``info["action_mask"]``, which the environment reports whatever the observation holds) and whether the
final cell is valid (``info["valid"]``). With the mask, no action falls outside it; ToyDAG's mask cannot
express "a path from the input to the output", so some cells can still be invalid, for that reason only.
``--no-mask`` trains RLlib's default PPO module on the flat observation instead, for comparison.

Needs RLlib, which pins an older Gymnasium than the ``dev`` environment, so it lives in a venv of its
own: ``python3 -m venv .venv-rllib && . .venv-rllib/bin/activate && pip install torch==2.13.0 -e .
"ray[rllib]==2.60.0"``.

Run::

    python examples/rllib_ppo_masked.py                        # ToyDAG, 200 environment steps
    python examples/rllib_ppo_masked.py --no-mask              # RLlib's default PPO module
    python examples/rllib_ppo_masked.py --num-env-runners 1    # sampling in a Ray worker process
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

try:
    import ray
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.callbacks.callbacks import RLlibCallback
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec
    from ray.rllib.examples.rl_modules.classes.action_masking_rlm import ActionMaskingTorchRLModule
except ImportError:  # an optional dependency
    raise SystemExit(
        'this example needs RLlib in its own venv: pip install torch==2.13.0 -e . "ray[rllib]==2.60.0"'
    ) from None

NO_PATH = "no path from the input to the output"
"""ToyDAG's reason for a cell the mask allows but the space rejects."""


class CellStatsCallback(RLlibCallback):
    """Per finished episode: actions outside the action mask, and whether the final cell is valid.

    Logs sums over the iteration's episodes (RLlib's ``MetricsLogger``, ``reduce="sum"``) under the
    ``env_runners`` results: ``cells``, ``valid_cells``, ``invalid_no_path``, ``invalid_other`` and
    ``actions_outside_mask``.
    """

    def on_episode_end(self, *, episode: Any, metrics_logger: Any = None, **kwargs: Any) -> None:
        """Count the episode's actions outside the mask and the validity of its cell.

        ``episode.get_infos()`` has one info per observation (the reset's first): the mask in info ``k``
        applies to action ``k``. The mask is flat, entry ``offset_i + v`` for value ``v`` of action entry
        ``i``, ``offset_i = sum(nvec[:i])``.
        """
        infos = episode.get_infos()
        actions = np.asarray(episode.get_actions())  # [T, len(nvec)]
        masks = np.stack([np.asarray(info["action_mask"], dtype=bool) for info in infos[: len(actions)]])
        nvec = np.asarray(episode.action_space.nvec)
        offsets = np.concatenate([[0], np.cumsum(nvec)[:-1]])
        allowed = np.take_along_axis(masks, offsets + actions, axis=1)  # [T, len(nvec)]
        last = infos[-1]
        valid = bool(last["valid"])
        metrics_logger.log_value("cells", 1, reduce="sum")
        metrics_logger.log_value("valid_cells", int(valid), reduce="sum")
        metrics_logger.log_value("invalid_no_path", int(not valid and last["invalid_reason"] == NO_PATH), reduce="sum")
        metrics_logger.log_value("invalid_other", int(not valid and last["invalid_reason"] != NO_PATH), reduce="sum")
        metrics_logger.log_value("actions_outside_mask", int((~allowed).any(axis=1).sum()), reduce="sum")


def _positive_int(name: str, value: object) -> int:
    """``value`` if it is a positive ``int`` (not a ``bool``), else ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def build_config(
    env_id: str = "dgpo_env/ToyDAG-v0",
    *,
    masked: bool = True,
    train_batch_size: int = 200,
    num_env_runners: int = 0,
    seed: int = 0,
) -> PPOConfig:
    """RLlib's PPO settings for ``env_id``, with or without action masking.

    Args:
        env_id: A registered id. It is given to RLlib as ``"dgpo_env:" + env_id``, so Ray worker
            processes import ``dgpo_env`` before they build it.
        masked: ``True``: observation ``Dict(observations, action_mask)`` and RLlib's
            ``ActionMaskingTorchRLModule``; ``False``: the flat observation and RLlib's default PPO module.
        train_batch_size: Environment steps per training iteration (25 per ToyDAG or NB201 episode).
        num_env_runners: ``0`` samples in this process, ``1`` or more in Ray worker processes.
        seed: Seed of the environments and the networks.

    Returns:
        The ``PPOConfig``; ``config.build_algo()`` builds the algorithm.

    Raises:
        TypeError: If ``masked`` is not a ``bool``.
        ValueError: If ``train_batch_size`` is not a positive integer, or ``num_env_runners`` not a
            non-negative one.
    """
    if not isinstance(masked, bool):
        raise TypeError(f"masked must be a bool, got {masked!r}")
    _positive_int("train_batch_size", train_batch_size)
    if isinstance(num_env_runners, bool) or not isinstance(num_env_runners, int) or num_env_runners < 0:
        raise ValueError(f"num_env_runners must be a non-negative integer, got {num_env_runners!r}")
    model_config = {"fcnet_hiddens": [64], "head_fcnet_hiddens": [64]}
    module = (
        RLModuleSpec(module_class=ActionMaskingTorchRLModule, model_config=model_config)
        if masked
        else RLModuleSpec(model_config=model_config)
    )
    return (
        PPOConfig()
        .environment(
            env_id if ":" in env_id else f"dgpo_env:{env_id}",
            env_config={"mask_in_obs": masked, "flatten_obs": True},
        )
        .env_runners(num_env_runners=num_env_runners, num_envs_per_env_runner=1)
        .training(
            train_batch_size_per_learner=train_batch_size,
            minibatch_size=max(1, train_batch_size // 2),
            num_epochs=2,
            gamma=1.0,  # the reward comes at the episode's end only
        )
        .rl_module(rl_module_spec=module)
        .callbacks(CellStatsCallback)
        .debugging(seed=seed)
    )


def train_one_iteration(config: PPOConfig) -> dict[str, Any]:
    """Build PPO from ``config`` (see :func:`build_config`) and run one training iteration.

    Starts a new local Ray instance (one CPU per sampling process, no dashboard) unless this process
    already runs one, and shuts it down again afterwards in that case.

    Args:
        config: PPO settings with :class:`CellStatsCallback` among the callbacks.

    Returns:
        ``episodes`` (finished in the iteration), ``episode_return_mean``, ``valid_cells``,
        ``valid_share`` (``valid_cells / episodes``), ``invalid_no_path``, ``invalid_other``,
        ``actions_outside_mask`` (steps with an action entry outside the mask: 0 when masking works),
        ``env_steps`` (sampled) and ``policy_loss`` (of the learner's update).

    Raises:
        ValueError: If ``config``'s callbacks are not :class:`CellStatsCallback` (or a subclass).
    """
    callbacks = config.callbacks_class
    if not (isinstance(callbacks, type) and issubclass(callbacks, CellStatsCallback)):
        raise ValueError(f"config.callbacks must be CellStatsCallback (build_config sets it), got {callbacks!r}")
    started = not ray.is_initialized()
    if started:
        ray.init(address="local", num_cpus=max(1, config.num_env_runners), include_dashboard=False, log_to_driver=False)
    try:
        algo = config.build_algo()
        try:
            result = algo.train()
        finally:
            algo.stop()
    finally:
        if started:
            ray.shutdown()
    runners = result["env_runners"]
    episodes = int(runners["cells"])
    learner = result["learners"]["default_policy"]
    return {
        "episodes": episodes,
        "episode_return_mean": float(runners["episode_return_mean"]),
        "valid_cells": int(runners["valid_cells"]),
        "valid_share": int(runners["valid_cells"]) / episodes,
        "invalid_no_path": int(runners["invalid_no_path"]),
        "invalid_other": int(runners["invalid_other"]),
        "actions_outside_mask": int(runners["actions_outside_mask"]),
        "env_steps": int(runners["num_env_steps_sampled"]),
        "policy_loss": float(learner["policy_loss"]),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Command line: run :func:`train_one_iteration` and print a summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="dgpo_env/ToyDAG-v0", help="registered id (default: %(default)s)")
    parser.add_argument("--no-mask", action="store_true", help="RLlib's default PPO module, no action masking")
    parser.add_argument("--train-batch-size", type=int, default=200, help="environment steps (default: %(default)s)")
    parser.add_argument("--num-env-runners", type=int, default=0, help="Ray sampling workers (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        config = build_config(
            args.env,
            masked=not args.no_mask,
            train_batch_size=args.train_batch_size,
            num_env_runners=args.num_env_runners,
            seed=args.seed,
        )
    except ValueError as err:
        parser.error(str(err))
    result = train_one_iteration(config)
    print(
        f"{args.env} ({'unmasked' if args.no_mask else 'masked'}): {result['env_steps']} steps, "
        f"{result['episodes']} episodes, mean episode return {result['episode_return_mean']:.4f}, "
        f"{result['valid_cells']}/{result['episodes']} valid cells ({100 * result['valid_share']:.0f}%; "
        f"invalid: {result['invalid_no_path']} no path, {result['invalid_other']} other), "
        f"{result['actions_outside_mask']} steps with an action outside the mask"
    )
    return result


if __name__ == "__main__":
    main()
