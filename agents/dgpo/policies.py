"""Policy aliases of :class:`~agents.dgpo.DGPO` (as SB3's ``ppo/policies.py``)."""

from agents.policies.diffusion_policy import GraphDiffusionPolicy, MaskableGraphDiffusionPolicy

MultiInputPolicy = GraphDiffusionPolicy
"""DGPO's only policy: the graph-diffusion actor (the observations are a ``Dict``)."""

__all__ = ["GraphDiffusionPolicy", "MaskableGraphDiffusionPolicy", "MultiInputPolicy"]
