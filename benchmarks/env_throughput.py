"""Steps per second of the NB201 denoising environment under a random policy, beside CartPole-v1.

Measures, in one run: the raw environment (``env.unwrapped``), the ``gym.make`` stack, Gymnasium's
``SyncVectorEnv`` and SB3's ``DummyVecEnv`` with ``--n-envs`` copies. Actions are pre-sampled so the
numbers are the environments' cost, not the action sampler's. Writes JSON.

Usage::

    python benchmarks/env_throughput.py --steps 20000 --n-envs 8 --out benchmarks/results/env_throughput.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import DummyVecEnv

import dgpo_env

ENVS = ("CartPole-v1", "dgpo_env/NB201-CIFAR10-v0", "dgpo_env/ToyDAG-v0")


def _single(env: gym.Env[Any, Any], actions: list[Any]) -> float:
    env.reset(seed=0)
    start = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    return len(actions) / (time.perf_counter() - start)


def _vector(step: Callable[[Any], Any], reset: Callable[[], Any], actions: list[Any], n_envs: int) -> float:
    reset()
    start = time.perf_counter()
    for action in actions:
        step(action)
    return len(actions) * n_envs / (time.perf_counter() - start)


def measure(env_id: str, steps: int, n_envs: int, repeats: int) -> dict[str, float]:
    """Best-of-``repeats`` steps per second of ``env_id`` in each setting."""
    env = gym.make(env_id)
    env.action_space.seed(0)
    actions = [env.action_space.sample() for _ in range(steps)]
    vec_steps = max(1, steps // n_envs)
    gvec = gym.vector.SyncVectorEnv([lambda: gym.make(env_id) for _ in range(n_envs)])
    gvec.action_space.seed(0)
    vec_actions = [gvec.action_space.sample() for _ in range(vec_steps)]
    svec = DummyVecEnv([lambda: gym.make(env_id) for _ in range(n_envs)])
    out: dict[str, float] = {}
    for _ in range(repeats):
        settings = {
            "unwrapped": lambda: _single(env.unwrapped, actions),
            "gym.make": lambda: _single(env, actions),
            "SyncVectorEnv": lambda: _vector(gvec.step, lambda: gvec.reset(seed=0), vec_actions, n_envs),
            "DummyVecEnv": lambda: _vector(svec.step, svec.reset, vec_actions, n_envs),
        }
        for name, run in settings.items():
            out[name] = max(out.get(name, 0.0), run())
    gvec.close()
    svec.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--n-envs", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/env_throughput.json"))
    args = parser.parse_args()

    results = {env_id: measure(env_id, args.steps, args.n_envs, args.repeats) for env_id in ENVS}
    settings = list(results[ENVS[0]])
    print(f"steps per second (best of {args.repeats}; {args.n_envs} envs in the vectorised settings)")
    print(f"{'environment':32s}" + "".join(f"{s:>15s}" for s in settings))
    for env_id, row in results.items():
        print(f"{env_id:32s}" + "".join(f"{row[s]:15,.0f}" for s in settings))
    ratios = {s: results["dgpo_env/NB201-CIFAR10-v0"][s] / results["CartPole-v1"][s] for s in settings}
    print("NB201 / CartPole: " + ", ".join(f"{s} {r:.2f}" for s, r in ratios.items()))
    payload = {
        "steps": args.steps,
        "n_envs": args.n_envs,
        "repeats": args.repeats,
        "steps_per_second": results,
        "nb201_over_cartpole": ratios,
        "versions": {"dgpo_env": dgpo_env.__version__, "gymnasium": gym.__version__, "numpy": np.__version__},
        "machine": {"python": platform.python_version(), "processor": platform.machine()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
