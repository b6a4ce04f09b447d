"""Benchmarks: cell look-ups, counted in a query ledger (docs/ledger.md)."""

from typing import Any

from dgpo_env.benchmarks.base import Benchmark, CellResult, Oracle
from dgpo_env.benchmarks.cache import CacheWarning
from dgpo_env.benchmarks.callable import CallableBenchmark, EvaluationError
from dgpo_env.benchmarks.constrained import ConstrainedBenchmark
from dgpo_env.benchmarks.nb201 import NB201Benchmark
from dgpo_env.benchmarks.nb201_data import BenchmarkDataError
from dgpo_env.benchmarks.toy import ToyBenchmark
from dgpo_env.ledger import QueryRecord

__all__ = [
    "Benchmark",
    "BenchmarkDataError",
    "CacheWarning",
    "CallableBenchmark",
    "CellResult",
    "ConstrainedBenchmark",
    "EvaluationError",
    "NB201Benchmark",
    "Oracle",
    "QueryRecord",
    "ToyBenchmark",
    "make_benchmark",
]

_NAMES = "'nb201', 'nb101', 'toy'"


def make_benchmark(name: str, **kwargs: Any) -> Benchmark:
    """Build a benchmark by name.

    ``"nb201"`` (kwargs ``dataset``, ``table_path``), ``"nb101"`` (kwargs ``path`` — default
    ``$DGPO_NB101_PATH`` — and ``epochs``) or ``"toy"``; every benchmark also takes ``ledger``
    (a :class:`~dgpo_env.ledger.QueryLedger`, default a new in-process one).

    Raises:
        TypeError: If ``name`` is not a string.
        ValueError: For an unknown name (the message lists the known ones).
    """
    if not isinstance(name, str):
        raise TypeError(f"benchmark name must be a string, one of {_NAMES}; got {name!r} ({type(name).__name__})")
    if name == "nb201":
        return NB201Benchmark(**kwargs)
    if name == "toy":
        return ToyBenchmark(**kwargs)
    if name == "nb101":
        from dgpo_env.benchmarks.nb101 import NB101Benchmark

        return NB101Benchmark(**kwargs)
    raise ValueError(f"unknown benchmark {name!r}; known benchmarks: {_NAMES}")
