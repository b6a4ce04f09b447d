"""The Ray executor: every job a Ray task, on this machine or across a Ray cluster (see docs/ray.md).

:class:`RayExecutor` keeps the contract of :class:`~agents.harness.executor.Executor`: it yields one
:class:`~agents.harness.executor.JobResult` per job as each finishes; a job that raises, or whose Ray
worker dies (killed, out of memory, its node lost), yields a failed result; closing the stream
early cancels the queued tasks and force-cancels the running ones (Ray kills their worker
processes). Tasks are never retried (``max_retries=0``): a job that lost its worker is reported, as
with :class:`~agents.harness.executor.LocalExecutor`.

Ray is an optional dependency (``pip install "dgpo-env[ray]"``); this module imports without it.
Every Ray worker must be able to import the project: on one machine the workers run in the same
Python environment as the driver; on a cluster, install the same version of ``dgpo-env`` in the same
Python environment on every node (docs/ray.md, "What a cluster needs").
"""

from __future__ import annotations

import math
import re
import traceback
from collections.abc import Generator, Iterable, Mapping
from typing import Any

from agents.harness.executor import Executor, Job, JobResult, check_job_ids, run_job
from dgpo_env.ledger.ray import check_feasible, require_ray
from dgpo_env.validation import check_count, check_real

WAIT_TIMEOUT_S = 0.5
"""Longest single wait for a finished task, so that Ctrl-C is handled promptly."""

_HOST_PORT = re.compile(r"^[A-Za-z0-9.\-]+:[0-9]{1,5}$|^\[[0-9A-Fa-f:]+\]:[0-9]{1,5}$")


def check_address(address: object) -> str | None:
    """``address`` if Ray can connect to it: ``None``, ``"auto"``, ``"local"``, ``"HOST:PORT"`` or ``"ray://HOST:PORT"``.

    Raises:
        TypeError: If it is not a string or ``None``.
        ValueError: For any other string (the message lists the forms).
    """
    if address is None:
        return None
    if not isinstance(address, str):
        raise TypeError(f"address must be a string or None, got {address!r} ({type(address).__name__})")
    bare = address.removeprefix("ray://")
    if address in ("auto", "local") or _HOST_PORT.match(bare):
        return address
    raise ValueError(
        f"address must be 'auto' (a running cluster), 'local' (a new local instance), 'HOST:PORT' (the head "
        f"node's GCS, e.g. 10.0.0.5:6379) or 'ray://HOST:PORT' (Ray Client), got {address!r}"
    )


def check_resource(name: str, value: object) -> int | float:
    """A per-run resource amount as Ray accepts it: a finite number >= 0, at most 4 decimals.

    Whole numbers come back as ``int``. Amounts above 1 of ``gpus_per_run`` must be whole (Ray
    shares a GPU between tasks only in fractions below 1).

    Raises:
        TypeError: For a bool, a string or ``None`` (``"2"`` is not a count: nothing is coerced).
        ValueError: For NaN, infinite or negative amounts, finer than 0.0001, or a fractional GPU
            amount above 1.
    """
    amount = check_real(name, value, minimum=0.0)
    if abs(amount * 10_000 - round(amount * 10_000)) > 1e-6:
        raise ValueError(f"{name} must be a multiple of 0.0001 (Ray's resource precision), got {value!r}")
    if name.startswith("gpus") and amount > 1 and not amount.is_integer():
        raise ValueError(f"{name} above 1 must be a whole number of GPUs, got {value!r}")
    return int(amount) if amount.is_integer() else amount


def _run_on_worker(job: Job, torch_threads: int) -> JobResult:
    """The body of every Ray task: set torch's thread count, then run the job (an exception -> failed result)."""
    try:
        import torch
    except ImportError:
        pass
    else:
        torch.set_num_threads(torch_threads)
    return run_job(job)


class RayExecutor(Executor):
    """Runs every job as a Ray task with ``cpus_per_run`` CPUs and ``gpus_per_run`` GPUs.

    All jobs are submitted at once; Ray's scheduler starts each when a node has its resources free,
    so at most ``cluster CPUs / cpus_per_run`` jobs run at a time. The Ray connection is made on
    first use (:meth:`connect`); if this process is already connected (``ray.init`` was called),
    that connection is used and ``address`` and ``runtime_env`` are not applied.

    Args:
        address: Where the cluster is: ``None`` (the cluster in ``RAY_ADDRESS`` or the latest one
            started with ``ray start`` on this machine, else a new local instance), ``"auto"`` (the
            same, but any Ray instance running on this machine before an error if there is none),
            ``"local"`` (always a new local instance), ``"HOST:PORT"`` (the head node's address, port
            6379 by default) or ``"ray://HOST:PORT"`` (Ray Client).
        cpus_per_run: CPUs reserved for each job (Ray's ``num_cpus``); a finite number >= 0.
            Torch in the job uses ``max(1, floor(cpus_per_run))`` threads.
        gpus_per_run: GPUs reserved for each job (Ray's ``num_gpus``): >= 0, fractional below 1.
        max_runs_per_worker: Jobs one Ray worker process runs before it exits (Ray's
            ``max_calls``; ``1``: a fresh process per job, so per-job peak memory can be measured);
            ``None``: workers are reused.
        runtime_env: Ray runtime environment of the connection this executor makes (for example
            ``{"env_vars": {...}}``); see docs/ray.md.

    Raises:
        ImportError: If Ray is not installed (the message gives ``pip install "dgpo-env[ray]"``).
        TypeError: If an argument has the wrong type (strings are not numbers).
        ValueError: If an amount is out of range or ``address`` is not one of the forms above.
    """

    def __init__(
        self,
        address: str | None = None,
        cpus_per_run: float = 1,
        gpus_per_run: float = 0,
        max_runs_per_worker: int | None = None,
        runtime_env: Mapping[str, Any] | None = None,
    ) -> None:
        self.address = check_address(address)
        self.cpus_per_run = check_resource("cpus_per_run", cpus_per_run)
        self.gpus_per_run = check_resource("gpus_per_run", gpus_per_run)
        self.max_runs_per_worker = (
            None if max_runs_per_worker is None else check_count("max_runs_per_worker", max_runs_per_worker, 1)
        )
        if runtime_env is not None and not isinstance(runtime_env, Mapping):
            raise TypeError(f"runtime_env must be a mapping or None, got {type(runtime_env).__name__}")
        self.runtime_env = None if runtime_env is None else dict(runtime_env)
        self._ray = require_ray("RayExecutor (--backend ray)")

    def connect(self) -> None:
        """Connect to the Ray cluster (once; nothing if this process is already connected).

        Raises:
            ConnectionError: If no cluster answers at ``address`` (the message says how to start one).
        """
        ray = self._ray
        if ray.is_initialized():
            return
        try:
            ray.init(address=self.address, runtime_env=self.runtime_env, log_to_driver=False)
        except ConnectionError as err:
            where = "on this machine" if self.address in (None, "auto") else f"at {self.address}"
            raise ConnectionError(
                f"no Ray cluster answers {where} ({err}); start one with `ray start --head` (and "
                "`ray start --address=HEAD:6379` on each worker node), or omit the address to run on a "
                "local instance"
            ) from err

    def run(self, jobs: Iterable[Job]) -> Generator[JobResult, None, None]:  # noqa: D102 (see Executor.run)
        todo = list(jobs)
        check_job_ids(todo)
        if not todo:
            return
        self.connect()
        check_feasible(self._ray, self.cpus_per_run, self.gpus_per_run, "--cpus-per-run / --gpus-per-run")
        ray = self._ray
        options: dict[str, Any] = {"num_cpus": self.cpus_per_run, "num_gpus": self.gpus_per_run, "max_retries": 0}
        if self.max_runs_per_worker is not None:
            options["max_calls"] = self.max_runs_per_worker
        task = ray.remote(_run_on_worker).options(**options)
        threads = max(1, math.floor(self.cpus_per_run))
        pending: dict[Any, Job] = {}
        try:
            for job in todo:
                try:
                    ref = task.remote(job, threads)
                except Exception:  # the job (its function or arguments) cannot be serialised
                    yield JobResult(job.job_id, None, "the job could not be pickled:\n" + traceback.format_exc())
                    continue
                pending[ref] = job
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=WAIT_TIMEOUT_S)
                for ref in ready:
                    job = pending.pop(ref)
                    yield self._outcome(ref, job)
        finally:
            for ref in pending:  # closed early: queued tasks never start, running ones are killed
                try:
                    ray.cancel(ref, force=True)
                except ray.exceptions.RayError:  # the cluster is gone: nothing left to cancel
                    pass

    def _outcome(self, ref: Any, job: Job) -> JobResult:
        """The finished task's :class:`JobResult`, or a failed one saying how its worker or task was lost."""
        ray = self._ray
        try:
            result = ray.get(ref)
        except ray.exceptions.RayTaskError as err:  # raised outside run_job (e.g. its result could not be stored)
            return JobResult(job.job_id, None, f"the Ray task of job {job.job_id!r} failed:\n{err}")
        except ray.exceptions.RayError as err:  # worker or node died, out of memory, cancelled
            message = f"job {job.job_id!r} lost its Ray worker ({type(err).__name__}): {err}"
            return JobResult(job.job_id, None, message)
        if not isinstance(result, JobResult):
            return JobResult(job.job_id, None, f"the Ray task returned {type(result).__name__}, not a JobResult")
        return result


__all__ = ["WAIT_TIMEOUT_S", "RayExecutor", "check_address", "check_resource"]
