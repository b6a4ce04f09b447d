"""Damaged data is detected: caches, unwritable cache directories, NB201 tables and NB101 files.

Each case asserts the error or warning type and the key words of its message.
"""

from __future__ import annotations

import base64
import json
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from test_nb101_data import CELLS, _frame, _metrics, _rows

from dgpo_env.benchmarks import BenchmarkDataError, cache, nb101_data, nb201_data
from dgpo_env.benchmarks.cache import CacheWarning
from dgpo_env.benchmarks.nb101_data import load_table
from dgpo_env.benchmarks.nb201 import NB201Benchmark
from dgpo_env.search_spaces.nb101_params import network_params


@pytest.fixture(autouse=True)
def _fresh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("DGPO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(cache, "_warned_dirs", set())
    monkeypatch.setattr(nb101_data, "_in_memory", {})
    nb201_data._packaged_arrays.cache_clear()
    nb101_data._load_cache_file.cache_clear()
    yield
    nb201_data._packaged_arrays.cache_clear()
    nb101_data._load_cache_file.cache_clear()


def _cache_warnings(record: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, CacheWarning)]


@pytest.fixture
def tfrecord(tmp_path: Path) -> Path:
    path = tmp_path / "subset.tfrecord"
    path.write_bytes(b"".join(_frame(r) for r in _rows()))
    return path


# ---------------------------------------------------------------------- damaged cache files
def _damage(path: Path, how: str) -> None:
    if how == "empty":
        path.write_bytes(b"")
    elif how == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif how == "not npz":
        np.save(path.open("wb"), np.arange(3))
    else:  # inconsistent: a readable .npz whose arrays no table can have
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        first = next(k for k in arrays if k != "epochs")
        arrays[first] = arrays[first][:-1]
        with path.open("wb") as fh:
            np.savez(fh, **arrays)


@pytest.mark.parametrize("how", ["empty", "truncated", "not npz", "inconsistent"])
def test_damaged_nb201_cache_is_rebuilt_with_a_warning(tmp_path: Path, how: str) -> None:
    want = nb201_data.packaged_table("cifar10").val_acc_seeds
    (path,) = (tmp_path / "cache").glob("nb201-*.npz")
    _damage(path, how)
    nb201_data._packaged_arrays.cache_clear()
    with pytest.warns(CacheWarning, match=r"damaged benchmark cache file .*nb201-.*rebuilding") as record:
        got = nb201_data.packaged_table("cifar10").val_acc_seeds
    assert len(_cache_warnings(record)) == 1 and "\n" not in _cache_warnings(record)[0]
    assert np.array_equal(got, want, equal_nan=True)
    nb201_data._packaged_arrays.cache_clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)  # the rebuilt file is whole again
        nb201_data.packaged_table("cifar10")


@pytest.mark.parametrize("how", ["empty", "truncated", "inconsistent"])
def test_damaged_nb101_cache_is_rebuilt_with_a_warning(tfrecord: Path, tmp_path: Path, how: str) -> None:
    want = load_table(tfrecord).val_acc
    (path,) = (tmp_path / "cache").glob("nb101-*.npz")
    _damage(path, how)
    nb101_data._load_cache_file.cache_clear()
    with pytest.warns(CacheWarning, match="damaged benchmark cache file .*rebuilding"):
        assert np.array_equal(load_table(tfrecord).val_acc, want, equal_nan=True)
    nb101_data._load_cache_file.cache_clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)
        load_table(tfrecord)


def test_cache_with_out_of_range_values_is_rebuilt(tfrecord: Path, tmp_path: Path) -> None:
    load_table(tfrecord)
    (path,) = (tmp_path / "cache").glob("nb101-*.npz")
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["val_acc"] = arrays["val_acc"] * 100  # 9,376% — values no table can hold
    with path.open("wb") as fh:
        np.savez(fh, **arrays)
    nb101_data._load_cache_file.cache_clear()
    with pytest.warns(CacheWarning, match=r"val_acc holds values outside \[0, 100"):
        assert load_table(tfrecord).val_acc.max() <= 100


# ---------------------------------------------------------------------- unwritable cache directory
def test_cache_dir_naming_a_file_works_in_memory_with_one_warning(
    tfrecord: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a_file = tmp_path / "not-a-dir"
    a_file.write_text("x")
    monkeypatch.setenv("DGPO_CACHE_DIR", str(a_file))
    with pytest.warns(CacheWarning) as record:
        table = nb201_data.packaged_table("cifar10")
        NB201Benchmark("cifar100")
        first = load_table(tfrecord)
        second = load_table(tfrecord)  # from memory: not converted again, no second warning
    messages = _cache_warnings(record)
    assert len(messages) == 1, messages
    assert "DGPO_CACHE_DIR" in messages[0] and "FileExistsError" in messages[0] and "in memory" in messages[0]
    assert table.val_acc_seeds.shape == (15_625, 3) and second is first


def test_unwritable_cache_dir_works_in_memory_with_one_warning(tfrecord: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(path: object, data: bytes) -> None:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(cache, "atomic_write_bytes", refuse)
    calls: list[Path] = []
    convert = nb101_data.convert_tfrecord
    monkeypatch.setattr(nb101_data, "convert_tfrecord", lambda s, e=108: calls.append(s) or convert(s, e))
    with pytest.warns(CacheWarning) as record:
        assert round(float(np.nanmax(nb201_data.packaged_table("cifar10").val_acc)), 4) == 91.6067
        load_table(tfrecord)
        load_table(tfrecord)
    messages = _cache_warnings(record)
    assert len(messages) == 1, messages
    assert "cannot write the benchmark cache" in messages[0] and "PermissionError" in messages[0]
    assert "DGPO_CACHE_DIR" in messages[0]
    assert len(calls) == 1


# ---------------------------------------------------------------------- NB-101 records
def _file_with(tmp_path: Path, row: list[object], name: str = "subset.tfrecord") -> Path:
    path = tmp_path / name
    records = [*_rows(extra_epochs=False), json.dumps(row).encode()]
    path.write_bytes(b"".join(_frame(r) for r in records))
    return path


def _row(spec_index: int = 1, val: float = 0.9, test: float = 0.9, module_hash: str | None = None) -> list[object]:
    spec = CELLS[spec_index][0]
    metrics = _metrics(network_params(spec), (0.1, 0.5, val), (0.1, 0.5, test), 100.0)
    return [
        module_hash or spec.graph_hash(),
        108,
        spec.adjacency_string(),
        ",".join(spec.ops),
        base64.b64encode(metrics).decode(),
    ]


@pytest.mark.parametrize("field", ["val", "test"])
@pytest.mark.parametrize("value", [26.0, -0.1, float("nan")])
def test_out_of_range_nb101_accuracy_is_refused(tmp_path: Path, field: str, value: float) -> None:
    row = _row(val=value) if field == "val" else _row(test=value)
    path = _file_with(tmp_path, row)
    what = "validation" if field == "val" else "test"
    with pytest.raises(BenchmarkDataError, match=rf"{what} accuracy .* outside \[0, 1\].*fractions") as info:
        load_table(path)
    message = str(info.value)
    assert str(path) in message and "byte offset" in message and str(row[0]) in message and "fix:" in message


def test_nb101_identifiers_are_checked(tmp_path: Path) -> None:
    with pytest.raises(BenchmarkDataError, match="hexadecimal"):
        load_table(_file_with(tmp_path, _row(module_hash="Z" * 32)))
    other_spec = _row(spec_index=2, module_hash=CELLS[1][0].graph_hash())  # a hash given to two specs
    with pytest.raises(BenchmarkDataError, match="disagree"):
        load_table(_file_with(tmp_path, other_spec))


def test_bad_crc_is_detected(tfrecord: Path) -> None:
    data = bytearray(tfrecord.read_bytes())
    data[40] ^= 0x01  # a data byte of the first record
    tfrecord.write_bytes(bytes(data))
    with pytest.raises(BenchmarkDataError, match=r"corrupt record at byte offset 0: the CRC32C of its data") as info:
        load_table(tfrecord)
    assert "re-download" in str(info.value) and str(tfrecord) in str(info.value)


def test_file_named_official_is_checked_for_size(tmp_path: Path) -> None:
    path = tmp_path / "nasbench_only108.tfrecord"
    path.write_bytes(b"".join(_frame(r) for r in _rows(extra_epochs=False)))
    with pytest.raises(BenchmarkDataError, match=r"named like the official file .* bytes, not ~499 MB") as info:
        load_table(path)
    assert nb101_data.DOWNLOAD_SHA256 in str(info.value)


def test_file_named_official_is_checked_for_completeness_and_sha(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "nasbench_only108.tfrecord"
    path.write_bytes(b"".join(_frame(r) for r in _rows(extra_epochs=False)))
    monkeypatch.setattr(nb101_data, "_check_official_size", lambda source: None)
    with pytest.raises(BenchmarkDataError, match=r"holds 4 cells at 108 epochs, not 423,624"):
        load_table(path)
    monkeypatch.setattr(nb101_data, "N_OFFICIAL_CELLS", len(CELLS))
    with pytest.raises(BenchmarkDataError, match=r"its sha256 is [0-9a-f]{64}, not 4c39c393"):
        load_table(path)


# ---------------------------------------------------------------------- NB201 extended tables
def _extended_columns() -> dict[str, np.ndarray]:
    """A table with the nb201.npz schema (cifar10 columns) built from the packaged data."""
    table = nb201_data.packaged_table("cifar10")
    config_id = np.array([np.base_repr(int(c), 5).zfill(6) for c in table.codes])
    cols = {"index": np.arange(15_625, dtype=np.int32), "config_id": config_id}
    for s in range(3):
        cols[f"cifar10_valid_val_acc_seed{s}"] = table.val_acc_seeds[:, s]
    cols["cifar10_valid_test_acc"] = table.val_acc - 0.5
    cols["cifar10_valid_train_time_s"] = table.train_time_s
    cols["cifar10_valid_latency_s"] = table.latency_s
    cols["cifar10_valid_params_mb"] = table.params_m
    return cols


def _write_npz(path: Path, cols: dict[str, np.ndarray]) -> Path:
    with path.open("wb") as fh:
        np.savez(fh, **cols)  # type: ignore[arg-type]
    return path


def test_valid_extended_table_is_accepted(tmp_path: Path) -> None:
    bench = NB201Benchmark("cifar10", table_path=_write_npz(tmp_path / "t.npz", _extended_columns()))
    assert round(bench.oracle.val_acc, 4) == 91.6067


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda c: c["cifar10_valid_val_acc_seed1"].__setitem__(7, 2600.0), r"row 7: validation accuracy .*\[0, 100\]"),
        (lambda c: c["cifar10_valid_test_acc"].__setitem__(3, -1.0), r"row 3: test accuracy .*\[0, 100\]"),
        (lambda c: c["cifar10_valid_val_acc_seed0"].__setitem__(5, np.nan), r"row 5: .*lacks seed 0 or 1"),
        (lambda c: c["cifar10_valid_latency_s"].__setitem__(9, np.inf), r"row 9: latency .*finite non-negative"),
        (lambda c: c["config_id"].__setitem__(4, "512340"), r"row 4: config_id .*six digits"),
        (lambda c: c["config_id"].__setitem__(4, c["config_id"][5]), r"config_id .*more than once"),
        (lambda c: c["index"].__setitem__(2, 99), r"row 2: index .*official index order"),
    ],
)
def test_extended_table_out_of_format_is_refused(tmp_path: Path, change: object, words: str) -> None:
    cols = _extended_columns()
    change(cols)  # type: ignore[operator]
    path = _write_npz(tmp_path / "t.npz", cols)
    with pytest.raises(BenchmarkDataError, match=words) as info:
        NB201Benchmark("cifar10", table_path=path)
    assert str(path) in str(info.value) and "fix:" in str(info.value)


def test_extended_table_in_fractions_is_refused(tmp_path: Path) -> None:
    cols = _extended_columns()
    for s in range(3):
        cols[f"cifar10_valid_val_acc_seed{s}"] = cols[f"cifar10_valid_val_acc_seed{s}"] / 100
    with pytest.raises(BenchmarkDataError, match="look like fractions, the format stores percent"):
        NB201Benchmark("cifar10", table_path=_write_npz(tmp_path / "t.npz", cols))


def test_reference_table_passes_the_checks(nb201_table_path: Path) -> None:
    for dataset in nb201_data.DATASETS:
        assert nb201_data.load_extended_table(nb201_table_path, dataset).val_acc_seeds.shape == (15_625, 3)
