"""Agent files run no code, a diverged training stops, and no save destroys the previous file."""

from __future__ import annotations

import base64
import io
import json
import os
import zipfile
from pathlib import Path

import cloudpickle
import numpy as np
import pytest
import torch

from agents.cli import main
from agents.dgpo import DGPO
from agents.dgpo.elite import EliteDGPO
from agents.dgpo.files import META, MODEL, STATE, AgentFileError, UnsafeAgentFileError
from agents.dgpo.variants import make_dgpo
from agents.diffusion.denoiser import DenoiserConfig
from agents.diffusion.model import CheckpointError, DiffusionModel, DivergenceError
from agents.diffusion.pretrain import PretrainConfig, pretrain_on_benchmark
from dgpo_env.benchmarks import ToyBenchmark
from dgpo_env.search_spaces import NB201SearchSpace, ToySearchSpace

TINY = DenoiserConfig(hidden_dim=16, edge_dim=8, n_layers=2, n_heads=2, time_dim=8)
TOY = "dgpo_env/ToyDAG-v0"
NB201 = "dgpo_env/NB201-CIFAR10-v0"


@pytest.fixture(scope="module")
def toy_model() -> DiffusionModel:
    return DiffusionModel.create(ToySearchSpace(), diffusion_steps=100, config=TINY, seed=0)


@pytest.fixture(scope="module")
def nb201_model() -> DiffusionModel:
    return DiffusionModel.create(NB201SearchSpace(), diffusion_steps=100, config=TINY, seed=0)


class _Payload:
    """Unpickling this creates ``marker``: the proof that a loader ran code from the file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (Path.write_text, (str(self.marker), "pwned"))  # type: ignore[return-value]


def _payload_bytes(marker: Path) -> bytes:
    return cloudpickle.dumps(_Payload(marker))


def _trained_dgpo(model: DiffusionModel) -> DGPO:
    agent = DGPO.for_env_id(model, TOY, n_envs=4, n_steps=4, batch_size=8, learning_rate=1e-3, seed=7)
    return agent.learn(2 * 8 * 4)


# ---------------------------------------------------------------------------------------------- security
def test_an_sb3_style_file_with_a_pickle_payload_is_refused_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    data = {
        "policy_class": {":type:": "<class 'abc.ABCMeta'>", ":serialized:": base64.b64encode(b"x").decode()},
        "policy_kwargs": {
            ":type:": "<class 'dict'>",
            ":serialized:": base64.b64encode(_payload_bytes(marker)).decode(),
        },
    }
    path = tmp_path / "agent.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("data", json.dumps(data))
        archive.writestr("policy.pth", b"")
    for cls in (DGPO, EliteDGPO):
        with pytest.raises(
            UnsafeAgentFileError, match=r"agent\.zip carries pickled Python objects.*may run arbitrary code"
        ):
            cls.load(path)
    with pytest.raises(UnsafeAgentFileError, match="only Stable-Baselines3's own loaders"):
        DGPO.load(tmp_path / "agent")  # .zip is appended, as SB3 does
    assert not marker.exists()


def test_a_payload_inside_a_dgpo_file_is_refused_and_never_run(toy_model: DiffusionModel, tmp_path: Path) -> None:
    agent = _trained_dgpo(toy_model)
    good = tmp_path / "good.zip"
    agent.save(good)
    with zipfile.ZipFile(good) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    assert set(members) == {META, MODEL, STATE}
    marker = tmp_path / "marker"
    for name in (MODEL, STATE):  # a torch member whose pickle calls a function
        bad = tmp_path / f"bad-{name}.zip"
        buffer = io.BytesIO()
        torch.save(_Payload(marker), buffer)
        with zipfile.ZipFile(bad, "w") as archive:
            for member, data in members.items():
                archive.writestr(member, buffer.getvalue() if member == name else data)
        with pytest.raises(UnsafeAgentFileError, match=rf"member '{name}' carries pickled Python objects"):
            DGPO.load(bad)
    # a serialized entry smuggled into the JSON is refused too
    meta = json.loads(members[META])
    meta["policy_kwargs"] = {"net_arch": {":serialized:": base64.b64encode(_payload_bytes(marker)).decode()}}
    smuggled = tmp_path / "smuggled.zip"
    with zipfile.ZipFile(smuggled, "w") as archive:
        for member, data in members.items():
            archive.writestr(member, json.dumps(meta) if member == META else data)
    with pytest.raises(UnsafeAgentFileError, match=r"':serialized:' at 'policy_kwargs.net_arch'"):
        DGPO.load(smuggled)
    assert not marker.exists()


def test_other_bad_agent_files_are_refused_with_a_message(tmp_path: Path) -> None:
    with pytest.raises(AgentFileError, match="no agent file at"):
        DGPO.load(tmp_path / "missing.zip")
    (tmp_path / "text.zip").write_text("hello")
    with pytest.raises(AgentFileError, match="not a zip archive"):
        DGPO.load(tmp_path / "text.zip")
    with zipfile.ZipFile(tmp_path / "sb3.zip", "w") as archive:
        archive.writestr("data", json.dumps({"n_envs": 1}))
    with pytest.raises(AgentFileError, match="is a Stable-Baselines3 agent file"):
        DGPO.load(tmp_path / "sb3.zip")


def test_a_dgpo_agent_round_trips_settings_weights_and_state(toy_model: DiffusionModel, tmp_path: Path) -> None:
    agent = _trained_dgpo(toy_model)
    assert agent.normalizer.n_updates > 0
    agent.save(tmp_path / "dgpo")
    with zipfile.ZipFile(tmp_path / "dgpo.zip") as archive:  # plain data: JSON and weights-only tensors
        meta = json.loads(archive.read(META))
        torch.load(io.BytesIO(archive.read(STATE)), weights_only=True)
    assert meta["class"] == "DGPO" and meta["settings"]["config"]["learning_rate"] == 1e-3
    loaded = DGPO.load(tmp_path / "dgpo")  # no environment: predict only
    assert loaded.get_env() is None
    assert loaded.config == agent.config and loaded.max_queries == agent.max_queries
    assert loaded.normalizer == agent.normalizer and loaded.best == agent.best
    assert loaded.num_timesteps == agent.num_timesteps and loaded._n_updates == agent._n_updates
    assert loaded.n_queries == agent.n_queries
    for (name, a), (_, b) in zip(agent.policy.state_dict().items(), loaded.policy.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    for a, b in zip(
        agent.policy.optimizer.state_dict()["state"].values(),
        loaded.policy.optimizer.state_dict()["state"].values(),
        strict=True,
    ):
        assert all(torch.equal(a[k], b[k]) for k in a)
    assert torch.equal(agent._generator.get_state(), loaded._generator.get_state())
    env = agent.get_env()
    assert env is not None
    loaded.set_env(env)
    loaded.learn(8 * 4, reset_num_timesteps=False)
    assert loaded.num_timesteps == agent.num_timesteps + 32


def test_an_elite_agent_round_trips_its_archive(nb201_model: DiffusionModel, tmp_path: Path) -> None:
    agent = make_dgpo("elite", nb201_model, NB201, n_envs=4, n_steps=3, batch_size=4, anchor_after=2, seed=0)
    assert isinstance(agent, EliteDGPO)
    agent.learn(3 * 4 * 3)
    assert len(agent.archive) > 0
    agent.save(tmp_path / "elite.zip")
    loaded = EliteDGPO.load(tmp_path / "elite.zip", env=agent.get_env())
    assert loaded.elite == agent.elite and loaded.config == agent.config
    assert loaded.archive.scores == agent.archive.scores and loaded.archive.n_nodes == agent.archive.n_nodes
    for key, cell in agent.archive.cells.items():
        np.testing.assert_array_equal(loaded.archive.cells[key], cell)
    assert loaded.normalizer == agent.normalizer
    for a, b in zip(agent.policy.parameters(), loaded.policy.parameters(), strict=True):
        assert torch.equal(a, b)


# ---------------------------------------------------------------------------------------------- nothing lost
def test_a_failed_agent_save_keeps_the_previous_file(
    toy_model: DiffusionModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent = _trained_dgpo(toy_model)
    path = tmp_path / "agent.zip"
    agent.save(path)
    before = path.read_bytes()

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    agent.learn(8 * 4)
    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left"):
        agent.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["agent.zip"]
    assert DGPO.load(path).num_timesteps == 2 * 8 * 4


def _nan_model() -> tuple[DiffusionModel, str]:
    """A model with one NaN weight, and that weight's name."""
    model = DiffusionModel.create(ToySearchSpace(), diffusion_steps=50, config=TINY, seed=0)
    name, weight = next(iter(model.denoiser.named_parameters()))
    with torch.no_grad():
        weight.view(-1)[0] = float("nan")
    return model, name


def test_non_finite_weights_are_refused_on_save_and_on_load(tmp_path: Path) -> None:
    model, name = _nan_model()
    path = tmp_path / "model.pt"
    path.write_bytes(b"previous")
    with pytest.raises(CheckpointError, match=rf"refusing to save .*NaN or infinite values \(first: '{name}'\)"):
        model.save(path)
    assert path.read_bytes() == b"previous"
    torch.save(model.checkpoint(), path)  # written behind save's back
    with pytest.raises(CheckpointError, match=rf"holds NaN or infinite weights .*\(first: '{name}'\)"):
        DiffusionModel.load(path)


def test_diverged_pretraining_stops_with_an_error() -> None:
    config = PretrainConfig(steps=20, batch_size=16, lr=1e6, diffusion_steps=50, denoiser=TINY)
    with pytest.raises(DivergenceError, match=r"pretraining diverged: .*lr=1e\+06.*lower the learning rate"):
        pretrain_on_benchmark(ToyBenchmark(), config, n_random=64, progress=False)


def test_the_pretrain_command_exits_non_zero_and_saves_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "good.pt"
    out.write_bytes(b"previous")
    args = ["pretrain", "--benchmark", "toy", "--n-random", "200", "--lr", "1e6", "--train-steps", "30"]
    assert main([*args, "--width", "16", "--edge-width", "8", "--layers", "2", "--no-progress", "--out", str(out)]) == 1
    assert "dgpo pretrain: error: pretraining diverged" in capsys.readouterr().err
    assert out.read_bytes() == b"previous"


def test_diverged_dgpo_training_stops_with_an_error(
    toy_model: DiffusionModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import agents.dgpo.losses as losses_module

    real = losses_module.trajectory_terms

    def nan_likelihood(*args: object, **kwargs: object) -> losses_module.LossTerms:
        terms = real(*args, **kwargs)  # type: ignore[arg-type]
        return losses_module.LossTerms(terms.log_likelihood * float("nan"), terms.entropy, terms.kl)

    agent = DGPO.for_env_id(toy_model, TOY, n_envs=4, n_steps=4, batch_size=8, learning_rate=1e-3, seed=7)
    monkeypatch.setattr(losses_module, "trajectory_terms", nan_likelihood)
    with pytest.raises(DivergenceError, match=r"training diverged: DGPO's policy-gradient loss is nan after 0 updates"):
        agent.learn(4 * 8 * 4)
    # weights that are no longer finite stop training too (the likelihood of a sampled graph is NaN)
    monkeypatch.undo()
    agent = DGPO.for_env_id(toy_model, TOY, n_envs=4, n_steps=4, batch_size=8, learning_rate=1e-3, seed=7)
    with torch.no_grad():
        for p in agent.policy.model.denoiser.parameters():
            p.fill_(float("inf"))
    with pytest.raises(DivergenceError, match=r"training diverged: .* is NaN"):
        agent.learn(4 * 8 * 4)
    with pytest.raises(CheckpointError, match="refusing to save the agent"):
        agent.save(tmp_path / "agent.zip")
    assert not (tmp_path / "agent.zip").exists()
