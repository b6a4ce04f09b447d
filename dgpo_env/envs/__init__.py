"""Gymnasium environments."""

from dgpo_env.envs.graph_denoise import GraphDenoiseEnv

__all__ = ["GraphDenoiseEnv"]
