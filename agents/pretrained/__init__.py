"""Pretrained diffusion models shipped with the package, and the recipes that made them.

Each model is the output of the project's own ``dgpo pretrain`` (docs/pretrained.md): a *structure
prior* trained on cells of a search space with no accuracy read (no benchmark query), so one model
serves every dataset of its space. ``manifest.json`` beside the files records, for every name, the
exact command and seed, the file's sha256 and the pretraining summary; :func:`load_pretrained`
refuses a file whose sha256 differs and loads it with ``torch.load(..., weights_only=True)``.

Rebuild them all (NB201 in about a minute, NB-101 and toy in 15 to 20 minutes each on 2 CPU cores) with::

    python -m agents.pretrained.build
"""

from __future__ import annotations

import hashlib
import io
import json
from importlib import resources
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agents.diffusion.model import DiffusionModel

RECIPES: dict[str, tuple[str, ...]] = {
    # name: the `dgpo pretrain` arguments (``--out`` is added by the builder)
    "nb201": ("--space", "nb201", "--seed", "0", "--threads", "1", "--no-progress"),
    "nb201-mlp": (
        *("--space", "nb201", "--denoiser", "mlp", "--train-steps", "2000", "--lr", "4e-3"),
        *("--seed", "0", "--threads", "1", "--no-progress"),
    ),
    "nb101": (
        *("--space", "nb101", "--n-random", "50000", "--train-steps", "1500", "--lr", "2e-3"),
        *("--seed", "0", "--threads", "2", "--no-progress"),
    ),
    "toy": (
        *("--space", "toy", "--n-random", "20000", "--train-steps", "1500", "--lr", "2e-3"),
        *("--seed", "0", "--threads", "2", "--no-progress"),
    ),
}
"""How each shipped model is made: all cells of NAS-Bench-201 (15,625) with the default network and
training settings, and uniformly random valid cells of the NAS-Bench-101 and toy spaces (too large to
list) with the default network and 1,500 steps at lr 2e-3 (their free edges take longer to learn; these
were the defaults when the two models were built). ``nb201-mlp`` is the fast MLP denoiser
(:class:`~agents.diffusion.mlp_denoiser.MLPDenoiser`) on all NAS-Bench-201 cells; it takes 2,000 steps at
lr 4e-3 (5 to 10 s) to come within a few millinats of the exact posterior, as the transformer does in 500."""

MANIFEST = "manifest.json"


def _files() -> Any:
    return resources.files(__name__)


def manifest() -> dict[str, dict[str, Any]]:
    """The shipped models' records: ``{name: {"file", "sha256", "command", "search_space", ...}}``.

    Returns an empty mapping when the package was installed without its manifest.
    """
    entry = _files() / MANIFEST
    if not entry.is_file():
        return {}
    records: dict[str, dict[str, Any]] = json.loads(entry.read_text(encoding="utf-8"))
    return records


def available() -> list[str]:
    """Names of the shipped models whose files are installed, e.g. ``["nb101", "nb201", "toy"]``."""
    return sorted(name for name, record in manifest().items() if (_files() / record["file"]).is_file())


def load_pretrained(name: str) -> DiffusionModel:
    """The shipped model ``name``, checked against its recorded sha256 and loaded without unpickling.

    Args:
        name: One of :func:`available` (``"nb201"``, ``"nb101"``, ``"toy"``).

    Raises:
        TypeError: If ``name`` is not a string.
        ValueError: For an unknown name (the message lists the known ones).
        agents.diffusion.model.CheckpointError: If the file is missing or its bytes differ from the
            recorded sha256 (a damaged installation: reinstall the package).
    """
    from agents.diffusion.model import CheckpointError, DiffusionModel

    if not isinstance(name, str):
        raise TypeError(f"the pretrained model's name must be a string, got {name!r} ({type(name).__name__})")
    records = manifest()
    if name not in records:
        known = ", ".join(repr(n) for n in sorted(records)) or "none (the model files are not installed)"
        raise ValueError(f"no pretrained model named {name!r}; shipped: {known}")
    record = records[name]
    entry = _files() / record["file"]
    if not entry.is_file():
        raise CheckpointError(f"the pretrained model {name!r} ({record['file']}) is missing: reinstall dgpo-env")
    data = entry.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != record["sha256"]:
        raise CheckpointError(
            f"the pretrained model {name!r} is damaged: sha256 {digest}, recorded {record['sha256']}; "
            "reinstall dgpo-env"
        )
    import torch

    checkpoint = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    return DiffusionModel.from_checkpoint(checkpoint, record["search_space"], source=f"pretrained model {name!r}")


__all__ = ["MANIFEST", "RECIPES", "available", "load_pretrained", "manifest"]
