"""DGPO: REINFORCE fine-tuning of a graph-diffusion model with GDPO's eager gradient (DESIGN.md §4)."""

from agents.dgpo.advantages import RewardNormalizer, batch_advantages, first_occurrences
from agents.dgpo.dgpo import DGPO
from agents.dgpo.losses import TrajectoryBatch, clean_log_likelihood, freeze_layers
from agents.dgpo.policies import GraphDiffusionPolicy, MaskableGraphDiffusionPolicy, MultiInputPolicy

__all__ = [
    "DGPO",
    "GraphDiffusionPolicy",
    "MaskableGraphDiffusionPolicy",
    "MultiInputPolicy",
    "RewardNormalizer",
    "TrajectoryBatch",
    "batch_advantages",
    "clean_log_likelihood",
    "first_occurrences",
    "freeze_layers",
]
