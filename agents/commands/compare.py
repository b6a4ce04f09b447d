"""``dgpo compare``: NAS methods x seeds on one benchmark, by distinct queries (see docs/harness.md).

Exit codes: 0 done; 1 a run failed (its traceback is printed; finished runs are kept); 2 bad
arguments, an unwritable ``--out`` or outputs that exist without ``--resume``/``--force`` (nothing
was run); 130 interrupted with Ctrl-C (finished runs are kept; ``--resume`` continues).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agents.commands.args import positive_int
from agents.commands.backend import BackendError, add_backend_arguments, executor_from_args
from agents.commands.reward_args import add_reward_flags, reward_options


def _seeds(text: str) -> list[int]:
    """``"3"`` -> seeds 0, 1, 2; ``"0,5,9"`` (or ``"7,"``: a comma makes a list) -> those seeds."""
    items = [v.strip() for v in text.split(",")]
    if "," in text and items[-1] == "":
        items.pop()  # "7," is the list [7]
    try:
        values = [int(v) for v in items]
    except ValueError as err:
        raise argparse.ArgumentTypeError(
            f"--seeds takes a count (3: seeds 0, 1, 2) or comma-separated integers (0,5,9), got {text!r}"
        ) from err
    if "," not in text:
        if values[0] < 1:
            raise argparse.ArgumentTypeError(f"--seeds count must be >= 1, got {values[0]}")
        return list(range(values[0]))
    if min(values) < 0 or len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"--seeds list must hold distinct integers >= 0, got {text!r}")
    return values


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    """Register the sub-command."""
    parser = sub.add_parser(
        "compare",
        help="run NAS methods for several seeds; write JSON and a plot, print a table",
        description="Run every method for every seed on one benchmark with a budget of distinct queries.",
    )
    parser.add_argument(
        "--env", default="dgpo_env/NB201-CIFAR10-v0", help="Gymnasium id or shorthand (toy, nb201:cifar100)"
    )
    parser.add_argument(
        "--algos",
        default="rs,rea,ls,reinforce",
        help='comma-separated registered methods (tpe and smac need: pip install "dgpo-env[peers]")',
    )
    parser.add_argument("--seeds", type=_seeds, default=[0, 1, 2], help="a count S (seeds 0..S-1) or a list")
    parser.add_argument("--max-queries", type=positive_int, default=300, help="budget of distinct cells per run")
    add_backend_arguments(parser)  # --jobs, --backend {local,ray}, --address, --cpus-per-run, --gpus-per-run
    parser.add_argument("--out", type=Path, default=Path("runs/compare"), help="output directory")
    parser.add_argument("--table-path", type=Path, default=None, help="extended NB201 .npz (adds test accuracy)")
    parser.add_argument("--log-x", action="store_true", help="logarithmic query axis in the plot")
    parser.add_argument(
        "--tensorboard",
        type=Path,
        default=None,
        metavar="DIR",
        help='also write each method\'s curves as TensorBoard scalars under DIR (needs "dgpo-env[integrations]")',
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_reward_flags(parser, "every method's cells (over budget: accuracy 0)")
    again = parser.add_mutually_exclusive_group()
    again.add_argument(
        "--resume", action="store_true", help="continue an earlier run with the same settings (skip finished runs)"
    )
    again.add_argument("--force", action="store_true", help="delete the outputs of an earlier run and start over")
    parser.set_defaults(func=run)
    return parser


def _rl_reward(args: argparse.Namespace) -> dict[str, object] | None:
    """The RL methods' reward options: budgets, or a trade-off with ``--weights``/``--scalarisation``.

    ``--objectives`` alone makes a multi-objective comparison without changing the RL methods' reward
    (``dgpo-mo`` uses its own random-preference Chebyshev reward).
    """
    options = reward_options(args)
    if set(options) <= {"objectives"}:
        return None
    return options


def run(args: argparse.Namespace) -> int:
    """Run the comparison; print the table and where the JSON and PNG went (exit codes: module docstring)."""
    try:
        return _run(args)
    except KeyboardInterrupt:  # outside the runs (importing, setting up, writing the outputs)
        print("dgpo compare: interrupted; run the same command with --resume to continue", file=sys.stderr)
        return 130


def _run(args: argparse.Namespace) -> int:
    from agents.compare import ComparisonFailed, ComparisonInterrupted, run_comparison

    if args.tensorboard is not None:
        try:
            import tensorboard  # noqa: F401  (checked before the runs, not after them)
        except ImportError:
            need = 'pip install "dgpo-env[integrations]"'
            print(f"dgpo compare: error: --tensorboard needs the tensorboard package: {need}", file=sys.stderr)
            return 2
    try:
        executor, n_jobs = executor_from_args(args)
    except BackendError as err:
        print(f"dgpo compare: error: {err}", file=sys.stderr)
        return 2
    try:
        comparison = run_comparison(
            env=args.env,
            algos=[a.strip() for a in args.algos.split(",") if a.strip()],
            seeds=args.seeds,
            max_queries=args.max_queries,
            n_jobs=n_jobs,
            out_dir=args.out,
            table_path=args.table_path,
            log_x=args.log_x,
            progress=not args.no_progress,
            resume=args.resume,
            force=args.force,
            objectives=args.objectives,
            reward=_rl_reward(args),
            executor=executor,
        )
    except ValueError as err:
        print(f"dgpo compare: error: {err}", file=sys.stderr)
        return 2
    except ComparisonFailed as err:
        print(f"dgpo compare: {err}", file=sys.stderr)
        kept = "" if err.store is None else f"finished runs are kept in {err.store}; "
        print(f"dgpo compare: {kept}fix the cause and run the same command with --resume", file=sys.stderr)
        return 1
    except ComparisonInterrupted as err:
        print(f"dgpo compare: {err}; run the same command with --resume to continue", file=sys.stderr)
        return 130
    if args.tensorboard is not None:
        from agents.harness.outputs import output_stem
        from agents.harness.tensorboard import write_tensorboard

        objectives = comparison.benchmark_kwargs.get("objectives")
        stem = output_stem(
            comparison.benchmark, comparison.max_queries, comparison.methods, comparison.seeds, objectives
        )
        print(f"wrote TensorBoard logs to {write_tensorboard(comparison, args.tensorboard, stem)}")
    return 0
