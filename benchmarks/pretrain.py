"""Pretraining cost and sample quality of the graph-diffusion model on NAS-Bench-201 CIFAR-10.

Trains the default model (``PretrainConfig()``, ``DenoiserConfig()``) on three training sets —
all 15,625 cells, a random 7%, and the "filtered" cells with validation accuracy < 85% — and
samples each at several step counts (strided from T = 800). Reports wall time, peak memory,
parameter count, selection queries, and per step count: validity, uniqueness, novelty, op
frequencies against the training set, the accuracy distribution against uniform random cells and
the share of samples at or above the filter threshold.

Targets for the default CPU model: full pretraining <= 60 s on 2 idle CPU cores (the machine is shared, so
wall seconds, process CPU seconds and the 1-minute load average are all recorded); samples 100% valid; op
frequencies within 2 percentage points of the training set; the filtered model rarely above 85%.

Usage::

    python benchmarks/pretrain.py                 # threads: 2 if the machine is idle, else 1
    python benchmarks/pretrain.py --quick         # a smoke run (few steps, few samples)
    python benchmarks/pretrain.py --sets full --threads 1 --out benchmarks/results/pretrain_default.json
    python benchmarks/pretrain.py --checkpoint old.pt --out benchmarks/results/pretrain_before.json  # no training
    python benchmarks/pretrain.py --denoiser mlp --out benchmarks/results/pretrain_mlp.json  # the fast MLP

For the all-cells model it also reports :func:`excess_cross_entropy`, the denoiser's cross-entropy above
the exact optimum (finer than any sample statistic).
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
from torch.nn.functional import one_hot

from agents.diffusion.architectures import ARCHITECTURES
from agents.diffusion.denoiser import DenoiserConfig
from agents.diffusion.model import DiffusionModel, package_version
from agents.diffusion.pretrain import (
    FILTER_THRESHOLD_NB201,
    PretrainConfig,
    cells_to_tensors,
    pretrain_on_benchmark,
    pretraining_summary,
)
from agents.diffusion.sampling import evaluate_model, format_metrics
from dgpo_env.benchmarks import NB201Benchmark
from dgpo_env.io import atomic_write_text

RESULTS = Path(__file__).resolve().parent / "results" / "pretrain.json"
EXCESS_SEED = 12345
"""Seeds the noise draws of :func:`excess_cross_entropy`, the same for every model measured."""
TRAINING_SETS: dict[str, dict[str, float | None]] = {
    "full": {"fraction": None, "max_val_acc": None},
    "fraction_7pct": {"fraction": 0.07, "max_val_acc": None},  # DGPO's 7% setting (docs/benchmarks.md §4)
    "filtered_85": {"fraction": None, "max_val_acc": FILTER_THRESHOLD_NB201},  # docs/diffusion.md §7
}


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


@torch.no_grad()
def excess_cross_entropy(model: DiffusionModel, seed: int, draws: int = 4) -> dict[str, float]:
    """Node cross-entropy of ``p̂_θ(G_0 | G_t)`` above the exact optimum, on every cell of the space.

    For a model trained on *every* cell of a space whose cells are all combinations of per-node values
    (NB201: 5 operations on each of 6 nodes, every edge fixed), the data is the product of the
    marginals ``m`` the model stores, so the Bayes-optimal denoiser is known in closed form per node:
    ``p(x_0 = k | x_t = j) ∝ m_k (ᾱ_t [k = j] + (1 - ᾱ_t) m_j)``. The gap between the model's
    cross-entropy and this optimum, on the same ``t`` and noise draws, is a sensitive measure of how far
    training has converged (0 is perfect). Not meaningful for a fraction or a filtered set.

    Args:
        model: A model trained on all cells of its (listable) space.
        seed: Seeds ``t`` and the noise.
        draws: Noisy copies of every cell.

    Returns:
        ``model_ce`` and ``bayes_ce`` in nats per free node, and ``excess_mnats`` (millinats per free node).
    """
    nodes, edges = cells_to_tensors(list(model.space.enumerate_cells()))
    free = ~torch.from_numpy(model.space.fixed_mask[: model.space.n_nodes].copy())
    marginals = model.noise.node_marginals[free]  # [P, K] float64
    gen = torch.Generator().manual_seed(seed)
    model_nll = bayes_nll = 0.0
    for _ in range(draws):
        for chunk in torch.arange(nodes.shape[0]).split(2048):
            t = torch.randint(1, model.diffusion_steps + 1, (len(chunk),), generator=gen)
            nodes_t, edges_t = model.noise.forward_sample(nodes[chunk], edges[chunk], t, gen)
            node_logits, _ = model.logits(nodes_t, edges_t, t)
            target = nodes[chunk][:, free]  # [B, P]
            model_nll -= node_logits[:, free].log_softmax(-1).gather(2, target[..., None]).sum().item()
            alpha_bar = model.noise.alpha_bar_at(t, len(chunk)).to(marginals.dtype)[:, None, None]  # [B, 1, 1]
            seen = nodes_t[:, free]  # [B, P]
            same = one_hot(seen, marginals.shape[-1]).to(marginals.dtype)  # [k = j]
            m_seen = marginals.expand(len(chunk), -1, -1).gather(2, seen[..., None])  # [B, P, 1]
            posterior = marginals * (alpha_bar * same + (1.0 - alpha_bar) * m_seen)
            posterior = posterior / posterior.sum(-1, keepdim=True)
            bayes_nll -= posterior.gather(2, target[..., None]).log().sum().item()
    count = draws * nodes.shape[0] * int(free.sum())
    return {
        "model_ce": model_nll / count,
        "bayes_ce": bayes_nll / count,
        "excess_mnats": 1000.0 * (model_nll - bayes_nll) / count,
    }


def sample_metrics(
    model: DiffusionModel, bench: NB201Benchmark, steps_and_n: list[tuple[int, int]], seed: int
) -> dict[str, Any]:
    """:func:`evaluate_model` at every ``(denoising steps, samples)`` pair, printed and keyed by the step count."""
    out: dict[str, Any] = {}
    for n_steps, n in steps_and_n:
        start = time.perf_counter()
        metrics = evaluate_model(model, bench, n=n, n_steps=n_steps, seed=seed)
        metrics["eval_time_s"] = time.perf_counter() - start
        out[str(n_steps)] = metrics
        print(f"-- {n_steps} steps\n{format_metrics(metrics)}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: 2 if idle, else 1)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 60 steps, few samples")
    parser.add_argument("--samples", type=int, default=1000, help="samples at 100, 25 and 10 steps")
    parser.add_argument("--samples-800", type=int, default=250, help="samples at 800 steps (slow)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--sets", default=",".join(TRAINING_SETS), help=f"comma-separated training sets of {list(TRAINING_SETS)}"
    )
    parser.add_argument("--ckpt-dir", type=Path, default=None, help="also save the three checkpoints here")
    parser.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="measure the samples of this all-cells NB201 checkpoint instead of training (e.g. an earlier default)",
    )
    parser.add_argument(
        "--denoiser",
        choices=sorted(ARCHITECTURES),
        default=DenoiserConfig.architecture,
        help="train the default transformer or the fast MLP denoiser (its default size)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    sets = args.sets.split(",")
    if not sets or set(sets) - set(TRAINING_SETS):
        parser.error(f"--sets takes names of {list(TRAINING_SETS)}, got {args.sets!r}")

    load = os.getloadavg()[0]
    threads = args.threads if args.threads is not None else (2 if load < 0.5 else 1)
    torch.set_num_threads(threads)
    config = PretrainConfig(
        seed=args.seed, steps=60 if args.quick else PretrainConfig().steps, denoiser=ARCHITECTURES[args.denoiser]()
    )
    steps_and_n = [(800, 20 if args.quick else args.samples_800), (100, 50 if args.quick else args.samples)]
    steps_and_n += [(25, 100 if args.quick else args.samples), (10, 100 if args.quick else args.samples)]  # 10: DGPO's
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
    what = f"checkpoint {args.checkpoint}" if args.checkpoint else f"{config.steps} gradient steps per model"
    print(f"torch threads {threads} (1-min load {load:.2f}); {what}")
    if args.checkpoint is not None:
        model = DiffusionModel.load(args.checkpoint)
        report["config"] = model.info["pretrain_config"]
        report["models"]["checkpoint"] = entry = {"checkpoint": str(args.checkpoint), "samples": {}}
        entry["excess_cross_entropy"] = excess_cross_entropy(model, EXCESS_SEED)
        print(f"== {args.checkpoint}: excess cross-entropy {entry['excess_cross_entropy']['excess_mnats']:.3f} mnats")
        entry["samples"] = sample_metrics(model, NB201Benchmark("cifar10"), steps_and_n, args.seed)
        sets = []
    for name in sets:
        bench = NB201Benchmark("cifar10")
        rss_before, load_before = peak_rss_mb(), os.getloadavg()[0]
        cpu = time.process_time()
        model, history = pretrain_on_benchmark(bench, config, progress=False, **TRAINING_SETS[name])  # type: ignore[arg-type]
        entry: dict[str, Any] = {
            **pretraining_summary(model, history),
            "cpu_time_s": time.process_time() - cpu,
            "load_avg_1min": [load_before, os.getloadavg()[0]],
            "peak_rss_mb": peak_rss_mb(),
            "peak_rss_mb_before": rss_before,
            "val_loss": history["val_loss"],
            "samples": {},
        }
        print(
            f"\n== {name}: {entry['n_cells']} cells ({entry['selection']}), {entry['selection_queries']} queries, "
            f"{entry['n_parameters']:,} params, {entry['epochs']} epochs / {entry['gradient_steps']} steps in "
            f"{entry['wall_time_s']:.1f} s ({entry['cpu_time_s']:.1f} CPU-s, 1-min load {load_before:.1f}), "
            f"peak RSS {entry['peak_rss_mb']:.0f} MB, "
            f"final val loss {entry['val_loss'][-1]:.4f}"
        )
        if args.ckpt_dir is not None:
            model.save(args.ckpt_dir / f"nb201_{name}.pt")
        if name == "full":
            entry["excess_cross_entropy"] = excess_cross_entropy(model, EXCESS_SEED)
            print(f"excess cross-entropy {entry['excess_cross_entropy']['excess_mnats']:.3f} mnats per free node")
        entry["samples"] = sample_metrics(model, bench, steps_and_n, args.seed)
        report["models"][name] = entry
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(report, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
