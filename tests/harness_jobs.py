"""Job functions for the executor tests, in a module that imports nothing heavy (workers import it)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from dgpo_env.io import atomic_write_text


def square(x: int) -> int:
    return x * x


def fail(message: str) -> None:
    raise ValueError(message)


def pid() -> int:
    return os.getpid()


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def sleep_and_tell(path: str, seconds: float) -> None:
    """Write this process's pid to ``path``, then sleep."""
    atomic_write_text(Path(path), str(os.getpid()))  # a reader never sees an empty file
    time.sleep(seconds)


def record(i: int) -> dict[str, object]:
    """A job record like the benchmark scripts' (a JSON-ready dict)."""
    return {"job": "toy", "value": i, "curve": [1.0, 1.0, float(i)]}


def rs_failing_on_seed1_while(flag: str, benchmark_kwargs: dict[str, object], seed: int, max_queries: int) -> object:
    """The "rs" method, except that seed 1 raises while the file ``flag`` exists (a run to resume later)."""
    from agents.harness.registry import run_baseline

    if seed == 1 and Path(flag).exists():
        raise ValueError("seed 1 fails while the flag file exists")
    return run_baseline("rs", dict(benchmark_kwargs), seed, max_queries)
