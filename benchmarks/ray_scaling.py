"""DGPO's batch with a slow reward, on Ray actors (1, 2, 4, ... workers) beside the local ``DummyVecEnv``.

The reward stands in for training each generated network: a ``reward_fn`` that sleeps ``--latency``
seconds and then returns the benchmark's validation accuracy (a fraction). It runs at the end of
every episode with a valid cell (every NAS-Bench-201 cell is valid), known cells included, so each
batch of ``--batch-size`` episodes costs ``batch × latency`` seconds of reward time.

Settings, each a DGPO run with the shipped NB201 prior on ``dgpo_env/NB201-CIFAR10-v0``:

* ``local``: ``DummyVecEnv`` with ``n_envs = batch`` (DGPO's default: one policy forward pass per
  denoising step for the whole batch); every reward is computed one after another.
* ``ray-W``: :class:`~agents.policies.RayVecEnv` with ``W`` actors (``n_envs = W``, so ``batch / W``
  rounds of lockstep episodes), all counting into one :class:`~dgpo_env.ledger.RayLedger`.

For each, one warm-up batch, then ``--batches`` timed batches (collection and DGPO update, seconds per
batch). Printed beside the measured speed-up over ``local``: the ideal ``W`` (rewards only), and
Amdahl's estimate ``T_local / (T_local - R + R / W)`` with ``R = batch × latency``, i.e. if the rest
(``T_local - R``: policy passes, the update, overheads; measured on the local run) stayed as it is
locally. "other s" is each setting's own rest, ``s/batch - R / W``: Ray runs ``batch / W`` rounds of
smaller forward passes plus one actor round trip per denoising step, so its rest differs. A second
probe, with no latency, measures one actor round trip per step (``RayVecEnv.step`` against
``DummyVecEnv.step`` on the same copies).

Sleeping actors use no CPU, so on a 2-core machine 4 actors still overlap their sleeps; the policy
and the actors' own work share those cores with everything else running. Writes JSON.

Usage::

    python benchmarks/ray_scaling.py --out benchmarks/results/ray_scaling.json
    python benchmarks/ray_scaling.py --workers 1,2,4,8,16 --ray-address auto   # on a running cluster
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

from agents.commands.args import finite_float, nonnegative_int, positive_int
from agents.dgpo import DGPO
from agents.policies import RayVecEnv, make_env_for_model
from agents.policies.envs import benchmark_for_env_id
from agents.pretrained import load_pretrained
from dgpo_env.benchmarks import CellResult
from dgpo_env.io import atomic_write_text
from dgpo_env.ledger import RayLedger
from dgpo_env.ledger.ray import require_ray

ENV_ID = "dgpo_env/NB201-CIFAR10-v0"


@dataclass(frozen=True)
class SlowReward:
    """A reward that takes ``latency_s`` seconds (a stand-in for training the cell), then its accuracy (fraction)."""

    latency_s: float

    def __call__(self, result: CellResult) -> float:
        """Sleep, then ``val_acc / 100``."""
        time.sleep(self.latency_s)
        assert result.val_acc is not None  # the environment calls reward_fn for answered cells only
        return result.val_acc / 100.0


def _nonnegative_float(text: str) -> float:
    """``--latency`` / ``--cpus-per-worker``: a finite number ``>= 0``."""
    value = finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def _workers(text: str) -> list[int]:
    """``--workers 1,2,4``: distinct counts >= 1, in increasing order."""
    try:
        counts = [positive_int(part) for part in text.split(",")]
    except argparse.ArgumentTypeError as error:
        raise argparse.ArgumentTypeError(f"--workers must be counts >= 1 separated by commas: {error}") from None
    if len(set(counts)) != len(counts):
        raise argparse.ArgumentTypeError(f"--workers must not repeat a count, got {text!r}")
    return sorted(counts)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=_nonnegative_float, default=0.5, help="seconds per reward (default 0.5)")
    parser.add_argument("--batch-size", type=positive_int, default=16, help="DGPO's episodes per batch")
    parser.add_argument("--workers", type=_workers, default=[1, 2, 4], help="actor counts, e.g. 1,2,4")
    parser.add_argument("--batches", type=positive_int, default=2, help="timed batches per setting")
    parser.add_argument("--n-steps", type=positive_int, default=10, help="denoising steps per episode")
    parser.add_argument("--overhead-steps", type=nonnegative_int, default=200, help="steps of the round-trip probe")
    parser.add_argument("--seed", type=nonnegative_int, default=0)
    parser.add_argument("--ray-address", default=None, help="join a running cluster ('auto', HOST:PORT)")
    parser.add_argument("--ray-cpus", type=positive_int, default=2, help="logical CPUs of a local Ray runtime")
    parser.add_argument(
        "--cpus-per-worker", type=_nonnegative_float, default=None, help="CPUs per actor (default: CPUs / most workers)"
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/ray_scaling.json"))
    args = parser.parse_args(argv)
    bad = [w for w in args.workers if args.batch_size % w]
    if bad:
        parser.error(f"--batch-size {args.batch_size} must be a multiple of every --workers count; not of {bad}")
    return args


def _env(args: argparse.Namespace, workers: int | None, latency: float, ledger: RayLedger | None) -> VecEnv:
    """The local (``workers=None``: ``batch_size`` copies in this process) or Ray environment of the NB201 prior."""
    benchmark = benchmark_for_env_id(ENV_ID, ledger=ledger)
    return make_env_for_model(
        load_pretrained("nb201"),
        ENV_ID,
        n_envs=args.batch_size if workers is None else workers,
        n_steps=args.n_steps,
        seed=args.seed,
        env_kwargs={"reward_fn": SlowReward(latency)},
        benchmark=benchmark,
        vec_env_cls=DummyVecEnv if workers is None else RayVecEnv,
        vec_env_kwargs=None if workers is None else {"num_cpus": args.cpus_per_worker},
    )


def time_batches(args: argparse.Namespace, workers: int | None) -> dict[str, Any]:
    """Seconds per DGPO batch (collection + update), after one warm-up batch."""
    ledger = None if workers is None else RayLedger()
    env = _env(args, workers, args.latency, ledger)
    try:
        agent = DGPO(
            "GraphDiffusionPolicy",
            env,
            policy_kwargs={"model": load_pretrained("nb201")},
            batch_size=args.batch_size,
            learning_rate=1e-4,
            seed=args.seed,
        )
        per_batch = args.batch_size * agent.episode_length
        agent.learn(per_batch)  # warm-up: first forward passes, first ledger calls
        start = time.perf_counter()
        agent.learn(args.batches * per_batch, reset_num_timesteps=False)
        seconds = (time.perf_counter() - start) / args.batches
        queries = agent.n_queries
    finally:
        env.close()
        if ledger is not None:
            ledger.kill()
    return {
        "setting": "local" if workers is None else f"ray-{workers}",
        "workers": workers,
        "s_per_batch": seconds,
        "n_queries": queries,
    }


def step_round_trip(args: argparse.Namespace, workers: int) -> dict[str, float]:
    """Milliseconds per ``step`` with no reward latency: ``workers`` Ray actors vs the same copies in-process."""
    result: dict[str, float] = {"workers": workers}
    ledger = RayLedger()
    try:
        for name, cls in (("ray_ms", RayVecEnv), ("local_ms", DummyVecEnv)):
            env = make_env_for_model(
                load_pretrained("nb201"),
                ENV_ID,
                n_envs=workers,
                n_steps=args.n_steps,
                seed=args.seed,
                benchmark=benchmark_for_env_id(ENV_ID, ledger=ledger if cls is RayVecEnv else None),
                vec_env_cls=cls,
                vec_env_kwargs={"num_cpus": args.cpus_per_worker} if cls is RayVecEnv else None,
            )
            try:
                masks = np.stack(env.env_method("action_masks"))[0]
                nvec = env.action_space.nvec  # type: ignore[attr-defined]
                allowed = [np.flatnonzero(ok) for ok in np.split(masks, np.cumsum(nvec)[:-1])]
                rng = np.random.default_rng(args.seed)
                actions = [
                    np.stack([[rng.choice(values) for values in allowed] for _ in range(workers)])
                    for _ in range(args.overhead_steps)
                ]
                env.reset()
                start = time.perf_counter()
                for action in actions:
                    env.step(action)
                result[name] = 1000.0 * (time.perf_counter() - start) / max(1, len(actions))
            finally:
                env.close()
    finally:
        ledger.kill()
    result["overhead_ms"] = result["ray_ms"] - result["local_ms"]
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    torch.set_num_threads(1)
    ray = require_ray("benchmarks/ray_scaling.py")
    if args.ray_address is None:
        ray.init(num_cpus=args.ray_cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)
    else:
        ray.init(address=args.ray_address, log_to_driver=False, configure_logging=False)
    cluster_cpus = float(ray.cluster_resources().get("CPU", 0.0))
    if args.cpus_per_worker is None:
        args.cpus_per_worker = cluster_cpus / max(args.workers)
    try:
        rows = [time_batches(args, None)] + [time_batches(args, w) for w in args.workers]
        probes = [step_round_trip(args, w) for w in args.workers] if args.overhead_steps else []
    finally:
        ray.shutdown()
    local = rows[0]["s_per_batch"]
    reward_s = args.batch_size * args.latency
    serial_s = max(0.0, local - reward_s)
    print(
        f"DGPO batch of {args.batch_size}, {args.n_steps} denoising steps, reward latency {args.latency} s "
        f"({reward_s:.1f} s of rewards per batch); Ray cluster: {cluster_cpus:g} CPUs, "
        f"{args.cpus_per_worker:g} per actor; {os.cpu_count()} cores on this machine"
    )
    print(f"{'setting':>8} {'s/batch':>8} {'other s':>8} {'speed-up':>9} {'ideal':>6} {'amdahl':>7}")
    for row in rows:
        workers = row["workers"]
        row["other_s_per_batch"] = row["s_per_batch"] - reward_s / (workers or 1)  # policy, update, round trips
        row["speedup"] = local / row["s_per_batch"]
        row["ideal"] = 1.0 if workers is None else float(workers)
        row["amdahl"] = 1.0 if workers is None else local / (serial_s + reward_s / workers)
        print(
            f"{row['setting']:>8} {row['s_per_batch']:8.2f} {row['other_s_per_batch']:8.2f} {row['speedup']:9.2f} "
            f"{row['ideal']:6.1f} {row['amdahl']:7.2f}"
        )
    for probe in probes:
        print(
            f"step round trip, {probe['workers']:g} copies, no latency: Ray {probe['ray_ms']:.2f} ms, "
            f"in-process {probe['local_ms']:.2f} ms (overhead {probe['overhead_ms']:.2f} ms per step)"
        )
    record = {
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "reward_s_per_batch": reward_s,
        "serial_s_per_batch": serial_s,
        "rows": rows,
        "step_round_trip": probes,
        "machine": {
            "cores": os.cpu_count(),
            "load_average": list(os.getloadavg()),
            "python": platform.python_version(),
            "ray": ray.__version__,
            "ray_cpus": cluster_cpus,
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out}")
    return record


if __name__ == "__main__":
    main()
