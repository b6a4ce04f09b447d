"""SB3 policies whose actor is a pretrained graph-diffusion model, and the query-budget helpers."""

from agents.policies.budget import BUDGET_EXHAUSTED, apply_budget, env_ledger
from agents.policies.callbacks import QueryBudgetCallback, QueryProgressCallback
from agents.policies.compat import check_model_spaces, check_model_task, resolve_model
from agents.policies.diffusion_policy import (
    DiffusionPolicyMixin,
    GraphDiffusionPolicy,
    MaskableGraphDiffusionPolicy,
)
from agents.policies.distributions import (
    LOG_ZERO,
    FusedMultiCategoricalDistribution,
    MaskableFusedMultiCategoricalDistribution,
    safe_log,
)
from agents.policies.envs import make_env_for_model
from agents.policies.observations import GraphBatch, GraphCriticFeatures, graph_from_obs
from agents.policies.ray_vec_env import RayVecEnv

__all__ = [
    "BUDGET_EXHAUSTED",
    "LOG_ZERO",
    "DiffusionPolicyMixin",
    "FusedMultiCategoricalDistribution",
    "GraphBatch",
    "GraphCriticFeatures",
    "GraphDiffusionPolicy",
    "MaskableFusedMultiCategoricalDistribution",
    "MaskableGraphDiffusionPolicy",
    "QueryBudgetCallback",
    "QueryProgressCallback",
    "RayVecEnv",
    "apply_budget",
    "check_model_spaces",
    "check_model_task",
    "env_ledger",
    "graph_from_obs",
    "make_env_for_model",
    "resolve_model",
    "safe_log",
]
