"""A failed save leaves the previous file byte-identical and no temporary file behind."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agents.diffusion.denoiser import DenoiserConfig
from agents.diffusion.model import DiffusionModel
from dgpo_env.search_spaces import ToySearchSpace

TINY = DenoiserConfig(hidden_dim=16, edge_dim=8, n_layers=2, n_heads=2, time_dim=8)


def test_a_failed_checkpoint_save_keeps_the_previous_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "model.pt"
    DiffusionModel.create(ToySearchSpace(), diffusion_steps=50, config=TINY, seed=0).save(path)
    before = path.read_bytes()

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    other = DiffusionModel.create(ToySearchSpace(), diffusion_steps=50, config=TINY, seed=1)
    with pytest.raises(OSError, match="No space left"):
        other.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]
    assert DiffusionModel.load(path).diffusion_steps == 50
