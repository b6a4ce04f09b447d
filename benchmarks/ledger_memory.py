"""Memory of the in-process query ledger: resident-set growth per distinct cell and per look-up.

Each measurement runs in a fresh child process (so freed memory of one cannot hide the next) and
reports the growth of the resident set size (``/proc/self/statm``, Linux) while:

- ``ledger``: ``--n-lookups`` look-ups of random 21-character toy-cell keys (``--repeat-share`` of them
  repeats of an earlier key) go straight to :class:`~dgpo_env.ledger.InMemoryLedger`;
- ``toy_env``: ``dgpo_env/ToyDAG-v0`` is stepped ``--env-steps`` times with random allowed actions,
  every episode ending in a recorded look-up.

Each key string is made just before its look-up and freed after it, so the figures are what the
ledger adds.
Writes JSON.

Usage::

    python benchmarks/ledger_memory.py --n-lookups 1000000 --out benchmarks/results/ledger_memory.json
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import gc
import json
import multiprocessing
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from dgpo_env.io import atomic_write_text

PAGE_BYTES = 4096


def _rss_bytes() -> int:
    """Resident set size of this process (bytes; Linux ``/proc/self/statm``)."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * PAGE_BYTES


def _baseline_rss_bytes() -> int:
    """The resident set size after the C allocator returned its free memory to the system.

    Without the trim, memory freed while the inputs were prepared would be reused by the ledger
    and hide part of its growth.
    """
    gc.collect()
    ctypes.CDLL(ctypes.util.find_library("c")).malloc_trim(0)
    return _rss_bytes()


def _ledger_run(n_lookups: int, repeat_share: float, seed: int) -> dict[str, Any]:
    from dgpo_env.ledger import InMemoryLedger

    rng = np.random.default_rng(seed)
    digits = rng.integers(0, 10, size=(n_lookups, 21), dtype=np.uint8) + ord("0")  # [L, 21] key characters
    repeats = rng.random(n_lookups) < repeat_share
    earlier = rng.integers(0, np.maximum(np.arange(n_lookups), 1))  # [L] an earlier look-up to repeat
    rows = np.where(repeats, earlier, np.arange(n_lookups))  # [L] which key each look-up uses
    ledger = InMemoryLedger()
    before = _baseline_rss_bytes()
    start = time.perf_counter()
    for i, row in enumerate(rows):  # each key string is made just before its look-up and freed after it
        ledger.record(digits[row].tobytes().decode(), float(i % 100), None)
    seconds = time.perf_counter() - start
    grown = _rss_bytes() - before
    n_queries, n_recorded = ledger.counts()
    return {
        "lookups": n_recorded,
        "distinct_cells": n_queries,
        "rss_growth_mib": grown / 2**20,
        "bytes_per_cell": grown / max(n_queries, 1),
        "microseconds_per_lookup": 1e6 * seconds / n_lookups,
    }


def _env_run(steps: int, seed: int) -> dict[str, Any]:
    import gymnasium as gym

    import dgpo_env  # noqa: F401  (registers the ids)

    env = gym.make("dgpo_env/ToyDAG-v0")
    env.reset(seed=seed)
    masks = env.unwrapped.action_masks()  # type: ignore[attr-defined]
    nvec = env.action_space.nvec  # type: ignore[attr-defined]
    allowed = [np.flatnonzero(ok) for ok in np.split(masks, np.cumsum(nvec)[:-1])]
    rng = np.random.default_rng(seed)
    actions = np.stack([rng.choice(values, size=steps) for values in allowed], axis=1)  # [steps, N + M]
    before = _baseline_rss_bytes()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    grown = _rss_bytes() - before
    ledger = env.unwrapped.ledger  # type: ignore[attr-defined]
    n_queries, n_lookups = ledger.counts()
    return {
        "steps": steps,
        "lookups": n_lookups,
        "distinct_cells": n_queries,
        "rss_growth_mib": grown / 2**20,
        "bytes_per_cell": grown / max(n_queries, 1),
    }


def _in_child(target: Any, *args: Any) -> dict[str, Any]:
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(target, args)  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-lookups", type=int, default=1_000_000)
    parser.add_argument("--repeat-share", type=float, default=0.2, help="share of look-ups that repeat a cell")
    parser.add_argument("--env-steps", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/ledger_memory.json"))
    args = parser.parse_args()
    if not Path("/proc/self/statm").exists():
        sys.exit("ledger_memory.py reads /proc/self/statm: run it on Linux")
    ledger = _in_child(_ledger_run, args.n_lookups, args.repeat_share, args.seed)
    print(
        f"InMemoryLedger: {ledger['lookups']:,} look-ups, {ledger['distinct_cells']:,} distinct cells: "
        f"+{ledger['rss_growth_mib']:.1f} MiB ({ledger['bytes_per_cell']:.0f} B per cell), "
        f"{ledger['microseconds_per_lookup']:.2f} us per look-up"
    )
    env = _in_child(_env_run, args.env_steps, args.seed)
    print(
        f"ToyDAG-v0: {env['steps']:,} steps, {env['distinct_cells']:,} distinct cells: "
        f"+{env['rss_growth_mib']:.1f} MiB ({env['bytes_per_cell']:.0f} B per cell)"
    )
    payload = {
        "settings": vars(args) | {"out": str(args.out)},
        "ledger": ledger,
        "toy_env": env,
        "machine": {"python": platform.python_version(), "processor": platform.machine()},
    }
    atomic_write_text(args.out, json.dumps(payload, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
