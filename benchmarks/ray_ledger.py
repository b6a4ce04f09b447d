"""Cost of the Ray ledger actor: look-ups per second from one caller and from several Ray actors at once.

Starts a local Ray instance (``--cpus`` CPUs), makes one :class:`~dgpo_env.ledger.RayLedger` and measures:

- ``driver``: ``--n-lookups`` look-ups of distinct keys from this process, one after the other (each is
  one round trip to the ledger actor), then the same number of look-ups of known keys;
- ``environment_step``: the last step of a one-step ``dgpo_env/NB201-CIFAR10-v0`` episode
  (one look-up, then the counts and budget the environment reports in ``info``), ``--n-episodes`` times;
- ``actors``: ``--n-actors`` Ray actors each recording ``--n-lookups`` keys (half of them shared by all
  actors) at the same time into a budget of ``--budget`` distinct cells; the recorded count must equal
  the budget exactly.

All callers run on this machine, so a round trip here is a local socket round trip; across nodes add
the network's round-trip time to each look-up. Writes JSON.

Usage::

    python benchmarks/ray_ledger.py --out benchmarks/results/ray_ledger.json
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from agents.commands.args import positive_int
from dgpo_env.io import atomic_write_text, dumps_json
from dgpo_env.ledger import Admission, RayLedger


class _Recorder:
    """A Ray actor that records keys into the ledger it is given."""

    def __init__(self, ledger: RayLedger) -> None:
        self.ledger = ledger

    def record(self, keys: list[str]) -> tuple[int, float]:
        """Record ``keys`` one by one; ``(new cells admitted, seconds)``."""
        start = time.perf_counter()
        new = sum(self.ledger.record(key, 50.0, None) is Admission.NEW for key in keys)
        return new, time.perf_counter() - start


def _per_call_us(seconds: float, calls: int) -> float:
    return 1e6 * seconds / calls


def measure_driver(n_lookups: int) -> dict[str, Any]:
    ledger = RayLedger()
    keys = [f"driver-{i:08d}" for i in range(n_lookups)]
    start = time.perf_counter()
    for key in keys:
        ledger.record(key, 50.0, None)
    new_s = time.perf_counter() - start
    start = time.perf_counter()
    for key in keys:
        ledger.record(key, 50.0, None)
    known_s = time.perf_counter() - start
    assert ledger.counts() == (n_lookups, 2 * n_lookups)
    ledger.kill()
    return {
        "lookups": 2 * n_lookups,
        "new_cell_us_per_lookup": _per_call_us(new_s, n_lookups),
        "known_cell_us_per_lookup": _per_call_us(known_s, n_lookups),
    }


def measure_environment_step(n_episodes: int) -> dict[str, Any]:
    import gymnasium as gym

    import dgpo_env  # noqa: F401  (registers the ids)
    from dgpo_env.search_spaces import NB201SearchSpace

    space = NB201SearchSpace()
    allowed = np.split(space.flat_action_mask, np.cumsum(space.nvec)[:-1])  # per entry: bool[K]
    rng = np.random.default_rng(0)
    actions = [np.array([rng.choice(np.flatnonzero(ok)) for ok in allowed]) for _ in range(n_episodes)]
    timings = {}
    for kind in ("in_process", "ray"):
        ledger = RayLedger() if kind == "ray" else None
        env = gym.make("dgpo_env/NB201-CIFAR10-v0", n_steps=1, ledger=ledger)
        env.reset(seed=0)
        start = time.perf_counter()
        for action in actions:
            env.step(action)
            env.reset()
        timings[f"{kind}_ledger_us_per_episode"] = _per_call_us(time.perf_counter() - start, n_episodes)
        env.close()
        if ledger is not None:
            ledger.kill()
    return {"episodes": n_episodes, **timings}


def measure_actors(ray: Any, n_actors: int, n_lookups: int, budget: int) -> dict[str, Any]:
    ledger = RayLedger(max_queries=budget)
    actor_class = ray.remote(num_cpus=0)(_Recorder)
    actors = [actor_class.remote(ledger) for _ in range(n_actors)]
    ray.get([a.__ray_ready__.remote() for a in actors])
    work = [
        [f"shared-{i:08d}" if i % 2 else f"actor{a}-{i:08d}" for i in range(n_lookups)] for a in range(n_actors)
    ]  # half the keys are proposed by every actor
    start = time.perf_counter()
    results = ray.get([actor.record.remote(keys) for actor, keys in zip(actors, work, strict=True)])
    wall_s = time.perf_counter() - start
    n_queries, n_lookups_recorded = ledger.counts()
    admitted = sum(new for new, _ in results)
    for actor in actors:
        ray.kill(actor)
    ledger.kill()
    return {
        "actors": n_actors,
        "proposals": n_actors * n_lookups,
        "budget": budget,
        "recorded_queries": n_queries,
        "admitted_new_total": admitted,
        "lookups_recorded": n_lookups_recorded,
        "distinct_keys_proposed": len({key for keys in work for key in keys}),
        "exact": n_queries == admitted == min(budget, len({key for keys in work for key in keys})),
        "wall_s": wall_s,
        "lookups_per_s_all_actors": n_actors * n_lookups / wall_s,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the three measurements; print them and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpus", type=positive_int, default=2, help="CPUs of the local Ray instance")
    parser.add_argument("--n-lookups", type=positive_int, default=2000, help="look-ups per caller")
    parser.add_argument("--n-episodes", type=positive_int, default=1000, help="one-step episodes per ledger kind")
    parser.add_argument("--n-actors", type=positive_int, default=4)
    parser.add_argument("--budget", type=positive_int, default=3000, help="distinct cells allowed in the actors run")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/ray_ledger.json"))
    args = parser.parse_args(argv)
    import ray

    ray.init(address="local", num_cpus=args.cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        report: dict[str, Any] = {
            "command": " ".join(["python", sys.argv[0], *(argv if argv is not None else sys.argv[1:])]),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "ray": ray.__version__},
            "load_average_at_start": os.getloadavg(),
            "driver": measure_driver(args.n_lookups),
            "environment_step": measure_environment_step(args.n_episodes),
            "actors": measure_actors(ray, args.n_actors, args.n_lookups, args.budget),
        }
    finally:
        ray.shutdown()
    for name in ("driver", "environment_step", "actors"):
        print(f"{name}: {report[name]}")
    atomic_write_text(args.out, dumps_json(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0 if report["actors"]["exact"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
