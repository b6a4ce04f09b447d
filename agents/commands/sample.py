"""``dgpo sample``: sample cells from a pretrained diffusion model and print their metrics."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from agents.commands import load_model
from agents.commands.args import nonnegative_int, positive_int
from agents.diffusion.sampling import evaluate_model, format_metrics
from agents.pretrained import available
from dgpo_env.benchmarks import BenchmarkDataError, make_benchmark
from dgpo_env.io import atomic_write_text


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    """Register the sub-command."""
    parser = sub.add_parser(
        "sample",
        help="sample cells from a pretrained checkpoint and print validity, novelty and accuracies",
        description="Sample a pretrained diffusion model. Accuracies are uncounted look-ups (analysis only).",
    )
    parser.add_argument("checkpoint", type=Path, nargs="?", default=None, help="file written by `dgpo pretrain`")
    parser.add_argument(
        "--pretrained",
        default=None,
        choices=available(),
        help="sample a model shipped with the package instead of a checkpoint file (docs/pretrained.md)",
    )
    parser.add_argument("-n", type=positive_int, default=100, help="number of cells")
    parser.add_argument("--steps", type=positive_int, default=25, help="denoising steps (strided from T)")
    parser.add_argument("--seed", type=nonnegative_int, default=0)
    parser.add_argument(
        "--dataset",
        default=None,
        help="nb201 dataset to score with (default: the checkpoint's; cifar10 for a structure prior)",
    )
    parser.add_argument("--no-benchmark", action="store_true", help="skip accuracies (no benchmark data needed)")
    parser.add_argument("--show", type=nonnegative_int, default=5, help="print this many sampled cells")
    parser.add_argument("--json", type=Path, default=None, help="also write the metrics here")
    parser.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Load, sample, print."""
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        model = load_model(args)
    except ValueError as err:  # CheckpointError included
        print(f"dgpo sample: error: {err}", file=sys.stderr)
        return 2
    benchmark = None
    if not args.no_benchmark:
        name = model.space.name
        kwargs = {}
        if name == "nb201":
            saved = str(model.info.get("benchmark", "nb201-cifar10"))  # "space:nb201" for a structure prior
            kwargs["dataset"] = args.dataset or (
                saved.removeprefix("nb201-") if saved.startswith("nb201-") else "cifar10"
            )
        try:
            benchmark = make_benchmark(name, **kwargs)
        except BenchmarkDataError as err:
            print(f"dgpo sample: error: {err}; or pass --no-benchmark to sample without accuracies", file=sys.stderr)
            return 2
    metrics = evaluate_model(model, benchmark, n=args.n, n_steps=args.steps, seed=args.seed)
    info = model.info
    print(f"model: {model.space.name}, trained on {info.get('selection', '?')} of {info.get('benchmark', '?')}")
    print(format_metrics(metrics))
    if args.show:
        cells = model.sample(args.show, args.steps, torch.Generator().manual_seed(args.seed)).dags()
        for cell in cells:
            print("  ", model.space.describe(cell))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.json, json.dumps(metrics, indent=2))
    return 0
