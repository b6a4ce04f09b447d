"""NAS-Bench-101 data: TFRecord framing, CRC32C, ModelMetrics decoding, cache, benchmark queries.

The tests write small files in the official format themselves: TFRecord framing with masked CRC32C,
JSON rows ``[hash, epochs, adjacency, ops, base64 ModelMetrics]``, and a test-side protobuf encoder.
"""

from __future__ import annotations

import base64
import json
import struct
from pathlib import Path

import numpy as np
import pytest
from nb101_cells import C3, INCEPTION, INCEPTION_STORED, MP

from dgpo_env.benchmarks import BenchmarkDataError, CacheWarning, make_benchmark, nb101_data
from dgpo_env.benchmarks.nb101 import NOT_IN_TABLE, NB101Benchmark
from dgpo_env.benchmarks.nb101_data import DOWNLOAD_SHA256, DOWNLOAD_URL, load_table
from dgpo_env.benchmarks.nb101_records import decode_model_metrics, encode_row, parse_row
from dgpo_env.benchmarks.tfrecord import TFRecordError, crc32c, iter_records, mask_crc
from dgpo_env.search_spaces.dag import DAG
from dgpo_env.search_spaces.nb101 import NB101SearchSpace, NB101Spec
from dgpo_env.search_spaces.nb101_params import network_params

SPACE = NB101SearchSpace()


# ---------------------------------------------------------------------- test-side writers
def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # negative int32 -> 10-byte two's complement, as protobuf does
    out = bytearray()
    while True:
        low = n & 0x7F
        n >>= 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _double(field: int, x: float) -> bytes:
    return _varint(field << 3 | 1) + struct.pack("<d", x)


def _bytes(field: int, b: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(b)) + b


def _int(field: int, n: int) -> bytes:
    return _varint(field << 3 | 0) + _varint(n)


def _evaluation(epoch: float, time: float, train: float, val: float, test: float) -> bytes:
    path = f"gs://runs/epoch{int(epoch)}".encode()
    return (
        _double(1, epoch) + _double(2, time) + _double(3, train) + _double(4, val) + _double(5, test) + _bytes(6, path)
    )


def _metrics(params: int, vals: tuple[float, float, float], tests: tuple[float, float, float], time: float) -> bytes:
    evals = [
        _evaluation(0.0, 0.0, 0.1, vals[0], tests[0]),
        _evaluation(54.0, time / 2, 0.8, vals[1], tests[1]),
        _evaluation(108.0, time, 1.0, vals[2], tests[2]),
    ]
    return b"".join(_bytes(1, e) for e in evals) + _int(2, params) + _double(3, time + 5.0)


def _frame(data: bytes) -> bytes:
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", mask_crc(crc32c(length))) + data + struct.pack("<I", mask_crc(crc32c(data)))


INCEPTION_README = SPACE.from_spec(INCEPTION)
TINY = NB101Spec(np.array([[0, 1], [0, 0]]), ("input", "output"))
CHAIN = NB101Spec(np.array([[0, 1, 0], [0, 0, 1], [0, 0, 0]]), ("input", C3, "output"))
BEST = NB101Spec(
    np.array([[0, 1, 1, 0], [0, 0, 1, 1], [0, 0, 0, 1], [0, 0, 0, 0]]),
    ("input", C3, C3, "output"),
)
# final validation / test accuracy per seed (fractions, as stored)
CELLS: list[tuple[NB101Spec, tuple[float, float, float], tuple[float, float, float]]] = [
    (INCEPTION_STORED, (0.9376001358032227, 0.9350, 0.9390), (0.9311898946762085, 0.9300, 0.9320)),
    (TINY, (0.8358, 0.8346, 0.8316), (0.8300, 0.8310, 0.8290)),
    (CHAIN, (0.8800, 0.8810, 0.8790), (0.8700, 0.8705, 0.8710)),
    (BEST, (0.9500, 0.9510, 0.9490), (0.9400, 0.9410, 0.9420)),
]


def _rows(extra_epochs: bool = True) -> list[bytes]:
    rows = []
    for seed in range(3):  # the official file interleaves cells; seeds of a cell are not adjacent
        for spec, vals, tests in CELLS:
            val = vals[seed]
            metrics = _metrics(
                network_params(spec), (0.1, val - 0.05, val), (0.1, tests[seed] - 0.05, tests[seed]), 1000.0 + seed
            )
            raw = [
                spec.graph_hash(),
                108,
                spec.adjacency_string(),
                ",".join(spec.ops),
                base64.b64encode(metrics).decode(),
            ]
            rows.append(json.dumps(raw).encode())
    if extra_epochs:  # a 12-epoch run, as in nasbench_full.tfrecord
        spec = CELLS[0][0]
        metrics = _metrics(network_params(spec), (0.1, 0.5, 0.6), (0.1, 0.5, 0.6), 100.0)
        raw = [spec.graph_hash(), 12, spec.adjacency_string(), ",".join(spec.ops), base64.b64encode(metrics).decode()]
        rows.append(json.dumps(raw).encode())
    return rows


@pytest.fixture
def records() -> list[bytes]:
    return _rows()


@pytest.fixture
def tfrecord(tmp_path: Path, records: list[bytes]) -> Path:
    path = tmp_path / "nasbench_test.tfrecord"
    path.write_bytes(b"".join(_frame(r) for r in records))
    return path


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DGPO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("DGPO_NB101_PATH", raising=False)
    nb101_data._load_cache_file.cache_clear()


def _record_offsets(records: list[bytes]) -> list[int]:
    return np.concatenate([[0], np.cumsum([len(r) + 16 for r in records])[:-1]]).tolist()


# ---------------------------------------------------------------------- CRC and framing
def test_crc32c_known_values() -> None:
    assert crc32c(b"123456789") == 0xE3069283  # RFC 3720 / iSCSI check value
    assert crc32c(b"") == 0
    assert crc32c(bytes(32)) == 0x8A9136AA  # RFC 3720 B.4: 32 bytes of zeros
    assert crc32c(b"\xff" * 32) == 0x62A8AB43  # RFC 3720 B.4: 32 bytes of 0xFF
    crc = 0xE3069283
    assert mask_crc(crc) == ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def _bitwise_crc32c(data: bytes) -> int:
    """Test oracle: CRC32C bit by bit from its definition (reflected polynomial 0x82F63B78, RFC 3720)."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def test_crc_matches_bitwise_definition() -> None:
    rng = np.random.default_rng(0)
    for length in [0, 1, 7, 8, 9, 63, 64, 65, 300, *rng.integers(0, 2000, 20).tolist()]:
        data = rng.integers(0, 256, length, dtype=np.uint8).tobytes()
        assert crc32c(data) == _bitwise_crc32c(data)


def test_reader_yields_every_record_with_offsets(tfrecord: Path, records: list[bytes]) -> None:
    got = list(iter_records(tfrecord))
    assert [data for _, data in got] == records
    assert [off for off, _ in got] == _record_offsets(records)


def test_reader_streams_across_chunk_boundaries(tfrecord: Path, records: list[bytes]) -> None:
    from dgpo_env.benchmarks.tfrecord import iter_record_chunks

    chunks = list(iter_record_chunks(tfrecord, chunk_bytes=1000))
    assert len(chunks) > 3
    assert [c.record(i) for c in chunks for i in range(len(c))] == records


def test_flipped_data_byte_names_the_offset(tfrecord: Path, records: list[bytes]) -> None:
    raw = bytearray(tfrecord.read_bytes())
    offsets = _record_offsets(records)
    raw[offsets[5] + 12 + 40] ^= 0x01  # one bit inside record 5's data
    tfrecord.write_bytes(bytes(raw))
    with pytest.raises(TFRecordError, match=f"corrupt record at byte offset {offsets[5]}: .* its data") as info:
        list(iter_records(tfrecord))
    assert info.value.offset == offsets[5]
    with pytest.raises(BenchmarkDataError, match=f"byte offset {offsets[5]}"):
        load_table(tfrecord)


def test_flipped_length_byte_names_the_offset(tfrecord: Path, records: list[bytes]) -> None:
    raw = bytearray(tfrecord.read_bytes())
    offsets = _record_offsets(records)
    raw[offsets[2] + 6] ^= 0x10  # a high byte of record 2's length: it no longer fits the file
    tfrecord.write_bytes(bytes(raw))
    with pytest.raises(TFRecordError, match=f"byte offset {offsets[2]}: the CRC32C of its length field"):
        list(iter_records(tfrecord))
    raw[offsets[2] + 6] ^= 0x10
    raw[offsets[2]] ^= 0x01  # low byte: still fits, caught by the vectorised check
    tfrecord.write_bytes(bytes(raw))
    with pytest.raises(TFRecordError, match=f"byte offset {offsets[2]}: the CRC32C of its length field"):
        list(iter_records(tfrecord))


def test_truncated_file_names_the_offset(tfrecord: Path, records: list[bytes]) -> None:
    raw = tfrecord.read_bytes()
    last = _record_offsets(records)[-1]
    tfrecord.write_bytes(raw[: last + 30])
    with pytest.raises(TFRecordError, match=f"truncated record at byte offset {last}"):
        list(iter_records(tfrecord))
    tfrecord.write_bytes(raw[: last + 5])
    with pytest.raises(TFRecordError, match=f"truncated record header at byte offset {last}"):
        list(iter_records(tfrecord))
    with pytest.raises(BenchmarkDataError, match=f"truncated record header at byte offset {last}.*{DOWNLOAD_URL}"):
        load_table(tfrecord)


def test_malformed_and_inconsistent_records(tmp_path: Path, records: list[bytes]) -> None:
    path = tmp_path / "bad.tfrecord"
    bad = [*records[:3], b'{"not": "a list"}', *records[3:]]
    path.write_bytes(b"".join(_frame(r) for r in bad))
    offset = _record_offsets(bad)[3]
    with pytest.raises(
        BenchmarkDataError, match=f"malformed record at byte offset {offset}: record is not a JSON list"
    ):
        load_table(path)
    path.write_bytes(b"".join(_frame(r) for r in [*records, records[0]]))  # a 4th run of one cell
    with pytest.raises(BenchmarkDataError, match="has 4 runs at 108 epochs, expected at most 3"):
        load_table(path)


# ---------------------------------------------------------------------- protobuf and rows
def test_model_metrics_decoding() -> None:
    """The protobuf runtime with our descriptor reads what the independent test-side writer writes."""
    buf = _metrics(2_694_282, (0.1, 0.9, 0.93), (0.1, 0.88, 0.92), 1155.85)
    m = decode_model_metrics(buf)
    assert m.trainable_parameters == 2_694_282
    assert m.total_time == pytest.approx(1160.85)
    assert [e.current_epoch for e in m.evaluation_data] == [0.0, 54.0, 108.0]
    final = m.evaluation_data[2]
    assert (final.validation_accuracy, final.test_accuracy, final.training_time) == (0.93, 0.92, 1155.85)
    assert final.train_accuracy == 1.0 and final.checkpoint_path == "gs://runs/epoch108"
    # unknown fields (varint, 32-bit) are skipped; a negative int32 decodes as negative
    extra = buf + _int(9, 7) + _varint(10 << 3 | 5) + b"\x01\x00\x00\x00" + _int(2, -5)
    assert decode_model_metrics(extra).trainable_parameters == -5
    overlong = _varint(1 << 3 | 2) + _varint(50) + b"\x00" * 10  # a length running past the end
    for malformed in (buf[:-3], _varint(1 << 3 | 3), overlong):
        with pytest.raises(ValueError, match="not a ModelMetrics protobuf message"):
            decode_model_metrics(malformed)


def test_library_encoder_matches_test_writer(records: list[bytes]) -> None:
    buf = _metrics(8_555_530, (0.1, 0.9, 0.93), (0.1, 0.88, 0.92), 1768.78)
    assert decode_model_metrics(buf).SerializeToString() == buf
    assert [encode_row(parse_row(r)) for r in records] == records


def test_parse_row(records: list[bytes]) -> None:
    row = parse_row(records[0])
    assert row.module_hash == INCEPTION_STORED.graph_hash() and row.epochs == 108
    assert row.spec == INCEPTION_STORED
    assert row.metrics.trainable_parameters == 2_694_282
    assert row.final.validation_accuracy == 0.9376001358032227
    with pytest.raises(ValueError, match="not UTF-8 JSON"):
        parse_row(b"{oops")
    with pytest.raises(ValueError, match="square 0/1"):
        parse_row(json.dumps(["0" * 32, 108, "010", "input,output", ""]).encode())
    with pytest.raises(ValueError, match="strictly upper triangular"):
        parse_row(json.dumps(["0" * 32, 108, "0110", "input,output", ""]).encode())
    with pytest.raises(ValueError, match="JSON list"):
        parse_row(json.dumps(["0" * 32, 108]).encode())
    with pytest.raises(ValueError, match="base64"):
        parse_row(json.dumps(["0" * 32, 108, "0100", "input,output", "!!"]).encode())


# ---------------------------------------------------------------------- table and cache
def test_table_contents(tfrecord: Path) -> None:
    table = load_table(tfrecord)
    assert len(table) == len(CELLS) and table.epochs == 108
    assert list(table.hashes) == sorted(table.hashes)
    for spec, vals, tests in CELLS:
        row = table.find(spec.graph_hash())
        assert row is not None
        assert table.spec(row) == spec
        assert table.val_acc[row].tolist() == pytest.approx([100 * v for v in vals])
        assert table.test_acc[row].tolist() == pytest.approx([100 * t for t in tests])
        assert table.train_time_s[row].tolist() == [1000.0, 1001.0, 1002.0]
        assert table.params[row] == network_params(spec)
    assert table.find("f" * 32) is None
    twelve = load_table(tfrecord, epochs=12)
    assert len(twelve) == 1 and twelve.val_acc[0, 0] == pytest.approx(60.0) and np.isnan(twelve.val_acc[0, 1])
    with pytest.raises(BenchmarkDataError, match="no 36-epoch run"):
        load_table(tfrecord, epochs=36)


def test_second_load_reads_the_cache(tfrecord: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = load_table(tfrecord)
    cached = list((tmp_path / "cache").glob("nb101-*.npz"))
    assert len(cached) == 1
    nb101_data._load_cache_file.cache_clear()

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("the reader must not run when the cache exists")

    monkeypatch.setattr(nb101_data, "convert_tfrecord", fail)
    second = load_table(tfrecord)
    assert np.array_equal(second.hashes, first.hashes) and np.array_equal(second.val_acc, first.val_acc)
    # a damaged cache is rebuilt from the source
    cached[0].write_bytes(b"not a zip file")
    nb101_data._load_cache_file.cache_clear()
    monkeypatch.undo()
    monkeypatch.setenv("DGPO_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.warns(CacheWarning, match="damaged benchmark cache file"):
        assert np.array_equal(load_table(tfrecord).val_acc, first.val_acc)


def test_missing_file_says_where_to_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(BenchmarkDataError, match="no NAS-Bench-101 data file given") as info:
        NB101Benchmark()
    message = str(info.value)
    assert DOWNLOAD_URL in message and "499 MB" in message and DOWNLOAD_SHA256 in message
    assert "DGPO_NB101_PATH" in message
    with pytest.raises(BenchmarkDataError, match=f"not found at {tmp_path / 'nope.tfrecord'}.*499 MB"):
        NB101Benchmark(path=tmp_path / "nope.tfrecord")
    monkeypatch.setenv("DGPO_NB101_PATH", str(tmp_path / "also_missing.tfrecord"))
    with pytest.raises(BenchmarkDataError, match=r"also_missing\.tfrecord"):
        make_benchmark("nb101")


# ---------------------------------------------------------------------- benchmark
def test_queries(tfrecord: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DGPO_NB101_PATH", str(tfrecord))
    bench = make_benchmark("nb101")
    assert isinstance(bench, NB101Benchmark) and bench.name == "nb101" and bench.chance_accuracy == 10.0
    # the README's labelling of the Inception cell finds the stored (relabelled) record
    result = bench.query(INCEPTION_README)
    assert result.valid and result.key == INCEPTION_STORED.graph_hash()
    assert result.val_acc == result.val_acc_mean == pytest.approx(100 * np.mean(CELLS[0][1]))
    assert result.test_acc == pytest.approx(100 * np.mean(CELLS[0][2]))
    assert result.params_m == pytest.approx(2.694282) and result.train_time_s == pytest.approx(1001.0)
    noisy = {bench.query(INCEPTION_README, rng=np.random.default_rng(s)).val_acc for s in range(30)}
    assert sorted(noisy) == pytest.approx(sorted(100 * v for v in CELLS[0][1]))  # each seed drawn
    assert bench.n_queries == 1 and bench.n_lookups == 31
    # invalid: answered with the reason, not counted
    dead = bench.query(DAG(np.array([0, 2, 2, 2, 2, 2, 1]), np.zeros(21)))
    assert not dead.valid and dead.key is None and "not connected" in (dead.reason or "")
    # valid but absent from the (small) table: counted, with the stated reason
    other = SPACE.from_spec([[0, 1, 0], [0, 0, 1], [0, 0, 0]], ["input", MP, "output"])
    absent = bench.query(other)
    assert not absent.valid and absent.reason == NOT_IN_TABLE and absent.key == SPACE.canonical_key(other)
    assert bench.n_queries == 2 and len(bench.history) == 1
    # oracle
    oracle = bench.oracle
    assert oracle.key == BEST.graph_hash() and oracle.val_acc == pytest.approx(95.0)
    assert oracle.test_acc == pytest.approx(94.1)
    assert SPACE.canonical_key(oracle.cell) == oracle.key
    assert bench.peek(oracle.cell).val_acc_mean == pytest.approx(95.0)
    assert bench.lookup_hash(CHAIN.graph_hash()).val_acc_mean == pytest.approx(88.0)
    assert SPACE.to_spec(bench.cell_of_hash(TINY.graph_hash())) == TINY


def test_environment_episode(tfrecord: Path) -> None:
    env_module = pytest.importorskip("dgpo_env.envs.graph_denoise")
    bench = NB101Benchmark(path=tfrecord)
    env = env_module.GraphDenoiseEnv(benchmark=bench, n_steps=4)
    obs, _ = env.reset(seed=0)
    assert obs["nodes"].shape == (7,) and obs["edges"].shape == (21,)
    # steer the last step to the Inception cell (README labelling)
    for _ in range(3):
        _, reward, terminated, _, _ = env.step(env.action_space.sample())
        assert reward == 0.0 and not terminated
    _, reward, terminated, _, info = env.step(INCEPTION_README.flat())
    assert terminated and info["valid"] and info["key"] == INCEPTION_STORED.graph_hash()
    assert reward == pytest.approx(np.mean(CELLS[0][1]))  # fraction
    env.reset(seed=1)
    for _ in range(3):
        env.step(env.action_space.sample())
    _, reward, _, _, info = env.step(DAG(np.array([0, 2, 2, 2, 2, 2, 1]), np.zeros(21)).flat())
    assert reward == 0.0 and not info["valid"] and "not connected" in info["invalid_reason"]
