"""``dgpo pretrain``: pretrain the graph-diffusion model on a benchmark's cells and save a checkpoint."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch

from agents.commands.args import finite_float, nonnegative_int, positive_float, positive_int, unit_fraction
from agents.diffusion.architectures import ARCHITECTURES, AnyDenoiserConfig
from agents.diffusion.denoiser import DenoiserConfig
from agents.diffusion.mlp_denoiser import MLP_ARCHITECTURE, MLPDenoiserConfig
from agents.diffusion.model import DiffusionModel, DivergenceError, search_space_by_name
from agents.diffusion.pretrain import PretrainConfig, pretrain, pretrain_on_benchmark, pretraining_summary
from dgpo_env.benchmarks import Benchmark, make_benchmark
from dgpo_env.benchmarks.nb201_data import DATASETS
from dgpo_env.diffusion.schedule import DEFAULT_DIFFUSION_STEPS
from dgpo_env.search_spaces.base import SearchSpace
from dgpo_env.search_spaces.custom import CustomSearchSpace
from dgpo_env.search_spaces.graph_files import load_search_space, read_graphs

_DEFAULTS = PretrainConfig()
_NET = DenoiserConfig()
_MLP = MLPDenoiserConfig()


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
        type=space_argument,
        metavar="{nb201,toy,nb101,MODULE:NAME,FILE.py:NAME}",
        help="a structure prior from the search space's own rules: no data file, no labels (nb101: with --n-random); "
        "your own space as 'package.module:NAME' or 'path/file.py:NAME' (docs/howto-custom-space.md)",
    )
    # --- custom spaces: the user's graphs (docs/howto-custom-space.md) ---
    graphs = parser.add_argument_group("your own graphs (a custom search space)")
    graphs.add_argument(
        "--graphs",
        type=Path,
        nargs="+",
        default=None,
        metavar="FILE",
        help="pretrain on these graphs (.json node-link lists, .graphml); with --space MODULE:NAME they are "
        "encoded in that space, without --space a space is derived from them",
    )
    graphs.add_argument("--space-name", default="custom", help="name of the space derived from --graphs")
    graphs.add_argument("--node-attr", default="op", help="node attribute holding the node type")
    graphs.add_argument("--edge-attr", default=None, help="edge attribute holding the edge type (default: untyped)")
    graphs.add_argument(
        "--choices",
        default="observed",
        choices=["observed", "all"],
        help="a derived space's free positions allow the values seen there, or every type",
    )
    # --- end custom spaces ---
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
    train.add_argument(
        "--denoiser",
        choices=sorted(ARCHITECTURES),
        default=DenoiserConfig.architecture,
        help="the denoiser network: the graph transformer (default) or the fast MLP (docs/diffusion.md §6)",
    )
    train.add_argument(
        "--layers",
        type=positive_int,
        default=None,
        help=f"transformer layers (default {_NET.n_layers}) or MLP residual blocks (default {_MLP.n_blocks})",
    )
    train.add_argument(
        "--width",
        type=positive_int,
        default=None,
        help=f"node feature width (default {_NET.hidden_dim}) or MLP width (default {_MLP.hidden_dim})",
    )
    train.add_argument(
        "--edge-width", type=positive_int, default=None, help=f"transformer only (default {_NET.edge_dim})"
    )
    train.add_argument("--heads", type=positive_int, default=None, help=f"transformer only (default {_NET.n_heads})")
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
    if args.graphs is not None or isinstance(args.space, SearchSpace):
        return _run_custom(args, _config(args))
    if args.space is not None:
        if args.max_val_acc is not None:
            raise ValueError("--max-val-acc reads accuracies from a benchmark: use --benchmark, not --space")
        benchmark = search_space_by_name(args.space)
    else:
        kwargs = {"dataset": args.dataset} if args.benchmark == "nb201" else {}
        benchmark = make_benchmark(args.benchmark, **kwargs)
    config = _config(args)
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
    return _save_and_report(model, history, args.out)


def _config(args: argparse.Namespace) -> PretrainConfig:
    return PretrainConfig(
        steps=args.train_steps,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        diffusion_steps=args.diffusion_steps,
        seed=args.seed,
        denoiser=_denoiser_config(args),
    )


def _denoiser_config(args: argparse.Namespace) -> AnyDenoiserConfig:
    """The denoiser of ``--denoiser`` with the size flags given (the architecture's defaults otherwise).

    Raises:
        ValueError: If ``--edge-width`` or ``--heads`` is given with ``--denoiser mlp``.
    """
    if args.denoiser == MLP_ARCHITECTURE:
        extra = [flag for flag, value in (("--edge-width", args.edge_width), ("--heads", args.heads)) if value]
        if extra:
            raise ValueError(f"{', '.join(extra)}: transformer-only flags; drop them with --denoiser mlp")
        return MLPDenoiserConfig(hidden_dim=args.width or _MLP.hidden_dim, n_blocks=args.layers or _MLP.n_blocks)
    return DenoiserConfig(
        hidden_dim=args.width or _NET.hidden_dim,
        edge_dim=args.edge_width or _NET.edge_dim,
        n_layers=args.layers or _NET.n_layers,
        n_heads=args.heads or _NET.n_heads,
    )


def _save_and_report(model: DiffusionModel, history: dict[str, Any], out: Path) -> int:
    if isinstance(model.space, CustomSearchSpace):  # lets DiffusionModel.load rebuild a space without a rule
        model.info["search_space_spec"] = model.space.to_dict()
    path = model.save(out)
    summary = {"checkpoint": str(path), "benchmark": model.info["benchmark"], **pretraining_summary(model, history)}
    summary["wall_time_s"] = round(summary["wall_time_s"], 1)
    for key in ("final_train_loss", "final_val_loss"):
        summary[key] = None if summary[key] is None else round(summary[key], 4)
    print(json.dumps(summary, indent=2))
    return 0


# --- custom spaces (docs/howto-custom-space.md) ---
BUILTIN_SPACES: tuple[str, ...] = ("nb201", "toy", "nb101")


def space_argument(text: str) -> str | SearchSpace:
    """``--space``: a built-in space name, or a ``MODULE:NAME`` / ``FILE.py:NAME`` reference, loaded."""
    if text in BUILTIN_SPACES:
        return text
    if ":" not in text:
        raise argparse.ArgumentTypeError(
            f"expected one of {', '.join(BUILTIN_SPACES)} or 'package.module:NAME' / 'path/file.py:NAME', got {text!r}"
        )
    try:
        return load_search_space(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _run_custom(args: argparse.Namespace, config: PretrainConfig) -> int:
    """Pretrain on the user's graphs (``--graphs``) or on a Python-defined space's own cells."""
    if args.max_val_acc is not None:
        raise ValueError("--max-val-acc reads accuracies from a benchmark; a custom space has none here")
    space = args.space if isinstance(args.space, SearchSpace) else None
    if args.graphs is None:  # a Python-defined space, no graphs: its cells (listed or drawn), like --space nb201
        assert space is not None
        try:
            model, history = pretrain_on_benchmark(
                space, config, fraction=args.fraction, progress=not args.no_progress, n_random=args.n_random
            )
        except DivergenceError as err:
            print(f"dgpo pretrain: error: {err}", file=sys.stderr)
            return 1
        return _save_and_report(model, history, args.out)
    if args.fraction is not None or args.n_random is not None:
        raise ValueError("--fraction and --n-random choose among a space's cells; with --graphs every graph is used")
    try:
        graphs = [g for path in args.graphs for g in read_graphs(path)]
    except FileNotFoundError as err:
        raise ValueError(f"{err}; check the --graphs path") from None
    if isinstance(args.space, str):
        raise ValueError(f"--graphs goes with a space of your own (MODULE:NAME), not the built-in {args.space!r}")
    if space is None:
        space = CustomSearchSpace.from_graphs(
            graphs, args.space_name, node_attr=args.node_attr, edge_attr=args.edge_attr, choices=args.choices
        )
    cells = [_encode(space, g, i) for i, g in enumerate(graphs)]
    info = {
        "benchmark": f"graphs:{','.join(str(p) for p in args.graphs)}",
        "selection": f"{len(cells)} given graphs",
        "n_selected": len(cells),
        "n_candidates": len(cells),
        "selection_queries": 0,
    }
    try:
        model, history = pretrain(space, cells, config, not args.no_progress, info)
    except DivergenceError as err:
        print(f"dgpo pretrain: error: {err}", file=sys.stderr)
        return 1
    history["n_queries"], history["n_selected"] = 0, len(cells)
    return _save_and_report(model, history, args.out)


def _encode(space: SearchSpace, graph: Any, index: int) -> Any:
    """Graph ``index`` as a valid cell of ``space`` (``CustomSearchSpace.encode`` or ``from_networkx``)."""
    try:
        dag = space.encode(graph) if isinstance(space, CustomSearchSpace) else space.from_networkx(graph)
    except ValueError as err:
        raise ValueError(f"graph {index}: {err}") from err
    reason = space.validate(dag)
    if reason is not None:
        raise ValueError(f"graph {index} is not a valid cell of {space.name}: {reason}")
    return dag


# --- end custom spaces ---
