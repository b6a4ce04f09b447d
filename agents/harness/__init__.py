"""The run harness: method registry, executors, results store, reports, and ``run_comparison``.

See docs/harness.md. ``agents.compare`` re-exports the comparison API for existing imports. Names are
imported from their submodules on first use, so a worker process that needs only
:mod:`agents.harness.executor` does not import the searchers (and torch).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agents.harness.comparison import (
        ComparisonFailed,
        ComparisonInterrupted,
        OutputDirError,
        run_comparison,
    )
    from agents.harness.executor import (
        Executor,
        Job,
        JobFailed,
        JobResult,
        LocalExecutor,
        SerialExecutor,
        single_torch_thread,
    )
    from agents.harness.lock import OutputDirBusyError, output_dir_lock
    from agents.harness.outputs import ComparisonPaths, comparison_paths, comparison_settings, job_id, output_stem
    from agents.harness.ray_executor import RayExecutor
    from agents.harness.registry import (
        BENCHMARK_SHORTHANDS,
        DIFFUSION_METHODS,
        PEER_METHODS,
        MethodFn,
        available_methods,
        benchmark_kwargs_for,
        build_benchmark,
        get_method,
        installed_peer_methods,
        known_envs,
        register_method,
        run_baseline,
    )
    from agents.harness.report import (
        DEFAULT_CHECKPOINTS,
        Comparison,
        MethodSummary,
        curves_matrix,
        decode_curve,
        encode_curve,
        format_table,
        plot_comparison,
        result_from_dict,
        result_to_dict,
        save_figure,
        summarise,
        versions,
    )
    from agents.harness.store import (
        DamagedOutputError,
        OutputsExistError,
        RunStore,
        SettingsMismatchError,
        prepare_outputs,
    )

_SUBMODULE: dict[str, str] = {
    "BENCHMARK_SHORTHANDS": "registry",
    "Comparison": "report",
    "ComparisonFailed": "comparison",
    "ComparisonInterrupted": "comparison",
    "ComparisonPaths": "outputs",
    "DEFAULT_CHECKPOINTS": "report",
    "DamagedOutputError": "store",
    "DIFFUSION_METHODS": "registry",
    "PEER_METHODS": "registry",
    "Executor": "executor",
    "Job": "executor",
    "JobFailed": "executor",
    "JobResult": "executor",
    "LocalExecutor": "executor",
    "MethodFn": "registry",
    "MethodSummary": "report",
    "OutputDirBusyError": "lock",
    "OutputDirError": "comparison",
    "OutputsExistError": "store",
    "RayExecutor": "ray_executor",
    "RunStore": "store",
    "SerialExecutor": "executor",
    "SettingsMismatchError": "store",
    "available_methods": "registry",
    "benchmark_kwargs_for": "registry",
    "build_benchmark": "registry",
    "comparison_paths": "outputs",
    "comparison_settings": "outputs",
    "curves_matrix": "report",
    "decode_curve": "report",
    "encode_curve": "report",
    "format_table": "report",
    "get_method": "registry",
    "installed_peer_methods": "registry",
    "job_id": "outputs",
    "known_envs": "registry",
    "output_dir_lock": "lock",
    "output_stem": "outputs",
    "plot_comparison": "report",
    "prepare_outputs": "store",
    "register_method": "registry",
    "result_from_dict": "report",
    "result_to_dict": "report",
    "run_baseline": "registry",
    "run_comparison": "comparison",
    "save_figure": "report",
    "single_torch_thread": "executor",
    "summarise": "report",
    "versions": "report",
}
"""Public name -> the submodule of :mod:`agents.harness` that defines it."""


def __getattr__(name: str) -> Any:
    if name not in _SUBMODULE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_SUBMODULE[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_SUBMODULE])


__all__ = [
    "BENCHMARK_SHORTHANDS",
    "DEFAULT_CHECKPOINTS",
    "DIFFUSION_METHODS",
    "PEER_METHODS",
    "Comparison",
    "ComparisonFailed",
    "ComparisonInterrupted",
    "ComparisonPaths",
    "DamagedOutputError",
    "Executor",
    "Job",
    "JobFailed",
    "JobResult",
    "LocalExecutor",
    "MethodFn",
    "MethodSummary",
    "OutputDirBusyError",
    "OutputDirError",
    "OutputsExistError",
    "RayExecutor",
    "RunStore",
    "SerialExecutor",
    "SettingsMismatchError",
    "available_methods",
    "benchmark_kwargs_for",
    "build_benchmark",
    "comparison_paths",
    "comparison_settings",
    "curves_matrix",
    "decode_curve",
    "encode_curve",
    "format_table",
    "get_method",
    "installed_peer_methods",
    "job_id",
    "known_envs",
    "output_dir_lock",
    "output_stem",
    "plot_comparison",
    "prepare_outputs",
    "register_method",
    "result_from_dict",
    "result_to_dict",
    "run_baseline",
    "run_comparison",
    "save_figure",
    "single_torch_thread",
    "summarise",
    "versions",
]
