"""The graph-diffusion model: denoiser, pretraining and sampling (docs/diffusion.md).

The noise process itself lives in :mod:`dgpo_env.diffusion.noise` (shared with the environment).
"""

from agents.diffusion.denoiser import DenoiserConfig, GraphTransformerDenoiser
from agents.diffusion.model import CheckpointError, DiffusionModel, DivergenceError, Samples
from agents.diffusion.pretrain import PretrainConfig, pretrain, pretrain_on_benchmark, select_training_cells
from agents.diffusion.sampling import evaluate_model

__all__ = [
    "CheckpointError",
    "DenoiserConfig",
    "DiffusionModel",
    "DivergenceError",
    "GraphTransformerDenoiser",
    "PretrainConfig",
    "Samples",
    "evaluate_model",
    "pretrain",
    "pretrain_on_benchmark",
    "select_training_cells",
]
