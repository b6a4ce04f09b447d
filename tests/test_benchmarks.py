import numpy as np
import pytest

from dgpo_env.benchmarks import (
    BenchmarkDataError,
    CacheWarning,
    NB201Benchmark,
    ToyBenchmark,
    make_benchmark,
    nb201_data,
)
from dgpo_env.search_spaces import DAG

ORACLES = {"cifar10": (91.6067, 6111), "cifar100": (73.4933, 9930), "imagenet16": (46.7333, 10676)}


@pytest.mark.parametrize("dataset", sorted(ORACLES))
def test_nb201_oracles(dataset):
    bench = NB201Benchmark(dataset)
    value, index = ORACLES[dataset]
    assert round(bench.oracle.val_acc, 4) == value
    assert bench.oracle.index == index
    assert bench.search_space.to_index(bench.oracle.cell) == index
    assert bench.n_queries == 0  # the oracle is not a query


def test_query_counting_distinct_and_total():
    bench = NB201Benchmark("cifar10")
    space = bench.search_space
    a, b = space.from_index(6111), space.from_index(0)
    first = bench.query(a)
    assert round(first.val_acc, 4) == 91.6067 and first.index == 6111 and first.test_acc is None
    bench.query(a)
    bench.query(b)
    assert (bench.n_queries, bench.n_lookups) == (2, 3)
    assert [r.key for r in bench.history] == [space.to_arch_str(a), space.to_arch_str(b)]
    assert bench.best_so_far().tolist() == [first.val_acc, first.val_acc]
    bench.peek(space.from_index(5))
    assert bench.n_queries == 2  # peek is not counted
    bench.reset_counter()
    assert (bench.n_queries, bench.n_lookups, bench.history) == (0, 0, [])


def test_invalid_cells_are_not_looked_up():
    bench = NB201Benchmark("cifar10")
    bad = DAG([0, 0, 2, 2, 2, 2, 2, 1], bench.search_space.fixed_edges)
    result = bench.query(bad)
    assert not result.valid and "op nodes [1]" in result.reason
    assert bench.n_lookups == 0
    with pytest.raises(ValueError, match="8 nodes"):
        bench.query(DAG([0, 1], [1]))


def test_noisy_mode_draws_a_seed_with_the_callers_rng():
    bench = NB201Benchmark("cifar10")
    cell = bench.search_space.from_index(6111)
    seeds = nb201_data.packaged_table("cifar10").val_acc_seeds[6111]
    draws = {bench.query(cell, rng=np.random.default_rng(s)).val_acc for s in range(30)}
    assert draws == set(seeds[~np.isnan(seeds)].tolist())
    again = [bench.query(cell, rng=np.random.default_rng(7)).val_acc for _ in range(2)]
    assert again[0] == again[1]


def test_cache_is_written_once_and_reused(monkeypatch, tmp_path):
    monkeypatch.setenv("DGPO_CACHE_DIR", str(tmp_path))
    nb201_data._packaged_arrays.cache_clear()
    try:
        nb201_data.packaged_table("cifar10")
        files = list(tmp_path.glob("nb201-*.npz"))
        assert len(files) == 1
        nb201_data._packaged_arrays.cache_clear()

        def refuse() -> None:
            raise AssertionError("the package pickles must not be read again")

        monkeypatch.setattr(nb201_data, "_convert_package", refuse)
        table = nb201_data.packaged_table("cifar100")
        assert round(float(np.nanmax(table.val_acc)), 4) == 73.4933
    finally:
        nb201_data._packaged_arrays.cache_clear()


def test_damaged_cache_is_rebuilt(monkeypatch, tmp_path):
    monkeypatch.setenv("DGPO_CACHE_DIR", str(tmp_path))
    nb201_data._packaged_arrays.cache_clear()
    try:
        nb201_data.packaged_table("cifar10")
        (path,) = tmp_path.glob("nb201-*.npz")
        path.write_bytes(b"not a zip file")
        nb201_data._packaged_arrays.cache_clear()
        with pytest.warns(CacheWarning, match="damaged benchmark cache file"):
            assert nb201_data.packaged_table("cifar10").val_acc_seeds.shape == (15_625, 3)
    finally:
        nb201_data._packaged_arrays.cache_clear()


def test_extended_table_errors(tmp_path):
    with pytest.raises(BenchmarkDataError, match="not found"):
        NB201Benchmark("cifar10", table_path=tmp_path / "missing.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"junk")
    with pytest.raises(BenchmarkDataError, match=r"not a readable \.npz"):
        NB201Benchmark("cifar10", table_path=junk)
    partial = tmp_path / "partial.npz"
    np.savez(partial, config_id=np.array(["000000"]))
    with pytest.raises(BenchmarkDataError, match="lacks columns"):
        NB201Benchmark("cifar10", table_path=partial)
    with pytest.raises(ValueError, match="unknown NB201 dataset"):
        NB201Benchmark("mnist")
    with pytest.raises(ValueError, match="unknown benchmark"):
        make_benchmark("nb999")


EXPECTED_TEST = {"cifar10": (91.6067, 6111), "cifar100": (73.4933, 9930), "imagenet16": (46.7333, 10676)}


@pytest.mark.parametrize("dataset", sorted(EXPECTED_TEST))
def test_extended_table_agrees_and_adds_test_accuracy(dataset, nb201_table_path):
    ext = NB201Benchmark(dataset, table_path=nb201_table_path)
    packaged = NB201Benchmark(dataset)
    assert ext.oracle.index == packaged.oracle.index == EXPECTED_TEST[dataset][1]
    assert abs(ext.oracle.val_acc - packaged.oracle.val_acc) < 1e-3
    data = np.load(nb201_table_path)
    tag = nb201_data.DATASETS[dataset][1]
    assert ext.oracle.test_acc == pytest.approx(float(data[f"{tag}_test_acc"][ext.oracle.index]))
    assert np.array_equal(data["index"], np.arange(15_625))
    # the package's key order is the official index order
    assert [packaged.search_space.to_config_id(packaged.search_space.from_index(i)) for i in range(50)] == [
        str(c) for c in data["config_id"][:50]
    ]


def test_oracle_test_accuracies_from_extended_table(nb201_table_path):
    assert NB201Benchmark("cifar10", table_path=nb201_table_path).oracle.test_acc == pytest.approx(91.09, abs=0.01)
    assert NB201Benchmark("cifar100", table_path=nb201_table_path).oracle.test_acc == pytest.approx(73.5133, abs=1e-3)


def test_toy_benchmark_has_a_unique_known_optimum():
    bench = ToyBenchmark()
    oracle = bench.oracle
    assert bench.query(oracle.cell).val_acc == 100.0
    rng = np.random.default_rng(0)
    scores = [bench.query(bench.search_space.sample_uniform(rng)).val_acc for _ in range(500)]
    assert max(scores) < 90.0  # random search does not find the optimum in a handful of tries
    assert 35.0 < np.mean(scores) < 50.0
    for neighbour in bench.search_space.neighbours(oracle.cell):
        assert bench.score(neighbour) < 100.0
