"""Executors: run independent jobs and stream their results as they finish (see docs/harness.md).

An :class:`Executor` takes :class:`Job` s (an id, a function and its arguments) and yields one
:class:`JobResult` per job, in the order the jobs *finish*. A job that raises, or whose worker
process dies, yields a failed result (``result.ok`` is false) with the traceback or the exit code;
the executor never raises for a job. Closing the stream early (``break`` inside
``with contextlib.closing(executor.run(jobs))``, or an exception such as :class:`KeyboardInterrupt`
in the consumer) cancels the jobs not started and stops the running ones.

* :class:`SerialExecutor` runs the jobs one after the other in this process.
* :class:`LocalExecutor` runs them in ``n_workers`` processes of the ``spawn`` start method, each
  talking to the parent over its own pipe. Workers ignore SIGINT (Ctrl-C in a terminal reaches the
  whole process group; the parent alone decides), are terminated (SIGTERM, then SIGKILL after
  :data:`TERMINATE_TIMEOUT_S`) when the parent stops early, and die with the parent even when it is
  killed with SIGKILL (``PR_SET_PDEATHSIG`` on Linux, plus a thread that watches the parent's pid).

:class:`~agents.harness.ray_executor.RayExecutor` runs them as Ray tasks, on this machine or a cluster
(docs/ray.md); another backend (a batch scheduler) implements :meth:`Executor.run` with the same contract.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import time
import traceback
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Generator, Iterable, Mapping
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

from agents.harness.worker import sigint_ignored, worker_main

TERMINATE_TIMEOUT_S = 2.0
"""Seconds a worker gets to exit after SIGTERM before it is sent SIGKILL."""


@dataclass(frozen=True)
class Job:
    """One unit of work: ``fn(*args, **kwargs)``.

    Attributes:
        job_id: A name unique within one :meth:`Executor.run` call (e.g. ``"rea-seed3"``).
        fn: The function; for :class:`LocalExecutor` it and its arguments must be picklable
            (module-level functions, :func:`functools.partial` of them).
        args: Positional arguments.
        kwargs: Keyword arguments.
    """

    job_id: str
    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class JobResult:
    """The outcome of one :class:`Job`.

    Attributes:
        job_id: The job's id.
        value: What ``fn`` returned (``None`` on failure).
        error: ``None`` on success; otherwise the traceback text of the exception raised in the
            job, or a sentence saying that its worker died (with the exit code).
        wall_time_s: Seconds the job ran (measured where it ran).
        worker_pid: Process id that ran the job.
        exit_code: The dead worker's exit code (negative: killed by that signal), else ``None``.
    """

    job_id: str
    value: Any = None
    error: str | None = None
    wall_time_s: float = 0.0
    worker_pid: int | None = None
    exit_code: int | None = None

    @property
    def ok(self) -> bool:
        """Whether the job returned normally."""
        return self.error is None


class JobFailed(RuntimeError):
    """A job raised or lost its worker; ``str()`` names the job and carries the traceback text.

    Attributes:
        result: The failed :class:`JobResult`.
    """

    def __init__(self, result: JobResult) -> None:
        super().__init__(f"job {result.job_id!r} failed:\n{result.error}")
        self.result = result


class Executor(ABC):
    """Runs jobs and yields their results as they finish (see the module docstring)."""

    @abstractmethod
    def run(self, jobs: Iterable[Job]) -> Generator[JobResult, None, None]:
        """Run ``jobs``; yield one :class:`JobResult` per job as each finishes (any order).

        Use as ``with contextlib.closing(executor.run(jobs)) as results: for r in results: ...``
        so that leaving the loop early, by ``break`` or an exception, stops the remaining jobs.

        Args:
            jobs: The jobs; their ids must be distinct.

        Yields:
            The results, failed ones included (``result.ok``).

        Raises:
            ValueError: For duplicate job ids.
        """


def check_job_ids(jobs: list[Job]) -> None:
    """Raise :class:`ValueError` naming the repeated ids if ``jobs`` do not have distinct ids."""
    ids = [job.job_id for job in jobs]
    if len(set(ids)) != len(ids):
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        raise ValueError(f"job ids must be distinct; repeated: {', '.join(duplicates)}")


def run_job(job: Job) -> JobResult:
    """Run one job in this process; an :class:`Exception` becomes a failed result with its traceback."""
    start = time.perf_counter()
    try:
        value = job.fn(*job.args, **job.kwargs)
    except Exception:
        return JobResult(job.job_id, None, traceback.format_exc(), time.perf_counter() - start, os.getpid())
    return JobResult(job.job_id, value, None, time.perf_counter() - start, os.getpid())


class SerialExecutor(Executor):
    """Runs every job in this process, one after the other (debuggable, no pickling).

    :class:`KeyboardInterrupt` is not caught: it reaches the consumer at once.
    """

    def run(self, jobs: Iterable[Job]) -> Generator[JobResult, None, None]:  # noqa: D102 (see Executor.run)
        todo = list(jobs)
        check_job_ids(todo)
        for job in todo:
            yield run_job(job)


def single_torch_thread() -> None:
    """Worker initializer: one torch thread per process, if torch is installed (workers share the cores)."""
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(1)


# ---------------------------------------------------------------------- parent side
@dataclass
class _Worker:
    process: BaseProcess
    conn: Connection
    job: Job | None = None
    n_jobs: int = 0


def describe_exit(code: int | None) -> str:
    """``-9`` -> ``"exit code -9 (killed by SIGKILL, e.g. out of memory)"``."""
    if code is None:
        return "no exit code"
    if code >= 0:
        return f"exit code {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = f"signal {-code}"
    hint = {"SIGKILL": ", e.g. out of memory", "SIGSEGV": ", a crash in native code"}.get(name, "")
    return f"exit code {code} (killed by {name}{hint})"


class LocalExecutor(Executor):
    """Runs jobs in worker processes on this machine (``multiprocessing``, ``spawn`` start method).

    Start the stream from the main thread (or a thread that outlives it): Linux's parent-death
    signal follows the thread that created the worker.

    Args:
        n_workers: Number of worker processes (at most this many jobs run at once).
        max_jobs_per_worker: Jobs a worker runs before it exits and a fresh one replaces it
            (``1``: every job in its own process, so per-job peak memory can be measured);
            ``None``: workers live until the stream ends.
        initializer: Called once in every worker before its first job (e.g.
            :func:`single_torch_thread`); must be picklable. If it raises, the worker's jobs fail
            with its traceback.
        initargs: Its arguments.

    Raises:
        ValueError: For ``n_workers < 1`` or ``max_jobs_per_worker < 1``.
    """

    def __init__(
        self,
        n_workers: int,
        max_jobs_per_worker: int | None = None,
        initializer: Callable[..., Any] | None = None,
        initargs: tuple[Any, ...] = (),
    ) -> None:
        if n_workers < 1 or (max_jobs_per_worker is not None and max_jobs_per_worker < 1):
            raise ValueError(f"n_workers and max_jobs_per_worker must be >= 1, got {n_workers}, {max_jobs_per_worker}")
        self.n_workers = n_workers
        self.max_jobs_per_worker = max_jobs_per_worker
        self.initializer = initializer
        self.initargs = initargs
        self._context = multiprocessing.get_context("spawn")  # never fork a process that may hold torch threads

    def _start_worker(self, workers: list[_Worker]) -> _Worker:
        """Start a worker with SIGINT ignored (:func:`~agents.harness.worker.sigint_ignored`); add it to ``workers``.

        No KeyboardInterrupt can come between the start and the append, so no worker goes untracked.
        """
        parent_conn, child_conn = self._context.Pipe(duplex=True)
        args = (child_conn, os.getpid(), self.initializer, self.initargs, self.max_jobs_per_worker)
        process = self._context.Process(target=worker_main, args=args, name="dgpo-harness-worker", daemon=True)
        with sigint_ignored():
            try:
                process.start()
            finally:
                child_conn.close()
            worker = _Worker(process, parent_conn)
            workers.append(worker)
        return worker

    @staticmethod
    def _payload(job: Job) -> bytes | JobResult:
        """The pickled job, or a failed result saying why it cannot be pickled."""
        try:
            return pickle.dumps((job.fn, tuple(job.args), dict(job.kwargs)))
        except Exception:
            return JobResult(job.job_id, None, "the job could not be pickled:\n" + traceback.format_exc())

    def run(self, jobs: Iterable[Job]) -> Generator[JobResult, None, None]:  # noqa: D102 (see Executor.run)
        pending = deque(jobs)
        check_job_ids(list(pending))
        workers: list[_Worker] = []
        finished = False
        try:
            while pending or workers:
                self._retire_unneeded(workers, bool(pending))
                idle = [w for w in workers if w.job is None]
                while pending and (idle or len(workers) < self.n_workers):
                    job = pending.popleft()
                    payload = self._payload(job)
                    if isinstance(payload, JobResult):
                        yield payload
                        continue
                    worker = idle.pop() if idle else self._start_worker(workers)
                    try:
                        worker.conn.send((job.job_id, payload))
                    except (OSError, ValueError):
                        pending.appendleft(job)  # the worker's pipe is broken: end it (retired below)
                        worker.process.kill()
                        worker.process.join()
                        continue
                    worker.job = job
                self._retire_unneeded(workers, bool(pending))
                busy = [w for w in workers if w.job is not None]
                if not busy:
                    continue  # nothing to wait for: start or assign again, or finish
                handles: list[Any] = [w.conn for w in busy] + [w.process.sentinel for w in workers]
                ready = set(wait(handles))
                for worker in busy:
                    if worker.conn in ready or worker.process.sentinel in ready:
                        result = self._collect(worker)
                        if result is not None:
                            yield result
            finished = True
        finally:
            self._stop(workers, graceful=finished)

    def _collect(self, worker: _Worker) -> JobResult | None:
        """The busy worker's result, or its job's failure if the worker died; ``None`` if not ready."""
        job = worker.job
        assert job is not None
        pid = worker.process.pid
        if worker.conn.poll():
            try:
                status, job_id, payload, wall = worker.conn.recv()
            except (EOFError, OSError):
                pass  # died while sending: handled as a death below
            except Exception:
                worker.job = None
                worker.n_jobs += 1
                return JobResult(job.job_id, None, "the job's result could not be read:\n" + traceback.format_exc())
            else:
                worker.job = None
                worker.n_jobs += 1
                if status == "ok":
                    return JobResult(job_id, payload, None, wall, pid)
                return JobResult(job_id, None, payload, wall, pid)
        if worker.process.is_alive():
            return None
        worker.process.join(TERMINATE_TIMEOUT_S)
        code = worker.process.exitcode
        worker.job = None
        message = f"job {job.job_id!r} lost its worker process (pid {pid}), which died with {describe_exit(code)}"
        return JobResult(job.job_id, None, message, 0.0, pid, code)

    def _retire_unneeded(self, workers: list[_Worker], more: bool) -> None:
        """Retire the idle workers that cannot or need not take a job: dead, at their job limit, or none left."""
        limit = self.max_jobs_per_worker
        for worker in [w for w in workers if w.job is None]:
            if not (more and worker.process.is_alive() and (limit is None or worker.n_jobs < limit)):
                workers.remove(worker)
                self._retire(worker)

    @staticmethod
    def _retire(worker: _Worker) -> None:
        """Let an idle worker exit (it has reached its job limit or nothing is left)."""
        try:
            worker.conn.send(None)
        except (OSError, ValueError):
            pass
        worker.process.join(TERMINATE_TIMEOUT_S)
        if worker.process.is_alive():
            worker.process.kill()
            worker.process.join()
        worker.conn.close()

    @staticmethod
    def _stop(workers: list[_Worker], graceful: bool) -> None:
        """End every worker: idle ones are asked to exit when ``graceful``; the rest get SIGTERM, then SIGKILL."""
        alive = [w for w in workers if w.process.exitcode is None]
        for worker in alive:  # signal all first, then wait: a second Ctrl-C cannot leave one running
            if graceful and worker.job is None:
                try:
                    worker.conn.send(None)
                    continue
                except (OSError, ValueError):
                    pass
            worker.process.terminate()
        deadline = time.monotonic() + TERMINATE_TIMEOUT_S
        for worker in alive:
            worker.process.join(max(0.0, deadline - time.monotonic()))
        for worker in alive:
            if worker.process.exitcode is None:
                worker.process.kill()
                worker.process.join()
        for worker in workers:
            worker.conn.close()


__all__ = [
    "TERMINATE_TIMEOUT_S",
    "Executor",
    "Job",
    "JobFailed",
    "JobResult",
    "LocalExecutor",
    "SerialExecutor",
    "check_job_ids",
    "describe_exit",
    "run_job",
    "single_torch_thread",
]
