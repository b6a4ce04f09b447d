"""The comparison harness's public API under its historical name (a facade over :mod:`agents.harness`).

Every method x every seed on one benchmark, by distinct queries: see :mod:`agents.harness` and
docs/harness.md. The method contract is ``fn(benchmark_kwargs, seed, max_queries) -> SearchResult``
(:mod:`agents.harness.registry`); register one with :func:`register_method`.
"""

from __future__ import annotations

from agents.harness import (
    BENCHMARK_SHORTHANDS,
    DEFAULT_CHECKPOINTS,
    DIFFUSION_METHODS,
    Comparison,
    ComparisonFailed,
    ComparisonInterrupted,
    MethodFn,
    MethodSummary,
    OutputDirError,
    OutputsExistError,
    SettingsMismatchError,
    available_methods,
    benchmark_kwargs_for,
    build_benchmark,
    comparison_paths,
    curves_matrix,
    decode_curve,
    encode_curve,
    format_table,
    get_method,
    known_envs,
    output_stem,
    plot_comparison,
    register_method,
    result_from_dict,
    result_to_dict,
    run_baseline,
    run_comparison,
    summarise,
    versions,
)

__all__ = [
    "BENCHMARK_SHORTHANDS",
    "DEFAULT_CHECKPOINTS",
    "DIFFUSION_METHODS",
    "Comparison",
    "ComparisonFailed",
    "ComparisonInterrupted",
    "MethodFn",
    "MethodSummary",
    "OutputDirError",
    "OutputsExistError",
    "SettingsMismatchError",
    "available_methods",
    "benchmark_kwargs_for",
    "build_benchmark",
    "comparison_paths",
    "curves_matrix",
    "decode_curve",
    "encode_curve",
    "format_table",
    "get_method",
    "known_envs",
    "output_stem",
    "plot_comparison",
    "register_method",
    "result_from_dict",
    "result_to_dict",
    "run_baseline",
    "run_comparison",
    "summarise",
    "versions",
]
