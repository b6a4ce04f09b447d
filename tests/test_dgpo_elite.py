"""The elite DGPO variant: archive, replay, anchored starts, novel final steps, named variants."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from stable_baselines3.common.logger import configure

from agents.cli import main
from agents.dgpo import DGPO
from agents.dgpo.elite import CellArchive
from agents.dgpo.variants import VARIANTS, variant_kwargs
from agents.diffusion.denoiser import DenoiserConfig
from agents.diffusion.model import DiffusionModel
from agents.diffusion.pretrain import denoising_loss
from dgpo_env.search_spaces import NB201SearchSpace

TINY = DenoiserConfig(hidden_dim=16, edge_dim=8, n_layers=2, n_heads=2, time_dim=8)
NB201 = "dgpo_env/NB201-CIFAR10-v0"


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
    kwargs = {**variant_kwargs("elite"), "batch_size": 8, "anchor_after": 8}
    agent = DGPO.for_env_id(nb201_model, NB201, n_envs=4, n_steps=5, max_queries=60, seed=0, **kwargs)
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
    lookups = agent.get_env().get_attr("benchmark")[0].n_lookups
    assert lookups <= 1.5 * agent.n_queries  # novel final steps: few batch slots spent on known cells


def test_known_or_repeated_flags_invalid_known_and_repeated_proposals(nb201_model: DiffusionModel) -> None:
    agent = DGPO.for_env_id(nb201_model, NB201, n_envs=2, n_steps=2, batch_size=2, seed=0, novelty_retries=3)
    space = NB201SearchSpace()
    known, new = space.from_index(5).flat(), space.from_index(6).flat()
    agent.archive.add(space.canonical_key(space.from_index(5)), known, 80.0)
    invalid = new.copy()
    invalid[1] = 0  # an inner node typed "input"
    flags = agent._known_or_repeated(np.stack([known, new, new, invalid]))
    assert flags.tolist() == [True, False, True, True]


def test_variants_and_anchor_settings_are_checked(nb201_model: DiffusionModel) -> None:
    assert variant_kwargs("published") == {} and "elite" in VARIANTS
    with pytest.raises(ValueError, match="unknown DGPO variant 'best'; known variants: published, elite"):
        variant_kwargs("best")
    for bad, match in (
        ({"anchor_prob": 1.5}, "anchor_prob must be in"),
        ({"anchor_skip": 1.0}, "anchor_skip must be in"),
        ({"elite_replay": -1}, "elite_replay must be >= 0"),
        ({"replay_passes": 0}, "replay_passes must be >= 1"),
    ):
        with pytest.raises(ValueError, match=match):
            DGPO.for_env_id(nb201_model, NB201, n_envs=2, n_steps=2, batch_size=2, **bad)
    agent = DGPO.for_env_id(nb201_model, NB201, n_envs=2, n_steps=10, batch_size=2, anchor_skip=0.7)
    assert agent.anchor_step == 7


def test_finetune_command_runs_a_variant_and_flags_override_it(
    nb201_model: DiffusionModel, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = nb201_model.save(tmp_path / "nb201.pt")
    args = ["finetune", str(path), "--env", NB201, "--max-queries", "40", "--n-steps", "4", "--no-progress"]
    assert main([*args, "--variant", "elite", "--batch-size", "5", "--save", str(tmp_path / "agent")]) == 0
    out = capsys.readouterr().out
    assert "DGPO (elite variant) on dgpo_env/NB201-CIFAR10-v0" in out and "queries: 40 distinct cells" in out
    agent = DGPO.load(tmp_path / "agent")
    assert agent.batch_size == 5 and agent.elite_replay == VARIANTS["elite"]["elite_replay"]  # flag beat variant
    with pytest.raises(SystemExit):
        main([*args, "--variant", "best"])
