"""``dgpo finetune``: DGPO fine-tuning of a pretrained diffusion model on one environment (docs/dgpo.md)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from agents.commands import load_model
from agents.commands.args import nonnegative_int, positive_int
from agents.commands.reward_args import BestByReward, add_reward_flags, reward_options
from agents.dgpo.advantages import BASELINES
from agents.dgpo.config import EPOCHS, KL_SCHEDULES, DGPOConfig
from agents.dgpo.elite import EliteConfig
from agents.dgpo.explore import EXPLORE_ADVANTAGES, EXPLORE_BASELINES
from agents.dgpo.losses import GRADIENTS, KL_DIRECTIONS
from agents.dgpo.surrogate import SurrogateConfig
from agents.dgpo.variants import PRESETS, get_preset
from agents.diffusion.sampling import mean_sample_accuracy
from agents.pretrained import available
from dgpo_env.benchmarks import Benchmark, ConstrainedBenchmark
from dgpo_env.benchmarks.constrained import OVER_BUDGET_ACCURACY
from dgpo_env.benchmarks.nb101 import NB101Benchmark
from dgpo_env.envs.graph_denoise import DEFAULT_N_STEPS

CHOICES: dict[str, tuple[str, ...]] = {
    "gradient": GRADIENTS,
    "baseline": BASELINES,
    "kl_schedule": KL_SCHEDULES,
    "kl_direction": KL_DIRECTIONS,
    "explore_baseline": EXPLORE_BASELINES,
    "explore_advantage": EXPLORE_ADVANTAGES,
}
"""The settings that take one of a few names."""

SETTING_FLAGS: dict[str, tuple[str, str]] = {
    "learning_rate": ("--lr", "Adam learning rate"),
    "batch_size": ("--batch-size", "trajectories per batch"),
    "n_inner_passes": ("--inner-passes", "updates per batch"),
    "timestep_fraction": ("--timestep-fraction", "ppo_sr: share of timesteps per loss"),
    "reward_smoothing": ("--reward-smoothing", "weight of a new batch in the reward EMAs"),
    "advantage_clip": ("--advantage-clip", "advantage clip"),
    "max_grad_norm": ("--max-grad-norm", "gradient clip"),
    "freeze_fraction": ("--freeze-fraction", "share of transformer layers frozen"),
    "gradient_accumulation": ("--gradient-accumulation", "micro-batches per optimizer step"),
    "gradient": ("--gradient", "eager (GDPO) or ddpo (per step)"),
    "count_repeats": ("--count-repeats", "count every copy of a cell repeated within a batch"),
    "baseline": ("--baseline", "advantage baseline: ema (moving averages) or batch (the batch's mean and std)"),
    "entropy_coef": ("--entropy-coef", "weight of the clean-prediction entropy bonus"),
    "kl_coef": ("--kl-coef", "weight of the KL to the starting model"),
    "kl_schedule": ("--kl-schedule", "constant, or linear: the KL weight falls to 0 over --kl-anneal-fraction"),
    "kl_anneal_fraction": ("--kl-anneal-fraction", "share of the run over which the linear KL weight falls to 0"),
    "kl_direction": ("--kl-direction", "reverse: KL(policy || start), or forward: KL(start || policy)"),
    "explore_copies": ("--explore-copies", "environment copies per round drawn by the starting model"),
    "explore_baseline": (
        "--explore-baseline",
        "a starting-model cell is learnt from when it beats the policy's copies: best or mean reward",
    ),
    "explore_memory": ("--explore-memory", "starting-model cells kept and learnt from while they beat the batch"),
    "explore_advantage": (
        "--explore-advantage",
        "such a cell's advantage: scaled (its margin in the policy's stds, clipped) or clip (the advantage clip)",
    ),
    "elite_replay": ("--elite-replay", "best cells replayed after every batch"),
    "replay_passes": ("--replay-passes", "elite replay steps per batch"),
    "anchor_prob": ("--anchor-prob", "share of batches started from a noised elite cell"),
    "anchor_skip": ("--anchor-skip", "share of the schedule an anchored start skips"),
    "anchor_top_k": ("--anchor-top-k", "anchors are drawn from this many best cells"),
    "anchor_after": ("--anchor-after", "distinct cells looked up before the first anchored batch"),
    "novelty_retries": ("--novelty-retries", "redraws of a known final cell"),
    "restart_after": (
        "--restart-after",
        "distinct queries without a better cell before the search restarts from the starting model (0: never)",
    ),
    "archive_score": (
        "--archive-score",
        "rank archived cells by val_acc or by the reward (with a budget or trade-off flag, reward unless given)",
    ),
    "surrogate_after": ("--surrogate-after", "distinct cells looked up before the reward model ranks candidates"),
    "n_candidates": ("--n-candidates", "policy draws per environment copy ranked at the last step"),
    "neighbour_top_k": ("--neighbour-top-k", "single-edit neighbours of this many best cells join the candidates"),
    "n_prior_candidates": ("--n-prior-candidates", "cells drawn from the prior's marginals per round as candidates"),
    "ranked_share": ("--ranked-share", "share of a round's copies given the best candidates of all"),
    "per_copy": ("--per-copy", "the other copies propose the best of their own draws"),
    "ucb_beta": ("--ucb-beta", "exploration weight of the reward model's upper confidence bound"),
}
"""Setting -> (flag, help): one flag per :class:`DGPOConfig`, :class:`EliteConfig` and :class:`SurrogateConfig`
field (docs/dgpo.md §3-§4)."""


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    """Register the sub-command."""
    import dgpo_env

    parser = sub.add_parser(
        "finetune",
        help="fine-tune a pretrained diffusion model with DGPO; print the best cell and the queries used",
        description="DGPO (REINFORCE with GDPO's eager gradient) from a checkpoint written by `dgpo pretrain`. "
        "Defaults are the --variant's settings (published: the official NB201 ones; a small CPU model needs a "
        "larger --lr, e.g. 1e-3); each setting flag's help lists every preset's value.",
    )
    parser.add_argument("checkpoint", type=Path, nargs="?", default=None, help="pretrained model (.pt)")
    parser.add_argument(
        "--pretrained",
        default=None,
        choices=available(),
        help="start from a model shipped with the package instead of a checkpoint file (docs/pretrained.md)",
    )
    parser.add_argument("--env", default="dgpo_env/NB201-CIFAR10-v0", choices=sorted(dgpo_env.ENV_SPECS))
    parser.add_argument("--max-queries", type=positive_int, default=None, help="stop after this many distinct cells")
    parser.add_argument("--epochs", type=positive_int, default=EPOCHS, help="batches of trajectories (official 80)")
    parser.add_argument("--seed", type=nonnegative_int, default=0)
    parser.add_argument("--n-steps", type=positive_int, default=DEFAULT_N_STEPS, help="denoising steps per episode")
    parser.add_argument("--n-envs", type=positive_int, default=None, help="environment copies (default: batch size)")
    parser.add_argument(
        "--variant",
        choices=sorted(PRESETS),
        default="published",
        help="DGPO as published, the elite variant, elite with surrogate-ranked candidates, that ranking made "
        "budget-aware (constrained), or with candidates ranked by hypervolume improvement over --objectives "
        "(pareto), or tuned for the inverse control (kl-annealed, kl-explore; docs/dgpo.md §5); "
        "the setting flags below override it",
    )
    add_setting_flags(parser)
    parser.add_argument("--inverse", action="store_true", help="negate the reward (control experiment)")
    add_reward_flags(parser, "the reward")
    parser.add_argument("--table-path", type=Path, default=None, help="extended NB201 .npz (adds test accuracy)")
    parser.add_argument("--save", type=Path, default=None, help="write the fine-tuned agent (SB3 .zip)")
    parser.add_argument("--save-model", type=Path, default=None, help="write the fine-tuned diffusion model (.pt)")
    parser.add_argument("--tensorboard", type=Path, default=None, help="TensorBoard log directory")
    parser.add_argument("--verbose", type=nonnegative_int, default=0, help="1: print the SB3 logger table every batch")
    parser.add_argument(
        "--progress-every",
        type=positive_int,
        default=None,
        help="print a progress line every this many queries (default: a tenth of --max-queries, or 25)",
    )
    parser.add_argument("--no-progress", action="store_true", help="print no progress lines")
    parser.set_defaults(func=run)
    return parser


def preset_values(name: str) -> str:
    """Each preset's value of setting ``name``, presets with the same value together.

    E.g. ``"published, kl-annealed, kl-explore 15; elite, pareto, constrained 10; surrogate 5"``, or
    ``"every preset 0.3"``; presets without the setting (an elite setting in ``published``) are left out.
    """
    groups: dict[str, list[str]] = {}
    for preset in PRESETS.values():
        for settings in preset.constructor_kwargs().values():
            if name in settings.field_names():
                value = getattr(settings, name)
                shown = str(value) if isinstance(value, str | bool) else f"{value:g}"
                groups.setdefault(shown, []).append(preset.name)
    if len(groups) == 1 and len(next(iter(groups.values()))) == len(PRESETS):
        return f"every preset {next(iter(groups))}"
    return "; ".join(f"{', '.join(names)} {value}" for value, names in groups.items())


def add_setting_flags(parser: argparse.ArgumentParser) -> None:
    """One optional flag per setting (:data:`SETTING_FLAGS`); unset flags leave the ``--variant``'s value.

    Each flag's help gives every preset's value (:func:`preset_values`), in the order of :data:`PRESETS`.
    """
    defaults = (DGPOConfig(), EliteConfig(), SurrogateConfig())  # a default's type is the flag's type
    for name, (flag, text) in SETTING_FLAGS.items():
        default = next(getattr(settings, name) for settings in defaults if name in settings.field_names())
        shown = f"{text} (default: the --variant's: {preset_values(name)})"
        if isinstance(default, bool):
            parser.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=None, help=shown)
        elif name in CHOICES:
            parser.add_argument(flag, dest=name, choices=CHOICES[name], default=None, help=shown)
        else:
            parser.add_argument(flag, dest=name, type=type(default), default=None, help=shown)


BUDGET_FLAGS = "--max-latency-ms, --max-params-m or --max-train-time-s"

STOP_REASONS: dict[str | None, str] = {
    "budget": "the query budget is spent",
    "converged": "no new cell in the last batches (max_stale_batches)",
    "timesteps": "the epochs are done (--epochs), the query budget may be unspent",
    "callback": "a callback stopped it",
    None: "not stopped",
}
"""How the summary names :attr:`DGPO.stop_reason <agents.dgpo.dgpo.DGPO.stop_reason>`."""

INVERSE_SAMPLES = 500
"""Fresh samples whose mean accuracy ``--inverse`` reports (as ``benchmarks/inverse_control.py``)."""


SHAPE_SETTINGS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("kl_coef", ("kl_schedule", "kl_anneal_fraction", "kl_direction"), "a KL term"),
    ("explore_copies", ("explore_baseline", "explore_memory", "explore_advantage"), "exploration copies"),
)
"""(switch, the settings that shape it, what they need): flags refused while the switch is off (0)."""


def unused_setting_problem(overrides: dict[str, Any], config: DGPOConfig, as_set: bool = False) -> str | None:
    """Which given settings would do nothing, because the setting they shape is off (0), or ``None``.

    Args:
        overrides: The settings given.
        config: The preset's DGPO settings.
        as_set: Name the settings as ``--set NAME`` (``benchmarks/*.py``) instead of this command's flags.
    """

    def shown(name: str) -> str:
        return f"--set {name}" if as_set else SETTING_FLAGS[name][0]

    for switch, shapes, needs in SHAPE_SETTINGS:
        given = [shown(name) for name in shapes if name in overrides]
        if given and not overrides.get(switch, getattr(config, switch)) > 0:
            return f"{', '.join(given)}: only with {needs}, give {shown(switch)} > 0"
    return None


def variant_reward_problem(variant: str, options: dict[str, Any]) -> str | None:
    """Why ``--variant`` and the reward flags do not fit together, or ``None`` if they do.

    ``pareto`` ranks candidates by the hypervolume improvement of several objectives, so it needs
    ``--objectives`` (without them the policy would learn accuracy alone while the ranking used the preset's
    objectives). ``constrained`` ranks by accuracy times the probability of meeting the budgets: it is
    single-objective and needs a budget (without one it is the surrogate variant under another name).

    Args:
        variant: The preset's name (:data:`~agents.dgpo.variants.PRESETS`).
        options: The reward flags given (:func:`~agents.commands.reward_args.reward_options`).
    """
    if variant == "pareto" and not options.get("objectives"):
        return (
            "--variant pareto ranks candidates by several objectives: give them, e.g. --objectives acc,latency "
            "(or use --variant surrogate for accuracy alone)"
        )
    if variant == "constrained" and options.get("objectives"):
        return (
            "--variant constrained optimises accuracy under budgets, a single objective: drop --objectives and "
            f"give a budget ({BUDGET_FLAGS}), or use --variant pareto for a trade-off"
        )
    from agents.harness.registry import BUDGET_KEYS

    if variant == "constrained" and not any(options.get(key) is not None for key in BUDGET_KEYS):
        return (
            f"--variant constrained ranks cells by the chance they meet a budget: give one ({BUDGET_FLAGS}, "
            "e.g. --max-latency-ms 12), or use --variant surrogate without budgets"
        )
    return None


def run(args: argparse.Namespace) -> int:
    """Fine-tune; print the best cell, its validation (and test) accuracy and the queries used."""
    import torch

    from agents.commands.progress import FeasibleProgressCallback
    from agents.dgpo.variants import make_dgpo
    from agents.policies import QueryProgressCallback
    from agents.policies.envs import benchmark_for_env_id

    torch.set_num_threads(1)
    preset = get_preset(args.variant)
    overrides = {name: getattr(args, name) for name in SETTING_FLAGS if getattr(args, name) is not None}
    foreign = [name for name in overrides if name not in preset.algorithm.setting_names()]
    if foreign:
        variants = (
            "elite, surrogate, pareto or constrained"
            if all(name in EliteConfig.field_names() for name in foreign)
            else "surrogate, pareto or constrained"
        )
        flags = ", ".join(SETTING_FLAGS[name][0] for name in foreign)
        print(f"dgpo finetune: error: {flags}: only for --variant {variants}", file=sys.stderr)
        return 2
    problem = unused_setting_problem(overrides, preset.config) or variant_reward_problem(
        args.variant, reward_options(args)
    )
    if problem is not None:
        print(f"dgpo finetune: error: {problem}", file=sys.stderr)
        return 2
    tracker: BestByReward | None = None
    try:
        from dgpo_env.rewards import AccuracyUnderBudget, reward_from_options

        reward_fn = reward_from_options(**reward_options(args), seed=args.seed)
        tracker = None if reward_fn is None else BestByReward(reward_fn)
        if tracker is not None and "archive_score" in preset.algorithm.setting_names():
            overrides.setdefault("archive_score", "reward")  # replay and anchors follow the budget or trade-off
        if args.objectives is not None and "objectives" in preset.algorithm.setting_names():
            overrides["objectives"] = ",".join(args.objectives)  # the pareto preset ranks by the same objectives
        model = load_model(args)
        tables = {} if args.table_path is None else {"table_path": args.table_path}
        benchmark = benchmark_for_env_id(args.env, **tables)
        if isinstance(reward_fn, AccuracyUnderBudget):  # progress, best cell and oracle: feasible cells only
            benchmark = ConstrainedBenchmark(benchmark, reward_fn, ledger=benchmark.ledger)
        agent = make_dgpo(
            preset,
            model,
            args.env,
            n_envs=args.n_envs,
            n_steps=args.n_steps,
            env_kwargs={"inverse": args.inverse, **({} if tracker is None else {"reward_fn": tracker})},
            benchmark=benchmark,
            seed=args.seed,
            max_queries=args.max_queries,
            tensorboard_log=None if args.tensorboard is None else str(args.tensorboard),
            verbose=args.verbose,
            **overrides,
        )
    except (TypeError, ValueError) as err:  # bad checkpoint, mismatched settings: say what and exit 2
        print(f"dgpo finetune: error: {err}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    every = args.progress_every or max(1, (args.max_queries or 250) // 10)
    progress: QueryProgressCallback | None = None
    if not args.no_progress:
        if isinstance(benchmark, ConstrainedBenchmark):  # the best feasible cell, not the best over budget
            progress = FeasibleProgressCallback(every, benchmark)
        else:
            progress = QueryProgressCallback(every)
    agent.learn(agent.timesteps_for_epochs(args.epochs), callback=progress, tb_log_name="dgpo")
    wall = time.perf_counter() - start
    if args.save is not None:
        agent.save(args.save)
    if args.save_model is not None:
        agent.policy.model.save(args.save_model)
    best = agent.best
    if tracker is not None:
        print(f"best cell by the reward: {tracker.describe()}")
    name = "DGPO" if args.variant == "published" else f"DGPO ({args.variant} variant)"
    source = args.checkpoint if args.pretrained is None else f"the shipped {args.pretrained!r} prior"
    stopped = STOP_REASONS.get(agent.stop_reason, str(agent.stop_reason))
    print(f"{name} on {args.env} from {source} (seed {args.seed}, {wall:.1f} s); stopped: {stopped}")
    if args.inverse:  # the run lowers accuracy: where the model went matters, not the best cell it passed
        after = mean_sample_accuracy(agent.policy.model, benchmark, INVERSE_SAMPLES, args.n_steps, args.seed)
        print(
            f"  inverse control: mean validation accuracy of {INVERSE_SAMPLES} fresh samples {after:.2f}% "
            "(uncounted look-ups); the best cell below is the most accurate one the run looked up"
        )
    constrained = benchmark if isinstance(benchmark, ConstrainedBenchmark) else None
    if best is not None and constrained is not None and best["val_acc"] <= OVER_BUDGET_ACCURACY:
        best = None  # every cell looked up was over budget: no best cell, not an over-budget one
    if best is None:
        found = "valid" if constrained is None else f"feasible ({constrained.describe_budgets()})"
        print(f"  no {found} cell found; queries: {benchmark.n_queries} distinct cells")
        return 1
    if constrained is not None:
        print(f"  (within the budgets: {constrained.describe_budgets()})")
    elif tracker is not None:
        print("  (the lines below rank by validation accuracy alone: this cell may break the trade-off)")
    print(f"  best cell: {best['cell']}")
    try:
        oracle_acc: float | None = benchmark.oracle.val_acc
    except ValueError:  # a budgeted space that cannot list its cells has no known best feasible cell
        oracle_acc = None
    if oracle_acc is None:
        print(f"  validation accuracy {best['val_acc']:.4f}%")
    elif best["val_acc"] >= oracle_acc:
        where = "benchmark" if constrained is None else "benchmark within the budgets"
        print(f"  validation accuracy {best['val_acc']:.4f}%: the oracle, the best cell of the {where}")
    else:
        print(f"  validation accuracy {best['val_acc']:.4f}% (oracle {oracle_acc:.4f}%)")
    if best["test_acc"] is not None:
        print(f"  test accuracy {best['test_acc']:.4f}%")
    else:
        print("  test accuracy: not in this benchmark table (pass --table-path for NB201's extended table)")
    print(
        f"  queries: {benchmark.n_queries} distinct cells ({benchmark.n_lookups} look-ups); "
        f"best found at query {best['n_queries_when_found']}"
    )
    size = network_parameters(benchmark if constrained is None else constrained.inner, best)
    if size is not None:
        print(f"  its network: {size:,} parameters (dgpo_env.networks.to_torch builds it; docs/networks.md)")
    return 0


def network_parameters(benchmark: Benchmark, best: dict[str, Any]) -> int | None:
    """Trainable parameters of the best cell's benchmark network; ``None`` for spaces without one (toy)."""
    from dgpo_env.networks import count_params

    space = benchmark.search_space.name
    if space == "nb201":  # the cell is its arch string
        return count_params(best["cell"], benchmark)
    if isinstance(benchmark, NB101Benchmark):  # the key is the official hash of a cell in the table
        row = benchmark.table.find(best["key"])
        return None if row is None else count_params(benchmark.table.spec(row), benchmark)
    return None
