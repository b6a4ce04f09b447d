"""Pareto reports of a multi-objective comparison: fronts found, hypervolume against queries (docs/howto-pareto.md).

For every run, the objectives of the cells it queried (:attr:`SearchResult.queried`, in query order)
are read from the benchmark's table: those values came with the run's own look-ups, so reading them
again is no new query. The **true Pareto front** is computed from every cell of the table; it is the
uncounted reference of the plot and of two metrics, both reported after each checkpoint number of
distinct queries:

* ``hv_ratio``: the hypervolume dominated by the front found, divided by the true front's, both
  against one reference point (default: the nadir of the true front, the worst value of each
  objective over its cells; points beyond it add nothing). 1.0 means the run's front dominates as much
  as the true front.
* ``share``: the share of the true front's distinct objective vectors that the run queried.

Hypervolumes and non-dominated sorting are :mod:`moocore`'s (the optional extra ``moo``). The true
front needs a benchmark whose cells can be enumerated (NAS-Bench-201, toy).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agents.baselines import SearchResult
from agents.harness.report import save_figure
from dgpo_env.benchmarks.base import Benchmark
from dgpo_env.rewards import METRICS, Metric, check_metric, objective_vector

MOO_INSTALL = 'pip install "dgpo-env[moo]"'
"""The command that installs the Pareto report's library (the ``moo`` extra)."""


def require_moocore() -> Any:
    """The :mod:`moocore` module.

    Raises:
        ImportError: Naming the install command when it is not installed.
    """
    try:
        import moocore
    except ImportError as err:
        raise ImportError(f"Pareto reports need moocore, which is not installed: {MOO_INSTALL}") from err
    return moocore


def nondominated(points: np.ndarray, maximise: Sequence[bool]) -> np.ndarray:
    """``bool[n]``: which rows of ``points`` (``float[n, D]``) no other row dominates (duplicates all kept)."""
    points = np.asarray(points, dtype=np.float64)
    if len(points) == 0:
        return np.zeros(0, dtype=bool)
    return np.asarray(require_moocore().is_nondominated(points, maximise=list(maximise), keep_weakly=True))


def hypervolume(points: np.ndarray, reference: Sequence[float], maximise: Sequence[bool]) -> float:
    """Volume dominated by ``points`` (``float[n, D]``) and bounded by ``reference``; 0 for no point.

    Points that do not strictly improve on ``reference`` in every objective add nothing.
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, len(reference))
    if len(points) == 0:
        return 0.0
    return float(require_moocore().hypervolume(points, ref=np.asarray(reference, float), maximise=list(maximise)))


@dataclass(frozen=True)
class ObjectiveTable:
    """Every cell's objectives (uncounted: the reference of Pareto reports, never for search).

    Attributes:
        metrics: The objectives.
        keys: Canonical key of each cell.
        values: ``float64[C, D]`` objective values (accuracy: mean over seeds).
        row: Key -> row.
    """

    metrics: tuple[Metric, ...]
    keys: tuple[str, ...]
    values: np.ndarray
    row: dict[str, int] = field(repr=False)

    @property
    def maximise(self) -> list[bool]:
        """Direction of each objective."""
        return [m.maximise for m in self.metrics]

    @classmethod
    def build(cls, benchmark: Benchmark, objectives: Sequence[str]) -> ObjectiveTable:
        """Read every cell of ``benchmark`` with :meth:`Benchmark.peek` (not counted).

        Raises:
            ValueError: For unknown objectives, or a benchmark whose cells cannot be enumerated.
        """
        metrics = tuple(check_metric(name) for name in objectives)
        try:
            cells = list(benchmark.search_space.enumerate_cells())
        except NotImplementedError as err:
            raise ValueError(
                f"{benchmark.name}: the true Pareto front needs every cell, and this space cannot enumerate them"
            ) from err
        keys, rows = [], []
        for cell in cells:
            result = benchmark.peek(cell)
            if not result.valid or result.key is None:
                continue
            keys.append(result.key)
            rows.append(objective_vector(result, metrics))
        return cls(metrics, tuple(keys), np.array(rows, dtype=np.float64), {k: i for i, k in enumerate(keys)})

    def of(self, keys: Sequence[str]) -> np.ndarray:
        """``float64[len(keys), D]`` the objectives of the given cells.

        Raises:
            ValueError: For a key the table does not hold.
        """
        missing = [k for k in keys if k not in self.row]
        if missing:
            raise ValueError(f"cells {missing[:3]} are not in the benchmark's table")
        return self.values[[self.row[k] for k in keys]].reshape(len(keys), len(self.metrics))


@dataclass
class ParetoReport:
    """The Pareto section of a comparison (see the module docstring).

    Attributes:
        objectives: Metric names.
        maximise: Direction of each.
        reference: The hypervolume reference point.
        true_front: ``float64[F, D]`` the true front's distinct objective vectors.
        true_hv: Its hypervolume.
        checkpoints: Query counts of the metrics (the budget last).
        runs: ``{method: [per-run dict: seed, hv_ratio[q], share[q], front (the run's front found)]}``.
        grid: Query counts of :attr:`curves`.
        curves: ``{method: float64[S, G]}`` hv_ratio after each grid count, per seed.
    """

    objectives: list[str]
    maximise: list[bool]
    reference: list[float]
    true_front: np.ndarray
    true_hv: float
    checkpoints: list[int]
    runs: dict[str, list[dict[str, Any]]]
    grid: list[int]
    curves: dict[str, np.ndarray]

    def summary(self) -> dict[str, dict[str, dict[str, list[float]]]]:
        """``{method: {"hv_ratio" | "share": {str(q): [mean, std]}}}`` over seeds (std with ddof 0)."""
        out: dict[str, dict[str, dict[str, list[float]]]] = {}
        for method, runs in self.runs.items():
            out[method] = {}
            for metric in ("hv_ratio", "share"):
                values = np.array([r[metric] for r in runs], dtype=np.float64)  # [S, len(checkpoints)]
                out[method][metric] = {
                    str(q): [float(values[:, i].mean()), float(values[:, i].std())]
                    for i, q in enumerate(self.checkpoints)
                }
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (fronts as lists)."""
        return {
            "objectives": self.objectives,
            "maximise": self.maximise,
            "reference": self.reference,
            "reference_rule": "nadir of the true Pareto front",
            "true_front": self.true_front.tolist(),
            "true_hv": self.true_hv,
            "checkpoints": self.checkpoints,
            "summary": self.summary(),
            "runs": self.runs,
        }

    def table(self) -> str:
        """One line per method: mean ± std of hv_ratio and share at each checkpoint."""
        summary = self.summary()
        columns = ["method", *[f"{m} @{q}" for q in self.checkpoints for m in ("HV ratio", "share of front")]]
        rows = []
        for method, stats in summary.items():
            row = [method]
            for q in self.checkpoints:
                hv, share = stats["hv_ratio"][str(q)], stats["share"][str(q)]
                row += [f"{hv[0]:.4f} ± {hv[1]:.4f}", f"{100 * share[0]:.1f}% ± {100 * share[1]:.1f}"]
            rows.append(row)
        widths = [max(len(r[i]) for r in [columns, *rows]) for i in range(len(columns))]
        lines = [" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in [columns, *rows]]
        lines.insert(1, "-+-".join("-" * w for w in widths))
        head = f"Pareto front ({' vs '.join(self.objectives)}): {len(self.true_front)} points on the true front"
        return "\n".join([head, *lines])


def pareto_report(
    runs: Mapping[str, Sequence[SearchResult]],
    table: ObjectiveTable,
    checkpoints: Sequence[int],
    max_queries: int,
    grid_points: int = 50,
) -> ParetoReport:
    """Fronts found, hypervolume ratios and shares of the true front of every run (see the module docstring).

    Args:
        runs: ``{method: runs}``; every run must carry its queried keys (:attr:`SearchResult.queried`).
        table: Every cell's objectives (:meth:`ObjectiveTable.build`).
        checkpoints: Query counts to report besides ``max_queries``.
        max_queries: The budget.
        grid_points: About this many query counts in the hypervolume curves of the plot.

    Raises:
        ValueError: If a run has no queried keys (it was not run as a multi-objective comparison).
    """
    maximise = table.maximise
    true_front = np.unique(table.values[nondominated(table.values, maximise)], axis=0)  # [F, D]
    reference = [float(v) for v in _nadir(true_front, maximise)]
    true_hv = hypervolume(true_front, reference, maximise)
    front_set = {tuple(v) for v in true_front.tolist()}
    points = sorted({int(q) for q in checkpoints if 0 < q < max_queries} | {max_queries})
    step = max(1, max_queries // grid_points)
    grid = sorted(set(range(step, max_queries + 1, step)) | {max_queries})
    report_runs: dict[str, list[dict[str, Any]]] = {}
    curves: dict[str, np.ndarray] = {}
    for method, method_runs in runs.items():
        report_runs[method], rows = [], []
        for run in method_runs:
            if len(run.queried) != run.n_queries:
                raise ValueError(
                    f"run {method!r} seed {run.seed} kept {len(run.queried)} queried keys for {run.n_queries} "
                    "queries: run the comparison with objectives (dgpo compare --objectives ...)"
                )
            values = table.of(run.queried)  # [n, D], query order

            def hv_at(q: int, values: np.ndarray = values) -> float:
                return hypervolume(values[:q], reference, maximise) / true_hv

            def share_at(q: int, values: np.ndarray = values) -> float:
                return len({tuple(v) for v in values[:q].tolist()} & front_set) / len(front_set)

            found = values[nondominated(values, maximise)] if len(values) else values
            report_runs[method].append(
                {
                    "seed": run.seed,
                    "hv_ratio": [hv_at(q) for q in points],
                    "share": [share_at(q) for q in points],
                    "front": np.unique(found, axis=0).tolist(),
                }
            )
            rows.append([hv_at(q) for q in grid])
        curves[method] = np.array(rows, dtype=np.float64)
    return ParetoReport(
        [m.name for m in table.metrics], maximise, reference, true_front, true_hv, points, report_runs, grid, curves
    )


def _nadir(front: np.ndarray, maximise: Sequence[bool]) -> np.ndarray:
    """``float64[D]``: the worst value of each objective over ``front`` (min where maximised, else max)."""
    return np.where(np.asarray(maximise), front.min(axis=0), front.max(axis=0))


def _label(name: str) -> str:
    """``"latency"`` -> ``"latency (ms)"``."""
    return f"{name} ({METRICS[name].unit})"


def plot_pareto(report: ParetoReport, path: str | Path, title: str = "") -> None:
    """Left: the true front and each method's front found by its first seed; right: HV ratio against queries.

    Only two-objective reports get the left panel (the first objective on the y axis). Written
    atomically with a standalone :class:`matplotlib.figure.Figure`.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 4.5))
    front_ax, hv_ax = fig.subplots(1, 2)
    x = np.array(report.grid)
    for method, curves in report.curves.items():
        mean = curves.mean(axis=0)
        low, high = np.percentile(curves, [25, 75], axis=0)
        (line,) = hv_ax.plot(x, mean, label=f"{method} ({len(curves)} seeds)")
        hv_ax.fill_between(x, low, high, alpha=0.2, color=line.get_color())
        if len(report.objectives) == 2:
            front = np.array(report.runs[method][0]["front"]).reshape(-1, 2)
            order = np.argsort(front[:, 1])
            front_ax.step(
                front[order, 1],
                front[order, 0],
                where="post",
                marker="o",
                ms=3,
                color=line.get_color(),
                label=f"{method} (seed {report.runs[method][0]['seed']})",
            )
    if len(report.objectives) == 2:
        true = report.true_front[np.argsort(report.true_front[:, 1])]
        front_ax.step(true[:, 1], true[:, 0], where="post", color="k", lw=1.5, ls="--", label="true front")
        front_ax.set_xlabel(_label(report.objectives[1]))
        front_ax.set_ylabel(_label(report.objectives[0]))
        front_ax.set_title("fronts found (one seed each) and the true front")
        front_ax.legend(fontsize=8)
        front_ax.grid(alpha=0.3)
    hv_ax.set_xlabel("distinct queries")
    hv_ax.set_ylabel("hypervolume / true front's")
    hv_ax.set_title(f"{title} hypervolume ratio: mean, 25-75% of seeds".strip())
    hv_ax.grid(alpha=0.3)
    hv_ax.legend(loc="lower right")
    fig.tight_layout()
    save_figure(fig, path)


__all__ = [
    "MOO_INSTALL",
    "ObjectiveTable",
    "ParetoReport",
    "hypervolume",
    "nondominated",
    "pareto_report",
    "plot_pareto",
    "require_moocore",
]
