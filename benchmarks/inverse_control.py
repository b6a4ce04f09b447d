"""Diagnose the inverse control: where inverse-reward DGPO from the all-cells model ends, and why.

The inverse control of ``benchmarks/reproduce_paper.py`` (DGPO as published, reward ``-R``, 80 batches of
15, learning rate 1e-3, 25 denoising steps, from the all-cells model) should drive the mean validation
accuracy of fresh samples to chance. On some seeds it stops near 10% on CIFAR-100 / ImageNet16-120 or 35%
on CIFAR-10. This script runs the same job and says, per seed, what the model ends on:

* ``chance_share``: share of 500 fresh samples within 2 points of chance (on NAS-Bench-201 these are the
  cells with no path from the input to the output: 9.71% on CIFAR-10, 1% on CIFAR-100, 0.83% on
  ImageNet16-120);
* ``param_free_share``: share of fresh samples with no convolution (only ``none``, ``skip_connect``,
  ``avg_pool_3x3``) that are not at chance — the parameter-free cells that score 30-46% on CIFAR-10 and
  about 10% on CIFAR-100 and ImageNet16-120;
* ``train_chance_cells``: cells at chance the policy sampled during training, and the last batch that sampled
  one (``explore_chance_cells``: those the starting model drew for a preset with exploration copies);
* ``batch_mean``: mean accuracy of the training batches at a few points, and the final reward EMA std.

Fresh samples are scored with the uncounted ``peek`` (analysis, not search), as in ``reproduce_paper.py``.

``--variant NAME`` runs a DGPO preset instead of DGPO as published (its settings, with the learning rate
of ``--lr``) and writes ``inverse_control_NAME.json``; ``--set NAME=VALUE`` changes one of its settings (as
in ``tune_preset.py``; the report then needs ``--out``). Runs go to ``--jobs`` worker processes (a fresh one
per run, 1 torch thread each) or to Ray (``--backend ray``), as in ``reproduce_paper.py``.

Usage::

    python benchmarks/inverse_control.py --seeds 100,101,102 --table-path ../shared/data/nb201/nb201.npz
    python benchmarks/inverse_control.py --variant kl-explore --seeds 100,101,102,103,104,105,106,107,108,109 \
        --jobs 2 --table-path ../shared/data/nb201/nb201.npz
    python benchmarks/inverse_control.py --variant kl-explore --set explore_advantage=scaled --seeds 100,101 \
        --table-path ../shared/data/nb201/nb201.npz --out /tmp/inverse_control_scaled.json
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from collections import Counter
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np

from agents.commands.backend import add_backend_arguments, executor_from_args
from agents.commands.finetune import unused_setting_problem
from agents.dgpo.variants import PRESETS, get_preset
from agents.harness import Job, JobFailed, LocalExecutor
from dgpo_env.io import atomic_write_text, dumps_json, ensure_writable_dir

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the benchmark scripts are not a package
import reproduce_paper
import tune_preset  # --set NAME=VALUE: its parsing and checks

DATASETS = reproduce_paper.DATASETS
CHANCE = {"cifar10": 10.0, "cifar100": 1.0, "imagenet16": 100 / 120}
"""Accuracy of guessing (percent): 10, 100 and 120 classes."""
CHANCE_MARGIN = 2.0
"""A sample (or a model's sample mean) is "at chance" within this many points of :data:`CHANCE`."""
PARAM_FREE_OPS = frozenset({"none", "skip_connect", "avg_pool_3x3"})
"""NB201 operations without weights."""
CHECKPOINTS = (1, 10, 20, 40, 80)
"""Batches after which the batch mean accuracy is recorded."""


def _ops(arch_str: str) -> list[str]:
    """The six operations of an NB201 arch string ``|op~0|+|op~0|op~1|+|...|``."""
    return [token.split("~")[0] for token in arch_str.replace("+", "").split("|") if token]


def inverse_job(
    dataset: str,
    model_path: str,
    seed: int,
    table_path: str | None,
    epochs: int,
    lr: float,
    n_steps: int,
    settings: dict[str, Any] | None = None,
    preset: str = "published",
) -> dict[str, Any]:
    """One inverse-reward DGPO run with its diagnosis; see the module docstring.

    ``preset``: the DGPO preset (:data:`agents.dgpo.variants.PRESETS`); ``settings``: its settings changed
    (none: the preset's own; the learning rate is always ``lr``).
    """
    import torch
    from stable_baselines3.common.callbacks import BaseCallback

    from agents.dgpo.variants import make_dgpo
    from agents.diffusion.model import DiffusionModel

    torch.set_num_threads(1)
    start = time.perf_counter()
    benchmark = reproduce_paper._benchmark(dataset, table_path)
    limit = CHANCE[dataset] + CHANCE_MARGIN
    batches: list[list[float]] = []
    explored: list[float] = []

    class Episodes(BaseCallback):
        """Collects the accuracy of every finished episode, batch by batch (the starting model's copies apart)."""

        def _on_rollout_start(self) -> None:
            batches.append([])

        def _on_step(self) -> bool:
            if bool(np.all(self.locals["dones"])):
                infos = self.locals["infos"]
                own = len(infos) - getattr(self.model, "explore_copies", 0)
                batches[-1].extend(float(i.get("val_acc_mean") or 0.0) for i in infos[:own])
                explored.extend(float(i.get("val_acc_mean") or 0.0) for i in infos[own:])
            return True

    model = DiffusionModel.load(model_path)
    before = reproduce_paper._sample_mean(model, benchmark, n_steps, seed)
    agent = make_dgpo(
        preset,
        model,
        None,
        benchmark=benchmark,
        n_steps=n_steps,
        seed=seed,
        env_kwargs={"inverse": True},
        learning_rate=lr,
        **(settings or {}),
    )
    agent.learn(total_timesteps=agent.timesteps_for_epochs(epochs), callback=Episodes())
    samples = agent.policy.model.sample(
        reproduce_paper.N_EVAL_SAMPLES, n_steps=n_steps, generator=torch.Generator().manual_seed(10_000 + seed)
    )
    results = [benchmark.peek(dag) for dag in samples.dags()]
    acc = np.array([r.val_acc_mean if r.valid and r.val_acc_mean is not None else 0.0 for r in results])  # [500]
    keys = [r.key or "" for r in results]
    at_chance = acc <= limit
    param_free = np.array([set(_ops(k)) <= PARAM_FREE_OPS for k in keys]) & ~at_chance
    chance_batches = [i + 1 for i, b in enumerate(batches) if any(a <= limit for a in b)]
    top = Counter(keys).most_common(3)
    return {
        "dataset": dataset,
        "seed": seed,
        "sample_mean_before": before,
        "sample_mean_after": float(acc.mean()),
        "at_chance": bool(acc.mean() <= limit),
        "chance_share": float(at_chance.mean()),
        "param_free_share": float(param_free.mean()),
        "distinct_samples": len(set(keys)),
        "top_cells": [{"cell": k, "share": n / len(keys), "val_acc": float(acc[keys.index(k)])} for k, n in top],
        "train_chance_cells": int(sum(a <= limit for b in batches for a in b)),
        "explore_chance_cells": int(sum(a <= limit for a in explored)),
        "last_chance_batch": chance_batches[-1] if chance_batches else None,
        "batch_mean": {str(c): float(np.mean(batches[c - 1])) for c in CHECKPOINTS if c <= len(batches)},
        "reward_ema_std": agent.normalizer.std,
        "job_wall_time_s": time.perf_counter() - start,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the diagnosed inverse control per dataset and seed; print each record; write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--seeds", default="100,101,102", help="comma-separated seeds (report on seeds >= 100)")
    parser.add_argument("--epochs", type=int, default=reproduce_paper.INVERSE_EPOCHS, help="batches of 15")
    parser.add_argument("--lr", type=float, default=1e-3, help="learning rate (published runs: 1e-3)")
    parser.add_argument("--n-steps", type=int, default=25, help="denoising steps")
    parser.add_argument("--model", type=Path, default=Path("runs/reproduce_paper/full.pt"), help="all-cells model")
    parser.add_argument("--table-path", default=None, help="extended NB201 .npz")
    parser.add_argument(
        "--variant",
        choices=sorted(PRESETS),
        default="published",
        help="DGPO preset (docs/dgpo.md §5); its own settings, the learning rate from --lr",
    )
    parser.add_argument(
        "--set",
        dest="settings",
        type=tune_preset.parse_setting,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="change a setting of the preset (repeat for several; needs --out); VALUE a Python literal: 3, 'mean'",
    )
    add_backend_arguments(parser)  # --jobs, --backend {local,ray}, --address, --cpus-per-run, --gpus-per-run
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="JSON report (default benchmarks/results/inverse_control.json, or inverse_control_VARIANT.json)",
    )
    args = parser.parse_args(argv)
    preset = get_preset(args.variant)
    try:
        settings = tune_preset.checked_settings(preset, args.settings)
    except ValueError as error:
        parser.error(str(error))
    if "learning_rate" in settings:
        parser.error("--set learning_rate: give the learning rate with --lr")
    if settings and args.out is None:
        parser.error("--set needs --out (the preset's own report keeps its file name)")
    own = {name: value for kwargs in preset.constructor_kwargs().values() for name, value in kwargs.to_dict().items()}
    same = [name for name, value in settings.items() if own[name] == value]
    if same:
        parser.error(f"--set {same[0]}={settings[same[0]]!r} is the {args.variant} preset's own value: drop it")
    problem = unused_setting_problem(settings, preset.config, as_set=True)
    if problem:
        parser.error(problem)
    if args.out is None:
        suffix = "" if args.variant == "published" else f"_{args.variant}"
        args.out = Path(f"benchmarks/results/inverse_control{suffix}.json")
    datasets = args.datasets.split(",")
    if sorted(set(datasets) - set(DATASETS)):
        parser.error(f"unknown datasets {sorted(set(datasets) - set(DATASETS))}; known: {DATASETS}")
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        parser.error(f"--seeds must be comma-separated integers, got {args.seeds!r}")
    for flag, values in (("--datasets", datasets), ("--seeds", seeds)):
        repeated = sorted({v for v in values if values.count(v) > 1}, key=str)
        if repeated:
            parser.error(f"{flag} names {repeated[0]} twice; give each once")
    if args.epochs < 1:
        parser.error(f"--epochs must be >= 1, got {args.epochs}")
    try:
        executor, n_workers = executor_from_args(args, max_runs_per_worker=1)  # a fresh process per run
        ensure_writable_dir(args.out.parent)
    except (ValueError, OSError) as err:
        parser.error(str(err))
    if not args.model.is_file():  # the all-cells model, as reproduce_paper.py pretrains it
        args.model.parent.mkdir(parents=True, exist_ok=True)
        print(json.dumps(reproduce_paper.pretrain_job("full", datasets[0], str(args.model), args.table_path, 0, None)))
    preset_settings = preset.flat_kwargs()
    jobs = [
        Job(
            f"inverse/{dataset}/seed{seed}",
            inverse_job,
            (
                dataset,
                str(args.model),
                seed,
                args.table_path,
                args.epochs,
                args.lr,
                args.n_steps,
                settings,
                args.variant,
            ),
        )
        for dataset in datasets
        for seed in seeds
    ]
    finished: dict[str, dict[str, Any]] = {}
    executor = executor or LocalExecutor(min(n_workers, len(jobs)), max_jobs_per_worker=1)
    try:
        with closing(executor.run(jobs)) as stream:
            for outcome in stream:
                if not outcome.ok:
                    raise JobFailed(outcome)
                print(json.dumps(outcome.value), flush=True)
                finished[outcome.job_id] = outcome.value
    except JobFailed as err:
        print(f"{err}\nno report written", file=sys.stderr)
        return 1
    records = [finished[job.job_id] for job in jobs]  # datasets, then seeds, whatever order they ended in
    report = {
        "command": " ".join(["python", *map(shlex.quote, [sys.argv[0], *(argv or sys.argv[1:])])]),
        "settings": {
            "variant": args.variant,
            "preset_settings": {**{k: v for k, v in preset_settings.items() if k != "learning_rate"}, **settings},
            "changed": settings,
            "preset_values": {name: own[name] for name in settings},
            "lr": args.lr,
            "n_steps": args.n_steps,
            "epochs": args.epochs,
        },
        "chance": CHANCE,
        "chance_margin": CHANCE_MARGIN,
        "records": records,
    }
    atomic_write_text(args.out, dumps_json(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
