"""Sweep DGPO's learning rate and batch size on NAS-Bench-201 with Ray Tune, scored by query efficiency.

Each Tune trial fine-tunes the shipped NB201 structure prior (``agents/pretrained/nb201.pt``, which
read no accuracy) with DGPO on ``dgpo_env/NB201-CIFAR10-v0`` for every tuning seed, each run with
its own exact budget of ``--max-queries`` distinct cells. The score is the **area under the
best-so-far curve**: the mean, over queries 1..Q, of the best validation accuracy found so far
(a run that stops early keeps its last value), averaged over the seeds. It rewards finding good
cells early, not only by the end of the budget. Tuning uses seeds below 100; the best setting is
then run again on held-out seeds (100 and up) and reported there, so the reported number is not the
one the sweep was chosen on.

Needs the ``ray`` extra (``pip install "dgpo-env[ray]"``, which includes Ray Tune). Without
``--address`` a local Ray runtime is started; ``--address auto`` joins the cluster this machine is
part of (docs/ray.md).

Run::

    python examples/ray_tune_sweep.py --max-queries 100 --seeds 0,1,2 --report-seeds 100,101,102
    python examples/ray_tune_sweep.py --smoke    # 4 tiny trials, seconds to tens of seconds
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.commands.args import positive_float, positive_int
from agents.dgpo import DGPO
from agents.pretrained import load_pretrained
from dgpo_env.io import atomic_write_text
from dgpo_env.ledger.ray import require_ray

ENV_ID = "dgpo_env/NB201-CIFAR10-v0"
TUNING_SEEDS_BELOW = 100
"""Seeds the sweep may tune on are below this; held-out seeds are this or above."""


def query_efficiency(curve: np.ndarray, max_queries: int) -> float:
    """Area under the best-so-far curve per query: its mean over queries ``1..max_queries``.

    Args:
        curve: ``float64[H]`` best validation accuracy (percent) after each distinct query, ``H <= max_queries``.
        max_queries: The budget ``Q``; a curve shorter than ``Q`` (the run stopped early) keeps its last value.

    Returns:
        The mean in percent, or NaN for an empty curve.
    """
    if curve.size == 0:
        return float("nan")
    padded = np.concatenate([curve[:max_queries], np.full(max(0, max_queries - curve.size), curve[-1])])
    return float(padded.mean())


def run_dgpo(learning_rate: float, batch_size: int, seed: int, max_queries: int, n_steps: int) -> dict[str, float]:
    """One DGPO run of the NB201 prior with an exact budget; its query efficiency and best accuracy."""
    torch.set_num_threads(1)
    agent = DGPO.for_env_id(
        load_pretrained("nb201"),
        ENV_ID,
        n_steps=n_steps,
        batch_size=batch_size,
        learning_rate=learning_rate,
        max_queries=max_queries,
        max_stale_batches=20,  # a policy that only proposes known cells will not reach the budget
        seed=seed,
    )
    agent.learn(10**9)  # stops at the budget (or after 20 batches without a new cell)
    assert agent.ledger is not None
    curve = agent.ledger.best_so_far()
    return {
        "query_efficiency": query_efficiency(curve, max_queries),
        "best_val_acc": float(curve[-1]) if curve.size else float("nan"),
        "n_queries": float(agent.n_queries),
    }


def mean_over_seeds(config: dict[str, Any], seeds: list[int]) -> dict[str, float]:
    """:func:`run_dgpo` on every seed with ``config``'s learning rate and batch size, averaged."""
    runs = [
        run_dgpo(config["learning_rate"], config["batch_size"], seed, config["max_queries"], config["n_steps"])
        for seed in seeds
    ]
    return {key: float(np.mean([run[key] for run in runs])) for key in runs[0]}


def trial(config: dict[str, Any]) -> None:
    """A Tune trial: the setting in ``config`` on the tuning seeds; reports the mean scores."""
    from ray import tune

    tune.report(mean_over_seeds(config, config["seeds"]))


def _seeds(text: str) -> list[int]:
    """``0,1,2``: distinct seeds >= 0."""
    try:
        seeds = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seeds separated by commas, e.g. 0,1,2; got {text!r}") from None
    if len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise argparse.ArgumentTypeError(f"expected distinct seeds >= 0, got {text!r}")
    return seeds


def _floats(text: str) -> list[float]:
    """``1e-4,1e-3``: numbers > 0."""
    return [positive_float(part) for part in text.split(",")]


def _counts(text: str) -> list[int]:
    """``8,16``: integers >= 1."""
    return [positive_int(part) for part in text.split(",")]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--learning-rates", type=_floats, default=[3e-5, 1e-4, 3e-4, 1e-3], help="grid, e.g. 1e-4,1e-3")
    parser.add_argument("--batch-sizes", type=_counts, default=[8, 16, 32], help="grid, e.g. 8,16")
    parser.add_argument("--seeds", type=_seeds, default=[0, 1, 2], help=f"tuning seeds (< {TUNING_SEEDS_BELOW})")
    parser.add_argument("--report-seeds", type=_seeds, default=[100, 101, 102], help="held-out seeds (>= 100)")
    parser.add_argument("--max-queries", type=positive_int, default=100, help="each run's budget of distinct cells")
    parser.add_argument("--n-steps", type=positive_int, default=10, help="denoising steps per episode")
    parser.add_argument("--cpus-per-trial", type=positive_float, default=1.0)
    parser.add_argument("--address", default=None, help="join a running Ray cluster ('auto', HOST:PORT)")
    parser.add_argument("--storage", type=Path, default=Path("runs/ray_tune"), help="Tune's experiment folder")
    parser.add_argument("--out", type=Path, default=None, help="also write the summary as JSON")
    parser.add_argument("--smoke", action="store_true", help="tiny grid and budget (a test runs it)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.learning_rates, args.batch_sizes, args.max_queries, args.n_steps = [1e-4, 1e-3], [4, 8], 8, 4
        args.seeds, args.report_seeds = [0], [100]
    if max(args.seeds) >= TUNING_SEEDS_BELOW:
        parser.error(f"--seeds must be below {TUNING_SEEDS_BELOW} (seeds from 100 on are held out for reporting)")
    if min(args.report_seeds) < TUNING_SEEDS_BELOW:
        parser.error(f"--report-seeds must be {TUNING_SEEDS_BELOW} or above (below are the tuning seeds)")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    ray = require_ray("examples/ray_tune_sweep.py")
    from ray import tune

    started = not ray.is_initialized()
    if started:
        ray.init(address=args.address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    fixed = {"seeds": args.seeds, "max_queries": args.max_queries, "n_steps": args.n_steps}
    tuner = tune.Tuner(
        tune.with_resources(trial, {"cpu": args.cpus_per_trial}),
        param_space={
            "learning_rate": tune.grid_search(args.learning_rates),
            "batch_size": tune.grid_search(args.batch_sizes),
            **fixed,
        },
        tune_config=tune.TuneConfig(metric="query_efficiency", mode="max", reuse_actors=True),
        run_config=tune.RunConfig(name="dgpo_lr_batch", storage_path=str(args.storage.resolve()), verbose=0),
    )
    try:
        results = tuner.fit()
    finally:
        if started:
            ray.shutdown()
    if results.errors:
        raise RuntimeError(f"{len(results.errors)} trial(s) failed; the first: {results.errors[0]}")
    rows = sorted(
        (
            {"learning_rate": r.config["learning_rate"], "batch_size": r.config["batch_size"], **r.metrics}
            for r in results
        ),
        key=lambda row: -row["query_efficiency"],
    )
    print(f"DGPO on {ENV_ID}, {args.max_queries} queries per run, tuning seeds {args.seeds}")
    print(f"{'lr':>9} {'batch':>5} {'query eff.':>10} {'best val':>9}")
    for row in rows:
        print(
            f"{row['learning_rate']:9.1e} {row['batch_size']:5d} {row['query_efficiency']:10.3f} "
            f"{row['best_val_acc']:9.3f}"
        )
    best = {key: rows[0][key] for key in ("learning_rate", "batch_size")}
    held_out = mean_over_seeds({**best, **fixed}, args.report_seeds)
    print(
        f"best setting {best}: on held-out seeds {args.report_seeds}, query efficiency "
        f"{held_out['query_efficiency']:.3f}, best val acc {held_out['best_val_acc']:.3f}"
    )
    summary = {
        "settings": {k: v for k, v in vars(args).items() if k not in ("storage", "out")},
        "trials": [
            {k: row[k] for k in ("learning_rate", "batch_size", "query_efficiency", "best_val_acc", "n_queries")}
            for row in rows
        ],
        "best": best,
        "held_out": held_out,
    }
    if args.out is not None:
        atomic_write_text(args.out, json.dumps(summary, indent=2) + "\n")
    return summary


if __name__ == "__main__":
    main()
