r"""Tune a DGPO preset on the tuning seeds: one setting change, every seed, the best found at each budget.

The restart table of docs/dgpo.md §4 ("Restarts") comes from this script (the earlier tables of that section
from an ad-hoc script that called the same function with the same arguments): it runs a
preset of :data:`agents.dgpo.variants.PRESETS` with some settings changed (``--set name=value``, any
field of the preset's settings dataclasses) on one NAS-Bench-201 dataset, for every seed, with a
budget of distinct queries (:func:`agents.dgpo.compare_methods.run_dgpo`, the function behind
``dgpo compare``'s DGPO methods), and prints per seed the best validation accuracy after 50, 100, 200
and 500 queries (those below the budget) and at the budget, then per budget the mean over seeds and how many seeds were
at the oracle. The same, with every run's curve, stop reason and effective settings, is written as JSON to
``--out`` after every seed (atomically), so an interrupted tuning keeps its finished seeds; ``--resume``
continues it.

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
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

from agents.dgpo.compare_methods import run_dgpo
from agents.dgpo.config import settings_from
from agents.dgpo.variants import PRESETS, Preset, get_preset
from agents.harness import versions
from agents.harness.registry import benchmark_kwargs_for, build_benchmark
from dgpo_env.benchmarks.errors import BenchmarkDataError
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
SPEC_PRESETS: frozenset[str] = frozenset({"pareto", "constrained"})
"""Presets that need a run spec's objectives or budgets (``dgpo compare``); this script tunes on accuracy alone."""


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


def checked_settings(preset: Preset, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """The ``--set`` pairs as settings, each given once and checked by :func:`check_settings`.

    Raises:
        ValueError: For a name given twice, or what :func:`check_settings` refuses (with a hint when a bool was
            written ``true`` / ``false``).
    """
    settings = dict(pairs)
    if len(settings) != len(pairs):
        raise ValueError("--set names a setting twice")
    try:
        check_settings(preset, settings)
    except (TypeError, ValueError) as error:
        words = [f"{name}={value}" for name, value in settings.items() if value in ("true", "false")]
        hint = f" (a bool is written True or False: not {words[0]})" if words else ""
        raise ValueError(f"{error}{hint}") from error
    return settings


def check_settings(preset: Preset, settings: dict[str, Any]) -> None:
    """Check every changed setting as the preset's algorithm would (names, then types and ranges).

    Raises:
        ValueError: For a name that is no setting of the preset (the message lists them) or a value out of range.
        TypeError: For a value of the wrong type.
    """
    known = preset.algorithm.setting_names()
    unknown = [name for name in settings if name not in known]
    if unknown:
        raise ValueError(
            f"--set {unknown[0]}: preset {preset.name!r} has no such setting; its settings: {', '.join(sorted(known))}"
        )
    rest = dict(settings)
    given = preset.constructor_kwargs()
    for source, settings_class in preset.algorithm.settings_classes.items():
        settings_from(source, settings_class, given.get(source), rest)  # each field checked by its dataclass


def best_at(curve: list[float], checkpoints: list[int]) -> list[float]:
    """The best accuracy after each checkpoint's number of queries (``nan`` if the run found no valid cell)."""
    return [max(curve[:c]) if curve else float("nan") for c in checkpoints]


def one_seed(args: tuple[dict[str, Any], int, int, str, dict[str, Any]]) -> dict[str, Any]:
    """Worker: ``(benchmark kwargs, seed, budget, variant, settings)`` -> the run's curve, time, stop and settings."""
    benchmark_kwargs, seed, budget, variant, settings = args
    result = run_dgpo(benchmark_kwargs, seed, budget, variant=variant, **settings)
    return {
        "seed": seed,
        "curve": [float(v) for v in result.curve],
        "seconds": float(result.wall_time_s),
        "stop_reason": result.stop_reason,
        "n_queries": result.n_queries,
        "settings": result.settings,
    }


def summarise(bests: dict[int, list[float]], checkpoints: list[int], oracle: float) -> dict[str, dict[str, Any]]:
    """Per checkpoint: the mean best accuracy over the finished seeds and how many were at the oracle."""
    table = np.array(list(bests.values())).reshape(len(bests), len(checkpoints))  # [seeds, checkpoints]
    return {
        str(c): {
            "mean": float(np.nanmean(table[:, j])) if len(bests) else float("nan"),
            "at_oracle": int((table[:, j] >= oracle - AT_ORACLE_TOLERANCE).sum()),
            "seeds": len(bests),
        }
        for j, c in enumerate(checkpoints)
    }


def build_parser() -> argparse.ArgumentParser:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument(
        "--variant",
        default="surrogate",
        choices=sorted(set(PRESETS) - SPEC_PRESETS),
        help="the preset to tune (pareto and constrained need a run spec's objectives or budgets, which this "
        "script does not take: call agents.dgpo.compare_methods.run_dgpo with the spec and the changed settings)",
    )
    parser.add_argument("--dataset", required=True, choices=DATASETS, help="the NAS-Bench-201 dataset")
    parser.add_argument("--budget", type=int, required=True, help="distinct queries per run")
    parser.add_argument("--seeds", type=tuning_seeds, default="0-19", help="tuning seeds (< 100)")
    parser.add_argument(
        "--set",
        dest="settings",
        type=parse_setting,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="change a preset setting (repeat for several); VALUE is a Python literal: 3, 0.5, True, 'mean'",
    )
    parser.add_argument("--table-path", default=None, help="extended NB201 .npz (the tables in docs/ used it)")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (one torch thread each)")
    parser.add_argument("--out", type=Path, default=None, help="JSON file, rewritten after every seed")
    again = parser.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true", help="continue --out: skip the seeds it already has")
    again.add_argument("--force", action="store_true", help="replace an existing --out")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.budget < 1:
        parser.error(f"--budget must be >= 1, got {args.budget}")
    if args.jobs < 1:
        parser.error(f"--jobs must be >= 1, got {args.jobs}")
    try:
        settings = checked_settings(get_preset(args.variant), args.settings)
    except ValueError as error:
        parser.error(str(error))
    checkpoints = [c for c in CHECKPOINTS if c < args.budget] + [args.budget]
    runs: dict[int, dict[str, Any]] = {}
    earlier: dict[str, Any] = {}  # the report --resume continues: its command and time are kept
    if args.out is not None:
        if args.out.is_dir():
            parser.error(f"--out {args.out} is a directory; give a file name such as {args.out / 'tuning.json'}")
        try:
            ensure_writable_dir(args.out.parent)
        except (OSError, ValueError) as error:
            parser.error(f"--out: {error}")
        if args.out.exists() and not (args.resume or args.force):
            parser.error(f"--out {args.out} exists; --resume continues it, --force replaces it")
        if args.out.exists() and args.resume:
            fields = ("variant", "dataset", "budget", "settings", "table_path")
            try:
                earlier = json.loads(args.out.read_text())
                same = [earlier[k] for k in fields]
                runs = {int(seed): run for seed, run in earlier["runs"].items() if int(seed) in args.seeds}
            except (OSError, ValueError, KeyError, TypeError) as error:
                parser.error(f"--resume: {args.out} is not a file this script wrote ({error}); use --force")
            asked = [args.variant, args.dataset, args.budget, settings, args.table_path]
            differ = [
                f"{k} {old!r} (now {new!r})" for k, old, new in zip(fields, same, asked, strict=True) if old != new
            ]
            if differ:
                parser.error(
                    f"--resume: {args.out} holds another tuning run: {'; '.join(differ)}; use another --out or --force"
                )
    benchmark_kwargs = benchmark_kwargs_for(f"nb201:{args.dataset}", table_path=args.table_path)
    try:
        oracle = build_benchmark(benchmark_kwargs).oracle.val_acc
    except BenchmarkDataError as error:
        parser.error(f"--table-path: {error}")
    jobs = [(benchmark_kwargs, seed, args.budget, args.variant, settings) for seed in args.seeds if seed not in runs]
    start = time.perf_counter()
    command = "python " + " ".join([Path(sys.argv[0]).as_posix(), *(argv if argv is not None else sys.argv[1:])])
    print(f"{args.variant} on {args.dataset} (oracle {oracle:.3f}), budget {args.budget}, settings {settings}")
    if runs:
        print(f"resuming {args.out}: {len(runs)} of {len(args.seeds)} seeds done")

    def write(complete: bool) -> None:
        if args.out is None:
            return
        order = [s for s in args.seeds if s in runs]
        bests = {s: best_at(runs[s]["curve"], checkpoints) for s in order}
        report = {
            "command": earlier.get("command", command),
            "resumed_with": [*earlier.get("resumed_with", []), command] if earlier else [],
            "complete": complete,
            "variant": args.variant,
            "dataset": args.dataset,
            "budget": args.budget,
            "settings": settings,
            "table_path": args.table_path,
            "oracle": oracle,
            "seeds": args.seeds,
            "best": {str(s): dict(zip(map(str, checkpoints), bests[s], strict=True)) for s in order},
            "summary": summarise(bests, checkpoints, oracle),
            "runs": {str(s): runs[s] for s in order},
            "seconds": float(earlier.get("seconds", 0.0)) + time.perf_counter() - start,  # over every call
            "versions": versions(),
        }
        atomic_write_text(args.out, dumps_json(report))

    try:
        with ExitStack() as stack:
            # --jobs 1 runs in this process; more: worker processes, one run each at a time
            pool = stack.enter_context(ProcessPoolExecutor(args.jobs)) if args.jobs > 1 else None
            for run in (pool.map if pool else map)(one_seed, jobs):
                runs[run["seed"]] = run
                shown = " ".join(
                    f"@{c} {b:.3f}" for c, b in zip(checkpoints, best_at(run["curve"], checkpoints), strict=True)
                )
                print(f"seed {run['seed']}: {shown}  {run['seconds']:.1f} s", flush=True)
                write(complete=False)
    except (TypeError, ValueError) as error:  # a setting the preset's algorithm refuses when it is built
        print(f"error: {error} (finished seeds are kept in --out; fix the settings and use --force)", file=sys.stderr)
        return 2
    bests = {s: best_at(runs[s]["curve"], checkpoints) for s in args.seeds}
    for c, row in summarise(bests, checkpoints, oracle).items():
        print(f"@{c}: mean {row['mean']:.3f}, at the oracle {row['at_oracle']}/{row['seeds']}")
    write(complete=True)
    if args.out is not None:
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
