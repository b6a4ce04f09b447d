"""Sub-commands of the ``dgpo`` console script, one module each (``add_parser`` + ``run``)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported only by the commands that run a model
    from agents.diffusion.model import DiffusionModel


def load_model(args: argparse.Namespace) -> DiffusionModel:
    """The model named by ``args.checkpoint`` (a file) or ``args.pretrained`` (a shipped prior): exactly one.

    Raises:
        CheckpointError: (a ``ValueError``) If the file or the shipped prior cannot be used.
        ValueError: If both or neither are given.
    """
    from agents.diffusion.model import DiffusionModel

    if (args.checkpoint is None) == (args.pretrained is None):
        raise ValueError("give a checkpoint file or --pretrained NAME (one of them)")
    if args.pretrained is not None:
        return DiffusionModel.from_pretrained(args.pretrained)
    return DiffusionModel.load(args.checkpoint)
