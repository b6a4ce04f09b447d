"""Gymnasium environments."""

from dgpo_env.envs.graph_denoise import DenoiseTask, GraphDenoiseEnv

__all__ = ["DenoiseTask", "GraphDenoiseEnv"]
