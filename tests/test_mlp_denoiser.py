"""The MLP denoiser: shapes and masks, checkpoints that name their architecture, pretraining, the CLI flag."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn.functional import one_hot

from agents.cli import main
from agents.diffusion import architectures
from agents.diffusion.architectures import (
    TRAINING_BYTES_PER_PARAMETER,
    build_denoiser,
    check_trainable,
    count_parameters,
    denoiser_config_from_dict,
)
from agents.diffusion.denoiser import DenoiserConfig, GraphTransformerDenoiser
from agents.diffusion.mlp_denoiser import MLPDenoiser, MLPDenoiserConfig
from agents.diffusion.model import CheckpointError, DiffusionModel
from agents.diffusion.pretrain import PretrainConfig, pretrain
from dgpo_env.search_spaces import NB201SearchSpace, ToySearchSpace

SMALL = MLPDenoiserConfig(hidden_dim=32, n_blocks=2, time_dim=8)


def _noisy_batch(space: NB201SearchSpace | ToySearchSpace, batch: int, seed: int) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(seed)
    nodes = torch.randint(0, space.n_node_types, (batch, space.n_nodes), generator=generator)
    edges = torch.randint(0, space.n_edge_types, (batch, space.n_edges), generator=generator)
    t_frac = torch.rand(batch, generator=generator)
    return one_hot(nodes, space.n_node_types).float(), one_hot(edges, space.n_edge_types).float(), t_frac


@pytest.mark.parametrize("space", [NB201SearchSpace(), ToySearchSpace()], ids=["nb201", "toy"])
def test_logits_have_the_spaces_shapes_and_masks(space: NB201SearchSpace | ToySearchSpace) -> None:
    net = MLPDenoiser.for_space(space, SMALL)
    nodes, edges, t_frac = _noisy_batch(space, 5, seed=0)
    node_logits, edge_logits = net(nodes, edges, t_frac)
    assert node_logits.shape == (5, space.n_nodes, space.n_node_types)
    assert edge_logits.shape == (5, space.n_edges, space.n_edge_types)
    node_allowed, edge_allowed = (torch.from_numpy(a.copy()) for a in space.allowed)
    assert bool(torch.isneginf(node_logits[:, ~node_allowed]).all()) and bool(
        torch.isfinite(node_logits[:, node_allowed]).all()
    )
    assert bool(torch.isneginf(edge_logits[:, ~edge_allowed]).all()) and bool(
        torch.isfinite(edge_logits[:, edge_allowed]).all()
    )
    fixed = node_allowed.sum(1) == 1  # a fixed position's single value has probability exactly 1
    assert bool((node_logits.softmax(-1)[:, fixed].max(-1).values == 1.0).all())
    with pytest.raises(ValueError, match="nodes must be"):
        net(nodes[:, :-1], edges, t_frac)
    with pytest.raises(ValueError, match="t_frac must be"):
        net(nodes, edges, t_frac[:-1])


def test_the_network_reads_every_input() -> None:
    """Changing one node, one edge or the time changes the logits (no input is ignored)."""
    space = NB201SearchSpace()
    net = MLPDenoiser.for_space(space, SMALL)
    nodes, edges, t_frac = _noisy_batch(space, 1, seed=1)
    base = torch.cat([x[torch.isfinite(x)] for x in net(nodes, edges, t_frac)])
    other_nodes = nodes.clone()
    other_nodes[0, 3] = one_hot(torch.tensor((int(nodes[0, 3].argmax()) + 1) % space.n_node_types), space.n_node_types)
    for changed in (net(other_nodes, edges, t_frac), net(nodes, edges, t_frac + 0.1), net(nodes, 1 - edges, t_frac)):
        assert not torch.allclose(torch.cat([x[torch.isfinite(x)] for x in changed]), base)


def test_checkpoint_names_the_architecture_and_round_trips(tmp_path: Path) -> None:
    model = DiffusionModel.create(NB201SearchSpace(), diffusion_steps=100, config=SMALL, seed=3)
    path = model.save(tmp_path / "mlp.pt")
    data = torch.load(path, weights_only=True)
    assert data["denoiser_config"] == {
        "architecture": "mlp",
        "hidden_dim": 32,
        "n_blocks": 2,
        "time_dim": 8,
        "dropout": 0.0,
    }
    again = DiffusionModel.load(path)
    assert isinstance(again.denoiser, MLPDenoiser) and again.denoiser.config == SMALL
    samples = model.sample(4, n_steps=5, generator=torch.Generator().manual_seed(0))
    for a, b in zip(
        model.logits(samples.nodes, samples.edges, 50), again.logits(samples.nodes, samples.edges, 50), strict=True
    ):
        assert torch.equal(a, b)
    data["denoiser_config"] = {**data["denoiser_config"], "architecture": "rnn"}
    with pytest.raises(CheckpointError, match="unknown denoiser architecture 'rnn'"):
        DiffusionModel.from_checkpoint(data)


def test_untagged_configurations_are_transformers() -> None:
    """Checkpoints written before the MLP existed carry no tag and still load as the transformer."""
    assert denoiser_config_from_dict(DenoiserConfig().to_dict()) == DenoiserConfig()
    assert "architecture" not in DenoiserConfig().to_dict()
    assert denoiser_config_from_dict(SMALL.to_dict()) == SMALL
    assert isinstance(build_denoiser(ToySearchSpace(), None), GraphTransformerDenoiser)
    assert isinstance(build_denoiser(ToySearchSpace(), SMALL), MLPDenoiser)
    with pytest.raises(TypeError, match="DenoiserConfig or an MLPDenoiserConfig"):
        build_denoiser(ToySearchSpace(), {"hidden_dim": 8})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown MLPDenoiserConfig fields"):
        denoiser_config_from_dict({"architecture": "mlp", "n_layers": 2})


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("hidden_dim", 2.0, TypeError),
        ("n_blocks", 0, ValueError),
        ("time_dim", 7, ValueError),
        ("dropout", 1.0, ValueError),
        ("hidden_dim", True, TypeError),
    ],
)
def test_config_is_validated_not_coerced(field: str, value: object, error: type[Exception]) -> None:
    with pytest.raises(error, match=field):
        MLPDenoiserConfig(**{field: value})  # type: ignore[arg-type]


def test_pretraining_an_mlp_lowers_the_loss_and_records_the_architecture() -> None:
    space = ToySearchSpace()
    rng = np.random.default_rng(0)
    distinct = [space.sample_uniform(rng) for _ in range(8)]  # a learnable training set
    cells = [distinct[i % 8] for i in range(160)]
    config = PretrainConfig(epochs=8, batch_size=32, lr=4e-3, diffusion_steps=100, val_every=4, denoiser=SMALL)
    model, history = pretrain(space, cells, config, progress=False)
    assert isinstance(model.denoiser, MLPDenoiser)
    assert history["train_loss"][-1] < 0.85 * history["train_loss"][0]
    assert model.info["pretrain_config"]["denoiser"]["architecture"] == "mlp"


def test_cli_pretrains_an_mlp_and_refuses_transformer_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "mlp.pt"
    flags = ["--denoiser", "mlp", "--width", "16", "--layers", "1", "--train-steps", "2", "--no-progress"]
    assert main(["pretrain", "--space", "toy", "--n-random", "200", *flags, "--out", str(out)]) == 0
    model = DiffusionModel.load(out)
    assert isinstance(model.denoiser, MLPDenoiser)
    assert (model.denoiser.config.hidden_dim, model.denoiser.config.n_blocks) == (16, 1)
    bad = ["pretrain", "--space", "toy", "--n-random", "200", "--denoiser", "mlp", "--heads", "2"]
    assert main([*bad, "--out", str(tmp_path / "x.pt")]) != 0
    assert "--heads: transformer-only flags" in capsys.readouterr().err
    assert not (tmp_path / "x.pt").exists()


@pytest.mark.parametrize("config", [None, SMALL, DenoiserConfig(hidden_dim=16, edge_dim=8, n_layers=1, n_heads=2)])
def test_parameters_are_counted_without_building_the_weights(config: DenoiserConfig | MLPDenoiserConfig | None) -> None:
    space = NB201SearchSpace()
    assert count_parameters(space, config) == build_denoiser(space, config).n_parameters()


def test_a_network_too_large_for_the_machine_is_refused_before_training(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    space = ToySearchSpace()
    needed = count_parameters(space, SMALL) * TRAINING_BYTES_PER_PARAMETER
    monkeypatch.setattr(architectures, "physical_memory_bytes", lambda: needed - 1)
    with pytest.raises(ValueError, match=r"needs at least .* GiB to train .* --width, --layers"):
        pretrain(space, [space.sample_uniform(np.random.default_rng(0))], PretrainConfig(steps=1, denoiser=SMALL))
    monkeypatch.setattr(architectures, "physical_memory_bytes", lambda: needed)
    assert check_trainable(space, SMALL) == count_parameters(space, SMALL)
    out = tmp_path / "huge.pt"
    monkeypatch.setattr(architectures, "physical_memory_bytes", lambda: 2**10)
    assert main(["pretrain", "--space", "nb201", "--denoiser", "mlp", "--out", str(out), "--no-progress"]) == 2
    assert "choose a smaller network" in capsys.readouterr().err and not out.exists()
