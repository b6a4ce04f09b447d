"""Steps per second of the NB201 denoising environment under a random policy, beside CartPole-v1.

Measures, in one run: the raw environment (``env.unwrapped``), the ``gym.make`` stack, Gymnasium's
``SyncVectorEnv`` and SB3's ``DummyVecEnv`` with ``--n-envs`` copies, all counting into the default
in-process query ledger; then the NB201 environment counting into a cross-process
:class:`~dgpo_env.ledger.SQLiteLedger`, and that ledger's look-ups per second from 1 and 2 processes
(new cells and repeats). Actions are pre-sampled so the numbers are the environments' cost, not the
action sampler's; for the denoising environments they hold allowed values only, so every episode ends
in a valid cell that is looked up and recorded. Writes JSON.

Usage::

    python benchmarks/env_throughput.py --steps 20000 --n-envs 8 --out benchmarks/results/env_throughput.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import DummyVecEnv

import dgpo_env
from dgpo_env.io import atomic_write_text
from dgpo_env.ledger import SQLiteLedger

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


def sample_actions(env: gym.Env[Any, Any], n: int, seed: int = 0) -> list[Any]:
    """``n`` random actions; for the denoising environments, allowed values only (``action_masks``).

    So final cells are valid and every episode ends in a look-up recorded by the query ledger.
    """
    masks = getattr(env.unwrapped, "action_masks", None)
    if masks is None:
        env.action_space.seed(seed)
        return [env.action_space.sample() for _ in range(n)]
    nvec = env.action_space.nvec  # type: ignore[attr-defined]
    allowed = [np.flatnonzero(ok) for ok in np.split(masks(), np.cumsum(nvec)[:-1])]
    rng = np.random.default_rng(seed)
    return list(np.stack([rng.choice(values, size=n) for values in allowed], axis=1))  # n x [N + M]


def measure(env_id: str, steps: int, n_envs: int, repeats: int) -> dict[str, float]:
    """Best-of-``repeats`` steps per second of ``env_id`` in each setting."""
    env = gym.make(env_id)
    env.reset(seed=0)
    actions = sample_actions(env, steps)
    vec_steps = max(1, steps // n_envs)
    gvec = gym.vector.SyncVectorEnv([lambda: gym.make(env_id) for _ in range(n_envs)])
    vec_actions = [np.stack(sample_actions(env, n_envs, seed=i + 1)) for i in range(vec_steps)]
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


def _sqlite_env_steps(steps: int, folder: str) -> float:
    """Steps per second of ``gym.make`` NB201 counting into an :class:`SQLiteLedger`."""
    env = gym.make("dgpo_env/NB201-CIFAR10-v0", ledger=SQLiteLedger(f"{folder}/env.sqlite"))
    env.reset(seed=0)
    return _single(env, sample_actions(env, steps))


def _record(path: str, prefix: str, n: int) -> tuple[float, float]:
    """Record ``n`` new keys, then the same ``n`` again (repeats); return the wall-clock start and end."""
    ledger = SQLiteLedger(path)
    start = time.time()
    for _ in range(2):
        for i in range(n):
            ledger.record(f"{prefix}{i}", float(i), None)
    return start, time.time()


def ledger_lookups(n: int, folder: str) -> dict[str, float]:
    """Look-ups per second of the cross-process ledger: one process, and two processes at once (total)."""
    start, end = _record(f"{folder}/one.sqlite", "k", n)
    out = {"1 process": 2 * n / (end - start)}
    SQLiteLedger(f"{folder}/two.sqlite")
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        spans = pool.starmap(_record, [(f"{folder}/two.sqlite", f"w{w}-", n) for w in range(2)])
    out["2 processes (total)"] = 4 * n / (max(e for _, e in spans) - min(s for s, _ in spans))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--n-envs", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ledger-lookups", type=int, default=5_000, help="keys per process in the ledger test")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/env_throughput.json"))
    args = parser.parse_args()

    results = {env_id: measure(env_id, args.steps, args.n_envs, args.repeats) for env_id in ENVS}
    settings = list(results[ENVS[0]])
    print(f"steps per second (best of {args.repeats}; {args.n_envs} envs in the vectorised settings)")
    print(f"{'environment':32s}" + "".join(f"{s:>15s}" for s in settings))
    for env_id, row in results.items():
        print(f"{env_id:32s}" + "".join(f"{row[s]:15,.0f}" for s in settings))
    ratios = {s: results["dgpo_env/NB201-CIFAR10-v0"][s] / results["CartPole-v1"][s] for s in settings}
    print("NB201 / CartPole (in-process ledger): " + ", ".join(f"{s} {r:.2f}" for s, r in ratios.items()))
    with tempfile.TemporaryDirectory() as folder:
        sqlite_env = max(_sqlite_env_steps(args.steps, folder) for _ in range(args.repeats))
        lookups = ledger_lookups(args.ledger_lookups, folder)
    print(f"NB201 gym.make with the cross-process SQLite ledger: {sqlite_env:,.0f} steps/s")
    print("SQLite ledger look-ups per second: " + ", ".join(f"{k} {v:,.0f}" for k, v in lookups.items()))
    payload = {
        "steps": args.steps,
        "n_envs": args.n_envs,
        "repeats": args.repeats,
        "steps_per_second": results,
        "nb201_over_cartpole": ratios,
        "nb201_gym_make_sqlite_ledger_steps_per_second": sqlite_env,
        "sqlite_ledger_lookups_per_second": lookups,
        "versions": {"dgpo_env": dgpo_env.__version__, "gymnasium": gym.__version__, "numpy": np.__version__},
        "machine": {"python": platform.python_version(), "processor": platform.machine()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(payload, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
