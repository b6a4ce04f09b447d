"""``dgpo pretrain``: pretrain the graph-diffusion model on a benchmark's cells and save a checkpoint."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from agents.commands.args import finite_float, nonnegative_int, positive_float, positive_int, unit_fraction
from agents.diffusion.denoiser import DenoiserConfig
from agents.diffusion.model import DivergenceError, search_space_by_name
from agents.diffusion.pretrain import PretrainConfig, pretrain_on_benchmark, pretraining_summary
from dgpo_env.benchmarks import Benchmark, make_benchmark
from dgpo_env.benchmarks.nb201_data import DATASETS
from dgpo_env.diffusion.schedule import DEFAULT_DIFFUSION_STEPS
from dgpo_env.search_spaces.base import SearchSpace

_DEFAULTS = PretrainConfig()
_NET = DenoiserConfig()


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    """Register the sub-command."""
    parser = sub.add_parser(
        "pretrain",
        help="pretrain the diffusion model on all / a random fraction / a filtered set of cells",
        description="Pretrain the graph-diffusion model (docs/diffusion.md §7). Labels read by --max-val-acc "
        "count as benchmark queries and are reported.",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--benchmark", default="nb201", choices=["nb201", "toy", "nb101"])
    source.add_argument(
        "--space",
        default=None,
        choices=["nb201", "toy", "nb101"],
        help="a structure prior from the search space's own rules: no data file, no labels (nb101: with --n-random)",
    )
    parser.add_argument("--dataset", default="cifar10", choices=list(DATASETS), help="nb201 only")
    choose = parser.add_argument_group("training set (default: every cell)")
    choose.add_argument("--fraction", type=unit_fraction, default=None, help="random share of the cells, e.g. 0.07")
    choose.add_argument(
        "--n-random",
        type=positive_int,
        default=None,
        help="draw this many uniform random cells (spaces too large to list)",
    )
    choose.add_argument(
        "--max-val-acc",
        type=finite_float,
        default=None,
        help="keep cells with validation accuracy below this (e.g. 85)",
    )
    train = parser.add_argument_group("training")
    train.add_argument(
        "--train-steps", type=positive_int, default=_DEFAULTS.steps, help="gradient steps (rounded up to whole epochs)"
    )
    train.add_argument(
        "--epochs", type=positive_int, default=None, help="passes over the cells (overrides --train-steps)"
    )
    train.add_argument("--batch-size", type=positive_int, default=_DEFAULTS.batch_size)
    train.add_argument("--lr", type=positive_float, default=_DEFAULTS.lr)
    train.add_argument("--diffusion-steps", type=positive_int, default=DEFAULT_DIFFUSION_STEPS, help="T")
    train.add_argument("--layers", type=positive_int, default=_NET.n_layers)
    train.add_argument("--width", type=positive_int, default=_NET.hidden_dim, help="node feature width")
    train.add_argument("--edge-width", type=positive_int, default=_NET.edge_dim)
    train.add_argument("--heads", type=positive_int, default=_NET.n_heads)
    train.add_argument("--seed", type=nonnegative_int, default=0)
    train.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (default: torch's choice)")
    train.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--out", type=Path, required=True, help="checkpoint path, e.g. ckpt.pt")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Pretrain, save the checkpoint, print the losses and the queries spent on choosing the data.

    A diverged training (a NaN or infinite loss) saves nothing and returns exit code 1.
    """
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    benchmark: Benchmark | SearchSpace
    if args.space is not None:
        if args.max_val_acc is not None:
            raise ValueError("--max-val-acc reads accuracies from a benchmark: use --benchmark, not --space")
        benchmark = search_space_by_name(args.space)
    else:
        kwargs = {"dataset": args.dataset} if args.benchmark == "nb201" else {}
        benchmark = make_benchmark(args.benchmark, **kwargs)
    config = PretrainConfig(
        steps=args.train_steps,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        diffusion_steps=args.diffusion_steps,
        seed=args.seed,
        denoiser=DenoiserConfig(
            hidden_dim=args.width, edge_dim=args.edge_width, n_layers=args.layers, n_heads=args.heads
        ),
    )
    try:
        model, history = pretrain_on_benchmark(
            benchmark,
            config,
            fraction=args.fraction,
            max_val_acc=args.max_val_acc,
            progress=not args.no_progress,
            n_random=args.n_random,
        )
    except DivergenceError as err:  # nothing is saved: an existing --out file stays as it was
        print(f"dgpo pretrain: error: {err}", file=sys.stderr)
        return 1
    path = model.save(args.out)
    summary = {"checkpoint": str(path), "benchmark": model.info["benchmark"], **pretraining_summary(model, history)}
    summary["wall_time_s"] = round(summary["wall_time_s"], 1)
    for key in ("final_train_loss", "final_val_loss"):
        summary[key] = None if summary[key] is None else round(summary[key], 4)
    print(json.dumps(summary, indent=2))
    return 0
