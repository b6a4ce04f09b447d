"""Query efficiency on NAS-Bench-201: DGPO and its variants against the NAS searchers at equal budgets.

For every dataset, one :func:`agents.compare.run_comparison` (the engine of ``dgpo compare``) runs
every method for every seed with a budget of distinct queries; the best validation accuracy found
and the share of seeds at the optimum are read at each budget. A DGPO method *beats the peers* at a
budget when its mean best validation accuracy and its share at the optimum are both at least those
of regularised evolution and of local search measured in the same run (docs/benchmarks.md §5).

Writes the harness's files per dataset under ``--out-dir`` (named by
:func:`agents.harness.output_stem`, e.g. ``compare_nb201-cifar10_500q_20seeds_dgpo+...+ppo-mlp.json`` /
``.png``) and ``--out``: the per-budget table, the verdicts, the command and the versions. Every
finished run is stored as it ends; after Ctrl-C (exit 130) or a failed run (exit 1), ``--resume``
(alias ``--reuse``) continues, also from a complete comparison, which is then only read; existing
outputs are never replaced without ``--resume`` or ``--force`` (see docs/harness.md).

Usage::

    python benchmarks/query_efficiency.py --seeds 20 --jobs 2 --table-path ../shared/data/nb201/nb201.npz
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from agents.baselines.peers import PEERS_INSTALL
from agents.harness import (
    ComparisonFailed,
    ComparisonInterrupted,
    comparison_paths,
    comparison_settings,
    run_comparison,
    versions,
)
from agents.harness.registry import benchmark_kwargs_for, installed_peer_methods
from dgpo_env.io import atomic_write_text, ensure_writable_dir

DATASETS = ("cifar10", "cifar100", "imagenet16")
ALGOS = ("dgpo", "dgpo-elite", "rea", "ls", "rs", "ppo", "ppo-mlp")
"""The default methods; the peer optimisers ``tpe`` and ``smac`` join them when the ``peers`` extra is installed."""
PEERS = ("rea", "ls")
"""The searchers DGPO must match or beat (docs/benchmarks.md §5)."""
BUDGETS = (100, 200, 500)


def default_algos() -> list[str]:
    """:data:`ALGOS` plus the peer optimisers (``tpe``, ``smac``) whose optional packages are installed."""
    return [*ALGOS, *installed_peer_methods()]


def budget_table(comparison: dict[str, Any], budgets: list[int]) -> dict[str, dict[str, dict[str, float]]]:
    """``{method: {budget: {"val_mean", "val_std", "share_optimum"}}}`` from one comparison's JSON dict.

    The run's own budget is the summary's final values; smaller budgets are its checkpoints.
    """
    table: dict[str, dict[str, dict[str, float]]] = {}
    for summary in comparison["summary"]:
        rows = {}
        for q in budgets:
            if q == comparison["max_queries"]:
                mean, std, share = summary["val_mean"], summary["val_std"], summary["share_optimum"]
            else:
                mean, std, share = summary["checkpoints"][str(q)]
            rows[str(q)] = {"val_mean": mean, "val_std": std, "share_optimum": share}
        table[summary["method"]] = rows
    return table


def legacy_json(
    out_dir: Path, dataset: str, algos: list[str], budgets: list[int], args: argparse.Namespace
) -> Path | None:
    """A complete comparison JSON of the same settings under the old name ``compare_nb201-<dataset>_<Q>q.json``.

    Files from before the harness named outputs by their settings (the committed results) are
    reused with ``--resume`` when their settings match.
    """
    path = out_dir / f"compare_nb201-{dataset}_{max(budgets)}q.json"
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    expected = comparison_settings(
        f"nb201:{dataset}",
        benchmark_kwargs_for(f"nb201:{dataset}", args.table_path),
        max(budgets),
        algos,
        list(range(args.seeds)),
    )
    same = data["seeds"] == expected["seeds"] and sorted(data["runs"]) == sorted(algos)
    same = same and data["max_queries"] == max(budgets)
    same = same and data["benchmark_kwargs"] == expected["benchmark_kwargs"] and data.get("complete", True)
    return path if same and set(budgets) <= {*data["checkpoints"], data["max_queries"]} else None


def load_or_run(
    json_path: Path, dataset: str, algos: list[str], budgets: list[int], args: argparse.Namespace
) -> dict[str, Any]:
    """The comparison's JSON dict (plus its ``json_path``): run, or with ``--resume`` continue, the comparison."""
    if args.resume and not json_path.exists():
        legacy = legacy_json(args.out_dir, dataset, algos, budgets, args)
        if legacy is not None:
            print(f"{dataset}: reusing {legacy}", flush=True)
            return dict(json.loads(legacy.read_text()), json_path=str(legacy))
    comparison = run_comparison(
        f"nb201:{dataset}",
        algos,
        args.seeds,
        max(budgets),
        n_jobs=args.jobs,
        out_dir=args.out_dir,
        table_path=args.table_path,
        checkpoints=budgets,
        progress=False,
        resume=args.resume,
        force=args.force,
    )
    return dict(comparison.to_dict(), json_path=str(comparison.json_path))


def verdicts(
    table: dict[str, dict[str, dict[str, float]]], challengers: list[str], budgets: list[int]
) -> dict[str, dict[str, dict[str, Any]]]:
    """For every challenger and budget: the best peer values and whether the challenger matches both."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    peers = [p for p in PEERS if p in table]
    for method in challengers:
        rows = {}
        for q in map(str, budgets):
            best_mean = max(table[p][q]["val_mean"] for p in peers)
            best_share = max(table[p][q]["share_optimum"] for p in peers)
            own = table[method][q]
            rows[q] = {
                "peer_val_mean": best_mean,
                "peer_share_optimum": best_share,
                "val_mean_ok": own["val_mean"] >= best_mean - 1e-9,
                "share_ok": own["share_optimum"] >= best_share - 1e-9,
            }
            rows[q]["beats_peers"] = rows[q]["val_mean_ok"] and rows[q]["share_ok"]
        out[method] = rows
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the comparisons, print the verdicts, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument(
        "--algos",
        default=None,
        help=f"comma-separated methods (default: {','.join(ALGOS)}, plus tpe and smac when installed: {PEERS_INSTALL})",
    )
    parser.add_argument("--seeds", type=int, default=10, help="seeds 0 .. S-1 (at least 10; docs/benchmarks.md §2)")
    parser.add_argument("--budgets", default=",".join(map(str, BUDGETS)), help="budgets; the largest is the run's")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--table-path", default=None, help="extended NB201 .npz (adds test accuracy)")
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/results/query_efficiency"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/query_efficiency.json"))
    again = parser.add_mutually_exclusive_group()
    again.add_argument(
        "--resume",
        "--reuse",
        action="store_true",
        help="continue (or reuse) each dataset's comparison from the same settings; skip finished runs",
    )
    again.add_argument("--force", action="store_true", help="delete earlier comparisons of the same settings first")
    args = parser.parse_args(argv)
    algos = args.algos.split(",") if args.algos else default_algos()
    budgets = sorted(int(b) for b in args.budgets.split(","))
    missing = [p for p in PEERS if p not in algos]
    if missing:
        parser.error(f"--algos must include the peers {', '.join(PEERS)} (missing {', '.join(missing)})")
    challengers = [a for a in algos if a.startswith("dgpo")]
    try:  # fail now, not after the runs
        ensure_writable_dir(args.out.parent)
    except OSError as err:
        parser.error(str(err.strerror or err))
    report: dict[str, Any] = {
        "command": " ".join(["python", *map(shlex.quote, [sys.argv[0], *(argv or sys.argv[1:])])]),
        "versions": versions(),
        "seeds": args.seeds,
        "budgets": budgets,
        "algos": algos,
        "peers": list(PEERS),
        "datasets": {},
    }
    for dataset in args.datasets.split(","):
        start = time.perf_counter()
        paths = comparison_paths(args.out_dir, f"nb201-{dataset}", max(budgets), algos, list(range(args.seeds)))
        try:
            comparison = load_or_run(paths.json, dataset, algos, budgets, args)
        except ValueError as err:
            parser.exit(2, f"{parser.prog}: error: {err}\n")
        except ComparisonFailed as err:
            print(f"{dataset}: {err}\nfix the cause and run the same command with --resume", file=sys.stderr)
            return 1
        except ComparisonInterrupted as err:
            print(f"{dataset}: {err}; run the same command with --resume to continue", file=sys.stderr)
            return 130
        json_path = Path(comparison["json_path"])
        table = budget_table(comparison, budgets)
        verdict = verdicts(table, challengers, budgets)
        report["datasets"][dataset] = {
            "benchmark": comparison["benchmark"],
            "oracle": comparison["oracle"],
            "comparison_json": str(json_path),
            "plot": str(json_path.with_suffix(".png")),
            "wall_time_s": time.perf_counter() - start,
            "mean_wall_time_per_run_s": {s["method"]: s["mean_wall_time_s"] for s in comparison["summary"]},
            "table": table,
            "verdicts": verdict,
        }
        for method, rows in verdict.items():
            marks = " ".join(f"@{q}: {'yes' if r['beats_peers'] else 'NO'}" for q, r in rows.items())
            print(f"{dataset}: {method} matches or beats REA and LS — {marks}", flush=True)
    atomic_write_text(args.out, json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
