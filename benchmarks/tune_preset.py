r"""Tune a DGPO preset on the tuning seeds: one setting change, every seed, the best found at each budget.

The tables of docs/dgpo.md §4 ("Batches of five", "Exploration copies") come from this script: it runs a
preset of :data:`agents.dgpo.variants.PRESETS` with some settings changed (``--set name=value``, any
field of the preset's settings dataclasses) on one NAS-Bench-201 dataset, for every seed, with a
budget of distinct queries (:func:`agents.dgpo.compare_methods.run_dgpo`, the function behind
``dgpo compare``'s DGPO methods), and prints per seed the best validation accuracy after 50, 100, 200
and 500 queries (those within the budget), then per budget the mean over seeds and how many seeds were
at the oracle. The same is written as JSON to ``--out``.

Only seeds below 100 are accepted: they are the tuning seeds; seeds 100 and above are kept for the
reported comparisons (``benchmarks/query_efficiency.py``), so a setting is never chosen on the seeds it
is reported on.

Values of ``--set`` are Python literals (``3``, ``0.5``, ``True``, ``'mean'``); a bare word is a string.
They are checked by the settings dataclasses, not converted: ``--set per_copy=1`` is refused, as
``per_copy`` is a bool.

Usage::

    python benchmarks/tune_preset.py --dataset cifar10 --budget 200 --seeds 40-99 --set explore_copies=2 \
        --table-path ../shared/data/nb201/nb201.npz --out benchmarks/results/tuning/c10_200_ec2.json
"""

from __future__ import annotations

import argparse
import ast
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

from agents.dgpo.compare_methods import run_dgpo
from agents.dgpo.config import Settings
from agents.dgpo.variants import PRESETS, Preset, get_preset
from agents.harness import versions
from agents.harness.registry import benchmark_kwargs_for, build_benchmark
from dgpo_env.io import atomic_write_text, dumps_json, ensure_writable_dir

sys.path.insert(0, str(Path(__file__).resolve().parent))
from query_efficiency import parse_seeds  # a sibling script, as inverse_control imports reproduce_paper

FIRST_REPORTING_SEED = 100
"""Seeds from here on are for reporting only (docs/benchmarks.md §5)."""
CHECKPOINTS: tuple[int, ...] = (50, 100, 200, 500)
"""Budgets (distinct queries) at which the best accuracy is read, those up to ``--budget``."""
DATASETS: tuple[str, ...] = ("cifar10", "cifar100", "imagenet16")
"""The NAS-Bench-201 datasets, as ``nb201:<dataset>``."""
AT_ORACLE_TOLERANCE = 1e-3
"""A seed is at the oracle when its best is within this many accuracy points of it (float rounding only)."""


def parse_setting(text: str) -> tuple[str, Any]:
    """``"name=value"`` -> ``(name, value)``, the value a Python literal, or the bare word as a string.

    Raises:
        argparse.ArgumentTypeError: Without ``=`` or with an empty name.
    """
    name, sep, raw = text.partition("=")
    name = name.strip()
    if not sep or not name.isidentifier():
        raise argparse.ArgumentTypeError(f"--set takes name=value (e.g. explore_copies=2), got {text!r}")
    try:
        value = ast.literal_eval(raw.strip())
    except (ValueError, SyntaxError):
        value = raw.strip()
    return name, value


def tuning_seeds(text: str) -> list[int]:
    """:func:`parse_seeds`, refusing seeds of the reporting range (100 and above)."""
    seeds = parse_seeds(text)
    reporting = [s for s in seeds if s >= FIRST_REPORTING_SEED]
    if reporting:
        raise argparse.ArgumentTypeError(
            f"--seeds: {reporting[:5]} are reporting seeds; tune on seeds below {FIRST_REPORTING_SEED} "
            "(report with benchmarks/query_efficiency.py --seeds 100-119)"
        )
    return seeds


def check_settings(preset: Preset, settings: dict[str, Any]) -> None:
    """Check every changed setting against the preset's settings dataclasses (names, types, ranges).

    Raises:
        ValueError: For a name that is no setting of the preset (the message lists them) or a value out of range.
        TypeError: For a value of the wrong type.
    """
    groups: list[Settings] = [
        g for g in (preset.config, preset.elite, preset.surrogate, preset.pareto) if g is not None
    ]
    for name, value in settings.items():
        owner = next((g for g in groups if name in type(g).field_names()), None)
        if owner is None:
            known = sorted(n for g in groups for n in type(g).field_names())
            raise ValueError(
                f"--set {name}: preset {preset.name!r} has no such setting; its settings: {', '.join(known)}"
            )
        owner.replace(**{name: value})


def best_at(curve: list[float], checkpoints: list[int]) -> list[float]:
    """The best accuracy after each checkpoint's number of queries (``nan`` if the run found no valid cell)."""
    return [max(curve[:c]) if curve else float("nan") for c in checkpoints]


def one_seed(args: tuple[dict[str, Any], int, int, str, dict[str, Any]]) -> tuple[int, list[float], float]:
    """Worker: ``(benchmark kwargs, seed, budget, variant, settings)`` -> ``(seed, curve, seconds)``."""
    benchmark_kwargs, seed, budget, variant, settings = args
    result = run_dgpo(benchmark_kwargs, seed, budget, variant=variant, **settings)
    return seed, [float(v) for v in result.curve], float(result.wall_time_s)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="surrogate", choices=sorted(PRESETS), help="the preset to tune")
    parser.add_argument("--dataset", required=True, choices=DATASETS)
    parser.add_argument("--budget", type=int, required=True, help="distinct queries per run")
    parser.add_argument("--seeds", type=tuning_seeds, default=tuning_seeds("0-19"), help="tuning seeds (< 100)")
    parser.add_argument(
        "--set",
        dest="settings",
        type=parse_setting,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="change one preset setting (repeatable)",
    )
    parser.add_argument("--table-path", default=None, help="extended NB201 .npz")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (one torch thread each)")
    parser.add_argument("--out", type=Path, default=None, help="JSON file to write")
    args = parser.parse_args(argv)
    if args.budget < 1:
        parser.error(f"--budget must be >= 1, got {args.budget}")
    if args.jobs < 1:
        parser.error(f"--jobs must be >= 1, got {args.jobs}")
    settings = dict(args.settings)
    if len(settings) != len(args.settings):
        parser.error("--set names a setting twice")
    try:
        check_settings(get_preset(args.variant), settings)
    except (TypeError, ValueError) as error:
        parser.error(str(error))
    if args.out is not None:
        ensure_writable_dir(args.out.parent)
    benchmark_kwargs = benchmark_kwargs_for(f"nb201:{args.dataset}", table_path=args.table_path)
    oracle = build_benchmark(benchmark_kwargs).oracle.val_acc
    checkpoints = [c for c in CHECKPOINTS if c <= args.budget] or [args.budget]
    jobs = [(benchmark_kwargs, seed, args.budget, args.variant, settings) for seed in args.seeds]
    start = time.perf_counter()
    bests: dict[int, list[float]] = {}
    print(f"{args.variant} on {args.dataset} (oracle {oracle:.3f}), budget {args.budget}, settings {settings}")
    with ExitStack() as stack:
        # --jobs 1 runs in this process; more: worker processes, one run each at a time
        pool = stack.enter_context(ProcessPoolExecutor(args.jobs)) if args.jobs > 1 else None
        for seed, curve, seconds in (pool.map if pool else map)(one_seed, jobs):
            bests[seed] = best_at(curve, checkpoints)
            shown = " ".join(f"@{c} {b:.3f}" for c, b in zip(checkpoints, bests[seed], strict=True))
            print(f"seed {seed}: {shown}  {seconds:.1f} s", flush=True)
    table = np.array([bests[s] for s in args.seeds])  # [seeds, checkpoints]
    summary = {}
    for j, c in enumerate(checkpoints):
        at_oracle = int((table[:, j] >= oracle - AT_ORACLE_TOLERANCE).sum())
        summary[str(c)] = {"mean": float(np.nanmean(table[:, j])), "at_oracle": at_oracle, "seeds": len(args.seeds)}
        print(f"@{c}: mean {summary[str(c)]['mean']:.3f}, at the oracle {at_oracle}/{len(args.seeds)}")
    if args.out is not None:
        report = {
            "command": "python "
            + " ".join([Path(sys.argv[0]).as_posix(), *(argv if argv is not None else sys.argv[1:])]),
            "variant": args.variant,
            "dataset": args.dataset,
            "budget": args.budget,
            "settings": settings,
            "oracle": oracle,
            "seeds": args.seeds,
            "best": {str(s): dict(zip(map(str, checkpoints), bests[s], strict=True)) for s in args.seeds},
            "summary": summary,
            "seconds": time.perf_counter() - start,
            "versions": versions(),
        }
        atomic_write_text(args.out, dumps_json(report))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
