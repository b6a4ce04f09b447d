"""The elite DGPO variant: archive, replay, anchored starts, novel final steps, presets, recorded curves."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from stable_baselines3.common.logger import configure

from agents.cli import main
from agents.dgpo import DGPO, PRESETS, DGPOConfig, EliteConfig, EliteDGPO, make_dgpo
from agents.dgpo.elite import CellArchive
from agents.dgpo.variants import Preset, get_preset, variant_kwargs
from agents.diffusion.denoiser import DenoiserConfig
from agents.diffusion.model import DiffusionModel
from agents.diffusion.pretrain import PretrainConfig, denoising_loss, pretrain
from dgpo_env.search_spaces import NB201SearchSpace

TINY = DenoiserConfig(hidden_dim=16, edge_dim=8, n_layers=2, n_heads=2, time_dim=8)
NB201 = "dgpo_env/NB201-CIFAR10-v0"
REFERENCE = Path(__file__).parent / "data" / "dgpo_reference_curves.json"


@pytest.fixture(scope="module")
def nb201_model() -> DiffusionModel:
    return DiffusionModel.create(NB201SearchSpace(), diffusion_steps=100, config=TINY, seed=0)


def _archive(scores: dict[int, float]) -> CellArchive:
    space = NB201SearchSpace()
    archive = CellArchive(space.n_nodes)
    for index, score in scores.items():
        cell = space.from_index(index)
        archive.add(space.canonical_key(cell), cell.flat(), score)
    return archive


def test_archive_ranks_cells_and_draws_anchors_from_the_best() -> None:
    archive = _archive({0: 50.0, 1: 90.0, 2: 70.0, 3: 90.0})
    space = NB201SearchSpace()
    keys = [space.canonical_key(space.from_index(i)) for i in range(4)]
    assert len(archive) == 4 and keys[2] in archive
    assert archive.top(3) == [*sorted(keys[i] for i in (1, 3)), keys[2]]  # ties broken by key
    archive.add(keys[0], space.from_index(0).flat(), 99.0)  # a repeat keeps the first record
    assert archive.scores[keys[0]] == 50.0
    anchors = archive.draw_anchors(50, 2, torch.Generator().manual_seed(0))
    drawn = {tuple(a.tolist()) for a in anchors}
    assert drawn == {tuple(space.from_index(i).flat().tolist()) for i in (1, 3)}
    nodes, edges = archive.tensors(archive.top(2))
    assert nodes.shape == (2, space.n_nodes) and edges.shape == (2, space.n_edges)
    with pytest.raises(ValueError, match="archive is empty"):
        CellArchive(space.n_nodes).draw_anchors(1, 1, torch.Generator())
    with pytest.raises(ValueError, match="k must be >= 1"):
        archive.top(0)


def test_elite_replay_pulls_the_model_toward_the_best_cells(nb201_model: DiffusionModel) -> None:
    model = DiffusionModel.create(NB201SearchSpace(), diffusion_steps=100, config=TINY, seed=0)
    archive = _archive({6111: 91.6, 0: 10.0})
    nodes0, edges0 = archive.tensors(archive.top(1))  # the replay set: the best cell
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        before = float(denoising_loss(model, nodes0, edges0, torch.Generator().manual_seed(1))[0])
    for _ in range(100):
        optimizer.zero_grad()
        denoising_loss(model, nodes0, edges0, generator)[0].backward()
        optimizer.step()
    with torch.no_grad():
        after = float(denoising_loss(model, nodes0, edges0, torch.Generator().manual_seed(1))[0])
    assert after < 0.05 * before  # measured 1.40 -> 0.008
    best = model.sample(200, n_steps=5, generator=torch.Generator().manual_seed(2))
    hits = np.mean([np.array_equal(n, NB201SearchSpace().from_index(6111).nodes) for n in best.nodes.numpy()])
    assert hits > 0.5  # an untrained model draws that cell with probability 1 / 15,625


def test_elite_variant_anchors_replays_and_avoids_known_cells(nb201_model: DiffusionModel, tmp_path: Path) -> None:
    agent = make_dgpo(
        "elite", nb201_model, NB201, n_envs=4, n_steps=5, max_queries=60, seed=0, batch_size=8, anchor_after=8
    )
    assert isinstance(agent, EliteDGPO) and agent.config == PRESETS["elite"].config.replace(batch_size=8)
    agent.set_logger(configure(str(tmp_path), ["csv"]))
    agent.learn(10**6)
    agent.logger.close()
    with open(tmp_path / "progress.csv") as fh:
        rows = list(csv.DictReader(fh))
    anchored = [int(row["dgpo/anchored"]) for row in rows]
    assert anchored[0] == 0 and sum(anchored) >= len(rows) // 2  # anchor_prob 0.9 once 8 cells are known
    assert all(row["train/replay_loss"] != "" for row in rows[:-1])  # the last, partial batch is not trained on
    assert agent.stop_reason == "budget" and agent.n_queries == 60 == len(agent.archive)
    best_key = agent.archive.top(1)[0]
    assert agent.best is not None and agent.archive.scores[best_key] == agent.best["val_acc"]
    env = agent.get_env()
    assert env is not None
    lookups = env.get_attr("benchmark")[0].n_lookups
    assert lookups <= 1.5 * agent.n_queries  # novel final steps: few batch slots spent on known cells


def test_known_or_repeated_flags_invalid_known_and_repeated_proposals(nb201_model: DiffusionModel) -> None:
    agent = EliteDGPO.for_env_id(nb201_model, NB201, n_envs=2, n_steps=2, batch_size=2, seed=0, novelty_retries=3)
    space = NB201SearchSpace()
    known, new = space.from_index(5).flat(), space.from_index(6).flat()
    agent.archive.add(space.canonical_key(space.from_index(5)), known, 80.0)
    invalid = new.copy()
    invalid[1] = 0  # an inner node typed "input"
    flags = agent._known_or_repeated(np.stack([known, new, new, invalid]))
    assert flags.tolist() == [True, False, True, True]


def test_elite_dgpo_with_every_addition_off_is_published_dgpo(nb201_model: DiffusionModel) -> None:
    """The hooks are neutral: same seed, same draws, same parameters."""
    off = EliteConfig(elite_replay=0, anchor_prob=0.0, novelty_retries=0)
    kwargs: dict[str, Any] = {"n_envs": 4, "n_steps": 3, "batch_size": 8, "learning_rate": 1e-2, "seed": 3}
    agents = [
        DGPO.for_env_id(nb201_model, NB201, **kwargs),
        EliteDGPO.for_env_id(nb201_model, NB201, elite=off, **kwargs),
    ]
    for agent in agents:
        agent.learn(3 * 8 * 3)
    published, elite = agents
    assert published._n_updates > 0 and published.best == elite.best
    for a, b in zip(published.policy.parameters(), elite.policy.parameters(), strict=True):
        assert torch.equal(a, b)


# ---------------------------------------------------------------------------------------------- settings and presets
@pytest.mark.parametrize(
    ("field", "value", "error", "words"),
    [
        ("anchor_prob", 1.5, ValueError, ["EliteConfig.anchor_prob", "in [0, 1]", "got 1.5"]),
        ("anchor_prob", "0.9", TypeError, ["EliteConfig.anchor_prob", "a real number", "str"]),
        ("anchor_skip", 1.0, ValueError, ["EliteConfig.anchor_skip", "in (0, 1)", "got 1.0"]),
        ("anchor_skip", 0, ValueError, ["EliteConfig.anchor_skip", "in (0, 1)", "got 0"]),
        ("elite_replay", -1, ValueError, ["EliteConfig.elite_replay", "an int >= 0", "got -1"]),
        ("elite_replay", 10.0, TypeError, ["EliteConfig.elite_replay", "an int >= 0", "float"]),
        ("replay_passes", 0, ValueError, ["EliteConfig.replay_passes", "an int >= 1", "got 0"]),
        ("anchor_top_k", False, TypeError, ["EliteConfig.anchor_top_k", "an int >= 1", "bool"]),
        ("anchor_after", -3, ValueError, ["EliteConfig.anchor_after", "an int >= 0", "got -3"]),
        ("novelty_retries", 2.5, TypeError, ["EliteConfig.novelty_retries", "an int >= 0", "float"]),
        ("restart_after", -1, ValueError, ["EliteConfig.restart_after", "an int >= 0", "got -1"]),
        ("restart_after", "30", TypeError, ["EliteConfig.restart_after", "an int >= 0", "str"]),
    ],
)
def test_elite_config_refuses_wrong_types_and_out_of_range_values(
    field: str, value: Any, error: type[Exception], words: list[str]
) -> None:
    with pytest.raises(error) as info:
        EliteConfig(**{field: value})
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def test_elite_settings_are_checked_and_read_from_the_elite_config(nb201_model: DiffusionModel) -> None:
    with pytest.raises(ValueError, match=r"EliteConfig.anchor_prob must be a real number in \[0, 1\], got 1.5"):
        EliteDGPO.for_env_id(nb201_model, NB201, n_envs=2, n_steps=2, batch_size=2, anchor_prob=1.5)
    with pytest.raises(TypeError, match=r"EliteDGPO got unknown setting\(s\) 'anchor'; known settings: .*anchor_prob"):
        EliteDGPO.for_env_id(nb201_model, NB201, n_envs=2, n_steps=2, batch_size=2, anchor=0.5)
    with pytest.raises(TypeError, match="elite must be an EliteConfig or None, got DGPOConfig"):
        EliteDGPO.for_env_id(nb201_model, NB201, n_envs=2, n_steps=2, elite=DGPOConfig())
    elite = EliteConfig(anchor_skip=0.5)
    agent = EliteDGPO.for_env_id(nb201_model, NB201, n_envs=2, n_steps=10, batch_size=2, elite=elite, anchor_skip=0.7)
    assert agent.anchor_step == 7 and agent.elite == elite.replace(anchor_skip=0.7)  # the keyword beats the config
    assert agent.settings_dict() == {**agent.config.to_dict(), **agent.elite.to_dict()}
    with pytest.raises(AttributeError, match=r"anchor_prob is read from .elite"):
        agent.anchor_prob = 0.5  # type: ignore[misc]


def test_presets_name_the_algorithm_and_its_settings() -> None:
    assert list(PRESETS) == ["published", "elite", "surrogate", "pareto", "constrained", "kl-annealed", "kl-explore"]
    published, elite = PRESETS["published"], PRESETS["elite"]
    assert published.algorithm is DGPO and published.config == DGPOConfig() and published.elite is None
    assert elite.algorithm is EliteDGPO and elite.elite == EliteConfig()
    assert elite.config == DGPOConfig(learning_rate=3e-3, batch_size=10, n_inner_passes=1, freeze_fraction=0.0)
    assert elite.sets("learning_rate") and not published.sets("learning_rate") and elite.sets("anchor_after")
    with pytest.raises(ValueError, match="unknown DGPO preset 'best'; known presets: published, elite"):
        get_preset("best")
    with pytest.raises(ValueError, match="elite settings go with EliteDGPO"):
        Preset("odd", DGPO, DGPOConfig(), EliteConfig())
    # the former flat form, for older callers
    assert variant_kwargs("published") == {}
    assert variant_kwargs("elite") == {
        "learning_rate": 3e-3,
        "batch_size": 10,
        "n_inner_passes": 1,
        "freeze_fraction": 0.0,
        "elite_replay": 10,
        "replay_passes": 10,
        "anchor_prob": 0.9,
        "anchor_skip": 0.8,
        "anchor_top_k": 3,
        "anchor_after": 20,
        "novelty_retries": 10,
        "archive_score": "val_acc",
        "restart_after": 0,
    }
    with pytest.raises(ValueError, match="unknown DGPO preset 'best'"):
        variant_kwargs("best")


def test_make_dgpo_applies_the_preset_then_explicit_settings(nb201_model: DiffusionModel) -> None:
    agent = make_dgpo("published", nb201_model, NB201, n_envs=3, n_steps=2, learning_rate=1e-3)
    assert type(agent) is DGPO and agent.config == DGPOConfig(learning_rate=1e-3)
    agent = make_dgpo("elite", nb201_model, NB201, n_steps=2, batch_size=4, anchor_top_k=5, seed=0)
    assert agent.n_envs == 4 and agent.config == PRESETS["elite"].config.replace(batch_size=4)
    assert agent.elite == EliteConfig(anchor_top_k=5)
    own = DGPOConfig(batch_size=2)
    replaced = make_dgpo(PRESETS["elite"], nb201_model, NB201, n_steps=2, config=own)  # config= replaces the preset's
    assert isinstance(replaced, EliteDGPO) and replaced.config == own and replaced.elite == EliteConfig()
    with pytest.raises(TypeError, match=r"DGPO got unknown setting\(s\) 'novelty_retries'"):
        make_dgpo("published", nb201_model, NB201, n_steps=2, novelty_retries=3)


def test_an_elite_agent_saves_and_loads_with_its_settings(nb201_model: DiffusionModel, tmp_path: Path) -> None:
    agent = make_dgpo("elite", nb201_model, NB201, n_envs=4, n_steps=3, batch_size=4, anchor_after=2, seed=0)
    agent.learn(3 * 4 * 3)
    agent.save(tmp_path / "elite")
    env = agent.get_env()
    assert env is not None
    loaded = EliteDGPO.load(tmp_path / "elite", env=env)
    assert loaded.config == agent.config and loaded.elite == agent.elite
    obs = env.reset()
    assert isinstance(obs, dict)
    np.testing.assert_array_equal(agent.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0])
    with pytest.raises(ValueError, match="settings elite that DGPO does not use; load it with the class that saved it"):
        DGPO.load(tmp_path / "elite", env=env)
    with pytest.raises(ValueError, match="saved without a copy of the model its fine-tuning started from"):
        EliteDGPO.load(tmp_path / "elite", env=env, restart_after=5)  # restarts would go back to the loaded weights


def test_a_restart_goes_back_to_the_starting_model_and_keeps_the_counted_queries(
    nb201_model: DiffusionModel,
) -> None:
    agent = make_dgpo(
        "elite", nb201_model, NB201, n_envs=4, n_steps=3, batch_size=4, anchor_after=4, seed=0, restart_after=10**6
    )
    assert agent.reference_model is not None  # kept for restarts even without a KL term
    start = {name: value.clone() for name, value in agent.policy.model.state_dict().items()}
    agent.learn(4 * 3 * 6)
    assert agent.n_restarts == 0 and agent.n_queries > 0 and len(agent.archive) > 0
    assert any(not torch.equal(value, start[name]) for name, value in agent.policy.model.state_dict().items())
    best, queries = agent.best, agent.n_queries
    agent._restart()
    assert all(torch.equal(value, start[name]) for name, value in agent.policy.model.state_dict().items())
    assert not agent.policy.optimizer.state and len(agent.archive) == 0
    assert agent.n_restarts == 1 and agent.best == best and agent.n_queries == queries
    agent.learn(4 * 3 * 6, reset_num_timesteps=False)
    assert agent.n_queries > queries and len(agent.archive) > 0  # the new attempt looks up cells again
    assert agent.best is not None and best is not None and agent.best["val_acc"] >= best["val_acc"]


def test_a_stalled_search_restarts_and_a_saved_agent_remembers_it(nb201_model: DiffusionModel, tmp_path: Path) -> None:
    agent = make_dgpo(
        "elite", nb201_model, NB201, n_envs=4, n_steps=3, batch_size=4, anchor_after=4, seed=0, restart_after=4
    )
    agent.set_logger(configure(str(tmp_path), ["csv"]))
    agent.learn(4 * 3 * 40)
    agent.logger.close()
    assert agent.n_restarts >= 1  # 4 queries without a better cell happen within 40 batches
    assert agent.n_queries - agent._improved_at < agent.restart_after + agent.batch_size
    with open(tmp_path / "progress.csv") as fh:
        restarts = [row["dgpo/n_restarts"] for row in csv.DictReader(fh) if row.get("dgpo/n_restarts")]
    assert restarts and int(restarts[-1]) == agent.n_restarts
    agent.save(tmp_path / "restarting")
    env = agent.get_env()
    assert env is not None
    loaded = EliteDGPO.load(tmp_path / "restarting", env=env)
    assert (loaded.n_restarts, loaded._improved_at, loaded._best_score) == (
        agent.n_restarts,
        agent._improved_at,
        agent._best_score,
    )
    assert loaded.reference_model is not None and agent.reference_model is not None
    for name, value in agent.reference_model.state_dict().items():
        assert torch.equal(loaded.reference_model.state_dict()[name], value)


def test_restarts_need_the_starting_model_kept_from_the_start(nb201_model: DiffusionModel) -> None:
    agent = make_dgpo("elite", nb201_model, NB201, n_envs=2, n_steps=2, batch_size=2, seed=0)
    agent.elite = agent.elite.replace(restart_after=2)  # too late: no copy of the starting model was kept
    with pytest.raises(ValueError, match=r"pass restart_after=\.\.\. .* to the constructor"):
        agent._restart()


def test_finetune_command_runs_a_variant_and_flags_override_it(
    nb201_model: DiffusionModel, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = nb201_model.save(tmp_path / "nb201.pt")
    args = ["finetune", str(path), "--env", NB201, "--max-queries", "40", "--n-steps", "4", "--no-progress"]
    flags = ["--batch-size", "5", "--anchor-prob", "0.5", "--gradient", "ddpo"]
    assert main([*args, "--variant", "elite", *flags, "--save", str(tmp_path / "agent")]) == 0
    out = capsys.readouterr().out
    assert "DGPO (elite variant) on dgpo_env/NB201-CIFAR10-v0" in out and "queries: 40 distinct cells" in out
    agent = EliteDGPO.load(tmp_path / "agent")
    preset = PRESETS["elite"]
    assert agent.config == preset.config.replace(batch_size=5, gradient="ddpo")  # flags beat the preset
    assert agent.elite == EliteConfig(anchor_prob=0.5) and agent.learning_rate == 3e-3  # the rest is the preset's
    # the published preset: official settings unless a flag says otherwise
    assert main([*args, "--lr", "1e-3", "--batch-size", "4", "--save", str(tmp_path / "published")]) == 0
    assert "DGPO on dgpo_env/NB201-CIFAR10-v0" in capsys.readouterr().out
    published = DGPO.load(tmp_path / "published")
    assert published.config == DGPOConfig(learning_rate=1e-3, batch_size=4)
    # an elite flag does not apply to published DGPO; a bad value is an error, not a traceback
    assert main([*args, "--anchor-prob", "0.5"]) == 2
    assert "--anchor-prob: only for --variant elite" in capsys.readouterr().err
    assert main([*args, "--variant", "elite", "--anchor-skip", "1.5"]) == 2
    assert "EliteConfig.anchor_skip must be a real number in (0, 1), got 1.5" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*args, "--variant", "best"])


# ---------------------------------------------------------------------------------------------- recorded curves
def _reference_runs(reference: dict[str, Any], folder: Path) -> dict[str, Any]:
    """The comparison methods dgpo and dgpo-elite on a tiny model pretrained as the reference says."""
    from agents.dgpo.compare_methods import run_dgpo, run_dgpo_elite

    spec = reference["pretrain"]
    config = PretrainConfig(**{**spec, "denoiser": DenoiserConfig(**spec["denoiser"])})
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the recording's setting (run_dgpo sets it too)
    try:
        space = NB201SearchSpace()
        model, _ = pretrain(space, list(space.enumerate_cells()), config, progress=False)
        path = model.save(folder / "tiny-nb201.pt")
        runs = {}
        for name, fn in (("dgpo", run_dgpo), ("dgpo-elite", run_dgpo_elite)):
            result = fn(
                reference["benchmark"],
                reference["seed"],
                reference["max_queries"],
                checkpoint=path,
                n_steps=reference["n_steps"],
            )
            runs[name] = {"curve": list(result.curve), "best_key": result.best_key, "stop_reason": result.stop_reason}
        return runs
    finally:
        torch.set_num_threads(threads)


def test_presets_reproduce_the_recorded_curves(tmp_path: Path) -> None:
    """Same seed, same curve: the random-number order of both presets is that of the recording (exact floats)."""
    reference = json.loads(REFERENCE.read_text())
    if reference["torch"] != torch.__version__:
        pytest.skip(f"curves recorded with torch {reference['torch']}, running {torch.__version__}")
    assert _reference_runs(reference, tmp_path) == reference["runs"]
