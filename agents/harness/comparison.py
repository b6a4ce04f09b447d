"""``run_comparison``: every method x every seed on one benchmark, stored as it goes (see docs/harness.md).

Outputs are named from the settings (:func:`output_stem`), e.g.
``compare_nb201-cifar10_300q_3seeds_rs+rea+ls.json`` / ``.png``, with the per-run store in the sibling
directory ``compare_nb201-cifar10_300q_3seeds_rs+rea+ls.runs/``. Every finished run is written to the
store at once; the JSON and the plot are written at the end (also after Ctrl-C or a failed run,
then marked incomplete), and the store is removed once a complete JSON is written.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import sys
from collections.abc import Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.baselines import SearchResult
from agents.harness.executor import Executor, Job, JobResult, LocalExecutor, SerialExecutor, single_torch_thread
from agents.harness.registry import (
    MethodFn,
    available_methods,
    benchmark_kwargs_for,
    build_benchmark,
    get_method,
)
from agents.harness.report import (
    DEFAULT_CHECKPOINTS,
    Comparison,
    plot_comparison,
    result_from_dict,
    result_to_dict,
    summarise,
)
from agents.harness.store import RunStore, check_settings, prepare_outputs
from dgpo_env.io import atomic_write_text, dumps_json, ensure_writable_dir

MAX_METHODS_IN_NAME = 60
"""Longest ``+``-joined method list spelled out in a file name; longer lists get a hash tag."""

_SAFE_NAME = re.compile(r"^[A-Za-z0-9._-]+$")


class OutputDirError(ValueError):
    """The output directory cannot be created or written."""


class ComparisonInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a comparison; what finished is stored (and, if anything, written as incomplete JSON).

    Attributes:
        comparison: The partial :class:`Comparison` (its ``missing`` lists the runs not finished).
        store: The store directory holding the finished runs (``None`` without ``out_dir``).
    """

    def __init__(self, comparison: Comparison, store: Path | None) -> None:
        done = sum(len(rs) for rs in comparison.runs.values())
        where = "" if store is None else f" (stored in {store})"
        super().__init__(f"interrupted: {done} of {done + len(comparison.missing)} runs finished{where}")
        self.comparison = comparison
        self.store = store


class ComparisonFailed(RuntimeError):
    """A run raised (or lost its worker); the comparison stopped and kept the runs that finished.

    Attributes:
        job: The failed job's :class:`~agents.harness.executor.JobResult` (``error`` has the traceback).
        comparison: The partial :class:`Comparison`.
        store: The store directory holding the finished runs (``None`` without ``out_dir``).
    """

    def __init__(self, message: str, job: JobResult, comparison: Comparison, store: Path | None) -> None:
        super().__init__(message)
        self.job = job
        self.comparison = comparison
        self.store = store


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


def _tag(values: Sequence[Any]) -> str:
    return hashlib.sha256(json.dumps(list(values)).encode()).hexdigest()[:8]


def output_stem(benchmark: str, max_queries: int, methods: Sequence[str], seeds: Sequence[int]) -> str:
    """File name, without suffix, of a comparison's outputs: ``compare_<benchmark>_<Q>q_<S>seeds_<m1+m2>``.

    Seeds other than ``0..S-1`` add an 8-hex sha256 tag of the list (``3seeds-1a2b3c4d``); a method
    list longer than :data:`MAX_METHODS_IN_NAME` characters, or with characters unsafe in file names,
    becomes ``<M>methods-<tag>``. Methods keep the order given (it is the order of the JSON).

    Args:
        benchmark: The benchmark's name (``"nb201-cifar10"``).
        max_queries: Budget per run.
        methods: Method names, in order.
        seeds: The seeds.

    Returns:
        E.g. ``"compare_nb201-cifar10_300q_3seeds_rs+rea+ls"``.
    """
    seeds, methods = [int(s) for s in seeds], list(methods)
    count = f"{len(seeds)}seed{'' if len(seeds) == 1 else 's'}"
    seed_part = count if seeds == list(range(len(seeds))) else f"{count}-{_tag(seeds)}"
    joined = "+".join(methods)
    safe = len(joined) <= MAX_METHODS_IN_NAME and all(_SAFE_NAME.match(m) for m in methods)
    method_part = joined if safe else f"{len(methods)}methods-{_tag(methods)}"
    return f"compare_{benchmark}_{max_queries}q_{seed_part}_{method_part}"


def comparison_paths(
    out_dir: str | Path, benchmark: str, max_queries: int, methods: Sequence[str], seeds: Sequence[int]
) -> ComparisonPaths:
    """The JSON, plot and store paths of a comparison under ``out_dir`` (see :func:`output_stem`)."""
    stem = Path(out_dir) / output_stem(benchmark, max_queries, methods, seeds)
    return ComparisonPaths(stem.with_suffix(".json"), stem.with_suffix(".png"), stem.with_suffix(".runs"))


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


def _run_one(name: str, fn: MethodFn, benchmark_kwargs: dict[str, Any], seed: int, max_queries: int) -> SearchResult:
    """Run one method on one seed and check its result against the contract (the harness's job)."""
    result = fn(dict(benchmark_kwargs), seed, max_queries)
    if not isinstance(result, SearchResult):
        raise TypeError(f"method {name!r} returned {type(result).__name__}, not a SearchResult")
    if result.n_queries > max_queries or len(result.curve) != result.n_queries:
        raise RuntimeError(
            f"method {name!r} (seed {seed}) used {result.n_queries} queries with a curve of "
            f"{len(result.curve)} points for a budget of {max_queries}: it must stop at the budget"
        )
    return dataclasses.replace(result, method=name, seed=seed)


def _parse_seeds(seeds: int | Sequence[int]) -> list[int]:
    """``S`` -> ``[0, ..., S-1]``; a sequence is used as given (must be distinct)."""
    out = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    if not out or len(set(out)) != len(out):
        raise ValueError(f"seeds must be a positive count or distinct integers, got {seeds!r}")
    return out


def _finished_runs(
    paths: ComparisonPaths, store: RunStore, settings: Mapping[str, Any]
) -> dict[tuple[str, int], SearchResult]:
    """Runs finished earlier: in the store, and in an existing JSON with the same settings."""
    wanted = {(m, s) for m in settings["methods"] for s in settings["seeds"]}
    found: dict[tuple[str, int], SearchResult] = {}
    if paths.json.is_file():
        try:
            data = json.loads(paths.json.read_text())
            methods = data.get("methods", list(data["runs"]))
            recorded = comparison_settings(
                data["env"], data["benchmark_kwargs"], data["max_queries"], methods, data["seeds"]
            )
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise ValueError(f"cannot resume from {paths.json}: not a comparison JSON ({err!r}); pass --force") from err
        check_settings(recorded, settings, paths.json)
        for runs in data["runs"].values():
            for run in runs:
                result = result_from_dict(run)
                found[result.method, result.seed] = result
    for record in store.load().values():
        result = result_from_dict(record)
        found[result.method, result.seed] = result
    return {key: result for key, result in found.items() if key in wanted}


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
    resume: bool = False,
    force: bool = False,
    executor: Executor | None = None,
) -> Comparison:
    """Run every method for every seed on one benchmark; store each run; write JSON and a plot; print a table.

    Args:
        env: A Gymnasium id (``"dgpo_env/NB201-CIFAR10-v0"``) or shorthand (``"nb201:cifar100"``,
            ``"toy"``), see :func:`~agents.harness.registry.benchmark_kwargs_for`.
        algos: Registered method names (:func:`~agents.harness.registry.available_methods`).
        seeds: A count ``S`` (seeds ``0..S-1``) or explicit seeds.
        max_queries: Budget of distinct queries per run.
        n_jobs: Worker processes (``1`` runs in this process); ignored when ``executor`` is given.
        out_dir: Directory for the outputs named by :func:`output_stem`; ``None`` writes nothing
            (and keeps no store).
        table_path: Extended NB201 table adding test accuracies (``nb201.npz`` schema).
        checkpoints: Query counts reported besides ``max_queries`` (those ``< max_queries`` are kept).
        log_x: Logarithmic query axis in the plot.
        progress: Show a tqdm progress bar.
        echo: Print the table and the files written.
        resume: Continue from the outputs of an earlier run with the same settings: finished runs
            (from the store, or the JSON) are not run again.
        force: Delete the outputs of an earlier run first.
        executor: Where the runs execute; default :class:`~agents.harness.executor.SerialExecutor`
            for ``n_jobs == 1``, else a :class:`~agents.harness.executor.LocalExecutor` of
            ``n_jobs`` workers with one torch thread each.

    Returns:
        The complete :class:`~agents.harness.report.Comparison`.

    Raises:
        ValueError: For unknown methods or environments, bad counts, both ``resume`` and
            ``force``. Raised before any run starts, like its subclasses:
            :class:`OutputDirError` (``out_dir`` not writable; names the path and the reason),
            :class:`~agents.harness.store.OutputsExistError` (outputs exist, neither ``resume`` nor
            ``force``), :class:`~agents.harness.store.SettingsMismatchError` (resuming from
            different settings).
        ComparisonInterrupted: On Ctrl-C (a :class:`KeyboardInterrupt`), after stopping the
            workers and writing what finished.
        ComparisonFailed: When a run raises or its worker dies, after stopping the others and
            writing what finished; the message has the run's traceback.
    """
    if max_queries < 1 or n_jobs < 1:
        raise ValueError(f"max_queries and n_jobs must be >= 1, got {max_queries} and {n_jobs}")
    if not algos:
        raise ValueError(f"give at least one method; known methods: {', '.join(available_methods())}")
    if resume and force:
        raise ValueError("pass either --resume (continue) or --force (start over), not both")
    if resume and out_dir is None:
        raise ValueError("resuming needs an output directory (out_dir)")
    methods = {name: get_method(name) for name in dict.fromkeys(algos)}
    seed_list = _parse_seeds(seeds)
    benchmark_kwargs = benchmark_kwargs_for(env, table_path)
    if out_dir is not None:
        try:
            ensure_writable_dir(out_dir)
        except OSError as err:
            raise OutputDirError(str(err.strerror or err)) from err
    reference = build_benchmark(benchmark_kwargs)
    settings = comparison_settings(env, benchmark_kwargs, max_queries, list(methods), seed_list)
    paths = (
        None if out_dir is None else comparison_paths(out_dir, reference.name, max_queries, list(methods), seed_list)
    )
    store = None if paths is None else RunStore(paths.store)
    results: dict[tuple[str, int], SearchResult] = {}
    if paths is not None and store is not None:
        prepare_outputs([paths.json, paths.png], store, settings, resume=resume, force=force)
        if resume:
            results.update(_finished_runs(paths, store, settings))

    failure, interrupted = _run_missing(
        methods, benchmark_kwargs, seed_list, max_queries, n_jobs, executor, store, results, progress, reference.name
    )
    if store is not None and (failure is not None or interrupted):
        for record in store.load().values():  # a run stored just as Ctrl-C came is in the store, not yet in results
            result = result_from_dict(record)
            if result.method in methods and result.seed in seed_list:
                results.setdefault((result.method, result.seed), result)

    runs = {m: [results[m, s] for s in seed_list if (m, s) in results] for m in methods}
    runs = {m: rs for m, rs in runs.items() if rs}
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
        methods=list(methods),
        missing=[(m, s) for m in methods for s in seed_list if (m, s) not in results],
    )
    if paths is not None and store is not None and runs:
        comparison.json_path, comparison.png_path = paths.json, paths.png
        atomic_write_text(paths.json, dumps_json(comparison.to_dict()) + "\n")
        plot_comparison(comparison, paths.png, log_x=log_x)
        if comparison.complete:
            store.remove()  # the JSON now holds every run
    if echo:
        if runs:
            print(comparison.table())
        for path in (comparison.json_path, comparison.png_path):
            if path is not None:
                print(f"wrote {path}")
        sys.stdout.flush()
    store_dir = None if store is None or not store.exists() else store.directory
    if failure is not None:
        method, seed = failure[1]
        message = f"run {method!r} seed {seed} failed:\n{failure[0].error}"
        raise ComparisonFailed(message, failure[0], comparison, store_dir)
    if interrupted:
        raise ComparisonInterrupted(comparison, store_dir)
    return comparison


def _run_missing(
    methods: Mapping[str, MethodFn],
    benchmark_kwargs: dict[str, Any],
    seeds: Sequence[int],
    max_queries: int,
    n_jobs: int,
    executor: Executor | None,
    store: RunStore | None,
    results: dict[tuple[str, int], SearchResult],
    progress: bool,
    label: str,
) -> tuple[tuple[JobResult, tuple[str, int]] | None, bool]:
    """Run the ``(method, seed)`` pairs not in ``results``, adding (and storing) each as it finishes.

    Returns:
        ``(failure, interrupted)``: the first failed job with its run, or ``None``; and whether
        Ctrl-C stopped the runs.
    """
    from tqdm.auto import tqdm

    keys = {job_id(m, s): (m, s) for m in methods for s in seeds if (m, s) not in results}
    if not keys:
        return None, False
    jobs = [Job(i, _run_one, (m, methods[m], benchmark_kwargs, s, max_queries)) for i, (m, s) in keys.items()]
    if executor is None:
        executor = SerialExecutor() if n_jobs == 1 else LocalExecutor(min(n_jobs, len(jobs)), None, single_torch_thread)
    total = len(methods) * len(seeds)
    failure = None
    with tqdm(total=total, initial=total - len(jobs), desc=f"compare {label}", unit="run", disable=not progress) as bar:
        try:
            with closing(executor.run(jobs)) as stream:
                for outcome in stream:
                    if not outcome.ok:
                        failure = (outcome, keys[outcome.job_id])
                        break
                    result: SearchResult = outcome.value
                    if store is not None:
                        record = result_to_dict(result)
                        store.put(outcome.job_id, record)
                        result = result_from_dict(record)  # exactly what a resumed run reads back
                    results[keys[outcome.job_id]] = result
                    bar.update()
        except KeyboardInterrupt:
            return failure, True
    return failure, False


__all__ = [
    "ComparisonFailed",
    "ComparisonInterrupted",
    "ComparisonPaths",
    "OutputDirError",
    "comparison_paths",
    "comparison_settings",
    "job_id",
    "output_stem",
    "run_comparison",
]
