"""``run_comparison``: every method x every seed on one benchmark, stored as it goes (see docs/harness.md).

Outputs are named from the settings (:func:`output_stem`), e.g.
``compare_nb201-cifar10_300q_3seeds_rs+rea+ls.json`` / ``.png``, with the per-run store in the sibling
directory ``compare_nb201-cifar10_300q_3seeds_rs+rea+ls.runs/``. Every finished run is written to the
store at once; the JSON and the plot are written at the end (also after Ctrl-C or a failed run,
then marked incomplete), and the store is removed once a complete JSON is written.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterable, Mapping, Sequence
from contextlib import ExitStack, closing
from pathlib import Path
from typing import Any

from agents.baselines import SearchResult
from agents.harness.executor import Executor, Job, JobResult, LocalExecutor, SerialExecutor, single_torch_thread
from agents.harness.lock import OutputDirBusyError, output_dir_lock
from agents.harness.outputs import (
    ComparisonPaths,
    checked_run,
    comparison_paths,
    comparison_settings,
    job_id,
    legacy_paths,
    output_stem,
    runs_in_json,
    runs_in_store,
)
from agents.harness.registry import (
    MethodFn,
    available_methods,
    benchmark_kwargs_for,
    build_benchmark,
    check_task_fits,
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
from agents.harness.store import DamagedOutputError, RunStore, prepare_outputs
from dgpo_env.benchmarks import ConstrainedBenchmark
from dgpo_env.io import atomic_write_text, dumps_json, ensure_writable_dir
from dgpo_env.validation import check_count

NOTHING_TO_RESUME = "nothing to resume for these settings; starting a new comparison"
"""Printed (stderr) when ``resume`` finds neither a store nor a JSON of the comparison's settings."""


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
    if "objectives" not in benchmark_kwargs:
        result = dataclasses.replace(result, queried=())  # only Pareto reports need the keys
    return dataclasses.replace(result, method=name, seed=seed)


def _parse_seeds(seeds: object) -> list[int]:
    """``S`` -> ``[0, ..., S-1]``; a sequence of distinct integers >= 0 is used as given (as plain ints).

    Raises:
        TypeError: For a bool, float, string, ``None``, or a sequence with such an element.
        ValueError: For a count below 1, a negative seed, an empty sequence or repeated seeds.
    """
    if isinstance(seeds, (str, bytes)):
        raise TypeError(f"seeds must be a count or a sequence of integers, got {seeds!r} ({type(seeds).__name__})")
    if isinstance(seeds, Iterable) and not isinstance(seeds, Mapping):
        out = [check_count(f"seeds[{i}]", s, minimum=0) for i, s in enumerate(seeds)]
        if not out or len(set(out)) != len(out):
            raise ValueError(f"seeds must be distinct integers (at least one), got {out!r}")
        return out
    return list(range(check_count("seeds", seeds, minimum=1)))


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
    objectives: Sequence[str] | None = None,
    reward: Mapping[str, Any] | None = None,
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
        objectives: Two or more metric names (:data:`dgpo_env.rewards.METRICS`): a multi-objective
            comparison. Multi-objective methods optimise them, every run keeps its queried keys, and a
            Pareto report (:mod:`agents.harness.pareto`) is added to the JSON, printed and plotted
            (``<stem>_pareto.png``); needs the extra ``moo``.
        reward: Keyword arguments of :func:`dgpo_env.rewards.reward_from_options` for the RL methods'
            reward (budgets or a trade-off); the other methods ignore it.

    Returns:
        The complete :class:`~agents.harness.report.Comparison`.

    Raises:
        TypeError: If ``max_queries``, ``n_jobs`` or ``seeds`` is not an integer (or a sequence of
            integers): a bool, float, string or ``None``; NumPy integers are accepted (as ``int``).
        ValueError: For unknown methods or environments, bad counts, both ``resume`` and
            ``force``. Raised before any run starts and before anything is written, like its subclasses:
            :class:`OutputDirError` (``out_dir`` not writable; names the path and the reason),
            :class:`~agents.harness.lock.OutputDirBusyError` (another process is running a comparison
            in ``out_dir``: one run per directory, see :mod:`agents.harness.lock`),
            :class:`~agents.harness.store.OutputsExistError` (outputs exist, neither ``resume`` nor
            ``force``), :class:`~agents.harness.store.SettingsMismatchError` (resuming from
            different settings), :class:`~agents.harness.store.DamagedOutputError` (resuming from a
            store or JSON that cannot be read back, or that holds runs of other settings).
        ComparisonInterrupted: On Ctrl-C (a :class:`KeyboardInterrupt`), after stopping the
            workers and writing what finished.
        ComparisonFailed: When a run raises or its worker dies, after stopping the others and
            writing what finished; the message has the run's traceback.
    """
    max_queries = check_count("max_queries", max_queries, minimum=1)
    n_jobs = check_count("n_jobs", n_jobs, minimum=1)
    seed_list = _parse_seeds(seeds)
    if not algos:
        raise ValueError(f"give at least one method; known methods: {', '.join(available_methods())}")
    if resume and force:
        raise ValueError("pass either --resume (continue) or --force (start over), not both")
    if resume and out_dir is None:
        raise ValueError("resuming needs an output directory (out_dir)")
    methods = {name: get_method(name) for name in dict.fromkeys(algos)}
    check_task_fits(methods, objectives, reward)
    benchmark_kwargs = benchmark_kwargs_for(env, table_path, objectives, reward)
    if objectives is not None:
        from agents.harness.pareto import require_moocore

        try:
            require_moocore()  # the Pareto report's library, checked before any run
        except ImportError as err:
            raise ValueError(str(err)) from None
    with ExitStack() as held:
        if out_dir is not None:
            try:
                ensure_writable_dir(out_dir)
            except OSError as err:
                raise OutputDirError(str(err.strerror or err)) from err
            held.enter_context(output_dir_lock(out_dir))  # one run per directory, until this one returns
        reference = build_benchmark(benchmark_kwargs)
        if isinstance(reference, ConstrainedBenchmark):
            _ = reference.oracle  # a budget no cell meets, or a space with no known best cell, fails before any run
        settings = comparison_settings(env, benchmark_kwargs, max_queries, list(methods), seed_list)
        paths = None
        if out_dir is not None:
            naming = (out_dir, reference.name, max_queries, list(methods), seed_list)
            paths = comparison_paths(*naming, benchmark_kwargs.get("objectives"))
            if resume and not any(p.exists() or p.is_symlink() for p in (paths.json, paths.store)):
                paths = legacy_paths(*naming, settings) or paths  # named before objectives were in names
        store = None if paths is None else RunStore(paths.store)
        results: dict[tuple[str, int], SearchResult] = {}
        if paths is not None and store is not None:
            json_path, run_store = paths.json, store
            nothing = resume and not json_path.exists() and not json_path.is_symlink() and not store.exists()

            def read_finished() -> None:  # every check before the store is created (prepare_outputs)
                results.update(runs_in_json(json_path, settings))
                results.update(runs_in_store(run_store, settings))  # a stored run is newer than the JSON's

            prepare_outputs(
                [paths.json, paths.png, paths.pareto_png],
                store,
                settings,
                resume=resume,
                force=force,
                check=read_finished,
            )
            if nothing and echo:
                print(NOTHING_TO_RESUME, file=sys.stderr)

        failure, interrupted = _run_missing(
            methods,
            benchmark_kwargs,
            seed_list,
            max_queries,
            n_jobs,
            executor,
            store,
            results,
            progress,
            reference.name,
        )
        if store is not None and (failure is not None or interrupted):
            for (
                job,
                record,
            ) in store.load().items():  # a run stored just as Ctrl-C came is in the store, not yet in results
                try:
                    result = checked_run(record, store.path(job), settings, job)
                except DamagedOutputError:
                    continue
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
        pareto = None
        if objectives is not None and runs:
            from agents.harness.pareto import ObjectiveTable, pareto_report

            table = ObjectiveTable.build(reference, benchmark_kwargs["objectives"])
            pareto = pareto_report(runs, table, points, max_queries)
            comparison.pareto = pareto.to_dict()
        if paths is not None and store is not None and runs:
            comparison.json_path, comparison.png_path = paths.json, paths.png
            if pareto is not None:
                from agents.harness.pareto import plot_pareto

                plot_pareto(pareto, paths.pareto_png, reference.name)
            atomic_write_text(paths.json, dumps_json(comparison.to_dict()) + "\n")
            plot_comparison(comparison, paths.png, log_x=log_x)
            if comparison.complete:
                store.remove()  # the JSON now holds every run
        if echo:
            if runs:
                print(comparison.table())
                if pareto is not None:
                    print(pareto.table())
            written = [comparison.json_path, comparison.png_path]
            if pareto is not None and paths is not None:
                written.append(paths.pareto_png)
            for path in written:
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
    "OutputDirBusyError",
    "OutputDirError",
    "comparison_paths",
    "comparison_settings",
    "job_id",
    "output_stem",
    "run_comparison",
]
