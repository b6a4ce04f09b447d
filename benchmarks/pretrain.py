"""Pretraining cost and sample quality of the graph-diffusion model on NAS-Bench-201 CIFAR-10.

Trains the default model (``PretrainConfig()``, ``DenoiserConfig()``) on three training sets —
all 15,625 cells, a random 7%, and the "filtered" cells with validation accuracy < 85% — and
samples each at several step counts (strided from T = 800). Reports wall time, peak memory,
parameter count, selection queries, and per step count: validity, uniqueness, novelty, op
frequencies against the training set, the accuracy distribution against uniform random cells and
the share of samples at or above the filter threshold.

Targets for the default CPU model: full pretraining < 10 min on 2 CPU cores; samples 100% valid; op frequencies
within 2 percentage points of the training set; the filtered model rarely above 85%.

Usage::

    python benchmarks/pretrain.py                 # threads: 2 if the machine is idle, else 1
    python benchmarks/pretrain.py --quick         # a smoke run (few steps, few samples)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time
from pathlib import Path
from typing import Any

import torch

from agents.diffusion.model import package_version
from agents.diffusion.pretrain import FILTER_THRESHOLD_NB201, PretrainConfig, pretrain_on_benchmark, pretraining_summary
from agents.diffusion.sampling import evaluate_model, format_metrics
from dgpo_env.benchmarks import NB201Benchmark
from dgpo_env.io import atomic_write_text

RESULTS = Path(__file__).resolve().parent / "results" / "pretrain.json"
TRAINING_SETS: dict[str, dict[str, float | None]] = {
    "full": {"fraction": None, "max_val_acc": None},
    "fraction_7pct": {"fraction": 0.07, "max_val_acc": None},  # DGPO's 7% setting (docs/benchmarks.md §4)
    "filtered_85": {"fraction": None, "max_val_acc": FILTER_THRESHOLD_NB201},  # docs/diffusion.md §7
}


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: 2 if idle, else 1)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 60 steps, few samples")
    parser.add_argument("--samples", type=int, default=1000, help="samples at 25 and 100 steps")
    parser.add_argument("--samples-800", type=int, default=250, help="samples at 800 steps (slow)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ckpt-dir", type=Path, default=None, help="also save the three checkpoints here")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    load = os.getloadavg()[0]
    threads = args.threads if args.threads is not None else (2 if load < 0.5 else 1)
    torch.set_num_threads(threads)
    config = PretrainConfig(seed=args.seed, steps=60 if args.quick else PretrainConfig().steps)
    steps_and_n = [(800, 20 if args.quick else args.samples_800), (100, 50 if args.quick else args.samples)]
    steps_and_n.append((25, 100 if args.quick else args.samples))
    report: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": threads,
            "load_avg_1min_at_start": load,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "dgpo_env": package_version(),
        },
        "config": config.to_dict(),
        "models": {},
    }
    print(f"torch threads {threads} (1-min load {load:.2f}); {config.steps} gradient steps per model")
    for name, selection in TRAINING_SETS.items():
        bench = NB201Benchmark("cifar10")
        rss_before = peak_rss_mb()
        model, history = pretrain_on_benchmark(bench, config, progress=False, **selection)  # type: ignore[arg-type]
        entry: dict[str, Any] = {
            **pretraining_summary(model, history),
            "peak_rss_mb": peak_rss_mb(),
            "peak_rss_mb_before": rss_before,
            "val_loss": history["val_loss"],
            "samples": {},
        }
        print(
            f"\n== {name}: {entry['n_cells']} cells ({entry['selection']}), {entry['selection_queries']} queries, "
            f"{entry['n_parameters']:,} params, {entry['epochs']} epochs / {entry['gradient_steps']} steps in "
            f"{entry['wall_time_s']:.1f} s, peak RSS {entry['peak_rss_mb']:.0f} MB, "
            f"final val loss {entry['val_loss'][-1]:.4f}"
        )
        if args.ckpt_dir is not None:
            model.save(args.ckpt_dir / f"nb201_{name}.pt")
        for n_steps, n in steps_and_n:
            start = time.perf_counter()
            metrics = evaluate_model(model, bench, n=n, n_steps=n_steps, seed=args.seed)
            metrics["eval_time_s"] = time.perf_counter() - start
            entry["samples"][str(n_steps)] = metrics
            print(f"-- {n_steps} steps\n{format_metrics(metrics)}")
        report["models"][name] = entry
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(report, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
