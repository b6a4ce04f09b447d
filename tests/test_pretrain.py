"""Pretraining, the diffusion model's reverse step and sampling, checkpoints and the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from agents.cli import main
from agents.diffusion.denoiser import DenoiserConfig
from agents.diffusion.model import CheckpointError, DiffusionModel, check_version_compatible
from agents.diffusion.pretrain import PretrainConfig, pretrain, select_training_cells
from agents.diffusion.sampling import accuracy_stats, cell_metrics, evaluate_model, training_cells
from dgpo_env.benchmarks import NB201Benchmark, ToyBenchmark
from dgpo_env.search_spaces import NB201SearchSpace, ToySearchSpace

TINY = DenoiserConfig(hidden_dim=16, edge_dim=8, n_layers=2, n_heads=2, time_dim=8)


def _toy_cells(n: int, seed: int = 0) -> list:
    """``n`` cells cycling through 8 random toy cells: a learnable training set."""
    space = ToySearchSpace()
    rng = np.random.default_rng(seed)
    distinct = [space.sample_uniform(rng) for _ in range(8)]
    return [distinct[i % 8] for i in range(n)]


CFG = PretrainConfig(epochs=8, batch_size=16, lr=5e-3, diffusion_steps=50, denoiser=TINY, val_every=4, seed=3)


@pytest.fixture(scope="module")
def toy_run() -> tuple[DiffusionModel, dict]:
    return pretrain(ToySearchSpace(), _toy_cells(160), CFG, progress=False)


def test_pretraining_reduces_the_loss(toy_run: tuple[DiffusionModel, dict]) -> None:
    _, history = toy_run
    assert len(history["train_loss"]) == 8 and history["val_epoch"] == [4, 8]
    assert history["train_loss"][-1] < 0.85 * history["train_loss"][0]
    assert history["val_loss"][-1] < history["val_loss"][0]
    assert history["n_train"] + history["n_val"] == 160 and history["n_val"] == 8


def test_pretraining_is_seed_deterministic(toy_run: tuple[DiffusionModel, dict]) -> None:
    model, history = toy_run
    torch.manual_seed(12345)  # the global RNG state must not matter
    again, history2 = pretrain(ToySearchSpace(), _toy_cells(160), CFG, progress=False)
    assert history2["train_loss"] == history["train_loss"] and history2["val_loss"] == history["val_loss"]
    for a, b in zip(model.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    _, history3 = pretrain(ToySearchSpace(), _toy_cells(160), PretrainConfig(**{**CFG.__dict__, "seed": 4}), False)
    assert history3["train_loss"] != history["train_loss"]


def test_prior_comes_from_training_cells(toy_run: tuple[DiffusionModel, dict]) -> None:
    model, _ = toy_run
    cells = _toy_cells(160)
    ops = np.concatenate([c.nodes[1:5] for c in cells])
    expected = np.bincount(ops, minlength=5)[2:] / ops.size
    np.testing.assert_allclose(model.noise.node_marginals[1, 2:].numpy(), expected)
    assert model.noise.node_marginals[0, 0] == 1.0  # the input node stays one-hot
    assert training_cells(model) == cells


def test_log_prob_matches_reverse_step_probs(toy_run: tuple[DiffusionModel, dict]) -> None:
    model, _ = toy_run
    samples = model.sample(8, 5, torch.Generator().manual_seed(0), return_trajectory=True)
    assert samples.trajectory is not None and len(samples.trajectory) == 6
    (nt, et), (ns, es) = samples.trajectory[2], samples.trajectory[3]
    t, s = int(samples.times[2]), int(samples.times[3])
    lp = model.log_prob(nt, et, t, ns, es, s)
    node_probs, edge_probs = model.reverse_step_probs(nt, et, t, s)
    manual = node_probs.gather(2, ns[..., None]).log().sum((1, 2)) + edge_probs.gather(2, es[..., None]).log().sum(
        (1, 2)
    )
    torch.testing.assert_close(lp, manual)
    assert torch.isfinite(lp).all() and (lp <= 0).all()
    lp.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_clean_log_prob_matches_softmax(toy_run: tuple[DiffusionModel, dict]) -> None:
    model, _ = toy_run
    cells = _toy_cells(4)
    nodes0 = torch.from_numpy(np.stack([c.nodes for c in cells]))
    edges0 = torch.from_numpy(np.stack([c.edges for c in cells]))
    nodes_t, edges_t = model.noise.forward_sample(nodes0, edges0, 25, torch.Generator().manual_seed(0))
    lp = model.clean_log_prob(nodes_t, edges_t, 25, nodes0, edges0)
    node_p, edge_p = model.clean_probs(nodes_t, edges_t, 25)
    manual = node_p.gather(2, nodes0[..., None]).log().sum((1, 2)) + edge_p.gather(2, edges0[..., None]).log().sum(
        (1, 2)
    )
    torch.testing.assert_close(lp, manual, rtol=1e-4, atol=1e-4)
    assert (lp < 0).all()


def test_sampling_respects_the_space_and_is_seeded() -> None:
    space = NB201SearchSpace()
    model = DiffusionModel.create(space, diffusion_steps=40, config=TINY, seed=0)
    a = model.sample(64, 8, torch.Generator().manual_seed(1), batch_size=20)
    b = model.sample(64, 8, torch.Generator().manual_seed(1), batch_size=20)
    assert torch.equal(a.nodes, b.nodes) and a.nodes.shape == (64, 8) and a.edges.shape == (64, 28)
    assert all(space.validate(d) is None for d in a.dags())  # masks + clamping: always valid
    assert a.times.tolist() == [40, 35, 30, 25, 20, 15, 10, 5, 0]


def test_select_training_cells_counts_queries() -> None:
    bench = NB201Benchmark("cifar10")
    frac = select_training_cells(bench, fraction=0.07, seed=0)
    assert len(frac.cells) == round(0.07 * 15_625) and frac.n_queries == 0 and bench.n_queries == 0
    filtered = select_training_cells(bench, max_val_acc=85.0)
    assert filtered.n_queries == 15_625 and bench.n_queries == 15_625
    assert 4000 < len(filtered.cells) < 5000
    assert all(bench.peek(c).val_acc_mean < 85.0 for c in filtered.cells[:200])
    with pytest.raises(ValueError, match="cannot list"):
        select_training_cells(ToyBenchmark())
    toy = select_training_cells(ToyBenchmark(), n_random=50, seed=0)
    assert 45 <= len(toy.cells) <= 50 and toy.n_queries == 0


def test_checkpoint_round_trip_and_errors(toy_run: tuple[DiffusionModel, dict], tmp_path: Path) -> None:
    model, _ = toy_run
    path = model.save(tmp_path / "sub" / "toy.pt")
    loaded = DiffusionModel.load(path, search_space="toy")
    nodes, edges = model.noise.prior_sample(4, torch.Generator().manual_seed(0))
    for a, b in zip(model.clean_probs(nodes, edges, 30), loaded.clean_probs(nodes, edges, 30), strict=True):
        torch.testing.assert_close(a, b)
    loaded.noise.check_compatible(model.noise)
    assert loaded.info["pretrain_config"]["epochs"] == 8
    with pytest.raises(CheckpointError, match="search space 'toy', not 'nb201'"):
        DiffusionModel.load(path, search_space=NB201SearchSpace())
    bad = tmp_path / "corrupt.pt"
    bad.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="not a readable dgpo-env checkpoint"):
        DiffusionModel.load(bad)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        DiffusionModel.load(tmp_path / "missing.pt")
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(CheckpointError, match="not a dgpo-env diffusion-model checkpoint"):
        DiffusionModel.load(foreign)
    old = model.checkpoint()
    old["package_version"] = "9.4.0"
    with pytest.raises(CheckpointError, match=r"dgpo-env 9\.4\.0"):
        DiffusionModel.from_checkpoint(old)
    check_version_compatible("0.1.0", "0.1.7")  # patch releases are compatible
    with pytest.raises(CheckpointError, match=r"major\.minor"):
        check_version_compatible("0.1.0", "0.2.0")


def test_metrics_on_known_cells() -> None:
    space = NB201SearchSpace()
    a, b, c = (space.from_code(code) for code in (0, 1, 2))
    m = cell_metrics(space, [a, a, b], train=[a, c])
    assert m["validity"] == 1.0 and m["uniqueness"] == pytest.approx(2 / 3) and m["novelty"] == 0.5
    # ops of a: six 'none'; b: five 'none' + one 'skip_connect'; train a, c: eleven 'none' + one conv1x1
    assert m["node_type_freq"]["none"] == pytest.approx(17 / 18)
    assert m["max_type_freq_gap_pp"] == pytest.approx(100 * (1 / 12))
    stats = accuracy_stats(list(range(1, 21)))
    assert stats == {"mean": 10.5, "median": 10.5, "max": 20.0, "top10_mean": 15.5}


def test_evaluate_model_reports_accuracies(toy_run: tuple[DiffusionModel, dict]) -> None:
    model, _ = toy_run
    bench = ToyBenchmark()
    metrics = evaluate_model(model, bench, n=30, n_steps=5, seed=0)
    assert metrics["n"] == 30 and 0.0 <= metrics["validity"] <= 1.0
    assert set(metrics["accuracy"]) == {"mean", "median", "max", "top10_mean"}
    assert metrics["random_accuracy"]["max"] <= 100.0
    assert bench.n_queries == 0  # analysis look-ups are not counted


def test_cli_pretrain_then_sample(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = tmp_path / "toy.pt"
    argv = ["pretrain", "--benchmark", "toy", "--n-random", "64", "--epochs", "1", "--diffusion-steps", "20"]
    argv += ["--layers", "1", "--width", "16", "--edge-width", "8", "--heads", "2", "--no-progress", "--out", str(ckpt)]
    assert main(argv) == 0
    assert '"selection_queries": 0' in capsys.readouterr().out
    assert main(["sample", str(ckpt), "-n", "10", "--steps", "4", "--show", "2"]) == 0
    out = capsys.readouterr().out
    assert "validity" in out and "val acc samples" in out
    assert main(["sample", str(tmp_path / "nope.pt")]) == 2
