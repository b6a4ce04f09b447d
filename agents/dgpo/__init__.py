"""DGPO: REINFORCE fine-tuning of a graph-diffusion model with GDPO's eager gradient (docs/dgpo.md).

:class:`DGPO` is the published algorithm with its settings in :class:`DGPOConfig`; :class:`EliteDGPO`
adds the elite reuse of looked-up cells (:class:`EliteConfig`); :class:`SurrogateDGPO` also ranks the
policy's candidates with a reward model fitted on the looked-up cells (:class:`SurrogateConfig`);
:class:`ParetoSurrogateDGPO` ranks them over several objectives by hypervolume improvement (:class:`ParetoConfig`);
:data:`PRESETS` and :func:`make_dgpo` name the configurations.
"""

from agents.dgpo.advantages import RewardNormalizer, batch_advantages, first_occurrences
from agents.dgpo.config import DGPOConfig
from agents.dgpo.dgpo import DGPO
from agents.dgpo.elite import CellArchive, EliteConfig, EliteDGPO
from agents.dgpo.losses import TrajectoryBatch, clean_log_likelihood, freeze_layers
from agents.dgpo.pareto_surrogate import ParetoConfig, ParetoSurrogateDGPO
from agents.dgpo.policies import GraphDiffusionPolicy, MaskableGraphDiffusionPolicy, MultiInputPolicy
from agents.dgpo.surrogate import SurrogateConfig, SurrogateDGPO
from agents.dgpo.variants import PRESETS, Preset, make_dgpo

__all__ = [
    "DGPO",
    "PRESETS",
    "CellArchive",
    "DGPOConfig",
    "EliteConfig",
    "EliteDGPO",
    "GraphDiffusionPolicy",
    "MaskableGraphDiffusionPolicy",
    "MultiInputPolicy",
    "ParetoConfig",
    "ParetoSurrogateDGPO",
    "Preset",
    "RewardNormalizer",
    "SurrogateConfig",
    "SurrogateDGPO",
    "TrajectoryBatch",
    "batch_advantages",
    "clean_log_likelihood",
    "first_occurrences",
    "freeze_layers",
    "make_dgpo",
]
