"""DGPO under hard budgets: constrained Bayesian optimisation on the policy's candidates (docs/dgpo.md §4).

:class:`ConstrainedDGPO` is the surrogate preset (:class:`~agents.dgpo.surrogate.SurrogateDGPO`) made
budget-aware. When its environment's benchmark is a :class:`~dgpo_env.benchmarks.ConstrainedBenchmark`
(``dgpo compare --max-latency-ms 12``) or its reward an :class:`~dgpo_env.rewards.AccuracyUnderBudget`
(``dgpo finetune --variant constrained --max-latency-ms 12``), it reads the budgets (``budget.limits``:
metric names and limits, no answers) and ranks the policy's candidate cells with two kinds of model, both fitted only
on the cells already looked up (each a counted query):

* an **accuracy model**: a :class:`~agents.dgpo.cell_gp.CellGP` on the *feasible* looked-up cells only
  (an over-budget cell's accuracy is hidden: it reads as 0, which says nothing about its accuracy);
* a **constraint model** per budget: a :class:`~agents.dgpo.cell_gp.CellGP` on the log of the budgeted
  metric (latency, parameters, training time) of *every* looked-up cell, over budget or not — every
  look-up returns the cell's costs (the environment's final ``info``), also when it is over budget.
  The model works on normal scores (ranks), so the limit is carried into the same scale: it sits at
  ``Φ⁻¹(n_within / n)``, between the largest looked-up value within the limit and the smallest above it.
  The probability of feasibility is ``Φ((z_limit - mean) / std)`` (predictive std, with the noise), and
  the product over the budgets (independent models).

A candidate's score is the accuracy acquisition times its probability of feasibility — the constrained
expected improvement of Gardner et al. (ICML 2014) and Gelbart, Snoek & Adams (UAI 2014):

* ``acquisition="ei"``: ``EI(mean, std; best feasible) · P(feasible)``;
* ``acquisition="ucb"``: ``P(feasible) · (mean + β · std) + (1 - P(feasible)) · z_floor``, the expected
  upper bound when an over-budget cell is worth the worst looked-up score ``z_floor``.

Until ``feasible_after`` feasible cells are known, the score is ``P(feasible)`` alone (Gelbart et al.:
first find the feasible region). Picks are made one copy after the other, each conditioned on the
earlier ones as in the surrogate preset. Without budgets the class is
:class:`~agents.dgpo.surrogate.SurrogateDGPO` unchanged.

The policy side: :func:`run_dgpo_constrained` trains the policy on the graded budget reward
(:class:`~dgpo_env.rewards.AccuracyUnderBudget` with ``graded=True``: an over-budget cell gets minus its
relative violation), so the policy's mass moves towards the budget instead of treating every
over-budget cell alike; the elite archive holds each cell's read accuracy (0 when over budget), so
replay and anchors use feasible cells.
"""

from __future__ import annotations

import dataclasses
from statistics import NormalDist
from typing import Any, ClassVar

import numpy as np
import torch
from stable_baselines3.common.type_aliases import GymEnv
from torch import Tensor

from agents.baselines.base import SearchResult
from agents.dgpo.cell_gp import Acquisition, CellGP
from agents.dgpo.config import DGPOConfig, Setting, Settings, settings_from
from agents.dgpo.elite import EliteConfig, EliteDGPO
from agents.dgpo.surrogate import SurrogateConfig, SurrogateDGPO
from agents.policies.diffusion_policy import GraphDiffusionPolicy
from dgpo_env.benchmarks.base import CellResult
from dgpo_env.benchmarks.constrained import ConstrainedBenchmark
from dgpo_env.rewards import AccuracyUnderBudget, metric_value


@dataclasses.dataclass(frozen=True)
class ConstrainedConfig(Settings):
    """The settings of the budget-aware ranking (docs/dgpo.md §4 lists each with its source).

    Attributes:
        acquisition: ``"ei"`` (constrained expected improvement) or ``"ucb"`` (feasibility-weighted
            upper confidence bound, with the surrogate's ``ucb_beta``); see the module docstring.
        feasible_after: Feasible cells looked up before the accuracy model ranks; >= 2 (below it, the
            probability of feasibility alone ranks).

    Raises:
        TypeError: For a setting of the wrong type.
        ValueError: For a setting out of range.
    """

    acquisition: str = "ucb"
    """Not tuned: the surrogate preset's acquisition (UCB, ``ucb_beta`` 1, tuned there on seeds 0-19) carried
    over, weighted by the probability of feasibility."""
    feasible_after: int = 2
    """Not tuned: the fewest cells a Gaussian process can be fitted on."""

    def __post_init__(self) -> None:
        if self.acquisition not in ("ei", "ucb"):
            raise ValueError(f"ConstrainedConfig.acquisition must be 'ei' or 'ucb', got {self.acquisition!r}")
        self._check_count("feasible_after", 2)


class ConstrainedDGPO(SurrogateDGPO):
    """The surrogate preset ranking by accuracy acquisition × probability of feasibility under budgets.

    Args:
        policy: As :class:`~agents.dgpo.dgpo.DGPO`.
        env: As :class:`~agents.dgpo.dgpo.DGPO`; its benchmark's budgets (if it is a
            :class:`~dgpo_env.benchmarks.ConstrainedBenchmark`) are the constraints.
        config: The DGPO settings.
        elite: The elite settings.
        surrogate: The surrogate ranking settings.
        constrained: The budget-aware settings (default ``ConstrainedConfig()``).
        **kwargs: As :class:`~agents.dgpo.surrogate.SurrogateDGPO`, plus overrides of
            :class:`ConstrainedConfig` fields.

    Attributes:
        constrained: The budget-aware settings in use.
        costs: Canonical key -> ``float64[L]`` the log of each budgeted metric of a looked-up cell
            (one entry per budget, in the order of ``budget.limits``).
        feasible_keys: Keys of the looked-up cells that meet every budget.

    Raises:
        TypeError: For an unknown setting name or a setting of the wrong type.
        ValueError: For a setting out of range.
    """

    settings_classes: ClassVar[dict[str, type[Settings]]] = {
        **SurrogateDGPO.settings_classes,
        "constrained": ConstrainedConfig,
    }
    constrained: ConstrainedConfig

    acquisition = Setting[str]("constrained")
    feasible_after = Setting[int]("constrained")

    def __init__(
        self,
        policy: str | type[GraphDiffusionPolicy],
        env: GymEnv | str | None,
        config: DGPOConfig | None = None,
        elite: EliteConfig | None = None,
        surrogate: SurrogateConfig | None = None,
        constrained: ConstrainedConfig | None = None,
        **kwargs: Any,
    ) -> None:
        self.constrained = settings_from("constrained", ConstrainedConfig, constrained, kwargs)
        self.costs: dict[str, np.ndarray] = {}
        self.feasible_keys: set[str] = set()
        super().__init__(policy, env, config, elite, surrogate, **kwargs)

    def _extra_state(self) -> dict[str, Any]:
        """The surrogate preset's state plus the looked-up cells' log costs and which were feasible (JSON)."""
        keys = list(self.costs)
        costs = {"keys": keys, "log_costs": [self.costs[key].tolist() for key in keys]}
        return {**super()._extra_state(), "costs": {**costs, "feasible": sorted(self.feasible_keys)}}

    def _restore_extra_state(self, extra: dict[str, Any]) -> None:
        """Put back what :meth:`_extra_state` saved (an agent saved without costs starts with none)."""
        super()._restore_extra_state(extra)
        data = extra.get("costs") or {"keys": [], "log_costs": [], "feasible": []}
        self.costs = {
            str(k): np.asarray(v, dtype=np.float64) for k, v in zip(data["keys"], data["log_costs"], strict=True)
        }
        self.feasible_keys = {str(key) for key in data["feasible"]}

    @property
    def budget(self) -> AccuracyUnderBudget | None:
        """The budgets: the environment's benchmark's, else its reward's if that is a budget, else ``None``."""
        if self.env is None:
            return None
        benchmark = self.env.get_attr("benchmark", [0])[0]
        if isinstance(benchmark, ConstrainedBenchmark):
            return benchmark.budget
        reward = self.env.get_attr("reward_fn", [0])[0]
        return reward if isinstance(reward, AccuracyUnderBudget) else None

    # ------------------------------------------------------------------ what each look-up returned
    def _record_episodes(
        self, infos: list[dict[str, Any]], rewards: np.ndarray, finals: np.ndarray, start: float
    ) -> None:
        """Keep the budgeted costs of every newly looked-up valid cell, then the base bookkeeping."""
        budget = self.budget
        if budget is not None:
            for info in infos:
                key = info.get("key")
                if not info.get("valid") or key is None or key in self.costs:
                    continue
                result = CellResult(
                    key=key,
                    valid=True,
                    params_m=info.get("params_m"),
                    latency_s=info.get("latency_s"),
                    train_time_s=info.get("train_time_s"),
                )
                values = [metric_value(result, metric) for metric, _ in budget.limits]
                self.costs[key] = np.log(np.maximum(values, 1e-12))
                if budget.feasible(result):
                    self.feasible_keys.add(key)
        super()._record_episodes(infos, rewards, finals, start)

    # ------------------------------------------------------------------ ranked final step
    def _final_step_actions(self, actions: np.ndarray, node_probs: Tensor, edge_probs: Tensor) -> np.ndarray:
        """The copies' picks by acquisition × probability of feasibility (see the module docstring)."""
        budget = self.budget
        if budget is None:
            return super()._final_step_actions(actions, node_probs, edge_probs)
        elite_rule = EliteDGPO._final_step_actions
        known = [key for key in self.archive.cells if key in self.costs]
        if len(known) < self.surrogate_after:
            return elite_rule(self, actions, node_probs, edge_probs)
        flats, rows = self._candidates(actions, node_probs, edge_probs)
        if len(flats) < len(actions):
            return elite_rule(self, actions, node_probs, edge_probs)
        free = self.policy.model.space.free_positions
        candidates = flats[:, free]
        feasibility = self.feasibility(candidates, known, [limit for _, limit in budget.limits])
        feasible = [key for key in known if key in self.feasible_keys]
        if len(feasible) < self.feasible_after:
            model = CellGP.fit(np.stack([self.archive.cells[key][free] for key in known]), np.zeros(len(known)))
            acquisition: Acquisition = lambda mean, std: feasibility  # noqa: E731
        else:
            x = np.stack([self.archive.cells[key][free] for key in feasible])
            model = CellGP.fit(x, np.array([self.archive.scores[key] for key in feasible]))
            acquisition = self._acquisition(feasibility, len(feasible), model.noise)
        batch = len(actions)
        plan: list[int | None] = list(range(batch)) if self.per_copy else [None] * batch
        picks = np.array(model.select_batch(candidates, self.ucb_beta, plan, rows, acquisition), dtype=np.int64)
        self.n_ranked_rounds += 1
        proposals = elite_rule(self, actions.copy(), node_probs, edge_probs)
        found = picks >= 0
        proposals[: len(picks)][found] = flats[picks[found]]
        return proposals

    def feasibility(self, candidates: np.ndarray, known: list[str], limits: list[float]) -> np.ndarray:
        """``float64[C]``: the probability that each candidate ``int[C, P]`` meets every budget.

        One :class:`CellGP` per budget on the log costs of the looked-up cells ``known`` (only those),
        the limit carried into the models' normal scores (see the module docstring).
        """
        free = self.policy.model.space.free_positions
        x = np.stack([self.archive.cells[key][free] for key in known])
        costs = np.stack([self.costs[key] for key in known])  # [n, L]
        probability = np.ones(len(candidates))
        inv_cdf = NormalDist().inv_cdf
        for j, limit in enumerate(limits):
            y = costs[:, j]
            n = len(y)
            share = float(np.sum(y <= np.log(limit))) / n
            z_limit = inv_cdf(min(max(share, 0.25 / n), 1.0 - 0.25 / n))
            model = CellGP.fit(x, y)
            mean, cov = model.posterior(candidates)
            std = np.sqrt(np.clip(np.diag(cov), 0.0, None) + model.noise)
            probability *= ndtr((z_limit - mean) / std)
        return probability

    def _acquisition(self, feasibility: np.ndarray, n_feasible: int, noise: float) -> Acquisition:
        """The accuracy acquisition of :attr:`acquisition` times the probability of feasibility."""
        inv_cdf = NormalDist().inv_cdf
        best = inv_cdf((n_feasible - 0.5) / n_feasible)  # the best feasible cell's normal score
        floor = inv_cdf(0.5 / n_feasible)  # the worst one's
        beta = self.ucb_beta
        if self.acquisition == "ei":

            def expected_improvement(mean: np.ndarray, std: np.ndarray) -> np.ndarray:
                std = np.maximum(std, 1e-12)
                u = (mean - best) / std
                density = np.exp(-0.5 * u * u) / np.sqrt(2 * np.pi)
                return ((mean - best) * ndtr(u) + std * density) * feasibility

            return expected_improvement

        def weighted_ucb(mean: np.ndarray, std: np.ndarray) -> np.ndarray:
            return feasibility * (mean + beta * std) + (1.0 - feasibility) * floor

        return weighted_ucb


def ndtr(x: np.ndarray) -> np.ndarray:
    """``float64[...]``: the standard normal distribution function ``Φ(x)`` elementwise."""
    return torch.special.ndtr(torch.from_numpy(np.asarray(x, dtype=np.float64))).numpy()


GRADED_REWARD = True
""":func:`run_dgpo_constrained` trains the policy on the graded budget reward (an over-budget cell gets minus
its relative violation), so its mass moves towards the budget (not tuned: a flat 0 gives no direction)."""


def run_dgpo_constrained(
    benchmark_kwargs: dict[str, Any], seed: int, max_queries: int, graded: bool = GRADED_REWARD, **kwargs: Any
) -> SearchResult:
    """The ``"constrained"`` preset (:class:`ConstrainedDGPO`) as a method of the comparison harness.

    Under budgets (the run spec's ``"reward"`` holds ``max_latency_ms``, ``max_params_m`` or
    ``max_train_time_s``) the policy's reward is :class:`~dgpo_env.rewards.AccuracyUnderBudget` with
    ``graded``; without budgets the method is ``dgpo-surrogate`` under another name.

    Args:
        benchmark_kwargs: The run spec.
        seed: Seeds the environment and DGPO.
        max_queries: The budget of distinct cells.
        graded: Subtract an over-budget cell's relative violation from its reward.
        **kwargs: Further :func:`~agents.dgpo.compare_methods.run_dgpo` arguments and settings.

    Raises:
        TypeError: For a non-bool ``graded``.
    """
    from agents.dgpo.compare_methods import run_dgpo
    from agents.harness.registry import BUDGET_KEYS

    if not isinstance(graded, bool):
        raise TypeError(f"graded must be a bool, got {graded!r} ({type(graded).__name__})")
    options = benchmark_kwargs.get("reward") or {}
    budgets = {key: options[key] for key in BUDGET_KEYS if options.get(key) is not None}
    if budgets and "env_kwargs" not in kwargs:
        reward = AccuracyUnderBudget(**budgets, infeasible_reward=options.get("infeasible_reward", 0.0), graded=graded)
        kwargs["env_kwargs"] = {"reward_fn": reward}
    return run_dgpo(benchmark_kwargs, seed, max_queries, variant="constrained", **kwargs)


__all__ = ["GRADED_REWARD", "ConstrainedConfig", "ConstrainedDGPO", "run_dgpo_constrained"]
