"""``dgpo finetune``: DGPO fine-tuning of a pretrained diffusion model on one environment (DESIGN.md §4)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from agents.dgpo.dgpo import (
    BATCH_SIZE,
    EPOCHS,
    FREEZE_FRACTION,
    LEARNING_RATE,
    MAX_GRAD_NORM,
    N_INNER_PASSES,
)
from agents.dgpo.losses import GRADIENTS, TIMESTEP_FRACTION
from agents.dgpo.variants import VARIANTS, variant_kwargs
from dgpo_env.envs.graph_denoise import DEFAULT_N_STEPS


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    """Register the sub-command."""
    import dgpo_env

    parser = sub.add_parser(
        "finetune",
        help="fine-tune a pretrained diffusion model with DGPO; print the best cell and the queries used",
        description="DGPO (REINFORCE with GDPO's eager gradient) from a checkpoint written by `dgpo pretrain`. "
        "Defaults are the official NB201 settings; a small CPU model needs a larger --lr (e.g. 1e-3).",
    )
    parser.add_argument("checkpoint", type=Path, help="pretrained model (.pt)")
    parser.add_argument("--env", default="dgpo_env/NB201-CIFAR10-v0", choices=sorted(dgpo_env.ENV_SPECS))
    parser.add_argument("--max-queries", type=int, default=None, help="stop after this many distinct cells")
    parser.add_argument("--epochs", type=int, default=EPOCHS, help="batches of trajectories (official 80)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-steps", type=int, default=DEFAULT_N_STEPS, help="denoising steps per episode")
    parser.add_argument("--n-envs", type=int, default=None, help="environment copies (default: batch size)")
    parser.add_argument(
        "--variant",
        choices=sorted(VARIANTS),
        default="published",
        help="DGPO as published, or an improved variant (agents/dgpo/variants.py); the flags below override it",
    )
    parser.add_argument("--batch-size", type=int, default=None, help=f"trajectories per batch (official {BATCH_SIZE})")
    parser.add_argument("--lr", type=float, default=None, help=f"Adam learning rate (official {LEARNING_RATE:g})")
    parser.add_argument("--inner-passes", type=int, default=None, help=f"updates per batch (official {N_INNER_PASSES})")
    parser.add_argument("--timestep-fraction", type=float, default=None, help=f"ppo_sr (official {TIMESTEP_FRACTION})")
    parser.add_argument("--freeze-fraction", type=float, default=None, help=f"frozen (official {FREEZE_FRACTION})")
    parser.add_argument("--max-grad-norm", type=float, default=None, help=f"gradient clip (official {MAX_GRAD_NORM})")
    parser.add_argument("--gradient", choices=GRADIENTS, default="eager", help="eager (GDPO) or ddpo (per step)")
    parser.add_argument("--inverse", action="store_true", help="negate the reward (control experiment)")
    parser.add_argument("--table-path", type=Path, default=None, help="extended NB201 .npz (adds test accuracy)")
    parser.add_argument("--save", type=Path, default=None, help="write the fine-tuned agent (SB3 .zip)")
    parser.add_argument("--save-model", type=Path, default=None, help="write the fine-tuned diffusion model (.pt)")
    parser.add_argument("--tensorboard", type=Path, default=None, help="TensorBoard log directory")
    parser.add_argument("--verbose", type=int, default=0, help="1: print the SB3 logger table every batch")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Fine-tune; print the best cell, its validation (and test) accuracy and the queries used."""
    import torch

    from agents.dgpo.dgpo import DGPO
    from agents.diffusion.model import DiffusionModel
    from agents.policies.envs import benchmark_for_env_id

    torch.set_num_threads(1)
    flags = {
        "learning_rate": args.lr,
        "batch_size": args.batch_size,
        "n_inner_passes": args.inner_passes,
        "timestep_fraction": args.timestep_fraction,
        "freeze_fraction": args.freeze_fraction,
        "max_grad_norm": args.max_grad_norm,
    }
    settings = {**variant_kwargs(args.variant), **{k: v for k, v in flags.items() if v is not None}}
    try:
        model = DiffusionModel.load(args.checkpoint)
        overrides = {} if args.table_path is None else {"table_path": args.table_path}
        benchmark = benchmark_for_env_id(args.env, **overrides)
        agent = DGPO.for_env_id(
            model,
            args.env,
            n_envs=args.n_envs,
            n_steps=args.n_steps,
            env_kwargs={"inverse": args.inverse},
            benchmark=benchmark,
            seed=args.seed,
            gradient=args.gradient,
            max_queries=args.max_queries,
            tensorboard_log=None if args.tensorboard is None else str(args.tensorboard),
            verbose=args.verbose,
            **settings,
        )
    except ValueError as err:  # bad checkpoint, mismatched settings: say what and exit 2
        print(f"dgpo finetune: error: {err}")
        return 2
    start = time.perf_counter()
    agent.learn(agent.timesteps_for_epochs(args.epochs), progress_bar=not args.no_progress, tb_log_name="dgpo")
    wall = time.perf_counter() - start
    if args.save is not None:
        agent.save(args.save)
    if args.save_model is not None:
        agent.policy.model.save(args.save_model)
    best = agent.best
    name = "DGPO" if args.variant == "published" else f"DGPO ({args.variant} variant)"
    print(f"{name} on {args.env} from {args.checkpoint} (seed {args.seed}, {wall:.1f} s)")
    if best is None:
        print(f"  no valid cell found; queries: {benchmark.n_queries} distinct cells")
        return 1
    oracle = benchmark.oracle
    print(f"  best cell: {best['cell']}")
    print(f"  validation accuracy {best['val_acc']:.4f}% (oracle {oracle.val_acc:.4f}%)")
    if best["test_acc"] is not None:
        print(f"  test accuracy {best['test_acc']:.4f}%")
    else:
        print("  test accuracy: not in this benchmark table (pass --table-path for NB201's extended table)")
    print(
        f"  queries: {benchmark.n_queries} distinct cells ({benchmark.n_lookups} look-ups); "
        f"best found at query {best['n_queries_when_found']}"
    )
    return 0
