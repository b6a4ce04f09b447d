"""The multi-objective surrogate variant of DGPO: rank candidates by expected front improvement (docs/dgpo.md §4).

:class:`ParetoSurrogateDGPO` is :class:`~agents.dgpo.surrogate.SurrogateDGPO` with one reward model per
objective instead of one for the reward. At the last denoising step of a round it draws the same
candidates (the policy's own final reverse step, ``n_candidates`` per environment copy), and then

1. fits one Gaussian process per objective (:class:`~agents.dgpo.cell_gp.CellGP`) on the cells already
   looked up — every training point is a counted query; a cell's costs (latency, ...) are read from the
   environment's ``info`` of its look-up, as its accuracy is;
2. works in the models' own units, the normal scores of the values looked up (each objective turned
   so that larger is better): the observed front is the non-dominated set of the looked-up cells'
   scores, the reference point its componentwise minimum less ``reference_margin``;
3. scores every candidate by the **hypervolume improvement** of its optimistic point
   ``mean + ucb_beta · std`` (per objective) over the observed front (hypervolumes by :mod:`moocore`);
   a candidate whose optimistic point is dominated scores minus its additive ε-distance to the front
   (how far it must move to stop being dominated), so the closest of them wins when no candidate
   improves the front;
4. picks one candidate after the other (the plan of :class:`SurrogateDGPO`: the preset lets every copy
   propose the best of its own draws), each pick then added to the front at its posterior mean and
   conditioned on in every model (the kriging-believer batch rule of :class:`CellGP`), so one batch
   spreads along the front instead of piling onto one gap.

DGPO's update, the elite replay and the anchors are unchanged: in the harness method ``dgpo-mo-gp`` the
policy is fine-tuned on the random-preference Chebyshev reward of ``dgpo-mo``
(:func:`agents.dgpo.compare_methods.run_dgpo_mo_gp`), so its draws move towards the front, while the
models choose which draws are looked up. Needs :mod:`moocore` (the optional extra ``moo``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np
from stable_baselines3.common.type_aliases import GymEnv

from agents.dgpo.cell_gp import CellGP, normal_scores
from agents.dgpo.config import DGPOConfig, Setting, Settings, settings_from
from agents.dgpo.elite import EliteConfig
from agents.dgpo.surrogate import SurrogateConfig, SurrogateDGPO
from agents.harness.pareto import hypervolume, nondominated
from agents.policies.diffusion_policy import GraphDiffusionPolicy
from dgpo_env.rewards import Metric, check_metric


def parse_objectives(text: object) -> tuple[Metric, ...]:
    """The metrics named by a comma-separated string such as ``"acc,latency"``.

    Raises:
        TypeError: If ``text`` is not a string.
        ValueError: For fewer than two, repeated or unknown names (:func:`~dgpo_env.rewards.check_metric`).
    """
    if not isinstance(text, str):
        raise TypeError(f'objectives must be a comma-separated string such as "acc,latency", got {text!r}')
    names = [name.strip() for name in text.split(",") if name.strip()]
    if len(names) < 2 or len(set(names)) != len(names):
        raise ValueError(f'objectives must name at least two distinct metrics, e.g. "acc,latency", got {text!r}')
    return tuple(check_metric(name) for name in names)


@dataclasses.dataclass(frozen=True)
class ParetoConfig(Settings):
    """The settings of the multi-objective ranking (docs/dgpo.md §4 lists each with its source).

    Attributes:
        objectives: The objectives, comma-separated metric names of :data:`dgpo_env.rewards.METRICS`.
        reference_margin: How far below the observed front's componentwise minimum the reference point
            of the hypervolume lies, in normal scores; > 0.

    Raises:
        TypeError: For a setting of the wrong type.
        ValueError: For a setting out of range or an unknown objective.
    """

    objectives: str = "acc,latency"
    """The objectives of the NAS-Bench-201 trade-off the harness reports (benchmarks/multi_objective.py)."""
    reference_margin: float = 1.0
    """Tuned on seeds 0-9 (docs/dgpo.md §4): one standard deviation of the normal scores (0.5 and 2 were worse at 100
    queries)."""

    def __post_init__(self) -> None:
        parse_objectives(self.objectives)
        self._check_real("reference_margin", 0.0, float("inf"), low_open=True, high_open=True)

    @property
    def metrics(self) -> tuple[Metric, ...]:
        """The objectives' :class:`~dgpo_env.rewards.Metric` entries."""
        return parse_objectives(self.objectives)


def epsilon_to_front(points: np.ndarray, front: np.ndarray) -> np.ndarray:
    """``float64[C]``: the additive ε by which each point must improve so no front point dominates it.

    Every objective is maximised: ``ε(u) = max_f min_d (f_d - u_d)``, ``< 0`` for a point no front point
    weakly dominates. ``points`` is ``float[C, D]``, ``front`` ``float[F, D]``.
    """
    return (front[None, :, :] - points[:, None, :]).min(-1).max(-1)


def select_batch_hvi(
    models: list[CellGP],
    observed: np.ndarray,
    candidates: np.ndarray,
    beta: float,
    plan: list[int | None],
    groups: np.ndarray | None,
    reference_margin: float,
) -> list[int]:
    """Candidates picked one by one by the hypervolume improvement of their optimistic points (module docstring).

    Args:
        models: One fitted :class:`CellGP` per objective (targets turned so that larger is better).
        observed: ``float64[n, D]`` the looked-up cells' values in the models' units (normal scores).
        candidates: ``int[C, P]`` the candidates' free entries.
        beta: Exploration weight of ``mean + beta · std``, per objective.
        plan: One entry per pick: ``None`` (any candidate) or a group id (only that group's candidates).
        groups: ``int[C]`` the group of each candidate (needed when ``plan`` names groups).
        reference_margin: The reference point is ``observed.min(0) - reference_margin``.

    Returns:
        One candidate index per entry of ``plan``, ``-1`` where none was left to pick.
    """
    posteriors = [model.posterior(candidates) for model in models]
    means = np.stack([mean for mean, _ in posteriors], axis=1)  # [C, D]
    covs = [cov for _, cov in posteriors]  # D x [C, C]
    maximise = [True] * len(models)
    reference = observed.min(0) - reference_margin  # [D]
    front = observed[nondominated(observed, maximise)]
    available = np.ones(len(candidates), dtype=bool)
    chosen: list[int] = []
    for group in plan:
        allowed = available if group is None else available & (np.asarray(groups) == group)
        if not allowed.any():
            chosen.append(-1)
            continue
        std = np.stack([np.sqrt(np.clip(np.diag(cov), 0.0, None)) for cov in covs], axis=1)  # [C, D]
        optimistic = means + beta * std
        score = -epsilon_to_front(optimistic, front)  # > 0: not dominated
        base = hypervolume(front, reference, maximise)
        for i in np.flatnonzero(allowed & (score > 0)):
            gain = hypervolume(np.vstack([front, optimistic[i]]), reference, maximise) - base
            score[i] = score[i] + gain  # a dominated point never outranks one that improves the front
        j = int(np.argmax(np.where(allowed, score, -np.inf)))
        chosen.append(j)
        available[j] = False
        front = np.vstack([front, means[j]])
        front = front[nondominated(front, maximise)]
        for d, (model, cov) in enumerate(zip(models, covs, strict=True)):
            column = cov[:, j].copy()
            covs[d] = cov - np.outer(column, column) / (column[j] + model.noise)
    return chosen


class ParetoSurrogateDGPO(SurrogateDGPO):
    """Surrogate DGPO whose final proposals are ranked by hypervolume improvement over several objectives.

    Args:
        policy: As :class:`~agents.dgpo.dgpo.DGPO`.
        env: As :class:`~agents.dgpo.dgpo.DGPO`; its benchmark must report every objective.
        config: The DGPO settings.
        elite: The elite settings (default ``EliteConfig()``).
        surrogate: The ranking settings (default ``SurrogateConfig()``).
        pareto: The multi-objective settings (default ``ParetoConfig()``).
        **kwargs: As :class:`~agents.dgpo.surrogate.SurrogateDGPO`, plus overrides of :class:`ParetoConfig`
            fields (``objectives="acc,params"``).

    Attributes:
        pareto: The multi-objective settings in use.
        objective_values: Canonical key -> ``float64[D]`` the looked-up cell's objectives (metric units).

    Raises:
        TypeError: For an unknown setting name or a setting of the wrong type.
        ValueError: For a setting out of range.
        KeyError: If a look-up's ``info`` lacks an objective's field (an environment of an older version).
    """

    settings_classes: ClassVar[dict[str, type[Settings]]] = {
        **SurrogateDGPO.settings_classes,
        "pareto": ParetoConfig,
    }
    pareto: ParetoConfig

    objectives = Setting[str]("pareto")
    reference_margin = Setting[float]("pareto")

    def __init__(
        self,
        policy: str | type[GraphDiffusionPolicy],
        env: GymEnv | str | None,
        config: DGPOConfig | None = None,
        elite: EliteConfig | None = None,
        surrogate: SurrogateConfig | None = None,
        pareto: ParetoConfig | None = None,
        **kwargs: Any,
    ) -> None:
        self.pareto = settings_from("pareto", ParetoConfig, pareto, kwargs)
        self.objective_values: dict[str, np.ndarray] = {}
        super().__init__(policy, env, config, elite, surrogate, **kwargs)

    # ------------------------------------------------------------------ objectives of the looked-up cells
    def _record_episodes(
        self, infos: list[dict[str, Any]], rewards: np.ndarray, finals: np.ndarray, start: float
    ) -> None:
        """Keep each valid look-up's objectives (from its ``info``), then as :class:`SurrogateDGPO`."""
        for info in infos:
            if info.get("valid") and info.get("val_acc_mean") is not None and info["key"] not in self.objective_values:
                self.objective_values[info["key"]] = np.array(
                    [
                        float(info["val_acc_mean" if m.field == "val_acc" else m.field]) * m.factor
                        for m in self.pareto.metrics
                    ]
                )
        super()._record_episodes(infos, rewards, finals, start)

    def _select(self, flats: np.ndarray, rows: np.ndarray, plan: list[int | None]) -> list[int]:
        """Picks by hypervolume improvement of one model per objective (:func:`select_batch_hvi`)."""
        free = self.policy.model.space.free_positions
        keys = [key for key in self.archive.cells if key in self.objective_values]
        x = np.stack([self.archive.cells[key][free] for key in keys])  # [n, P]
        signs = np.array([1.0 if m.maximise else -1.0 for m in self.pareto.metrics])  # larger is better
        values = np.stack([self.objective_values[key] for key in keys]) * signs  # [n, D]
        models = [CellGP.fit(x, values[:, d]) for d in range(values.shape[1])]
        observed = np.stack([normal_scores(values[:, d]) for d in range(values.shape[1])], axis=1)
        return select_batch_hvi(
            models, observed, flats[:, free], self.ucb_beta, plan, rows, self.pareto.reference_margin
        )

    def _extra_state(self) -> dict[str, Any]:
        """The archive and the looked-up cells' objectives, as JSON."""
        keys = list(self.objective_values)
        return {
            **super()._extra_state(),
            "objective_values": {"keys": keys, "values": [self.objective_values[k].tolist() for k in keys]},
        }

    def _restore_extra_state(self, extra: dict[str, Any]) -> None:
        """Put back what :meth:`_extra_state` saved."""
        super()._restore_extra_state(extra)
        data = extra["objective_values"]
        self.objective_values = {
            str(k): np.asarray(v, dtype=np.float64) for k, v in zip(data["keys"], data["values"], strict=True)
        }


__all__ = ["ParetoConfig", "ParetoSurrogateDGPO", "epsilon_to_front", "parse_objectives", "select_batch_hvi"]
