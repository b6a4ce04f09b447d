"""The surrogate variant of DGPO: rank the diffusion model's candidates before querying (docs/dgpo.md §4).

:class:`SurrogateDGPO` is :class:`~agents.dgpo.elite.EliteDGPO` (elite replay, elite-anchored starts, novel
final steps) with one more use of the cells already looked up, which costs no query: at the last
denoising step of a round it

1. draws ``n_candidates`` cells per environment copy from the policy's own final reverse step
   ``p_θ(G_0 | G_1)`` (the probabilities the copy's proposal was drawn from: no extra network call);
   optionally also the cells one edit away from the ``neighbour_top_k`` best cells found so far and
   ``n_prior_candidates`` draws from the diffusion prior's marginals;
2. drops the invalid ones, those already looked up and duplicates;
3. fits a Gaussian process on the looked-up cells only (:class:`~agents.dgpo.cell_gp.CellGP`: every
   training point is a counted query of the archive) and picks by the upper confidence bound
   ``mean + ucb_beta · std``, one pick at a time, each conditioned on the earlier ones: the first
   ``ranked_share`` of the copies get the best candidates of all, and with ``per_copy`` every other
   copy proposes the best of its own draws (the preset: all copies, each its own best), which keeps the
   copies' diversity — an anchored copy edits its anchor, an unanchored one explores.

The trajectories keep the copies' own ``G_T … G_1``, and DGPO's update, elite replay and anchors are
unchanged; only which cells get looked up is steered by the reward model. Until ``surrogate_after``
cells are known, for a round with fewer new candidates than copies, and for a copy without a pick, the
elite rule proposes.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np
import torch
from stable_baselines3.common.type_aliases import GymEnv
from torch import Tensor

from agents.dgpo.cell_gp import CellGP
from agents.dgpo.config import DGPOConfig, Setting, Settings, settings_from
from agents.dgpo.elite import EliteConfig, EliteDGPO
from agents.policies.diffusion_policy import GraphDiffusionPolicy
from dgpo_env.diffusion.noise import sample_categorical


@dataclasses.dataclass(frozen=True)
class SurrogateConfig(Settings):
    """The settings of the surrogate ranking (docs/dgpo.md §4 lists each with its source).

    Attributes:
        surrogate_after: Distinct cells looked up before the reward model ranks candidates; >= 2
            (below it, the elite rule proposes).
        n_candidates: Cells drawn from the policy's final reverse step per environment copy and round;
            >= 1.
        neighbour_top_k: The single-edit neighbours of this many best cells join the candidates; >= 0
            (0: none).
        n_prior_candidates: Cells drawn from the diffusion prior's marginals ``m`` (the distribution of
            ``G_T``) per round, so the reward model can also pick far from the policy's mass; >= 0.
        ranked_share: Share of a round's proposals that are the best candidates of all (rounded); in [0, 1].
        per_copy: Each other copy proposes the best of its own draws (ranked one copy after the other,
            each pick conditioned on the earlier ones), which keeps the copies' diversity; ``False``: the
            other copies keep the elite rule's proposals (their own draw, redrawn while stale).
        ucb_beta: Exploration weight of the upper confidence bound ``mean + ucb_beta · std`` (in normal
            scores); >= 0 (0: the posterior mean alone).

    Raises:
        TypeError: For a setting of the wrong type.
        ValueError: For a setting out of range.
    """

    surrogate_after: int = 10
    """Not tuned: 10 cells before the first ranking, as Optuna TPE's 10 start-up trials (docs/dgpo.md §4)."""
    n_candidates: int = 32
    """Tuned on seeds 0-19 (docs/dgpo.md §4): 32 policy draws per copy and round (16 and 64 were worse)."""
    neighbour_top_k: int = 0
    """Tuned on seeds 0-19 (docs/dgpo.md §4): no neighbours (with them, runs stuck in a local optimum)."""
    n_prior_candidates: int = 0
    """Tuned on seeds 0-19 (docs/dgpo.md §4): no prior draws (200 or 300 were never picked)."""
    ranked_share: float = 0.0
    """Tuned on seeds 0-19 (docs/dgpo.md §4): no copy takes the best candidates of all (ranking all
    candidates together piled every copy onto one peak)."""
    per_copy: bool = True
    """Tuned on seeds 0-19 (docs/dgpo.md §4): every copy proposes the best of its own draws."""
    ucb_beta: float = 1.0
    """Tuned on seeds 0-19 (docs/dgpo.md §4): UCB exploration weight 1 (2 and 2.5 were worse)."""

    def __post_init__(self) -> None:
        self._check_count("surrogate_after", 2)
        self._check_count("n_candidates", 1)
        self._check_count("neighbour_top_k", 0)
        self._check_count("n_prior_candidates", 0)
        self._check_real("ranked_share", 0.0, 1.0)
        if not isinstance(self.per_copy, bool):
            raise TypeError(
                f"SurrogateConfig.per_copy must be a bool, got {self.per_copy!r} ({type(self.per_copy).__name__})"
            )
        self._check_real("ucb_beta", 0.0, float("inf"), high_open=True)


class SurrogateDGPO(EliteDGPO):
    """Elite DGPO whose final proposals are the policy's candidates ranked by a Gaussian process.

    Args:
        policy: As :class:`~agents.dgpo.dgpo.DGPO`.
        env: As :class:`~agents.dgpo.dgpo.DGPO`.
        config: The DGPO settings.
        elite: The elite settings (default ``EliteConfig()``).
        surrogate: The ranking settings (default ``SurrogateConfig()``).
        **kwargs: As :class:`~agents.dgpo.elite.EliteDGPO`, plus overrides of :class:`SurrogateConfig`
            fields (``SurrogateDGPO(policy, env, ucb_beta=0.5)``).

    Attributes:
        surrogate: The ranking settings in use.
        n_ranked_rounds: Rounds whose proposals the reward model chose.

    Raises:
        TypeError: For an unknown setting name or a setting of the wrong type.
        ValueError: For a setting out of range.
    """

    settings_classes: ClassVar[dict[str, type[Settings]]] = {
        "config": DGPOConfig,
        "elite": EliteConfig,
        "surrogate": SurrogateConfig,
    }
    surrogate: SurrogateConfig

    surrogate_after = Setting[int]("surrogate")
    n_candidates = Setting[int]("surrogate")
    neighbour_top_k = Setting[int]("surrogate")
    n_prior_candidates = Setting[int]("surrogate")
    ranked_share = Setting[float]("surrogate")
    per_copy = Setting[bool]("surrogate")
    ucb_beta = Setting[float]("surrogate")

    def __init__(
        self,
        policy: str | type[GraphDiffusionPolicy],
        env: GymEnv | str | None,
        config: DGPOConfig | None = None,
        elite: EliteConfig | None = None,
        surrogate: SurrogateConfig | None = None,
        **kwargs: Any,
    ) -> None:
        self.surrogate = settings_from("surrogate", SurrogateConfig, surrogate, kwargs)
        self.n_ranked_rounds = 0
        super().__init__(policy, env, config, elite, **kwargs)

    # ------------------------------------------------------------------ ranked final step
    def _final_step_actions(self, actions: np.ndarray, node_probs: Tensor, edge_probs: Tensor) -> np.ndarray:
        """The ``B`` best-ranked new candidates, or the elite rule's proposals (see the module docstring)."""
        if len(self.archive) < self.surrogate_after:
            return super()._final_step_actions(actions, node_probs, edge_probs)
        flats, rows = self._candidates(actions, node_probs, edge_probs)
        if len(flats) < len(actions):  # too few new cells: keep the elite rule's redraws
            return super()._final_step_actions(actions, node_probs, edge_probs)
        batch = len(actions)
        n_global = round(self.ranked_share * batch)
        # the first n_global copies: the best candidates of all; the others: the best of their own draws
        plan: list[int | None] = (
            [None] * n_global + list(range(n_global, batch)) if self.per_copy else [None] * n_global
        )
        picks = np.array(self._select(flats, rows, plan), dtype=np.int64)
        self.n_ranked_rounds += 1
        proposals = super()._final_step_actions(
            actions.copy(), node_probs, edge_probs
        )  # the elite rule's, for the rest
        found = picks >= 0
        proposals[: len(picks)][found] = flats[picks[found]]
        return proposals

    def _select(self, flats: np.ndarray, rows: np.ndarray, plan: list[int | None]) -> list[int]:
        """Candidate indices picked for ``plan`` (``-1``: none left) by the reward model of the looked-up cells.

        Args:
            flats: ``int64[C, N + M]`` the new candidates.
            rows: ``int64[C]`` the copy each was drawn for.
            plan: One entry per pick, as :meth:`~agents.dgpo.cell_gp.CellGP.select_batch`.
        """
        free = self.policy.model.space.free_positions
        keys = list(self.archive.cells)
        x = np.stack([self.archive.cells[key][free] for key in keys])  # [n, P]
        y = np.array([self.archive.scores[key] for key in keys])  # [n]
        return CellGP.fit(x, y).select_batch(flats[:, free], self.ucb_beta, plan, groups=rows)

    def _candidates(self, actions: np.ndarray, node_probs: Tensor, edge_probs: Tensor) -> tuple[np.ndarray, np.ndarray]:
        """New valid candidates ``int64[C, N + M]`` (clamped) and the copy each was drawn for (``-1``: none).

        The draws come from the agent's generator: ``n_candidates`` per copy from ``node_probs`` ``[B, N, K]``
        and ``edge_probs`` ``[B, M, K_e]``, the copies' own draws ``actions`` first.
        """
        batch = len(actions)
        repeat = self.n_candidates
        nodes = sample_categorical(node_probs.repeat_interleave(repeat, 0), self._generator)  # [B * R, N]
        edges = sample_categorical(edge_probs.repeat_interleave(repeat, 0), self._generator)  # [B * R, M]
        drawn = torch.cat([nodes, edges], dim=1).cpu().numpy()
        pool = [actions, drawn, *self._neighbours()]
        if self.n_prior_candidates:
            noise = self.policy.model.noise
            count = self.n_prior_candidates
            prior_nodes = sample_categorical(noise.node_marginals.to(node_probs).expand(count, -1, -1), self._generator)
            prior_edges = sample_categorical(noise.edge_marginals.to(edge_probs).expand(count, -1, -1), self._generator)
            pool.append(torch.cat([prior_nodes, prior_edges], dim=1).cpu().numpy())
        origin = [np.arange(batch), np.repeat(np.arange(batch), repeat)]
        origin += [np.full(len(block), -1) for block in pool[2:]]
        space = self.policy.model.space
        seen: set[str] = set()
        flats: list[np.ndarray] = []
        rows: list[int] = []
        for flat, row in zip(np.concatenate(pool), np.concatenate(origin), strict=True):
            clamped = space.clamp(flat)
            cell = space.from_flat(clamped)
            if space.validate(cell) is not None:
                continue
            key = space.canonical_key(cell)
            if key in seen or key in self.archive:
                continue
            seen.add(key)
            flats.append(clamped)
            rows.append(int(row))
        if not flats:
            return np.empty((0, len(space.nvec)), dtype=np.int64), np.empty(0, dtype=np.int64)
        return np.stack(flats), np.array(rows, dtype=np.int64)

    def _neighbours(self) -> list[np.ndarray]:
        """``int64[*, N + M]`` blocks: every single change of a free entry of the ``neighbour_top_k`` best cells."""
        if not self.neighbour_top_k:
            return []
        space = self.policy.model.space
        node_allowed, edge_allowed = space.allowed
        allowed = [*node_allowed, *edge_allowed]  # per flat entry: bool[K] or bool[K_e]
        blocks = []
        for key in self.archive.top(self.neighbour_top_k):
            cell = self.archive.cells[key]
            for position in space.free_positions:
                values = np.flatnonzero(allowed[position])
                values = values[values != cell[position]]
                block = np.repeat(cell[None, :], len(values), axis=0)
                block[:, position] = values
                blocks.append(block)
        return blocks


__all__ = ["SurrogateConfig", "SurrogateDGPO"]
