"""Ready-made rewards for hardware budgets and trade-offs: pass one as ``reward_fn`` (docs/howto-constrained.md).

Every builder returns a picklable callable ``CellResult -> float`` for the environment's ``reward_fn``
argument (``gym.make("dgpo_env/NB201-CIFAR10-v0", reward_fn=AccuracyUnderBudget(max_latency_ms=12))``),
for ``dgpo finetune`` and for the RL methods of ``dgpo compare`` (their ``--max-latency-ms``,
``--objectives`` ... flags build the same objects with :func:`reward_from_options`).

The metrics (:data:`METRICS`) are read from the looked-up cell's
:class:`~dgpo_env.benchmarks.base.CellResult`, so they cost no query beyond the look-up itself:

=============  ===================================  =========  ========================
name           field of ``CellResult``              direction  default bounds (worst, best)
=============  ===================================  =========  ========================
``acc``        ``val_acc`` (percent)                maximise   (0, 100)
``latency``    ``latency_s`` x 1000 (milliseconds)  minimise   (30, 0)
``params``     ``params_m`` (millions)              minimise   (2, 0)
``train_time`` ``train_time_s`` (seconds)           minimise   (4000, 0)
=============  ===================================  =========  ========================

The default bounds of the cost metrics cover every NAS-Bench-201 cell (latency 7-26 ms, 0.07-1.5 M
parameters, 540-3,500 s of training); pass ``bounds`` for another benchmark or a tighter scale.
NAS-Bench-201's tables have no FLOPs: a budget or an objective on FLOPs is refused with
:class:`MetricUnavailableError` when the reward is built; a metric a benchmark does not report
(``CellResult`` field ``None``) raises it at the first look-up, naming the metric.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from dgpo_env.benchmarks.base import CellResult
from dgpo_env.validation import check_bool, check_choice, check_count, check_real


@dataclass(frozen=True)
class Metric:
    """One objective a reward can use.

    Attributes:
        name: Its name in rewards and flags (``"latency"``).
        field: The :class:`CellResult` field it is read from.
        factor: Multiplies the field (``1000`` turns seconds into milliseconds).
        maximise: Whether larger is better.
        unit: Unit after ``factor``, for messages and plots.
        bounds: Default ``(worst, best)`` values for normalisation.
    """

    name: str
    field: str
    factor: float
    maximise: bool
    unit: str
    bounds: tuple[float, float]


METRICS: dict[str, Metric] = {
    "acc": Metric("acc", "val_acc", 1.0, True, "%", (0.0, 100.0)),
    "latency": Metric("latency", "latency_s", 1000.0, False, "ms", (30.0, 0.0)),
    "params": Metric("params", "params_m", 1.0, False, "M", (2.0, 0.0)),
    "train_time": Metric("train_time", "train_time_s", 1.0, False, "s", (4000.0, 0.0)),
}
"""The objectives a reward can use, by name (see the module docstring)."""

UNAVAILABLE: dict[str, str] = {
    "flops": "NAS-Bench-201's tables have no FLOPs (CellResult has no FLOPs field); budget latency or params instead",
}
"""Metric names that are recognised but that no benchmark of this library reports, with the reason."""


class MetricUnavailableError(ValueError):
    """A reward needs a metric the benchmark does not report for this cell."""


def check_metric(name: object) -> Metric:
    """The :class:`Metric` called ``name``.

    Raises:
        TypeError: If ``name`` is not a string.
        ValueError: For an unknown name (listing the known ones); :class:`MetricUnavailableError`
            for a name no benchmark reports (``"flops"``).
    """
    if not isinstance(name, str):
        raise TypeError(f"a metric name must be a string, one of {', '.join(METRICS)}; got {name!r}")
    if name in UNAVAILABLE:
        raise MetricUnavailableError(f"metric {name!r} is not available: {UNAVAILABLE[name]}")
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}; known metrics: {', '.join(METRICS)}")
    return METRICS[name]


def metric_value(result: CellResult, metric: Metric) -> float:
    """``metric`` of a looked-up valid cell, in the metric's unit.

    Raises:
        MetricUnavailableError: If the benchmark left the field empty (``None``), naming the metric.
    """
    return stored_value(result, metric) * metric.factor


def stored_value(result: CellResult, metric: Metric) -> float:
    """``metric`` of a looked-up valid cell in the unit the benchmark stores (``CellResult.<field>``).

    Raises:
        MetricUnavailableError: If the benchmark left the field empty (``None``), naming the metric.
    """
    raw = getattr(result, metric.field)
    if raw is None:
        raise MetricUnavailableError(
            f"metric {metric.name!r} needs CellResult.{metric.field}, which this benchmark does not report "
            f"(cell {result.key}); use a benchmark that has it (NAS-Bench-201 reports latency, params, train_time)"
        )
    return float(raw)


def objective_vector(result: CellResult, metrics: Sequence[Metric]) -> list[float]:
    """The ``metrics`` of a looked-up valid cell, accuracy as the mean over training seeds (as reports use).

    Raises:
        MetricUnavailableError: As :func:`metric_value`.
    """
    mean = dataclasses.replace(result, val_acc=result.val_acc_mean)
    return [metric_value(mean, m) for m in metrics]


def _checked_bounds(metrics: Sequence[Metric], bounds: Mapping[str, Sequence[float]] | None) -> np.ndarray:
    """``float64[D, 2]`` (worst, best) per metric: the defaults, overridden by ``bounds``."""
    given = dict(bounds or {})
    for name in given:
        if name not in {m.name for m in metrics}:
            raise ValueError(f"bounds given for {name!r}, which is not an objective ({[m.name for m in metrics]})")
    out = np.empty((len(metrics), 2))
    for i, metric in enumerate(metrics):
        pair = given.get(metric.name, metric.bounds)
        if isinstance(pair, (str, bytes)) or not isinstance(pair, Sequence) or len(pair) != 2:
            raise TypeError(f"bounds[{metric.name!r}] must be a (worst, best) pair of numbers, got {pair!r}")
        worst = check_real(f"bounds[{metric.name!r}][0] (worst)", pair[0])
        best = check_real(f"bounds[{metric.name!r}][1] (best)", pair[1])
        if (best <= worst) if metric.maximise else (best >= worst):
            side = "above" if metric.maximise else "below"
            raise ValueError(f"bounds[{metric.name!r}] = ({worst:g}, {best:g}): best must be {side} worst")
        out[i] = worst, best
    return out


def _checked_weights(weights: Sequence[float] | None, n: int) -> np.ndarray:
    """``float64[n]`` non-negative weights summing to 1 (given ones are divided by their sum; default equal)."""
    if weights is None:
        return np.full(n, 1.0 / n)
    if isinstance(weights, (str, bytes)) or not isinstance(weights, Sequence):
        raise TypeError(f"weights must be a sequence of {n} numbers, got {weights!r}")
    if len(weights) != n:
        raise ValueError(f"weights must have one entry per objective ({n}), got {len(weights)}: {list(weights)}")
    values = np.array([check_real(f"weights[{i}]", w, minimum=0.0) for i, w in enumerate(weights)])
    if values.sum() <= 0:
        raise ValueError(f"weights must not all be zero, got {list(weights)}")
    return values / values.sum()


@dataclass(frozen=True)
class AccuracyUnderBudget:
    """Accuracy if the cell meets every hard budget, else ``infeasible_reward`` (minus its violation if ``graded``).

    A feasible cell gets its validation accuracy as a fraction (``scale="fraction"``, in [0, 1]) or in
    percent. An over-budget cell **never** gets its accuracy: it gets ``infeasible_reward`` (default 0,
    which is at or below every feasible reward), and with ``graded=True`` also minus the sum over the
    violated budgets of ``(value - limit) / limit``, so a learner is pushed towards the budget.
    A budget is met when ``value <= limit`` (equality is feasible).

    Args:
        max_latency_ms: Latency budget in milliseconds (``None``: none).
        max_params_m: Parameter budget in millions.
        max_train_time_s: Training-time budget in seconds.
        max_flops_m: FLOPs budget; no benchmark of this library has FLOPs, so any value raises.
        infeasible_reward: Reward of an over-budget cell; a finite number ``<= 0``.
        graded: Subtract the relative violation (see above).
        scale: ``"fraction"`` or ``"percent"`` for the feasible reward.

    Raises:
        TypeError: For a budget or reward that is not a real number, a non-bool ``graded``.
        ValueError: For a budget ``<= 0``, ``infeasible_reward > 0``, no budget at all, an unknown scale.
        MetricUnavailableError: For ``max_flops_m``.
    """

    max_latency_ms: float | None = None
    max_params_m: float | None = None
    max_train_time_s: float | None = None
    max_flops_m: float | None = None
    infeasible_reward: float = 0.0
    graded: bool = False
    scale: Literal["fraction", "percent"] = "fraction"
    limits: tuple[tuple[Metric, float], ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_flops_m is not None:
            raise MetricUnavailableError(f"max_flops_m: {UNAVAILABLE['flops']}")
        given = {"latency": self.max_latency_ms, "params": self.max_params_m, "train_time": self.max_train_time_s}
        limits = tuple(
            (METRICS[name], check_real(f"max_{name}", value, minimum=0.0, open_minimum=True))
            for name, value in given.items()
            if value is not None
        )
        if not limits:
            raise ValueError("give at least one budget: max_latency_ms, max_params_m or max_train_time_s")
        check_real("infeasible_reward", self.infeasible_reward, maximum=0.0)
        check_bool("graded", self.graded)
        check_choice("scale", self.scale, ("fraction", "percent"))
        object.__setattr__(self, "limits", limits)

    def violation(self, result: CellResult) -> float:
        """Sum of the relative excesses ``(value - limit) / limit`` over the budgets (0 when feasible)."""
        return sum(max(0.0, metric_value(result, m) - limit) / limit for m, limit in self.limits)

    def feasible(self, result: CellResult) -> bool:
        """Whether the cell meets every budget.

        Compared in the unit the benchmark stores (a 0.997 ms budget is 0.000997 s), so a cell exactly at
        the budget is feasible: converting the stored value instead could round it above the budget
        (``0.000997 * 1000 == 0.9970000000000001``).
        """
        return all(stored_value(result, m) <= limit / m.factor for m, limit in self.limits)

    def __call__(self, result: CellResult) -> float:
        """The reward of a valid looked-up cell (see the class docstring)."""
        if not self.feasible(result):
            return self.infeasible_reward - (self.violation(result) if self.graded else 0.0)
        acc = metric_value(result, METRICS["acc"])
        return acc / 100.0 if self.scale == "fraction" else acc


class _Scalarised:
    """Objectives normalised to utilities in [0, 1] (1 = best bound), combined by a subclass."""

    def __init__(
        self,
        objectives: Sequence[str],
        weights: Sequence[float] | None = None,
        bounds: Mapping[str, Sequence[float]] | None = None,
    ) -> None:
        if isinstance(objectives, (str, bytes)) or not isinstance(objectives, Sequence) or len(objectives) < 2:
            raise ValueError(f"objectives must be a sequence of at least two metric names, got {objectives!r}")
        self.metrics = tuple(check_metric(name) for name in objectives)
        if len({m.name for m in self.metrics}) != len(self.metrics):
            raise ValueError(f"objectives must be distinct, got {list(objectives)}")
        self.objectives = tuple(m.name for m in self.metrics)
        self.bounds = _checked_bounds(self.metrics, bounds)  # [D, 2]
        self.weights = _checked_weights(weights, len(self.metrics))  # [D]
        self._seen: np.ndarray | None = None  # [2, D] lowest and highest values seen (observed normalisation)

    def utilities(self, result: CellResult) -> np.ndarray:
        """``float64[D]``: ``(value - worst) / (best - worst)`` per objective (1 at the best bound, not clipped)."""
        values = np.array([metric_value(result, m) for m in self.metrics])
        worst, best = self.bounds[:, 0], self.bounds[:, 1]
        return (values - worst) / (best - worst)

    def observed_utilities(self, result: CellResult) -> np.ndarray:
        """``float64[D]`` in [0, 1]: utilities against the range of the values seen so far, this one included.

        1 is the best value seen, 0 the worst; an objective whose seen values are all equal gives 1.
        """
        values = np.array([metric_value(result, m) for m in self.metrics])
        seen = self._seen
        self._seen = (
            np.stack([values, values])
            if seen is None
            else np.stack([np.minimum(seen[0], values), np.maximum(seen[1], values)])
        )
        low, high = self._seen
        span = np.where(high > low, high - low, 1.0)
        up = np.array([m.maximise for m in self.metrics])
        out = np.where(up, (values - low) / span, (high - values) / span)
        return np.where(high > low, out, 1.0)


class WeightedSum(_Scalarised):
    """``sum_i w_i u_i``: the weighted sum of normalised utilities (in [0, 1] for values within the bounds).

    ``u_i = (value_i - worst_i) / (best_i - worst_i)`` with the :data:`METRICS` default bounds or
    ``bounds``; weights are divided by their sum. A weighted sum only reaches the convex part of a
    Pareto front; :class:`Chebyshev` reaches every point.

    Args:
        objectives: At least two metric names (:data:`METRICS`), e.g. ``("acc", "latency")``.
        weights: One non-negative weight per objective (default equal).
        bounds: ``{name: (worst, best)}`` overriding the default bounds.

    Raises:
        TypeError: For weights or bounds of the wrong type.
        ValueError: For unknown or repeated metrics, a wrong number of weights, negative or all-zero
            weights, bounds whose best is not better than their worst.
    """

    def __call__(self, result: CellResult) -> float:
        """The reward of a valid looked-up cell."""
        return float(self.weights @ self.utilities(result))


class Chebyshev(_Scalarised):
    """Augmented Chebyshev scalarisation: ``1 - max_i w_i r_i - rho * sum_i w_i r_i`` with regrets ``r_i = 1 - u_i``.

    ``r_i`` is the normalised distance from the ideal point (each objective's best bound) towards the
    nadir (the worst bound), so the reward is 1 at the ideal point. Maximising it for a preference
    vector ``w`` finds the Pareto-optimal cell whose regrets are closest to proportional to ``1 / w``,
    on convex and non-convex parts of the front alike; ``rho > 0`` (default 0.05) breaks ties towards
    cells that are not weakly dominated.

    ``preference="random"`` draws a fresh ``w`` from the uniform distribution on the simplex
    (Dirichlet(1, ..., 1)) for **every look-up**, from its own generator seeded with ``seed``
    (ParEGO's random-weight scheme): a policy trained on it is rewarded for cells that are good under
    some trade-off, so it spreads along the front instead of settling on one point.

    Args:
        objectives: At least two metric names (:data:`METRICS`).
        weights: The preference vector (default equal); not with ``preference="random"``.
        bounds: ``{name: (nadir, ideal)}`` overriding the default ``(worst, best)`` bounds.
        rho: Augmentation coefficient, ``>= 0``.
        preference: ``"fixed"`` (use ``weights``) or ``"random"`` (see above).
        seed: Seed of the random preferences (an integer ``>= 0``).
        normalise: ``"bounds"`` (the fixed bounds) or ``"observed"``: ideal and nadir are the best and
            worst values this reward has seen so far (ParEGO's normalisation), so the scale adapts to
            the cells looked up; the reward of a cell then changes as the range grows.

    Raises:
        TypeError, ValueError: As :class:`WeightedSum`; also for ``rho < 0``, an unknown
            ``preference``, or ``weights`` with ``preference="random"``.
    """

    def __init__(
        self,
        objectives: Sequence[str],
        weights: Sequence[float] | None = None,
        bounds: Mapping[str, Sequence[float]] | None = None,
        rho: float = 0.05,
        preference: Literal["fixed", "random"] = "fixed",
        seed: int = 0,
        normalise: Literal["bounds", "observed"] = "bounds",
    ) -> None:
        super().__init__(objectives, weights, bounds)
        self.normalise = check_choice("normalise", normalise, ("bounds", "observed"))
        self.rho = check_real("rho", rho, minimum=0.0)
        self.preference = check_choice("preference", preference, ("fixed", "random"))
        if preference == "random" and weights is not None:
            raise ValueError('weights and preference="random" exclude each other: random draws its own weights')
        self.seed = check_count("seed", seed, minimum=0)
        self._rng = np.random.default_rng(self.seed)

    def __call__(self, result: CellResult) -> float:
        """The reward of a valid looked-up cell (a new preference per call with ``preference="random"``)."""
        utilities = self.observed_utilities(result) if self.normalise == "observed" else self.utilities(result)
        regrets = 1.0 - utilities  # [D]
        w = self._rng.dirichlet(np.ones(len(self.metrics))) if self.preference == "random" else self.weights
        weighted = w * regrets
        return float(1.0 - weighted.max() - self.rho * weighted.sum())


def reward_from_options(
    max_latency_ms: float | None = None,
    max_params_m: float | None = None,
    max_train_time_s: float | None = None,
    infeasible_reward: float = 0.0,
    objectives: Sequence[str] | None = None,
    weights: Sequence[float] | None = None,
    scalarisation: Literal["chebyshev", "weighted-sum"] = "chebyshev",
    seed: int = 0,
) -> AccuracyUnderBudget | WeightedSum | Chebyshev | None:
    """The reward the command-line flags describe (``dgpo finetune``, ``dgpo compare``); ``None`` = accuracy.

    Budgets give :class:`AccuracyUnderBudget`; two or more ``objectives`` give a
    :class:`Chebyshev` (``weights`` given: fixed preference; none: a random preference per look-up,
    seeded with ``seed``) or a :class:`WeightedSum` (equal weights by default). Budgets and objectives
    together are refused (a budget is a constraint, a trade-off is an objective; choose one).

    Raises:
        ValueError: For budgets with objectives, weights without objectives, ``infeasible_reward``
            without a budget, a single objective, or any error of the builders.
    """
    budgets = {"max_latency_ms": max_latency_ms, "max_params_m": max_params_m, "max_train_time_s": max_train_time_s}
    has_budget = any(v is not None for v in budgets.values())
    if infeasible_reward != 0.0 and not has_budget:
        raise ValueError(
            "infeasible_reward is the reward of an over-budget cell: give a budget too "
            "(--max-latency-ms, --max-params-m or --max-train-time-s)"
        )
    if objectives is None:
        if weights is not None:
            raise ValueError("weights need objectives (e.g. --objectives acc,latency --weights 0.7,0.3)")
        if not has_budget:
            return None
        return AccuracyUnderBudget(
            max_latency_ms=max_latency_ms,
            max_params_m=max_params_m,
            max_train_time_s=max_train_time_s,
            infeasible_reward=infeasible_reward,
        )
    if has_budget:
        raise ValueError("give either budgets (--max-latency-ms, --max-params-m, ...) or --objectives, not both")
    check_choice("scalarisation", scalarisation, ("chebyshev", "weighted-sum"))
    if scalarisation == "weighted-sum":
        return WeightedSum(objectives, weights, None)
    return Chebyshev(objectives, weights, preference="fixed" if weights is not None else "random", seed=seed)


__all__ = [
    "METRICS",
    "UNAVAILABLE",
    "AccuracyUnderBudget",
    "Chebyshev",
    "Metric",
    "MetricUnavailableError",
    "WeightedSum",
    "check_metric",
    "metric_value",
    "objective_vector",
    "reward_from_options",
]
