"""Where a comparison's outputs go, what identifies it, and reading back its finished runs (docs/harness.md).

:func:`output_stem` names the files from the settings; :func:`comparison_settings` is what a resumed
comparison must match; :func:`runs_in_json` and :func:`runs_in_store` read the runs an earlier,
interrupted or finished comparison left, refusing any that is not one of this comparison's runs.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.baselines import SearchResult
from agents.harness.report import result_from_dict
from agents.harness.store import DamagedOutputError, RunStore, check_settings, read_json_object

MAX_METHODS_IN_NAME = 60
"""Longest ``+``-joined method list spelled out in a file name; longer lists get a hash tag."""

_SAFE_NAME = re.compile(r"^[A-Za-z0-9._-]+$")


@dataclass(frozen=True)
class ComparisonPaths:
    """Where a comparison's outputs go.

    Attributes:
        json: The comparison JSON.
        png: The plot.
        store: The per-run store directory.
    """

    json: Path
    png: Path
    store: Path

    @property
    def pareto_png(self) -> Path:
        """The Pareto plot of a multi-objective comparison: ``<stem>_pareto.png``."""
        return self.png.parent / f"{self.png.name.removesuffix('.png')}_pareto.png"


def _tag(values: Sequence[Any]) -> str:
    return hashlib.sha256(json.dumps(list(values)).encode()).hexdigest()[:8]


def output_stem(
    benchmark: str,
    max_queries: int,
    methods: Sequence[str],
    seeds: Sequence[int],
    objectives: Sequence[str] | None = None,
) -> str:
    """File name, without suffix, of a comparison's outputs: ``compare_<benchmark>_<Q>q_<S>seeds_<m1+m2>``.

    A multi-objective comparison adds its objectives to the benchmark part
    (``compare_nb201-cifar10-acc-vs-latency_200q_...``), as a budgeted benchmark's name carries its budgets
    (``nb201-cifar10-lat12ms``), so comparisons of other objectives never share files. Seeds other than
    ``0..S-1`` add an 8-hex sha256 tag of the list (``3seeds-1a2b3c4d``); a method list longer than
    :data:`MAX_METHODS_IN_NAME` characters, or with characters unsafe in file names, becomes
    ``<M>methods-<tag>``. Methods keep the order given (it is the order of the JSON).

    Args:
        benchmark: The benchmark's name (``"nb201-cifar10"``).
        max_queries: Budget per run.
        methods: Method names, in order.
        seeds: The seeds.
        objectives: The metric names of a multi-objective comparison, in order (``None``: single-objective).

    Returns:
        E.g. ``"compare_nb201-cifar10_300q_3seeds_rs+rea+ls"``.
    """
    seeds, methods = [int(s) for s in seeds], list(methods)
    count = f"{len(seeds)}seed{'' if len(seeds) == 1 else 's'}"
    seed_part = count if seeds == list(range(len(seeds))) else f"{count}-{_tag(seeds)}"
    joined = "+".join(methods)
    safe = len(joined) <= MAX_METHODS_IN_NAME and all(_SAFE_NAME.match(m) for m in methods)
    method_part = joined if safe else f"{len(methods)}methods-{_tag(methods)}"
    if objectives:
        benchmark = f"{benchmark}-{'-vs-'.join(objectives)}"
    return f"compare_{benchmark}_{max_queries}q_{seed_part}_{method_part}"


def comparison_paths(
    out_dir: str | Path,
    benchmark: str,
    max_queries: int,
    methods: Sequence[str],
    seeds: Sequence[int],
    objectives: Sequence[str] | None = None,
) -> ComparisonPaths:
    """The JSON, plot and store paths of a comparison under ``out_dir`` (see :func:`output_stem`).

    The suffixes are appended to the stem (never ``Path.with_suffix``, which would cut a method name
    such as ``rs.v2`` at its dot and give two comparisons the same files).
    """
    stem = output_stem(benchmark, max_queries, methods, seeds, objectives)
    out = Path(out_dir)
    return ComparisonPaths(out / f"{stem}.json", out / f"{stem}.png", out / f"{stem}.runs")


def legacy_paths(
    out_dir: str | Path,
    benchmark: str,
    max_queries: int,
    methods: Sequence[str],
    seeds: Sequence[int],
    settings: Mapping[str, Any],
) -> ComparisonPaths | None:
    """The outputs of the same multi-objective comparison under the name it had before objectives were in names.

    Older versions named a multi-objective comparison like a single-objective one (no objectives in the
    stem). Their outputs are resumed only if they were made with the same objectives (read from the JSON
    or the store's manifest); outputs of other objectives are left alone, so they never mix.

    Args:
        out_dir: The output directory.
        benchmark: The benchmark's name.
        max_queries: Budget per run.
        methods: Method names, in order.
        seeds: The seeds.
        settings: This comparison's :func:`comparison_settings` (with ``benchmark_kwargs["objectives"]``).

    Returns:
        The old-named paths if they hold outputs of these objectives, else ``None``.
    """
    objectives = settings["benchmark_kwargs"].get("objectives")
    if not objectives:
        return None
    paths = comparison_paths(out_dir, benchmark, max_queries, methods, seeds)
    try:
        recorded = read_json_object(paths.json, "a comparison JSON") or RunStore(paths.store).settings() or {}
    except DamagedOutputError:
        return None  # not resumable under the old name; the new name starts afresh
    kwargs = recorded.get("benchmark_kwargs")
    same = isinstance(kwargs, Mapping) and kwargs.get("objectives") == list(objectives)
    return paths if same else None


def comparison_settings(
    env: str, benchmark_kwargs: Mapping[str, Any], max_queries: int, methods: Sequence[str], seeds: Sequence[int]
) -> dict[str, Any]:
    """The settings that identify a comparison (compared when resuming)."""
    return {
        "env": env,
        "benchmark_kwargs": dict(benchmark_kwargs),
        "max_queries": max_queries,
        "methods": list(methods),
        "seeds": [int(s) for s in seeds],
        "table_path": benchmark_kwargs.get("table_path"),
    }


def job_id(method: str, seed: int) -> str:
    """The job id of one run: ``"<method>-seed<seed>"``."""
    return f"{method}-seed{seed}"


def checked_run(record: object, source: Path, settings: Mapping[str, Any], job: str | None = None) -> SearchResult:
    """A run read back from ``source``, refused unless it is one of this comparison's runs.

    Raises:
        DamagedOutputError: If it cannot be read as a :class:`SearchResult`, or its method, seed or
            ``max_queries`` disagree with ``settings`` (or with its job id), or it used more queries
            than its budget.
    """
    try:
        if not isinstance(record, Mapping):
            raise TypeError(f"a run is {type(record).__name__}, not a JSON object")
        result = result_from_dict(record)
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        what = f"missing field {err}" if isinstance(err, KeyError) else f"{type(err).__name__}: {err}"
        raise DamagedOutputError(source, f"a run record cannot be read ({what})") from err
    method, seed, budget, used = result.method, result.seed, result.max_queries, result.n_queries
    run = f"the run of {method!r} seed {seed!r}"
    if not isinstance(method, str) or method not in settings["methods"]:
        raise DamagedOutputError(source, f"{run} is of a method not in this comparison ({settings['methods']})")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed not in settings["seeds"]:
        raise DamagedOutputError(source, f"{run} has a seed not in this comparison ({settings['seeds']})")
    if job is not None and job != job_id(method, seed):
        raise DamagedOutputError(source, f"{run} is stored as job {job!r}")
    if isinstance(budget, bool) or not isinstance(budget, int) or budget != settings["max_queries"]:
        raise DamagedOutputError(source, f"{run} has max_queries {budget!r}, not {settings['max_queries']}")
    if isinstance(used, bool) or not isinstance(used, int) or not 0 <= used <= budget or len(result.curve) != used:
        raise DamagedOutputError(
            source, f"{run} has n_queries {used!r} and a curve of {len(result.curve)} points for max_queries {budget}"
        )
    return result


def runs_in_json(path: Path, settings: Mapping[str, Any]) -> dict[tuple[str, int], SearchResult]:
    """The runs in an existing comparison JSON (none if there is none), checked against ``settings``.

    Raises:
        DamagedOutputError: If the file is not a comparison JSON or holds runs of other settings.
        SettingsMismatchError: If it was made with different settings.
    """
    data = read_json_object(path, "a comparison JSON")
    if data is None:
        return {}
    runs = data.get("runs")
    if not isinstance(runs, dict) or not all(isinstance(rs, list) for rs in runs.values()):
        raise DamagedOutputError(path, "not a comparison JSON ('runs' is not an object of lists)")
    try:
        kwargs = data["benchmark_kwargs"]
        if not isinstance(kwargs, Mapping):
            raise TypeError(f"'benchmark_kwargs' is {type(kwargs).__name__}")
        methods = data.get("methods", list(runs))
        recorded = comparison_settings(data["env"], kwargs, data["max_queries"], methods, data["seeds"])
    except (KeyError, TypeError, ValueError) as err:
        what = f"missing field {err}" if isinstance(err, KeyError) else f"{type(err).__name__}: {err}"
        raise DamagedOutputError(path, f"not a comparison JSON ({what})") from err
    check_settings(recorded, settings, path)
    found: dict[tuple[str, int], SearchResult] = {}
    for method, method_runs in runs.items():
        for run in method_runs:
            result = checked_run(run, path, settings)
            if result.method != method:
                raise DamagedOutputError(path, f"a run of {result.method!r} is listed under {method!r}")
            found[result.method, result.seed] = result
    return found


def runs_in_store(store: RunStore, settings: Mapping[str, Any]) -> dict[tuple[str, int], SearchResult]:
    """The runs in ``store``, each checked against ``settings`` (see :func:`checked_run`)."""
    found: dict[tuple[str, int], SearchResult] = {}
    for job, record in store.load(strict=True).items():
        result = checked_run(record, store.path(job), settings, job)
        found[result.method, result.seed] = result
    return found
