"""The peer optimisers (tpe, smac): encoding, ask/tell rules, harness registration, the optional extra."""

from __future__ import annotations

import logging
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest

from agents.baselines.base import PROPOSALS_PER_QUERY, SearchResult
from agents.baselines.peers import PEERS_INSTALL, AskTellSearcher, CategoricalEncoding, Proposer
from agents.cli import main as cli_main
from agents.compare import PEER_METHODS, available_methods, get_method, run_comparison
from agents.harness import registry as harness_registry
from dgpo_env.benchmarks import NB201Benchmark, ToyBenchmark
from dgpo_env.search_spaces import DAG, NB101SearchSpace, NB201SearchSpace, SearchSpace, ToySearchSpace
from dgpo_env.search_spaces.nb201 import NB201_OPS


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Undo registrations and resolutions made by a test."""
    monkeypatch.setattr(harness_registry, "_REGISTRY", dict(harness_registry._REGISTRY))
    monkeypatch.setattr(harness_registry, "_RESOLVED", dict(harness_registry._RESOLVED))


# ---------------------------------------------------------------------------------------------- encoding
def test_nb201_is_six_categoricals_of_five_ops() -> None:
    encoding = CategoricalEncoding(NB201SearchSpace())
    assert [c.name for c in encoding.choices] == [f"node{i}" for i in range(1, 7)]
    assert all(c.labels == NB201_OPS for c in encoding.choices)


@pytest.mark.parametrize("space", [NB201SearchSpace(), NB101SearchSpace(), ToySearchSpace()], ids=lambda s: s.name)
def test_encoding_round_trips_cells(space: SearchSpace) -> None:
    encoding = CategoricalEncoding(space)
    assert [c.position for c in encoding.choices] == space.free_positions.tolist()
    rng = np.random.default_rng(0)
    for _ in range(20):
        cell = space.sample_uniform(rng)
        assignment = encoding.encode(cell)
        assert set(assignment) == {c.name for c in encoding.choices}
        assert encoding.decode(assignment) == cell


def test_nb101_has_op_nodes_and_edge_bits() -> None:
    encoding = CategoricalEncoding(NB101SearchSpace())
    nodes = [c for c in encoding.choices if c.name.startswith("node")]
    edges = [c for c in encoding.choices if c.name.startswith("edge")]
    assert len(nodes) == 5 and all(len(c.labels) == 3 for c in nodes)
    assert len(edges) == 21 and all(c.labels == ("0", "1") for c in edges) and edges[0].name == "edge0-1"


def test_decode_rejects_bad_assignments() -> None:
    encoding = CategoricalEncoding(NB201SearchSpace())
    good = {c.name: "none" for c in encoding.choices}
    with pytest.raises(ValueError, match="no value for 'node6'"):
        encoding.decode({k: v for k, v in good.items() if k != "node6"})
    with pytest.raises(ValueError, match="is not one of"):
        encoding.decode({**good, "node1": "conv7x7"})


# ---------------------------------------------------------------------------------------------- ask/tell
class _Scripted(Proposer):
    """Proposes the given cells in turn, forever; records what it was told."""

    def __init__(self, encoding: CategoricalEncoding, cells: list[Mapping[str, object]]) -> None:
        self.cells, self.told, self.closed, self._i = cells, [], False, 0

    def ask(self) -> Mapping[str, object]:
        cell = self.cells[self._i % len(self.cells)]
        self._i += 1
        return cell

    def tell(self, value: float | None) -> None:
        self.told.append(value)

    def close(self) -> None:
        self.closed = True


class _ScriptedSearch(AskTellSearcher):
    name = "scripted"

    def __init__(self, cells: list[DAG], proposals_per_query: int = PROPOSALS_PER_QUERY) -> None:
        super().__init__(proposals_per_query)
        self.cells = cells
        self.proposer: _Scripted | None = None

    def _proposer(self, encoding: CategoricalEncoding, seed: int, max_queries: int) -> Proposer:
        self.proposer = _Scripted(encoding, [encoding.encode(c) for c in self.cells])
        return self.proposer


def test_a_repeated_cell_is_free_and_told_its_known_value() -> None:
    toy = ToyBenchmark()
    cell = toy.search_space.sample_uniform(np.random.default_rng(1))
    searcher = _ScriptedSearch([cell], proposals_per_query=3)
    result = searcher.run(toy, seed=0, max_queries=4)
    assert result.n_queries == 1 == toy.n_queries  # one distinct cell, however often proposed
    assert result.n_proposals == 12 == result.n_lookups and result.stop_reason == "proposal_cap"
    assert searcher.proposer is not None and searcher.proposer.closed
    assert searcher.proposer.told == [toy.peek(cell).val_acc_mean] * 12


def test_an_invalid_cell_is_answered_without_a_look_up() -> None:
    toy = ToyBenchmark()
    space = toy.search_space
    invalid = space.from_flat(space.fixed_values)  # no edges: the input does not reach the output
    assert space.validate(invalid) is not None
    valid = space.sample_uniform(np.random.default_rng(2))
    searcher = _ScriptedSearch([invalid, valid], proposals_per_query=2)
    result = searcher.run(toy, seed=0, max_queries=3)
    assert result.n_queries == 1 and result.n_lookups == 3 and result.n_proposals == 6
    assert searcher.proposer is not None and searcher.proposer.told[::2] == [None] * 3


class _SeedRecorder(_ScriptedSearch):
    def _proposer(self, encoding: CategoricalEncoding, seed: int, max_queries: int) -> Proposer:
        self.seeds = [*getattr(self, "seeds", []), seed]
        return super()._proposer(encoding, seed, max_queries)


def test_the_run_seed_seeds_the_optimiser_and_is_validated() -> None:
    toy = ToyBenchmark()
    searcher = _SeedRecorder([toy.search_space.sample_uniform(np.random.default_rng(1))], proposals_per_query=1)
    searcher.run(toy, seed=2**32 - 1, max_queries=2)
    searcher.run(toy, seed=np.int64(7), max_queries=2)
    assert searcher.seeds == [2**32 - 1, 7]
    with pytest.raises(ValueError, match=r"seed must be an integer in 0 \.\. 4294967295"):
        searcher.run(toy, seed=2**32, max_queries=2)
    with pytest.raises(TypeError, match="seed must be an integer"):
        searcher.run(toy, seed=1.5, max_queries=2)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------- registry
def test_peers_are_listed_without_importing_them() -> None:
    assert set(PEER_METHODS) == {"tpe", "smac", "nsga2", "motpe"} <= set(available_methods())


@pytest.mark.parametrize(("method", "package"), [("tpe", "optuna"), ("smac", "smac")])
def test_missing_extra_is_one_clear_line(
    method: str,
    package: str,
    registry: None,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setitem(sys.modules, package, None)  # makes `import <package>` fail
    monkeypatch.delitem(sys.modules, f"agents.baselines.{method}", raising=False)
    monkeypatch.delitem(harness_registry._RESOLVED, method, raising=False)  # resolved by an earlier test
    with pytest.raises(ValueError, match=r"needs .*not installed") as err:
        get_method(method)
    assert str(err.value) == f"method {method!r} needs {package}, which is not installed: {PEERS_INSTALL}"
    argv = ["compare", "--env", "toy", "--algos", f"rs,{method}", "--jobs", "1", "--out", str(tmp_path / "o")]
    assert cli_main(argv) == 2
    err_text = capsys.readouterr().err
    assert err_text.strip().splitlines() == [f"dgpo compare: error: {err.value}"]
    assert 'pip install "dgpo-env[peers]"' in err_text
    assert not (tmp_path / "o").exists()  # refused before anything was run or written
    assert cli_main(["compare", "--env", "toy", "--algos", "nope", "--jobs", "1", "--out", str(tmp_path)]) == 2
    assert method in capsys.readouterr().err  # the list of methods still works
    assert method not in harness_registry.installed_peer_methods()


# ---------------------------------------------------------------------------------------------- tpe
def test_tpe_spends_the_budget_exactly_and_reproduces() -> None:
    pytest.importorskip("optuna")
    from agents.baselines.tpe import TPESearch

    toy = ToyBenchmark()
    first = TPESearch().run(toy, seed=5, max_queries=30)
    again = TPESearch().run(toy, seed=5, max_queries=30)
    other = TPESearch().run(toy, seed=6, max_queries=30)
    assert first.n_queries == 30 == len(first.curve) and first.stop_reason == "budget"
    assert first.n_proposals >= first.n_lookups >= first.n_queries
    assert (first.curve, first.n_lookups, first.n_proposals) == (again.curve, again.n_lookups, again.n_proposals)
    assert first.curve != other.curve
    assert first.settings["sampler"] == "TPESampler (defaults)" and first.settings["proposals_per_query"] == 50


def test_tpe_repeats_are_free_on_nb201(capfd: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("optuna")
    from agents.baselines.tpe import TPESearch

    level = logging.getLogger("optuna").level
    nb201 = NB201Benchmark("cifar10")
    result = TPESearch().run(nb201, seed=0, max_queries=60)
    assert result.n_queries == 60 == nb201.n_queries and result.n_lookups > 60  # it re-proposed known cells
    assert result.best_val_acc is not None and result.best_val_acc > 90.0
    assert "Trial" not in capfd.readouterr().err  # Optuna's per-trial INFO lines stay quiet
    assert logging.getLogger("optuna").level == level  # and its level is restored


def test_tpe_in_the_harness_workers_and_resume(tmp_path: Path) -> None:
    pytest.importorskip("optuna")
    serial = run_comparison("toy", ["tpe"], 2, 20, n_jobs=1, out_dir=tmp_path / "a", progress=False, echo=False)
    workers = run_comparison("toy", ["tpe"], 2, 20, n_jobs=2, out_dir=tmp_path / "b", progress=False, echo=False)
    assert [r.curve for r in serial.runs["tpe"]] == [r.curve for r in workers.runs["tpe"]]
    assert all(r.n_queries == 20 and r.method == "tpe" for r in serial.runs["tpe"])
    resumed = run_comparison("toy", ["tpe"], 2, 20, n_jobs=1, out_dir=tmp_path / "a", resume=True, progress=False)
    assert [r.to_dict() for r in resumed.runs["tpe"]] == [r.to_dict() for r in serial.runs["tpe"]]
    assert isinstance(get_method("tpe")({"name": "toy"}, 0, 5), SearchResult)


# ---------------------------------------------------------------------------------------------- smac
def test_smac_spends_the_budget_exactly_reproduces_and_cleans_up(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("smac")
    from agents.baselines.smac import SMACSearch

    scratch = Path(tempfile.mkdtemp(prefix="dgpo-test-smac-"))
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # SMAC's run files go to a temporary directory
    monkeypatch.chdir(scratch)
    toy = ToyBenchmark()
    first = SMACSearch().run(toy, seed=3, max_queries=8)
    again = SMACSearch().run(toy, seed=3, max_queries=8)
    assert first.n_queries == 8 == len(first.curve) and first.stop_reason == "budget"
    assert first.n_proposals >= first.n_lookups >= first.n_queries
    assert (first.curve, first.n_lookups, first.n_proposals) == (again.curve, again.n_lookups, again.n_proposals)
    assert first.settings["facade"].startswith("HyperparameterOptimizationFacade")
    assert list(scratch.iterdir()) == []  # no smac3_output/ and no leftover run directory


def test_smac_in_the_harness() -> None:
    pytest.importorskip("smac")
    c = run_comparison("nb201:cifar10", ["smac"], [1], 6, n_jobs=1, progress=False, echo=False)
    (run,) = c.runs["smac"]
    assert run.method == "smac" and run.seed == 1 and run.n_queries == 6 and run.best_val_acc is not None
