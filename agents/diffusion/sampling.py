"""Sampling a pretrained diffusion model and measuring its samples (docs/diffusion.md §8).

Metrics of ``n`` cells drawn with ``k`` (strided) denoising steps:

* validity: share of samples that are valid cells of the search space;
* uniqueness: distinct valid cells / valid samples (canonical keys);
* novelty: distinct valid cells not in the training set / distinct valid cells;
* op frequencies: node-type frequencies over the free node positions, against the training set
  (and edge-type frequencies over free edge positions, for spaces with free edges);
* benchmark accuracy of the valid samples (mean, median, max, top-10 mean) against the same number
  of uniformly random cells.

Accuracies are read with :meth:`Benchmark.peek`: this is analysis of a generator, not search, so
it is **not** counted as queries and must not be used to pick cells.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from agents.diffusion.model import DiffusionModel
from dgpo_env.benchmarks.base import Benchmark
from dgpo_env.search_spaces.base import SearchSpace
from dgpo_env.search_spaces.dag import DAG

TOP_K = 10
"""The accuracy summary reports the mean of the best ``TOP_K`` distinct cells."""


def training_cells(model: DiffusionModel) -> list[DAG]:
    """The pretraining set stored in ``model.info["train_cells"]`` (training and validation split; empty if absent)."""
    flat = model.info.get("train_cells")
    if flat is None:
        return []
    n = model.space.n_nodes
    rows = torch.as_tensor(flat).to(torch.int64).numpy()
    return [DAG(row[:n], row[n:]) for row in rows]


def type_frequencies(space: SearchSpace, cells: Sequence[DAG]) -> dict[str, np.ndarray]:
    """Type frequencies pooled over the free positions: ``{"nodes": float[K], "edges": float[K_e]}``.

    A kind without free positions (NB201's edges) gets an empty array.
    """
    free = ~space.fixed_mask
    node_free, edge_free = free[: space.n_nodes], free[space.n_nodes :]
    out: dict[str, np.ndarray] = {}
    for kind, mask, n_types in (("nodes", node_free, space.n_node_types), ("edges", edge_free, space.n_edge_types)):
        if not mask.any() or not cells:
            out[kind] = np.zeros(0)
            continue
        values = np.concatenate([getattr(c, kind)[mask] for c in cells])
        out[kind] = np.bincount(values, minlength=n_types) / values.size
    return out


def accuracy_stats(values: Sequence[float], top_k: int = TOP_K) -> dict[str, float]:
    """Mean, median, max and top-``k`` mean of accuracies (``nan`` for an empty list)."""
    v = np.sort(np.asarray(values, dtype=np.float64))[::-1]
    if v.size == 0:
        return {"mean": float("nan"), "median": float("nan"), "max": float("nan"), f"top{top_k}_mean": float("nan")}
    return {
        "mean": float(v.mean()),
        "median": float(np.median(v)),
        "max": float(v[0]),
        f"top{top_k}_mean": float(v[:top_k].mean()),
    }


def cell_metrics(space: SearchSpace, samples: Sequence[DAG], train: Sequence[DAG] | None = None) -> dict[str, Any]:
    """Validity, uniqueness, novelty and type frequencies of ``samples``.

    Args:
        space: The search space.
        samples: The sampled DAGs.
        train: The training cells (novelty and reference frequencies); ``None`` skips both.

    Returns:
        A JSON-ready dict.
    """
    valid = [d for d in samples if space.validate(d) is None]
    keys = {space.canonical_key(d) for d in valid}
    out: dict[str, Any] = {
        "n": len(samples),
        "validity": len(valid) / len(samples) if samples else float("nan"),
        "uniqueness": len(keys) / len(valid) if valid else float("nan"),
    }
    freq = type_frequencies(space, valid)
    out["node_type_freq"] = dict(zip(space.node_types, freq["nodes"].tolist(), strict=False))
    if freq["edges"].size:
        out["edge_type_freq"] = freq["edges"].tolist()
    if train:
        train_keys = {space.canonical_key(d) for d in train}
        out["novelty"] = len(keys - train_keys) / len(keys) if keys else float("nan")
        ref = type_frequencies(space, train)
        out["train_node_type_freq"] = dict(zip(space.node_types, ref["nodes"].tolist(), strict=False))
        gaps = [np.abs(freq[k] - ref[k]).max() for k in ("nodes", "edges") if freq[k].size and ref[k].size]
        out["max_type_freq_gap_pp"] = 100.0 * float(max(gaps)) if gaps else 0.0
        if ref["edges"].size:
            out["train_edge_type_freq"] = ref["edges"].tolist()
    return out


def evaluate_model(
    model: DiffusionModel,
    benchmark: Benchmark | None,
    n: int = 100,
    n_steps: int = 25,
    seed: int = 0,
    random_baseline: bool = True,
    batch_size: int = 1024,
) -> dict[str, Any]:
    """Sample ``n`` cells with ``n_steps`` steps and report :func:`cell_metrics` and accuracies.

    Args:
        model: The diffusion model (its ``info["train_cells"]`` is the novelty reference).
        benchmark: Scores the samples with :meth:`Benchmark.peek` (uncounted); ``None`` skips scores.
        n: Number of samples.
        n_steps: Denoising steps (strided from ``T``).
        seed: Seeds sampling and the random baseline.
        random_baseline: Also score ``n`` uniformly random valid cells.
        batch_size: Graphs denoised at once.

    Returns:
        A JSON-ready dict: the cell metrics, ``accuracy`` / ``random_accuracy`` summaries,
        ``share_at_or_above_filter`` when the model was pretrained on a ``max_val_acc`` filter,
        and ``sample_time_s``.

    Raises:
        ValueError: If ``benchmark`` belongs to another search space.
    """
    space = model.space
    if benchmark is not None and benchmark.search_space.name != space.name:
        raise ValueError(f"benchmark {benchmark.name} is for {benchmark.search_space.name}, the model for {space.name}")
    start = time.perf_counter()
    samples = model.sample(n, n_steps, torch.Generator().manual_seed(seed), batch_size=batch_size).dags()
    out: dict[str, Any] = {"n_steps": n_steps, "sample_time_s": time.perf_counter() - start}
    out.update(cell_metrics(space, samples, training_cells(model)))
    if benchmark is None:
        return out
    threshold = model.info.get("max_val_acc")
    acc = _peek_accuracies(benchmark, samples)
    out["accuracy"] = accuracy_stats(acc)
    if threshold is not None:
        out["filter_threshold"] = threshold
        out["share_at_or_above_filter"] = float(np.mean(np.asarray(acc) >= threshold)) if acc else float("nan")
    if random_baseline:
        rng = np.random.default_rng(seed)
        random_acc = _peek_accuracies(benchmark, [space.sample_uniform(rng) for _ in range(n)])
        out["random_accuracy"] = accuracy_stats(random_acc)
        if threshold is not None:
            out["random_share_at_or_above_filter"] = float(np.mean(np.asarray(random_acc) >= threshold))
    return out


def mean_sample_accuracy(model: DiffusionModel, benchmark: Benchmark, n: int, n_steps: int, seed: int) -> float:
    """Mean validation accuracy of ``n`` fresh samples, invalid cells scoring 0 (as the environment rewards them).

    The samples are scored with the uncounted :meth:`Benchmark.peek`: this measures a model (e.g. before
    and after fine-tuning, or the inverse control of docs/dgpo.md §1 and docs/benchmarks.md §4), it is not a search.

    Args:
        model: The diffusion model.
        benchmark: Scores the samples.
        n: Number of samples.
        n_steps: Denoising steps.
        seed: Seeds the sampling generator.
    """
    samples = model.sample(n, n_steps=n_steps, generator=torch.Generator().manual_seed(seed))
    results = map(benchmark.peek, samples.dags())
    return float(np.mean([r.val_acc_mean if r.valid and r.val_acc_mean is not None else 0.0 for r in results]))


def _peek_accuracies(benchmark: Benchmark, cells: Sequence[DAG]) -> list[float]:
    """Mean validation accuracies of the valid cells (uncounted look-ups)."""
    results = (benchmark.peek(c) for c in cells)
    return [r.val_acc_mean for r in results if r.valid and r.val_acc_mean is not None]


def format_metrics(metrics: dict[str, Any]) -> str:
    """A short multi-line, human-readable summary of :func:`evaluate_model`'s output."""
    lines = [
        f"samples: {metrics['n']} with {metrics['n_steps']} steps ({metrics['sample_time_s']:.1f} s)",
        f"validity {metrics['validity']:.1%}  uniqueness {metrics['uniqueness']:.1%}"
        + (f"  novelty {metrics['novelty']:.1%}" if "novelty" in metrics else ""),
    ]
    freq = " ".join(f"{k}={v:.3f}" for k, v in metrics["node_type_freq"].items() if v > 0)
    lines.append(f"node types: {freq}")
    if "train_node_type_freq" in metrics:
        ref = " ".join(f"{k}={v:.3f}" for k, v in metrics["train_node_type_freq"].items() if v > 0)
        lines.append(f"training:   {ref}  (max gap {metrics['max_type_freq_gap_pp']:.2f} pp)")
    for key, label in (("accuracy", "samples"), ("random_accuracy", "random ")):
        if key in metrics:
            a = metrics[key]
            stats = "  ".join(f"{k} {v:.2f}" for k, v in a.items())
            lines.append(f"val acc {label}: {stats}")
    if "share_at_or_above_filter" in metrics:
        lines.append(
            f">= filter {metrics['filter_threshold']:g}: samples {metrics['share_at_or_above_filter']:.1%}"
            + (
                f", random {metrics['random_share_at_or_above_filter']:.1%}"
                if "random_share_at_or_above_filter" in metrics
                else ""
            )
        )
    return "\n".join(lines)
