"""The pretrained models shipped with the package: recorded, intact, loadable without unpickling, reproducible."""

from __future__ import annotations

import io
import re
import shlex
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import torch

import agents.pretrained as pretrained
from agents.cli import main
from agents.diffusion.model import CheckpointError, DiffusionModel
from agents.pretrained import RECIPES, available, manifest

NAMES = sorted(RECIPES)


def test_every_recipe_is_shipped_with_its_exact_command() -> None:
    records = manifest()
    assert available() == NAMES == sorted(records)
    for name in NAMES:
        expected = ["dgpo", "pretrain", *RECIPES[name], "--out", f"agents/pretrained/{name}.pt"]
        assert shlex.split(records[name]["command"]) == expected
        assert records[name]["summary"]["selection_queries"] == 0  # a structure prior reads no accuracy


@pytest.mark.parametrize("name", NAMES)
def test_shipped_models_load_with_weights_only_and_sample_valid_cells(name: str) -> None:
    record = manifest()[name]
    data = (resources.files("agents.pretrained") / record["file"]).read_bytes()
    checkpoint = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    assert checkpoint["search_space"] == record["search_space"]
    model = DiffusionModel.from_pretrained(name)
    assert model.space.name == record["search_space"]
    samples = model.sample(64, generator=torch.Generator().manual_seed(0))
    valid = [model.space.validate(dag) is None for dag in samples.dags()]
    assert np.mean(valid) >= 0.9, f"{name}: {np.mean(valid):.0%} of 64 samples are valid cells"


@pytest.mark.parametrize("name", ["nb201", "nb201-mlp", "toy"])
def test_recorded_command_starts_from_the_same_configuration(name: str, tmp_path: Path) -> None:
    """Re-running the recorded command (for one epoch) selects the same cells with the same settings."""
    argv = shlex.split(manifest()[name]["command"])[1:]  # without the leading "dgpo"
    argv[argv.index("--out") + 1] = str(tmp_path / "again.pt")
    assert main([*argv, "--train-steps", "1"]) == 0
    again = DiffusionModel.load(tmp_path / "again.pt").checkpoint()
    shipped = DiffusionModel.from_pretrained(name).checkpoint()
    for key in ("search_space", "denoiser_config", "noise"):
        assert _same(again[key], shipped[key]), key
    for key in ("benchmark", "selection", "n_selected", "n_train", "n_val"):
        assert again["info"][key] == shipped["info"][key], key
    assert torch.equal(again["info"]["train_cells"], shipped["info"]["train_cells"])
    config_again, config_shipped = dict(again["info"]["pretrain_config"]), dict(shipped["info"]["pretrain_config"])
    assert config_again.pop("steps") == 1
    config_shipped.pop("steps")
    assert config_again == config_shipped


def _same(a: object, b: object) -> bool:
    """Equality through nested dicts and lists whose leaves may be tensors (compared exactly)."""
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def test_damaged_or_unknown_models_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    shipped = "'nb101', 'nb201', 'nb201-mlp', 'toy'"
    with pytest.raises(ValueError, match=f"no pretrained model named 'nb999'; shipped: {shipped}"):
        DiffusionModel.from_pretrained("nb999")
    with pytest.raises(TypeError, match="must be a string"):
        DiffusionModel.from_pretrained(201)  # type: ignore[arg-type]
    records = manifest()
    records["toy"]["sha256"] = "0" * 64
    monkeypatch.setattr(pretrained, "manifest", lambda: records)
    with pytest.raises(CheckpointError, match=r"'toy' is damaged: sha256 .* reinstall dgpo-env"):
        DiffusionModel.from_pretrained("toy")


def test_finetune_from_a_shipped_model(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["finetune", "--env", "dgpo_env/ToyDAG-v0", "--max-queries", "12", "--n-steps", "5", "--lr", "1e-3"]
    assert main([*argv, "--pretrained", "toy", "--progress-every", "4"]) == 0
    out = capsys.readouterr().out
    assert "from the shipped 'toy' prior" in out and "queries: 12 distinct cells" in out
    assert re.search(r"^  queries \d+/12  best val \d+\.\d{4}% \(query \d+\)", out, re.MULTILINE), out
    assert main([*argv]) == 2  # neither a checkpoint nor --pretrained
    assert "give a checkpoint file or --pretrained NAME" in capsys.readouterr().err


def test_sample_a_shipped_structure_prior_without_naming_a_dataset(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sample", "--pretrained", "nb201", "-n", "8", "--steps", "5", "--show", "0"]) == 0
    out = capsys.readouterr().out
    assert "trained on all cells of space:nb201" in out and "validity" in out and "val acc samples" in out
    assert main(["sample", "-n", "8"]) == 2
    assert "give a checkpoint file or --pretrained NAME" in capsys.readouterr().err
