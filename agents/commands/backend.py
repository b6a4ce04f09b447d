"""Where runs execute: the ``--backend`` options shared by ``dgpo compare`` and the benchmark scripts.

``--backend local`` (default) runs jobs in ``--jobs`` worker processes on this machine; ``--backend
ray`` runs each job as a Ray task, on a local Ray instance or the cluster at ``--address``, with
``--cpus-per-run`` CPUs and ``--gpus-per-run`` GPUs reserved per job (docs/ray.md).
"""

from __future__ import annotations

import argparse

from agents.commands.args import nonnegative_float, positive_int
from agents.harness.executor import Executor

LOCAL_JOBS = 2
"""Worker processes of the local backend when ``--jobs`` is not given."""


class BackendError(ValueError):
    """The backend options do not fit together, Ray is missing, or its cluster cannot be reached."""


def add_backend_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--jobs``, ``--backend``, ``--address``, ``--cpus-per-run`` and ``--gpus-per-run`` to ``parser``."""
    parser.add_argument(
        "--jobs",
        type=positive_int,
        default=None,
        help=f"local worker processes (default {LOCAL_JOBS}; 1 = in this process)",
    )
    parser.add_argument(
        "--backend",
        choices=("local", "ray"),
        default="local",
        help='where runs execute: local processes, or Ray tasks (needs: pip install "dgpo-env[ray]")',
    )
    parser.add_argument(
        "--address",
        default=None,
        help="with --backend ray: the cluster (auto, HOST:PORT, ray://HOST:PORT or local; default: RAY_ADDRESS, "
        "else a cluster started with `ray start` on this machine, else a new local Ray instance)",
    )
    parser.add_argument(
        "--cpus-per-run", type=nonnegative_float, default=None, help="with --backend ray: CPUs per run (default 1)"
    )
    parser.add_argument(
        "--gpus-per-run", type=nonnegative_float, default=None, help="with --backend ray: GPUs per run (default 0)"
    )


def executor_from_args(args: argparse.Namespace, max_runs_per_worker: int | None = None) -> tuple[Executor | None, int]:
    """The executor the backend options ask for, connected, and the local worker count.

    Args:
        args: Parsed options of :func:`add_backend_arguments`.
        max_runs_per_worker: Jobs per Ray worker process before it is replaced (``1``: a fresh
            process per job), for ``--backend ray``.

    Returns:
        ``(executor, n_jobs)``: ``(None, --jobs or 2)`` for the local backend (the caller builds its
        local executor), ``(RayExecutor, 1)`` for Ray.

    Raises:
        BackendError: For Ray options without ``--backend ray``, ``--jobs`` with it, Ray not
            installed, a bad resource amount or address, or no cluster at ``--address``.
    """
    ray_options = {"--address": args.address, "--cpus-per-run": args.cpus_per_run, "--gpus-per-run": args.gpus_per_run}
    given = [name for name, value in ray_options.items() if value is not None]
    if args.backend == "local":
        if given:
            verb = "applies" if len(given) == 1 else "apply"
            raise BackendError(f"{', '.join(given)} {verb} only with --backend ray")
        return None, LOCAL_JOBS if args.jobs is None else args.jobs
    if args.jobs is not None:
        raise BackendError(
            "--jobs sets local worker processes; with --backend ray the cluster's CPUs and --cpus-per-run decide "
            "how many runs execute at once: drop --jobs"
        )
    from agents.harness.ray_executor import RayExecutor

    try:
        executor = RayExecutor(
            address=args.address,
            cpus_per_run=1 if args.cpus_per_run is None else args.cpus_per_run,
            gpus_per_run=0 if args.gpus_per_run is None else args.gpus_per_run,
            max_runs_per_worker=max_runs_per_worker,
        )
        executor.connect()
    except (ImportError, TypeError, ValueError, ConnectionError) as err:
        raise BackendError(str(err)) from err
    return executor, 1


__all__ = ["LOCAL_JOBS", "BackendError", "add_backend_arguments", "executor_from_args"]
