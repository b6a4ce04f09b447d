"""Simple NAS searchers on NAS-Bench-201 CIFAR-10 beside the literature numbers of docs/benchmarks.md §5.

Runs random search (to 2,000 queries), regularised evolution, local search and REINFORCE (to 500)
for many seeds through :func:`agents.compare.run_comparison`, and prints the mean best validation
accuracy and the share of seeds at the optimum after 200, 500 and 2,000 distinct queries beside the
reference values. The searchers are anytime (what a run does before ``q`` queries does not depend on
its budget), so one run to the largest budget gives every smaller checkpoint.

The budget here counts *distinct* cells (docs/benchmarks.md §2): a repeated look-up is free. The
``rea-evals`` and ``ls-evals`` rows count every look-up instead (``proposals_per_query=1``, one run
per budget), the convention of code that charges each evaluation, to show how much the counting
rule matters. Writes JSON.

Usage::

    python benchmarks/baselines.py --seeds 100 --reinforce-seeds 30 --jobs 2 --out benchmarks/results/baselines.json
"""

from __future__ import annotations

import argparse
import json
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from agents.compare import Comparison, register_method, run_baseline, run_comparison, versions
from dgpo_env.io import atomic_write_text

ENV = "dgpo_env/NB201-CIFAR10-v0"
CHECKPOINTS = (200, 500, 2000)

REFERENCE: dict[str, dict[int, tuple[float | None, float]]] = {
    # docs/benchmarks.md §5: (mean best validation accuracy, share of runs at the optimum); None = not quoted.
    "rs": {200: (91.18, 0.013), 2000: (91.48, 0.13)},
    "rea": {200: (91.51, 0.33), 500: (91.58, 0.71)},
    "ls": {200: (91.56, 0.81), 500: (None, 1.0)},
}

BUDGETS = {"rs": 2000, "rea": 500, "ls": 500, "reinforce": 500}
"""Distinct-query budget per method (one run per seed gives every checkpoint up to it)."""

EVAL_COUNTED = {"rea-evals": "rea", "ls-evals": "ls"}
"""Variants whose budget counts every look-up: one run per checkpoint budget."""


def _rows(comparison: Comparison, method: str) -> list[dict[str, Any]]:
    """Per checkpoint: our mean ± std, share at the optimum, standard error, and the reference."""
    runs = comparison.runs[method]
    out = []
    for q in CHECKPOINTS:
        if q > comparison.max_queries:
            continue
        best = np.array([r.best_at(q) for r in runs], dtype=np.float64)  # [S]
        at_opt = best >= comparison.oracle_val_acc - 1e-3
        ref_val, ref_share = REFERENCE.get(EVAL_COUNTED.get(method, method), {}).get(q, (None, None))
        out.append(
            {
                "method": method,
                "queries": q,
                "n_seeds": len(runs),
                "val_mean": float(best.mean()),
                "val_std": float(best.std()),
                "val_sem": float(best.std(ddof=1) / np.sqrt(len(best))) if len(best) > 1 else None,
                "share_optimum": float(at_opt.mean()),
                "ref_val_mean": ref_val,
                "ref_share_optimum": ref_share,
            }
        )
    return out


def _print(rows: list[dict[str, Any]]) -> None:
    head = f"{'method':10s} {'queries':>7s} {'seeds':>5s} | {'ours: val':>16s} {'at opt':>7s}"
    print(f"{head} | {'ref: val':>8s} {'at opt':>7s}")
    for r in rows:
        ref_val = "-" if r["ref_val_mean"] is None else f"{r['ref_val_mean']:.2f}"
        ref_share = "-" if r["ref_share_optimum"] is None else f"{100 * r['ref_share_optimum']:.1f}%"
        ours = f"{r['val_mean']:.2f} ± {r['val_std']:.2f}"
        print(
            f"{r['method']:10s} {r['queries']:7d} {r['n_seeds']:5d} | {ours:>16s} "
            f"{100 * r['share_optimum']:6.1f}% | {ref_val:>8s} {ref_share:>7s}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=100, help="seeds for rs, rea and ls")
    parser.add_argument("--reinforce-seeds", type=int, default=30, help="seeds for reinforce")
    parser.add_argument("--algos", default="rs,rea,ls,reinforce,rea-evals,ls-evals")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/baselines.json"))
    args = parser.parse_args()

    rows: list[dict[str, Any]] = []
    seconds: dict[str, float] = {}
    settings: dict[str, dict[str, Any]] = {}
    for label, searcher in EVAL_COUNTED.items():
        register_method(label, partial(run_baseline, searcher, proposals_per_query=1), overwrite=True)
    for method in args.algos.split(","):
        seeds = args.reinforce_seeds if method == "reinforce" else args.seeds
        budgets = [q for q in CHECKPOINTS if q <= 500] if method in EVAL_COUNTED else [BUDGETS.get(method, 500)]
        start = time.perf_counter()
        for budget in budgets:
            comparison = run_comparison(ENV, [method], seeds, budget, n_jobs=args.jobs, progress=False, echo=False)
            rows += [r for r in _rows(comparison, method) if method not in EVAL_COUNTED or r["queries"] == budget]
            settings[method] = comparison.runs[method][0].settings
            oracle = comparison.oracle_val_acc
        seconds[method] = time.perf_counter() - start
    print(f"NB201 CIFAR-10 (oracle validation {oracle:.4f}); 'at opt' = best cell is the oracle")
    _print(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(
        args.out,
        json.dumps(
            {
                "env": ENV,
                "oracle_val_acc": oracle,
                "budgets": BUDGETS,
                "settings": settings,
                "wall_time_s": seconds,
                "versions": versions(),
                "rows": rows,
            },
            indent=1,
        ),
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
