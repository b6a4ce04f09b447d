"""``dgpo random-agent``: a seeded random policy on a denoising environment (a baseline and smoke test)."""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np

import dgpo_env
from agents.commands.args import nonnegative_int, positive_int


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    """Register the sub-command."""
    parser = sub.add_parser("random-agent", help="run a seeded random (masked) policy and print the best cell")
    parser.add_argument("--env", default="dgpo_env/NB201-CIFAR10-v0", choices=sorted(dgpo_env.ENV_SPECS))
    parser.add_argument("--episodes", type=positive_int, default=200, help="episodes (one cell each)")
    parser.add_argument("--n-steps", type=positive_int, default=5, help="denoising steps per episode")
    parser.add_argument("--seed", type=nonnegative_int, default=0)
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Run the episodes; print the best cell with its validation (and test) accuracy and the queries."""
    env = gym.make(args.env, n_steps=args.n_steps)
    space = env.unwrapped.search_space  # type: ignore[attr-defined]
    nvec = env.action_space.nvec  # type: ignore[attr-defined]
    masks = tuple(m.astype(np.int8) for m in np.split(space.flat_action_mask, np.cumsum(nvec)[:-1]))
    env.action_space.seed(args.seed)
    best: dict[str, object] | None = None
    for episode in range(args.episodes):
        env.reset(seed=args.seed if episode == 0 else None)
        done = False
        while not done:
            _, _, done, _, info = env.step(env.action_space.sample(mask=masks))
        if info["valid"] and (best is None or info["val_acc"] > best["val_acc"]):  # type: ignore[operator]
            best = info
    benchmark = env.unwrapped.benchmark  # type: ignore[attr-defined]
    if best is None:
        print(f"no valid cell in {args.episodes} episodes")
        return 1
    print(f"best cell after {args.episodes} episodes: {best['cell']}")
    print(f"  validation accuracy {best['val_acc']:.4f}% (oracle {benchmark.oracle.val_acc:.4f}%)")
    if best["test_acc"] is not None:
        print(f"  test accuracy {best['test_acc']:.4f}%")
    print(f"  queries: {benchmark.n_queries} distinct cells, {benchmark.n_lookups} look-ups")
    return 0
