"""Query efficiency on NAS-Bench-201: DGPO and its variants against the NAS searchers at equal budgets.

For every dataset, one :func:`agents.compare.run_comparison` (the engine of ``dgpo compare``) runs
every method for every seed with a budget of distinct queries; the best validation accuracy found
and the share of seeds at the optimum are read at each budget. The peers are regularised evolution
(``rea``), local search (``ls``) and, when the ``peers`` extra is installed, Optuna's TPE (``tpe``).
A DGPO method *beats the peers* at a budget when its mean best validation accuracy and its share of
seeds at the optimum are both at least those of every peer, measured in the same run on the same
seeds; the verdict is reported per dataset and budget, with the comparison against each peer
(docs/benchmarks.md §5).

Seeds: ``--seeds 20`` runs seeds 0 .. 19; ``--seeds 100-119`` (a range, both ends included) or
``--seeds 100,101,105`` (a list; ranges and single seeds can be mixed: ``100-104,110``) runs those
seeds. Seeds below 100 are for tuning; results are reported on seeds 100 and above.

Writes the harness's files per dataset under ``--out-dir`` (named by
:func:`agents.harness.output_stem`, e.g. ``compare_nb201-cifar10_500q_20seeds_dgpo+...+ppo-mlp.json`` /
``.png``) and ``--out``: the per-budget table, the verdicts, the command and the versions. Every
finished run is stored as it ends; after Ctrl-C (exit 130) or a failed run (exit 1), ``--resume``
(alias ``--reuse``) continues, also from a complete comparison, which is then only read; existing
outputs are never replaced without ``--resume`` or ``--force`` (see docs/harness.md).

Runs execute in ``--jobs`` local processes, or with ``--backend ray [--address auto] [--cpus-per-run N]
[--gpus-per-run N]`` as Ray tasks on a cluster (docs/ray.md); the results are the same.

``--max-latency-ms`` / ``--max-params-m`` compare the methods under hard budgets: every method sees an
over-budget cell as accuracy 0 and the oracle is the best feasible cell (docs/howto-constrained.md).

Usage::

    python benchmarks/query_efficiency.py --seeds 100-119 --jobs 2 --table-path ../shared/data/nb201/nb201.npz
    python benchmarks/query_efficiency.py --datasets cifar10 --max-latency-ms 12 --out latency12.json
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from agents.baselines.peers import PEERS_INSTALL
from agents.commands.args import positive_float
from agents.commands.backend import LOCAL_JOBS, BackendError, add_backend_arguments, executor_from_args
from agents.harness import (
    ComparisonFailed,
    ComparisonInterrupted,
    Executor,
    comparison_paths,
    comparison_settings,
    run_comparison,
    versions,
)
from agents.harness.lock import output_dir_lock
from agents.harness.registry import benchmark_kwargs_for, installed_peer_methods
from dgpo_env.io import atomic_write_text, ensure_writable_dir

DATASETS = ("cifar10", "cifar100", "imagenet16")
ALGOS = ("dgpo", "dgpo-elite", "rea", "ls", "rs", "ppo", "ppo-mlp")
"""The default methods; the peer optimisers ``tpe`` and ``smac`` join them when the ``peers`` extra is installed."""
PEERS = ("rea", "ls")
"""The searchers DGPO must match or beat in every run."""
OPTIONAL_PEERS = ("tpe",)
"""Peer optimisers DGPO must also match or beat when their optional packages are installed."""
BUDGETS = (50, 100, 200, 500)
MAX_SEED = 2**32 - 1
"""The largest seed every method accepts (the peer optimisers' seeds are 32-bit)."""
MAX_SEEDS = 10_000
"""At most this many seeds per run of the script (a mistyped range would otherwise plan billions of runs)."""


def default_algos() -> list[str]:
    """:data:`ALGOS` plus the peer optimisers (``tpe``, ``smac``) whose optional packages are installed."""
    return [*ALGOS, *installed_peer_methods()]


def required_peers() -> list[str]:
    """:data:`PEERS` plus the installed :data:`OPTIONAL_PEERS`: the methods of every verdict."""
    installed = installed_peer_methods()
    return [*PEERS, *(p for p in OPTIONAL_PEERS if p in installed)]


def parse_seeds(text: str) -> list[int]:
    """``"20"`` -> seeds 0 .. 19; ``"100-119"`` -> 100 .. 119; ``"100,105"`` or ``"100-104,110"`` -> those seeds.

    A single integer is a count (at least 1); anything with ``-`` or ``,`` is a list of seeds and
    ranges (``a-b``, both ends included, ``a <= b``; ``"7,"`` is the list ``[7]``). Seeds are integers
    ``0 .. 2**32 - 1``, each given once, at most :data:`MAX_SEEDS`; spaces around items are allowed,
    empty items are not.

    Raises:
        argparse.ArgumentTypeError: For anything else (as an argparse ``type=`` function).
    """
    usage = "a count (20: seeds 0..19), a range (100-119) or a comma-separated list (100,101,105 or 100-104,110)"

    def integer(item: str) -> int:
        item = item.strip()
        if not item.isdigit() or not item.isascii():
            raise argparse.ArgumentTypeError(f"--seeds takes {usage}, got {text!r}")
        value = int(item)
        if value > MAX_SEED:
            raise argparse.ArgumentTypeError(f"--seeds: seed {value} is above {MAX_SEED}")
        return value

    if "," not in text and "-" not in text:
        count = integer(text)
        if not 1 <= count <= MAX_SEEDS:
            raise argparse.ArgumentTypeError(f"--seeds count must be 1 .. {MAX_SEEDS}, got {text!r}")
        return list(range(count))
    items = text.split(",")
    if len(items) > 1 and items[-1].strip() == "":
        items.pop()  # "7," is the list [7], as in ``dgpo compare --seeds``
    seeds: list[int] = []
    for item in items:
        if "-" in item:
            low_text, _, high_text = item.partition("-")
            low, high = integer(low_text), integer(high_text)
            if low > high:
                raise argparse.ArgumentTypeError(
                    f"--seeds range {item.strip()!r} is empty (its start is above its end)"
                )
            if high - low >= MAX_SEEDS:
                raise argparse.ArgumentTypeError(f"--seeds range {item.strip()!r} holds more than {MAX_SEEDS} seeds")
            seeds += range(low, high + 1)
        else:
            seeds.append(integer(item))
    if len(seeds) > MAX_SEEDS:
        raise argparse.ArgumentTypeError(f"--seeds names more than {MAX_SEEDS} seeds")
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise argparse.ArgumentTypeError(f"--seeds must name each seed once, got {text!r} (repeated: {repeated})")
    return seeds


def parse_budgets(text: str) -> list[int]:
    """``"50,100,200,500"`` -> the distinct budgets (integers >= 1), sorted; the largest is the run's budget."""
    try:
        budgets = [int(b) for b in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--budgets takes comma-separated integers, got {text!r}") from None
    if min(budgets) < 1 or len(set(budgets)) != len(budgets):
        raise argparse.ArgumentTypeError(f"--budgets must be distinct integers >= 1, got {text!r}")
    return sorted(budgets)


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
        args.seeds,
    )
    same = data["seeds"] == expected["seeds"] and sorted(data["runs"]) == sorted(algos)
    same = same and data["max_queries"] == max(budgets)
    same = same and data["benchmark_kwargs"] == expected["benchmark_kwargs"] and data.get("complete", True)
    return path if same and set(budgets) <= {*data["checkpoints"], data["max_queries"]} else None


def load_or_run(
    json_path: Path,
    dataset: str,
    algos: list[str],
    budgets: list[int],
    args: argparse.Namespace,
    backend: tuple[Executor | None, int] = (None, LOCAL_JOBS),
) -> dict[str, Any]:
    """The comparison's JSON dict (plus its ``json_path``): run, or with ``--resume`` continue, the comparison.

    ``backend`` is ``(executor, n_jobs)`` from :func:`agents.commands.backend.executor_from_args`.
    """
    if args.resume and not json_path.exists() and budget_options(args) is None:
        legacy = legacy_json(args.out_dir, dataset, algos, budgets, args)
        if legacy is not None:
            print(f"{dataset}: reusing {legacy}", flush=True)
            return dict(json.loads(legacy.read_text()), json_path=str(legacy))
    comparison = run_comparison(
        f"nb201:{dataset}",
        algos,
        args.seeds,
        max(budgets),
        n_jobs=backend[1],
        executor=backend[0],
        out_dir=args.out_dir,
        table_path=args.table_path,
        checkpoints=budgets,
        progress=False,
        resume=args.resume,
        force=args.force,
        reward=budget_options(args),
    )
    return dict(comparison.to_dict(), json_path=str(comparison.json_path))


def budget_options(args: argparse.Namespace) -> dict[str, float] | None:
    """The hard budgets given (``{"max_latency_ms": 12.0}``), or ``None`` for the unconstrained task."""
    options = {key: getattr(args, key, None) for key in ("max_latency_ms", "max_params_m")}  # older callers lack them
    given = {k: float(v) for k, v in options.items() if v is not None}
    return given or None


def verdicts(
    table: dict[str, dict[str, dict[str, float]]],
    challengers: list[str],
    budgets: list[int],
    peers: list[str] | tuple[str, ...] = PEERS,
) -> dict[str, dict[str, dict[str, Any]]]:
    """For every challenger and budget: whether it matches or beats every peer in mean and in share.

    A challenger beats the peers at a budget when its mean best validation accuracy is at least
    every peer's and its share of seeds at the optimum is at least every peer's (that is, at least
    the best peer value of each; ties count as matching). ``per_peer`` says which comparison fails.
    """
    out: dict[str, dict[str, dict[str, Any]]] = {}
    missing = [p for p in peers if p not in table]
    if missing:
        raise ValueError(f"the table has no results for the peers {missing}")
    for method in challengers:
        rows = {}
        for q in map(str, budgets):
            own = table[method][q]
            per_peer = {
                p: {
                    "val_mean_ok": own["val_mean"] >= table[p][q]["val_mean"] - 1e-9,
                    "share_ok": own["share_optimum"] >= table[p][q]["share_optimum"] - 1e-9,
                }
                for p in peers
            }
            row: dict[str, Any] = {
                "peer_val_mean": max(table[p][q]["val_mean"] for p in peers),
                "peer_share_optimum": max(table[p][q]["share_optimum"] for p in peers),
                "val_mean_ok": all(v["val_mean_ok"] for v in per_peer.values()),
                "share_ok": all(v["share_ok"] for v in per_peer.values()),
                "per_peer": per_peer,
            }
            row["beats_peers"] = row["val_mean_ok"] and row["share_ok"]
            rows[q] = row
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
    parser.add_argument(
        "--seeds",
        type=parse_seeds,
        default=list(range(100, 120)),
        help="a count S (seeds 0 .. S-1), a range such as 100-119 or a list such as 100,101,105 "
        "(default 100-119, the reporting seeds; seeds below 100 are for tuning)",
    )
    parser.add_argument(
        "--budgets",
        type=parse_budgets,
        default=list(BUDGETS),
        help=f"comma-separated budgets; the largest is the run's (default {','.join(map(str, BUDGETS))})",
    )
    add_backend_arguments(parser)  # --jobs, --backend {local,ray}, --address, --cpus-per-run, --gpus-per-run
    parser.add_argument("--table-path", default=None, help="extended NB201 .npz (adds test accuracy)")
    parser.add_argument(
        "--max-latency-ms", type=positive_float, default=None, help="latency budget of every method's cells (ms)"
    )
    parser.add_argument(
        "--max-params-m", type=positive_float, default=None, help="parameter budget of every method's cells (millions)"
    )
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
    budgets = args.budgets
    peers = required_peers()
    missing = [p for p in peers if p not in algos]
    if missing:
        parser.error(f"--algos must include the peers {', '.join(peers)} (missing {', '.join(missing)})")
    challengers = [a for a in algos if a.startswith("dgpo")]
    try:  # fail now, not after the runs
        ensure_writable_dir(args.out.parent)
    except OSError as err:
        parser.error(str(err.strerror or err))
    try:
        backend = executor_from_args(args)
    except BackendError as err:
        parser.error(str(err))
    report: dict[str, Any] = {
        "command": " ".join(["python", *map(shlex.quote, [sys.argv[0], *(argv or sys.argv[1:])])]),
        "versions": versions(),
        "seeds": args.seeds,
        "budgets": budgets,
        "algos": algos,
        "peers": peers,
        "constraints": budget_options(args),
        "datasets": {},
    }
    with ExitStack() as held:
        try:  # one run per --out-dir (the comparisons' files), until this script ends
            held.enter_context(output_dir_lock(args.out_dir))
        except (OSError, ValueError) as err:
            parser.exit(2, f"{parser.prog}: error: {err}\n")
        for dataset in args.datasets.split(","):
            start = time.perf_counter()
            paths = comparison_paths(args.out_dir, f"nb201-{dataset}", max(budgets), algos, args.seeds)  # legacy name
            try:
                comparison = load_or_run(paths.json, dataset, algos, budgets, args, backend)
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
            verdict = verdicts(table, challengers, budgets, peers)
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
                print(f"{dataset}: {method} matches or beats {', '.join(peers)} — {marks}", flush=True)
        atomic_write_text(args.out, json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.out}")
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
