"""The method registry and the benchmark specs of the comparison harness (see docs/harness.md).

A *method* is any callable ``fn(benchmark_kwargs, seed, max_queries) -> SearchResult``:

* ``benchmark_kwargs`` is a plain dict for :func:`build_benchmark` (``{"name": "nb201",
  "dataset": "cifar10"}``, optionally ``"table_path"``); the method builds its **own** benchmark
  from it (so it runs in a worker process) and does every look-up through ``benchmark.query``;
* ``seed`` seeds all of the method's randomness (no global RNG);
* the method stops once ``benchmark.n_queries >= max_queries`` and returns a
  :class:`~agents.baselines.base.SearchResult`, usually built with
  :func:`~agents.baselines.base.make_result` from the benchmark's history;
* to run in worker processes it must be picklable: a module-level function, or a
  :func:`functools.partial` of one with picklable arguments (bind method options that way).

"rs", "rea", "ls" and "reinforce" are registered here, "dgpo", "dgpo-elite", "dgpo-surrogate", "dgpo-mo", "dgpo-mo-gp",
"ppo" and
"ppo-mlp" by path (:data:`DIFFUSION_METHODS`, imported on first use), and so are the peer optimisers
"tpe", "smac" and the multi-objective "nsga2" and "motpe" (:data:`PEER_METHODS`), which need the
optional extra ``peers``: without it,
:func:`get_method` raises a one-line :class:`ValueError` naming ``pip install "dgpo-env[peers]"``.
Adding a method is one call, for example in the module that defines it::

    def run_dgpo(benchmark_kwargs, seed, max_queries):
        benchmark = build_benchmark(benchmark_kwargs)
        ...  # train with DGPO, every look-up through benchmark.query, stop at max_queries
        return make_result("dgpo", seed, benchmark, max_queries, None, wall_time, settings)

    register_method("dgpo", run_dgpo)

or, without importing that module until the method is used, ``register_method("dgpo",
"agents.dgpo_compare:run_dgpo")`` (a ``"module:function"`` path, imported on first use).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from agents.baselines import SEARCHERS, Searcher, SearchResult
from agents.baselines.peers import MissingExtraError
from dgpo_env.benchmarks import Benchmark, make_benchmark

MethodFn = Callable[[dict[str, Any], int, int], SearchResult]
"""A method: ``fn(benchmark_kwargs, seed, max_queries) -> SearchResult`` (see the module docstring)."""

BENCHMARK_SHORTHANDS: dict[str, dict[str, Any]] = {
    "toy": {"name": "toy"},
    "nb101": {"name": "nb101"},
    "nb201": {"name": "nb201", "dataset": "cifar10"},
}
"""Benchmark specs besides the Gymnasium ids; ``"nb201:<dataset>"`` also works."""

DIFFUSION_METHODS: dict[str, str] = {
    "dgpo": "agents.dgpo.compare_methods:run_dgpo",
    "dgpo-elite": "agents.dgpo.compare_methods:run_dgpo_elite",
    "dgpo-surrogate": "agents.dgpo.compare_methods:run_dgpo_surrogate",
    "dgpo-constrained": "agents.dgpo.constrained:run_dgpo_constrained",
    "ppo": "agents.dgpo.compare_methods:run_ppo",
    "ppo-mlp": "agents.dgpo.compare_methods:run_ppo_mlp",
    "dgpo-mo": "agents.dgpo.compare_methods:run_dgpo_mo",
    "dgpo-mo-gp": "agents.dgpo.compare_methods:run_dgpo_mo_gp",
}
"""RL methods registered by path (:mod:`agents.dgpo.compare_methods`), imported only when used."""

PEER_METHODS: dict[str, str] = {
    "tpe": "agents.baselines.tpe:run_tpe",
    "smac": "agents.baselines.smac:run_smac",
    "nsga2": "agents.baselines.multi_objective:run_nsga2",
    "motpe": "agents.baselines.multi_objective:run_motpe",
}
"""Peer optimisers of the optional extra ``peers`` (Optuna's TPE, SMAC3), registered by path."""

MULTI_OBJECTIVE_METHODS: frozenset[str] = frozenset({"nsga2", "motpe", "dgpo-mo", "dgpo-mo-gp"})
"""Methods that optimise the run spec's ``"objectives"``: a comparison with them needs objectives."""

BUDGET_METHODS: frozenset[str] = frozenset({"dgpo-constrained"})
"""Methods that optimise accuracy under the run spec's budgets: a comparison with them needs a budget and no
objectives (single-objective; without a budget ``dgpo-constrained`` would be ``dgpo-surrogate`` renamed)."""

_REGISTRY: dict[str, MethodFn | str] = {}
_RESOLVED: dict[str, MethodFn] = {}


def register_method(name: str, fn: MethodFn | str, *, overwrite: bool = False) -> None:
    """Make a method available to :func:`~agents.harness.run_comparison` and ``dgpo compare --algos``.

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

    Args:
        name: A registered name (:func:`available_methods`).

    Returns:
        The method.

    Raises:
        ValueError: For an unknown name (the message lists the known ones), a path that does not
            import, or a method whose optional packages are not installed (the message names the
            install command).
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
        except MissingExtraError as err:
            raise ValueError(str(err)) from None  # one line: the method, the package, the command
        except (ImportError, AttributeError) as err:
            raise ValueError(f"method {name!r} is registered as {entry!r}, which does not import: {err}") from err
    return _RESOLVED[name]


def installed_peer_methods() -> tuple[str, ...]:
    """The methods of :data:`PEER_METHODS` whose optional packages are installed (importing them)."""
    installed = []
    for name in PEER_METHODS:
        try:
            get_method(name)
        except ValueError:
            continue
        installed.append(name)
    return tuple(installed)


def run_baseline(
    searcher: str | type[Searcher], benchmark_kwargs: dict[str, Any], seed: int, max_queries: int, **options: Any
) -> SearchResult:
    """The method behind "rs", "rea", "ls", "reinforce", "tpe" and "smac": a searcher on a fresh benchmark.

    Bind ``searcher`` (and any constructor ``options``) with :func:`functools.partial` to get a
    method, e.g. ``register_method("rea-p20", partial(run_baseline, "rea", population_size=20))``.

    Args:
        searcher: A key of :data:`agents.baselines.SEARCHERS`, or a :class:`Searcher` subclass.
        benchmark_kwargs: See :func:`build_benchmark`.
        seed: The run's seed.
        max_queries: The run's budget of distinct queries.
        **options: Keyword arguments of the searcher's constructor.

    Returns:
        The run's result.
    """
    cls = SEARCHERS[searcher] if isinstance(searcher, str) else searcher
    return cls(**options).run(build_benchmark(benchmark_kwargs), seed, max_queries)


for _name in SEARCHERS:
    register_method(_name, partial(run_baseline, _name))
for _name, _path in {**DIFFUSION_METHODS, **PEER_METHODS}.items():
    register_method(_name, _path)


RUN_SPEC_KEYS: tuple[str, ...] = ("objectives", "reward")
"""Keys of a benchmark spec that describe the task rather than the benchmark (docs/howto-pareto.md):
``"objectives"`` (metric names of :data:`dgpo_env.rewards.METRICS` for multi-objective methods and the
Pareto report) and ``"reward"`` (keyword arguments of :func:`dgpo_env.rewards.reward_from_options` for
the RL methods; budgets among them also constrain every method, see :func:`build_benchmark`)."""

BUDGET_KEYS: tuple[str, ...] = ("max_latency_ms", "max_params_m", "max_train_time_s")
"""Keys of a run spec's ``"reward"`` that are hard budgets."""


def build_benchmark(benchmark_kwargs: Mapping[str, Any]) -> Benchmark:
    """A fresh benchmark from ``{"name": ..., **make_benchmark kwargs}`` (:data:`RUN_SPEC_KEYS` are left out).

    When the spec's ``"reward"`` holds budgets (:data:`BUDGET_KEYS`), the benchmark is a
    :class:`~dgpo_env.benchmarks.ConstrainedBenchmark`: every method, whatever it optimises, sees an
    over-budget cell as accuracy 0, and the reports rank by the best feasible accuracy
    (docs/howto-constrained.md).

    Raises:
        ValueError: If ``"name"`` is missing (or from :func:`~dgpo_env.benchmarks.make_benchmark`).
    """
    kwargs = {k: v for k, v in benchmark_kwargs.items() if k not in RUN_SPEC_KEYS}
    if "name" not in kwargs:
        raise ValueError(f"benchmark kwargs need a 'name' ('nb201', 'toy', 'nb101'), got {kwargs}")
    benchmark = make_benchmark(kwargs.pop("name"), **kwargs)
    options = benchmark_kwargs.get("reward") or {}
    if not any(options.get(key) is not None for key in BUDGET_KEYS):
        return benchmark
    from dgpo_env.benchmarks import ConstrainedBenchmark
    from dgpo_env.rewards import AccuracyUnderBudget

    budget = AccuracyUnderBudget(**{key: options[key] for key in BUDGET_KEYS if options.get(key) is not None})
    return ConstrainedBenchmark(benchmark, budget, ledger=benchmark.ledger)


def check_task_fits(methods: Iterable[str], objectives: Sequence[str] | None, reward: Mapping[str, Any] | None) -> None:
    """Refuse methods that cannot optimise the task a comparison's ``objectives`` and ``reward`` describe.

    Args:
        methods: Method names.
        objectives: The comparison's objectives (``None``: single-objective).
        reward: The RL methods' reward options (budgets among them: :data:`BUDGET_KEYS`).

    Raises:
        ValueError: For a multi-objective method (:data:`MULTI_OBJECTIVE_METHODS`) without objectives, or
            a budget method (:data:`BUDGET_METHODS`) with objectives or without a budget; the message
            names the methods and the flag that fixes it.
    """
    names = set(methods)
    needs = ", ".join(sorted(MULTI_OBJECTIVE_METHODS & names))
    if needs and objectives is None:
        raise ValueError(f"{needs}: multi-objective methods; give objectives (--objectives acc,latency)")
    budgeted = ", ".join(sorted(BUDGET_METHODS & names))
    if budgeted and objectives is not None:
        raise ValueError(
            f"{budgeted}: accuracy under budgets, a single objective; drop --objectives (or compare dgpo-mo, "
            "dgpo-mo-gp for a trade-off)"
        )
    if budgeted and not any((reward or {}).get(key) is not None for key in BUDGET_KEYS):
        raise ValueError(
            f"{budgeted}: ranks cells by the chance they meet a budget; give one (--max-latency-ms 12, "
            "--max-params-m or --max-train-time-s), or compare dgpo-surrogate without budgets"
        )


def known_envs() -> tuple[str, ...]:
    """Every environment id or shorthand :func:`benchmark_kwargs_for` accepts (besides ``nb201:<dataset>``)."""
    from dgpo_env.registration import ENV_SPECS

    return (*sorted(ENV_SPECS), *BENCHMARK_SHORTHANDS)


def objectives_of(benchmark_kwargs: Mapping[str, Any], method: str) -> tuple[str, ...]:
    """The ``"objectives"`` of a run spec, for a multi-objective method.

    Raises:
        ValueError: If the spec has none (naming the method and the flag that sets them).
    """
    objectives = benchmark_kwargs.get("objectives")
    if not objectives:
        raise ValueError(
            f"method {method!r} is multi-objective: give objectives (dgpo compare --objectives acc,latency)"
        )
    return tuple(str(o) for o in objectives)


def benchmark_kwargs_for(
    env: str,
    table_path: str | Path | None = None,
    objectives: Sequence[str] | None = None,
    reward: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Benchmark kwargs for a Gymnasium id (``"dgpo_env/NB201-CIFAR10-v0"``) or a shorthand.

    Gymnasium ids are read from :data:`dgpo_env.registration.ENV_SPECS`, so every registered
    environment works; shorthands are :data:`BENCHMARK_SHORTHANDS` and ``"nb201:<dataset>"``.

    Args:
        env: The environment id or shorthand.
        table_path: Optional extended NB201 table (``nb201.npz`` schema) that adds test accuracies.
        objectives: Metric names for multi-objective methods and the Pareto report (checked against
            :data:`dgpo_env.rewards.METRICS`).
        reward: Keyword arguments of :func:`dgpo_env.rewards.reward_from_options` for the RL methods.

    Returns:
        ``{"name": ..., **make_benchmark kwargs}`` for :func:`build_benchmark`.

    Raises:
        TypeError: If ``objectives`` is a string or not a sequence.
        ValueError: For an unknown spec, a table path for a non-NB201 benchmark, unknown or fewer than
            two objectives (the message lists the known metrics), or a reward the builders refuse.
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
    if objectives is not None:
        from dgpo_env.rewards import check_metric

        if isinstance(objectives, (str, bytes)) or not isinstance(objectives, Sequence):
            raise TypeError(f"objectives must be a list of metric names such as ['acc', 'latency'], got {objectives!r}")
        names = [check_metric(o).name for o in objectives]
        if len(names) < 2 or len(set(names)) != len(names):
            raise ValueError(f"objectives must be at least two distinct metrics, got {list(objectives)}")
        kwargs["objectives"] = names
    if reward:
        from dgpo_env.rewards import reward_from_options

        reward_from_options(**reward)  # checked now, before any run
        kwargs["reward"] = dict(reward)
    return kwargs


__all__ = [
    "BENCHMARK_SHORTHANDS",
    "BUDGET_KEYS",
    "BUDGET_METHODS",
    "DIFFUSION_METHODS",
    "MULTI_OBJECTIVE_METHODS",
    "PEER_METHODS",
    "RUN_SPEC_KEYS",
    "MethodFn",
    "available_methods",
    "benchmark_kwargs_for",
    "build_benchmark",
    "check_task_fits",
    "get_method",
    "installed_peer_methods",
    "known_envs",
    "objectives_of",
    "register_method",
    "run_baseline",
]
