"""The official NAS-Bench-101 data files, read without TensorFlow, and their compact cache.

The files ``nasbench_only108.tfrecord`` (108-epoch results) and ``nasbench_full.tfrecord`` (4, 12,
36 and 108 epochs) are TFRecord files (see :mod:`dgpo_env.benchmarks.tfrecord`) of JSON records holding a
``ModelMetrics`` protobuf (see :mod:`dgpo_env.benchmarks.nb101_records`).

There is one record per training run (3 seeds per cell and budget). Each holds three evaluations
(start, halfway, end of training); the official API reports the third, and so do we.

The first use of a file converts it, streaming, into a compact ``.npz`` in
:func:`~dgpo_env.benchmarks.cache.cache_dir` (one file per source file and epoch budget); later
loads read only that cache (a damaged cache is rebuilt, an unwritable one skipped; see
:mod:`dgpo_env.benchmarks.cache`).

The conversion checks every record against what the format guarantees: both CRCs, the layout,
hexadecimal hashes, one spec and one parameter count per cell, at most 3 runs per cell,
accuracies as fractions in ``[0, 1]``, finite non-negative times. A file named like an official
one (``nasbench_only108.tfrecord``, ``nasbench_full.tfrecord``) must also have its size, its
sha256 and every one of the 423,624 cells with 3 runs at the chosen budget.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from dgpo_env.benchmarks.cache import cache_file, read_cache, write_cache
from dgpo_env.benchmarks.errors import BenchmarkDataError
from dgpo_env.benchmarks.nb101_records import (
    HEX_DIGITS,
    OP_CODES,
    final_evaluation,
    spec_codes,
    spec_from_codes,
    split_record,
)
from dgpo_env.benchmarks.tfrecord import TFRecordError, iter_record_chunks
from dgpo_env.search_spaces.nb101 import N_VERTICES, NB101Spec

PATH_ENV_VAR = "DGPO_NB101_PATH"
DOWNLOAD_URL = "https://storage.googleapis.com/nasbench/nasbench_only108.tfrecord"
DOWNLOAD_SIZE = "~499 MB"
DOWNLOAD_SHA256 = "4c39c3936e36a85269881d659e44e61a245babcb72cb374eacacf75d0e5f4fd1"
FULL_URL = "https://storage.googleapis.com/nasbench/nasbench_full.tfrecord"
FULL_SIZE = "~1.95 GB"
FULL_SHA256 = "3d64db8180fb1b0207212f9032205064312b6907a3bbc81eabea10db2f5c7e9c"
"""Official download locations, sizes and sha256 (google-research/nasbench README)."""
OFFICIAL_FILES: dict[str, tuple[str, int, str]] = {
    # file name: (sha256, approximate size in bytes, size as published)
    "nasbench_only108.tfrecord": (DOWNLOAD_SHA256, 499_000_000, DOWNLOAD_SIZE),
    "nasbench_full.tfrecord": (FULL_SHA256, 1_950_000_000, FULL_SIZE),
}
OFFICIAL_SIZE_TOLERANCE = 0.06
"""The official sizes are published rounded (MB or MiB), so a file within 6% passes the size check;
its sha256, computed during the conversion, is the exact check."""
N_OFFICIAL_CELLS = 423_624
"""Cells of the official files: each has 3 runs at every budget."""

N_SEEDS = 3  # official config['num_repeats']
_CACHE_FORMAT = 1
_HASH_DTYPE = "S32"


# ---------------------------------------------------------------------- table
@dataclass(frozen=True)
class NB101Table:
    """All cells of one epoch budget, sorted by hash. Accuracies in percent.

    Row ``i`` describes the cell with hash ``hashes[i]``; ``adjacency[i, :n, :n]`` and ``ops[i, :n]``
    with ``n = n_vertices[i]`` are its pruned spec (entries beyond ``n`` are zero and unused).

    Attributes:
        hashes: ``S32[C]`` sorted official hashes (ASCII bytes).
        n_vertices: ``uint8[C]`` vertices of the pruned cell.
        adjacency: ``uint8[C, 7, 7]`` pruned adjacency, zero-padded.
        ops: ``uint8[C, 7]`` op codes (index into :data:`OP_CODES`), zero-padded.
        val_acc: ``float64[C, 3]`` final validation accuracy per seed, NaN for a missing seed.
        test_acc: ``float64[C, 3]`` final test accuracy per seed.
        train_time_s: ``float64[C, 3]`` training time per seed, seconds.
        params: ``int64[C]`` trainable parameters.
        epochs: The training budget of every row.
    """

    hashes: NDArray[np.bytes_]
    n_vertices: NDArray[np.uint8]
    adjacency: NDArray[np.uint8]
    ops: NDArray[np.uint8]
    val_acc: NDArray[np.float64]
    test_acc: NDArray[np.float64]
    train_time_s: NDArray[np.float64]
    params: NDArray[np.int64]
    epochs: int

    def __len__(self) -> int:
        return int(self.hashes.size)

    def find(self, module_hash: str) -> int | None:
        """Row of a hash, or ``None`` if the table does not hold it (binary search)."""
        key = np.array(module_hash.encode("ascii", errors="replace"), dtype=_HASH_DTYPE)
        i = int(np.searchsorted(self.hashes, key))
        return i if i < len(self) and self.hashes[i] == key else None

    def spec(self, row: int) -> NB101Spec:
        """The pruned spec of a row."""
        return spec_from_codes(int(self.n_vertices[row]), self.adjacency[row], self.ops[row])

    def hash_at(self, row: int) -> str:
        """The hash of a row as a string."""
        return bytes(self.hashes[row]).decode("ascii")

    @property
    def val_acc_mean(self) -> NDArray[np.float64]:
        """``float64[C]`` mean validation accuracy over the available seeds (percent)."""
        return np.nanmean(self.val_acc, axis=1)

    @property
    def test_acc_mean(self) -> NDArray[np.float64]:
        """``float64[C]`` mean test accuracy over the available seeds (percent)."""
        return np.nanmean(self.test_acc, axis=1)


_TABLE_KEYS = ("hashes", "n_vertices", "adjacency", "ops", "val_acc", "test_acc", "train_time_s", "params")


def _download_hint() -> str:
    return (
        f"download the official file from {DOWNLOAD_URL} ({DOWNLOAD_SIZE}, sha256 {DOWNLOAD_SHA256}) "
        f"and pass its path (path=...) or set {PATH_ENV_VAR}; nasbench_full.tfrecord ({FULL_URL}, {FULL_SIZE}, "
        f"sha256 {FULL_SHA256}) works too"
    )


def resolve_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The NAS-Bench-101 file: ``path`` if given, else ``$DGPO_NB101_PATH``.

    Raises:
        BenchmarkDataError: If neither is set or the file does not exist; the message says where
            to download it, its size and sha256.
    """
    if path is None:
        env = os.environ.get(PATH_ENV_VAR)
        if not env:
            raise BenchmarkDataError(f"no NAS-Bench-101 data file given: {_download_hint()}")
        path = env
    resolved = Path(path).expanduser()
    if not resolved.is_file():
        raise BenchmarkDataError(f"NAS-Bench-101 data file not found at {resolved}: {_download_hint()}")
    return resolved.resolve()


def cache_name_for(source: Path, epochs: int) -> str:
    """The file name under which the converted table of ``source`` (one epoch budget) is cached.

    The name depends on the file's absolute path, size and modification time, so a replaced
    file is converted again.
    """
    stat = source.stat()
    ident = f"{source}|{stat.st_size}|{stat.st_mtime_ns}".encode()
    digest = hashlib.sha256(ident).hexdigest()[:16]
    return f"nb101-{source.stem}-e{epochs}-{digest}-v{_CACHE_FORMAT}.npz"


def _source_fix(source: Path) -> str:
    if source.name in OFFICIAL_FILES:
        return f"fix: re-download the file ({_download_hint()})"
    return "fix: re-create the file in the official layout, or use the official file"


def _check_official_size(source: Path) -> None:
    """For a file named like an official one, refuse a size far from the published one (cheap, before reading)."""
    if source.name not in OFFICIAL_FILES:
        return
    _sha, size, published = OFFICIAL_FILES[source.name]
    actual = source.stat().st_size
    if abs(actual - size) > OFFICIAL_SIZE_TOLERANCE * size:
        raise BenchmarkDataError(
            f"{source} is named like the official file but has {actual:,} bytes, not {published}: it is truncated "
            f"or another file; {_source_fix(source)}, or rename it if it is a subset of your own"
        )


def convert_tfrecord(source: Path, epochs: int = 108) -> dict[str, np.ndarray]:
    """Stream an official file into the cache arrays for one epoch budget (every record checked).

    Memory holds the kept results (Python lists: ~150 bytes per run and ~250 per cell) and one
    32 MB chunk of the file, not the whole file: a synthetic file of the official size (1,270,872
    records) peaks at ~470 MB RSS and converts in 40-50 s (``benchmarks/nb101_convert.py``).

    Args:
        source: The ``.tfrecord`` file.
        epochs: Keep only runs with this budget.

    Returns:
        The arrays of :class:`NB101Table` by field name (``epochs`` as a 0-d array).

    Raises:
        BenchmarkDataError: If the file is corrupt, truncated, malformed or holds values the
            format rules out (the message names the byte offset and the cell), holds no run with
            this budget, more than 3 runs of one cell, or, when named like an official file, does
            not have its size, sha256 or all its cells.
    """
    _check_official_size(source)
    digest = hashlib.sha256()
    cell_of: dict[str, int] = {}  # hash -> cell number in first-seen order
    n_vertices, adjacency, ops = bytearray(), bytearray(), bytearray()
    params: list[int] = []
    spec_ids: list[int] = []  # hash of the raw spec strings of each cell (runs of a cell must agree)
    runs: dict[str, list[float]] = {"val": [], "test": [], "time": []}
    run_cell: list[int] = []
    try:
        for chunk in iter_record_chunks(source, digest=digest):
            for i in range(len(chunk)):
                module_hash = None
                try:
                    module_hash, run_epochs, raw_adjacency, raw_ops, raw_metrics = split_record(chunk.record(i))
                    if run_epochs != epochs:
                        continue
                    n_params, val, test, train_time = final_evaluation(raw_metrics)
                    cell = cell_of.get(module_hash)
                    if cell is None:
                        n, adj, codes = spec_codes(raw_adjacency, raw_ops)
                        cell = cell_of[module_hash] = len(cell_of)
                        n_vertices.append(n)
                        adjacency += adj
                        ops += codes
                        params.append(n_params)
                        spec_ids.append(hash((raw_adjacency, raw_ops)))
                    elif params[cell] != n_params:
                        raise ValueError("runs of this cell disagree on the parameter count")
                    elif spec_ids[cell] != hash((raw_adjacency, raw_ops)):
                        raise ValueError("runs of this cell disagree on its adjacency or ops")
                except ValueError as err:
                    where = f"byte offset {int(chunk.offsets[i])}" + (f" (cell {module_hash})" if module_hash else "")
                    raise BenchmarkDataError(
                        f"{source}: malformed record at {where}: {err}; {_source_fix(source)}"
                    ) from err
                run_cell.append(cell)
                runs["val"].append(val)
                runs["test"].append(test)
                runs["time"].append(train_time)
    except TFRecordError as err:
        raise BenchmarkDataError(f"{err} [{_download_hint()}]") from err
    if not cell_of:
        raise BenchmarkDataError(f"{source} holds no {epochs}-epoch run; pick another epochs value or file")
    n_cells = len(cell_of)
    cells = np.array(run_cell, dtype=np.int64)  # [R] cell of every kept run
    counts = np.bincount(cells, minlength=n_cells)  # [C]
    if counts.max() > N_SEEDS:
        worst = int(np.argmax(counts))
        raise BenchmarkDataError(
            f"{source}: cell {list(cell_of)[worst]} has {counts[worst]} runs at {epochs} epochs, "
            f"expected at most {N_SEEDS}; {_source_fix(source)}"
        )
    _check_official_contents(source, epochs, digest.hexdigest(), list(cell_of), counts)
    order = np.argsort(cells, kind="stable")  # runs grouped by cell, file order within a cell
    group_start = np.concatenate([[0], np.cumsum(counts)[:-1]])  # [C]
    seed = np.empty_like(cells)
    seed[order] = np.arange(cells.size) - group_start[cells[order]]  # 0, 1, 2 within each cell
    hashes = np.array([h.encode("ascii") for h in cell_of], dtype=_HASH_DTYPE)  # [C], first-seen order
    by_hash = np.argsort(hashes, kind="stable")  # table rows sorted by hash
    arrays: dict[str, np.ndarray] = {
        "hashes": hashes[by_hash],
        "n_vertices": np.frombuffer(bytes(n_vertices), dtype=np.uint8)[by_hash],
        "adjacency": np.frombuffer(bytes(adjacency), dtype=np.uint8).reshape(n_cells, N_VERTICES, N_VERTICES)[by_hash],
        "ops": np.frombuffer(bytes(ops), dtype=np.uint8).reshape(n_cells, N_VERTICES)[by_hash],
        "params": np.array(params, dtype=np.int64)[by_hash],
        "epochs": np.array(epochs, dtype=np.int64),
    }
    scale = {"val": 100.0, "test": 100.0, "time": 1.0}  # accuracies to percent
    for name, key in (("val_acc", "val"), ("test_acc", "test"), ("train_time_s", "time")):
        table = np.full((n_cells, N_SEEDS), np.nan)
        table[cells, seed] = np.array(runs[key]) * scale[key]
        arrays[name] = table[by_hash]
    return arrays


def _check_official_contents(source: Path, epochs: int, sha256: str, hashes: list[str], counts: np.ndarray) -> None:
    """For a file named like an official one: every cell with 3 runs, then the exact sha256."""
    if source.name not in OFFICIAL_FILES:
        return
    fix = _source_fix(source)
    if len(hashes) != N_OFFICIAL_CELLS:
        raise BenchmarkDataError(
            f"{source} is named like the official file but holds {len(hashes):,} cells at {epochs} epochs, "
            f"not {N_OFFICIAL_CELLS:,}; {fix}"
        )
    short = np.flatnonzero(counts != N_SEEDS)
    if short.size:
        first = int(short[0])
        raise BenchmarkDataError(
            f"{source} is named like the official file but cell {hashes[first]} has {counts[first]} runs at "
            f"{epochs} epochs, not {N_SEEDS} ({short.size:,} cells are incomplete); {fix}"
        )
    official = OFFICIAL_FILES[source.name][0]
    if sha256 != official:
        raise BenchmarkDataError(
            f"{source} is named like the official file but its sha256 is {sha256}, not {official}; {fix}"
        )


def check_table_arrays(arrays: dict[str, np.ndarray], epochs: int) -> None:
    """Check converted (cached) arrays: all columns, consistent shapes and types, values in range.

    Raises:
        ValueError: Naming the first problem found.
    """
    missing = [k for k in (*_TABLE_KEYS, "epochs") if k not in arrays]
    if missing:
        raise ValueError(f"arrays {missing} are missing")
    if arrays["epochs"].shape != () or int(arrays["epochs"]) != epochs:
        raise ValueError(f"epochs is {arrays['epochs'].tolist()}, expected {epochs}")
    hashes = arrays["hashes"]
    if hashes.dtype != np.dtype(_HASH_DTYPE) or hashes.ndim != 1 or hashes.size == 0:
        raise ValueError(f"hashes have dtype {hashes.dtype} and shape {hashes.shape}, expected {_HASH_DTYPE}[C > 0]")
    c = hashes.size
    layout = {
        "n_vertices": ((c,), np.uint8),
        "adjacency": ((c, N_VERTICES, N_VERTICES), np.uint8),
        "ops": ((c, N_VERTICES), np.uint8),
        "val_acc": ((c, N_SEEDS), np.float64),
        "test_acc": ((c, N_SEEDS), np.float64),
        "train_time_s": ((c, N_SEEDS), np.float64),
        "params": ((c,), np.int64),
    }
    for key, (shape, dtype) in layout.items():
        if arrays[key].shape != shape or arrays[key].dtype != dtype:
            raise ValueError(f"{key} has shape {arrays[key].shape} and dtype {arrays[key].dtype}, expected {shape}")
    if c > 1 and not np.all(hashes[1:] > hashes[:-1]):
        raise ValueError("hashes are not sorted and unique")
    hex_bytes = np.frombuffer(HEX_DIGITS.encode(), dtype=np.uint8)
    if not np.isin(hashes.view(np.uint8), hex_bytes).all():
        raise ValueError("a hash is not 32 hexadecimal digits")
    n = arrays["n_vertices"]
    adjacency = arrays["adjacency"]
    if n.min() < 2 or n.max() > N_VERTICES or arrays["ops"].max() >= len(OP_CODES):
        raise ValueError("vertex counts or op codes out of range")
    if adjacency.max() > 1 or np.tril(adjacency).any():
        raise ValueError("an adjacency matrix is not 0/1 and strictly upper triangular")
    val, test, time = arrays["val_acc"], arrays["test_acc"], arrays["train_time_s"]
    if np.isnan(val).all(axis=1).any():
        raise ValueError("a cell has no run")
    with np.errstate(invalid="ignore"):
        for name, values, hi in (("val_acc", val, 100.0), ("test_acc", test, 100.0), ("train_time_s", time, np.inf)):
            if (~np.isnan(values) & ~((values >= 0) & (values <= hi))).any():
                raise ValueError(f"{name} holds values outside [0, {hi}]")
    if arrays["params"].min() <= 0:
        raise ValueError("a parameter count is not positive")


def _table_from_arrays(arrays: dict[str, np.ndarray]) -> NB101Table:
    return NB101Table(**{k: arrays[k] for k in _TABLE_KEYS}, epochs=int(arrays["epochs"]))


@lru_cache(maxsize=4)
def _load_cache_file(cache_path: Path, mtime_ns: int, epochs: int) -> NB101Table | None:
    """Read and check a cache file (memoised per process); ``None`` (after a warning) if it cannot be used."""
    del mtime_ns  # part of the memo key only: a rewritten cache is read again
    arrays = read_cache(cache_path, lambda a: check_table_arrays(a, epochs))
    return None if arrays is None else _table_from_arrays(arrays)


_in_memory: dict[str, NB101Table] = {}
"""Tables converted in this process whose cache file could not be written, by cache file name."""


def load_table(path: str | os.PathLike[str] | None = None, epochs: int = 108) -> NB101Table:
    """The NAS-Bench-101 table for one epoch budget, converting the official file on first use.

    A damaged or inconsistent cache file is rebuilt with a warning; if the cache directory cannot
    be written, the table is kept in memory for this process (one warning naming ``DGPO_CACHE_DIR``).

    Args:
        path: The official ``.tfrecord`` file; ``None`` reads ``$DGPO_NB101_PATH``.
        epochs: Training budget (108 for ``nasbench_only108``; 4, 12, 36 or 108 for the full file).

    Raises:
        BenchmarkDataError: If the file is missing (the message says where to download it) or
            corrupt or inconsistent (the message names the byte offset or the cell, and the fix).
    """
    source = resolve_path(path)
    name = cache_name_for(source, epochs)
    if name in _in_memory:
        return _in_memory[name]
    cache_path = cache_file(name)
    if cache_path is not None and cache_path.exists():
        table = _load_cache_file(cache_path, cache_path.stat().st_mtime_ns, epochs)
        if table is not None:
            return table
    arrays = convert_tfrecord(source, epochs)
    table = _table_from_arrays(arrays)
    if not write_cache(cache_path, arrays):
        _in_memory[name] = table
    return table
