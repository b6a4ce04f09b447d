"""The elite variant of DGPO: reuse of the cells already looked up (docs/dgpo.md §4).

Published DGPO (:class:`~agents.dgpo.dgpo.DGPO`, docs/dgpo.md §1) learns only from the batch it has just
sampled and starts every trajectory from the prior. :class:`EliteDGPO` adds three ways of reusing the
cells already looked up — none of them costs a query — each set in :class:`EliteConfig`:

* **elite replay**: after each batch, a few steps of the pretraining loss
  (:func:`agents.diffusion.pretrain.denoising_loss`: the denoiser's cross-entropy against clean graphs
  noised to random ``t``) on the ``k`` best cells found so far — a cross-entropy-method step that keeps
  the model's mass on the best region even when recent batches were poor;
* **elite-anchored starts**: some batches start from a best-so-far cell noised to an intermediate time
  (``GraphDenoiseEnv.reset(options={"start_cell", "start_step"})``, SDEdit-style) instead of from the
  prior, so the fine-tuned denoiser proposes edits of good cells — a learned mutation;
* **novel final step**: at the last denoising step a proposal whose cell is invalid, already looked up,
  or already proposed in the same round is redrawn (a few times), so batch slots are spent on new cells;
* **restarts** (off unless ``restart_after > 0``): after ``restart_after`` distinct queries without a cell
  better than the best so far, the search starts again — the policy's weights go back to the starting
  model, its optimiser state is cleared and the archive (replay, anchors, and the surrogate's reward
  model) starts empty — while every query made stays counted and a repeated cell stays free. A search
  that has settled on a local optimum several edits from a better cell can then find another way; the
  rule is that of restart strategies in evolution strategies (IPOP-CMA-ES: Auger & Hansen, CEC 2005)
  and trust-region BO (TuRBO: Eriksson et al., NeurIPS 2019), which start afresh once progress stalls.

They plug into the hooks of :class:`~agents.dgpo.dgpo.DGPO` (those of trajectory collection are its base's,
:class:`~agents.dgpo.trajectories.TrajectoryAlgorithm`); the published algorithm has no elite code.
The named preset ``"elite"`` (:data:`agents.dgpo.variants.PRESETS`) pairs the defaults of
:class:`EliteConfig` with four changed DGPO settings.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from stable_baselines3.common.type_aliases import GymEnv
from torch import Tensor

from agents.dgpo.config import DGPOConfig, Setting, Settings, settings_from
from agents.dgpo.dgpo import DGPO
from agents.dgpo.explore import ExploreMemory
from agents.dgpo.losses import TrajectoryBatch, check_finite_loss
from agents.diffusion.pretrain import denoising_loss
from agents.policies.diffusion_policy import GraphDiffusionPolicy


@dataclass
class CellArchive:
    """Every valid cell the agent has looked up, with its mean validation accuracy.

    Attributes:
        n_nodes: Nodes per cell (splits a flat ``concat(nodes, edges)`` vector).
        cells: Canonical key -> flat ``int64[N + M]`` cell.
        scores: Canonical key -> mean validation accuracy (percent).
    """

    n_nodes: int
    cells: dict[str, np.ndarray] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.cells)

    def __contains__(self, key: object) -> bool:
        return key in self.cells

    def add(self, key: str, flat: np.ndarray, score: float) -> None:
        """Record a looked-up cell (a repeat keeps the first record: look-ups are deterministic)."""
        if key not in self.cells:
            self.cells[key] = np.asarray(flat, dtype=np.int64).copy()
            self.scores[key] = float(score)

    def top(self, k: int) -> list[str]:
        """Keys of the ``k`` best cells, best first (ties broken by key, so the order is reproducible)."""
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        return sorted(self.scores, key=lambda key: (-self.scores[key], key))[:k]

    def tensors(self, keys: list[str]) -> tuple[Tensor, Tensor]:
        """``(nodes int64[C, N], edges int64[C, M])`` of the given cells."""
        flat = torch.from_numpy(np.stack([self.cells[key] for key in keys]))  # [C, N + M]
        return flat[:, : self.n_nodes].contiguous(), flat[:, self.n_nodes :].contiguous()

    def draw_anchors(self, n: int, top_k: int, generator: torch.Generator) -> list[np.ndarray]:
        """``n`` flat cells drawn uniformly (with replacement) from the ``top_k`` best.

        Raises:
            ValueError: If the archive is empty.
        """
        if not self.cells:
            raise ValueError("the archive is empty: anchored starts need at least one looked-up cell")
        keys = self.top(top_k)
        picks = torch.randint(len(keys), (n,), generator=generator).tolist()
        return [self.cells[keys[i]].copy() for i in picks]


@dataclasses.dataclass(frozen=True)
class EliteConfig(Settings):
    """The settings of the elite additions (docs/dgpo.md §4 lists each with its source).

    The defaults are the elite preset's: tuned for query efficiency on NAS-Bench-201 CIFAR-10/100 and
    ImageNet16-120 with 10 denoising steps and the comparison's small model (``benchmarks/RESULTS.md``).
    Setting ``elite_replay``, ``anchor_prob`` and ``novelty_retries`` to 0 turns every addition off
    (:class:`EliteDGPO` then behaves exactly like :class:`~agents.dgpo.dgpo.DGPO`).

    Attributes:
        elite_replay: Replay this many best cells found so far after every batch; >= 0 (0: no replay).
        replay_passes: Optimizer steps of elite replay per batch; >= 1.
        anchor_prob: Probability that a batch starts from best-so-far cells noised to an intermediate
            time instead of from the prior; in [0, 1] (0: never).
        anchor_skip: Share of the denoising schedule an anchored start skips (``k = round(anchor_skip ·
            n_steps)``, clipped to ``1 .. n_steps - 1``); in (0, 1). Larger means less noise, closer edits.
        anchor_top_k: Anchors are drawn uniformly from this many best cells; >= 1.
        anchor_after: Distinct cells to look up (from the prior) before the first anchored batch; >= 0.
        novelty_retries: At the last denoising step, redraw a proposal whose cell is invalid, already
            looked up or already proposed in the round, up to this many times, mixing ever more of the
            prior into the reverse step (:meth:`EliteDGPO._final_step_actions`); >= 0 (0: never).
        archive_score: What ranks the archived cells for replay and anchors: ``"val_acc"`` (default)
            or ``"reward"`` (the terminal reward, for budget and trade-off rewards).
        restart_after: Restart the search (module docstring) after this many distinct queries without a
            better cell (by ``archive_score``); >= 0 (0: never).

    Raises:
        TypeError: For a setting of the wrong type.
        ValueError: For a setting out of range.
    """

    elite_replay: int = 10
    """Elite preset (tuned, docs/dgpo.md §4): replay the 10 best cells after every batch."""
    replay_passes: int = 10
    """Elite preset (tuned, docs/dgpo.md §4): 10 replay steps per batch."""
    anchor_prob: float = 0.9
    """Elite preset (tuned, docs/dgpo.md §4): 90% of batches start from an elite cell."""
    anchor_skip: float = 0.8
    """Elite preset (tuned, docs/dgpo.md §4): anchored starts skip 80% of the schedule."""
    anchor_top_k: int = 3
    """Elite preset (tuned, docs/dgpo.md §4): anchors are drawn from the 3 best cells."""
    anchor_after: int = 20
    """Elite preset (tuned, docs/dgpo.md §4): anchored starts once 20 cells are known."""
    novelty_retries: int = 10
    """Elite preset (tuned, docs/dgpo.md §4): up to 10 redraws of a known final cell."""
    archive_score: str = "val_acc"
    """What ranks the archive's cells: ``"val_acc"`` (mean validation accuracy) or ``"reward"`` (the
    episode's terminal reward, e.g. a budget or trade-off reward of :mod:`dgpo_env.rewards`)."""
    restart_after: int = 0
    """Elite preset: no restarts (the surrogate preset restarts after 75: tuned, docs/dgpo.md §4, "Restarts")."""

    def __post_init__(self) -> None:
        self._check_count("elite_replay", 0)
        self._check_count("replay_passes", 1)
        self._check_real("anchor_prob", 0.0, 1.0)
        self._check_real("anchor_skip", 0.0, 1.0, low_open=True, high_open=True)
        self._check_count("anchor_top_k", 1)
        self._check_count("anchor_after", 0)
        self._check_count("novelty_retries", 0)
        self._check_count("restart_after", 0)
        if self.archive_score not in ("val_acc", "reward"):
            raise ValueError(f"EliteConfig.archive_score must be 'val_acc' or 'reward', got {self.archive_score!r}")


class EliteDGPO(DGPO):
    """DGPO plus reuse of the looked-up cells: elite replay, elite-anchored starts, novel final steps.

    Args:
        policy: As :class:`~agents.dgpo.dgpo.DGPO`.
        env: As :class:`~agents.dgpo.dgpo.DGPO`.
        config: The DGPO settings (default ``DGPOConfig()``; the ``"elite"`` preset changes four of them).
        elite: The settings of the additions (default ``EliteConfig()``, the elite preset's).
        **kwargs: The other keyword arguments of :class:`~agents.dgpo.dgpo.DGPO` (``max_queries``,
            ``seed``, ...) and overrides of :class:`~agents.dgpo.config.DGPOConfig` or
            :class:`EliteConfig` fields (``EliteDGPO(policy, env, batch_size=8, anchor_prob=0.5)``).

    Attributes:
        elite: The settings of the additions in use; ``anchor_prob``, ... read from it.
        archive: Every valid cell looked up since the search last restarted (all of them without
            restarts), with its score (saved and loaded with the agent).
        n_restarts: How many times the search restarted (``restart_after``).

    Raises:
        TypeError: For an unknown setting name (the message lists the known ones) or a setting of the
            wrong type.
        ValueError: For a setting out of range.
    """

    settings_classes: ClassVar[dict[str, type[Settings]]] = {"config": DGPOConfig, "elite": EliteConfig}
    elite: EliteConfig
    archive: CellArchive

    elite_replay = Setting[int]("elite")
    replay_passes = Setting[int]("elite")
    anchor_prob = Setting[float]("elite")
    anchor_skip = Setting[float]("elite")
    anchor_top_k = Setting[int]("elite")
    anchor_after = Setting[int]("elite")
    novelty_retries = Setting[int]("elite")
    archive_score = Setting[str]("elite")
    restart_after = Setting[int]("elite")

    def __init__(
        self,
        policy: str | type[GraphDiffusionPolicy],
        env: GymEnv | str | None,
        config: DGPOConfig | None = None,
        elite: EliteConfig | None = None,
        **kwargs: Any,
    ) -> None:
        self.elite = settings_from("elite", EliteConfig, elite, kwargs)
        super().__init__(policy, env, config, **kwargs)

    def _setup_model(self) -> None:
        """DGPO's set-up, then an empty :class:`CellArchive` and no restart yet."""
        super()._setup_model()
        self.archive = CellArchive(self.policy.model.space.n_nodes)
        self.n_restarts = 0
        self._best_score: float | None = None  # the best archive score over every attempt
        self._improved_at = 0  # distinct queries when it was found, or when the search last restarted

    def _keeps_starting_model(self) -> bool:
        """DGPO's reasons, and restarts: what a restart goes back to (saved with the agent)."""
        return super()._keeps_starting_model() or self.restart_after > 0

    # ------------------------------------------------------------------ elite-anchored starts
    @property
    def anchor_step(self) -> int:
        """Schedule index ``k`` an anchored start begins at (see ``anchor_skip``)."""
        return min(max(round(self.anchor_skip * self.episode_length), 1), self.episode_length - 1)

    def _anchor_batch(self) -> bool:
        """Whether the next batch starts from noised elite cells (draws from the agent's generator)."""
        if self.anchor_prob == 0.0 or self.episode_length < 2 or len(self.archive) < max(self.anchor_after, 1):
            return False
        return bool(torch.rand((), generator=self._generator) < self.anchor_prob)

    def _batch_start_step(self) -> int:
        """:attr:`anchor_step` for an anchored batch (probability ``anchor_prob``), else 0."""
        anchored = self._anchor_batch()
        self.logger.record("dgpo/anchored", int(anchored))
        return self.anchor_step if anchored else 0

    def _start_options(self, start_step: int) -> list[dict[str, Any]]:
        """One anchor per environment copy, drawn from the ``anchor_top_k`` best cells, noised to ``start_step``."""
        anchors = self.archive.draw_anchors(self.n_envs, self.anchor_top_k, self._generator)
        return [{"start_cell": cell, "start_step": start_step} for cell in anchors]

    # ------------------------------------------------------------------ novel final steps
    def _final_step_actions(self, actions: np.ndarray, node_probs: Tensor, edge_probs: Tensor) -> np.ndarray:
        """Redraw final proposals that are invalid, looked up, or repeated in the round.

        With ``novelty_retries = R > 0``, stale proposals are redrawn up to ``R`` times; retry ``r`` draws
        from ``(1 - r/R) · p_θ + r/R · m`` (``m`` the prior marginals), so a model that has collapsed onto
        known cells still proposes new ones — nearby edits first, uniform exploration last.
        """
        if not self.novelty_retries:
            return actions
        noise = self.policy.model.noise
        for retry in range(1, self.novelty_retries + 1):
            stale = self._known_or_repeated(actions)
            if not stale.any():
                break
            mix = retry / self.novelty_retries  # exploration grows retry by retry, up to the prior itself
            node_probs = (1.0 - mix) * node_probs + mix * noise.node_marginals.to(node_probs)  # [B, N, K]
            edge_probs = (1.0 - mix) * edge_probs + mix * noise.edge_marginals.to(edge_probs)  # [B, M, K_e]
            actions[stale] = self._draw_actions(node_probs, edge_probs)[stale]
        return actions

    def _known_or_repeated(self, actions: np.ndarray) -> np.ndarray:
        """``bool[B]``: final proposals that are invalid, in the archive, or repeat an earlier row."""
        space = self.policy.model.space
        seen: set[str] = set()
        stale = np.zeros(len(actions), dtype=bool)
        for i, flat in enumerate(actions):
            cell = space.from_flat(space.clamp(flat))  # the cell the environment would look up
            if space.validate(cell) is not None:
                stale[i] = True
                continue
            key = space.canonical_key(cell)
            stale[i] = key in self.archive or key in seen
            seen.add(key)
        return stale

    # ------------------------------------------------------------------ archive and elite replay
    def _on_cell_looked_up(self, key: str, flat: np.ndarray, val_acc: float, reward: float) -> None:
        """Add the cell to the archive, scored by ``archive_score``; note when it beats every cell so far."""
        score = reward if self.archive_score == "reward" else val_acc
        self.archive.add(key, flat, score)
        if self._best_score is None or score > self._best_score:
            self._best_score, self._improved_at = score, self.n_queries

    def _extra_state(self) -> dict[str, Any]:
        """The archive, as JSON: its cells (flat ``int64[N + M]`` rows) and accuracies, by key."""
        keys = list(self.archive.cells)
        return {
            "archive": {
                "n_nodes": self.archive.n_nodes,
                "keys": keys,
                "cells": [self.archive.cells[key].tolist() for key in keys],
                "scores": [self.archive.scores[key] for key in keys],
            },
            "restart": {
                "n_restarts": self.n_restarts,
                "best_score": self._best_score,
                "improved_at": self._improved_at,
            },
        }

    def _restore_extra_state(self, extra: dict[str, Any]) -> None:
        """Put back the archive :meth:`_extra_state` saved."""
        data = extra["archive"]
        archive = CellArchive(int(data["n_nodes"]))
        for key, cell, score in zip(data["keys"], data["cells"], data["scores"], strict=True):
            archive.add(str(key), np.asarray(cell, dtype=np.int64), float(score))
        self.archive = archive
        restart = extra.get("restart")  # absent from files saved before restarts existed: no restart yet
        if restart is None:
            self.n_restarts, self._improved_at = 0, self.n_queries
            self._best_score = max(archive.scores.values()) if archive.scores else None
        else:
            best = restart["best_score"]
            self.n_restarts, self._improved_at = int(restart["n_restarts"]), int(restart["improved_at"])
            self._best_score = None if best is None else float(best)

    def _after_train(self, batch: TrajectoryBatch) -> None:
        """Elite replay, if enabled and a cell is known; then a restart, if the search has stalled."""
        if self.elite_replay and len(self.archive) > 0:
            self._train_elite_replay()
        stalled = self.restart_after and self.n_queries - self._improved_at >= self.restart_after
        if stalled and not self.budget_exhausted:  # no restart at the end: the model stays the last attempt's
            self._restart()

    def _restart(self) -> None:
        """Start the search again: the starting model's weights, a fresh optimiser state, an empty archive.

        The queries made stay counted (the ledger keeps them; a repeated cell is free) and the best cell
        found stays the run's best (:attr:`best`); the next ``restart_after`` queries must beat it.
        """
        if self.reference_model is None:
            raise ValueError(
                "restart_after > 0 needs a copy of the starting model, which is kept only when the agent is built "
                "with restarts: pass restart_after=... (or elite=EliteConfig(restart_after=...)) to the constructor "
                "or to load(), not by changing .elite afterwards"
            )
        self.policy.model.load_state_dict(self.reference_model.state_dict())
        self.policy.optimizer.state.clear()  # Adam's moments belong to the abandoned attempt
        self.archive = CellArchive(self.archive.n_nodes)
        self.explore_archive = ExploreMemory(self.explore_memory)
        self.n_restarts += 1
        self._improved_at = self.n_queries
        self.logger.record("dgpo/n_restarts", self.n_restarts)

    def _train_elite_replay(self) -> None:
        """``replay_passes`` clipped steps of the pretraining loss on the best cells found so far."""
        params = [p for p in self.policy.model.parameters() if p.requires_grad]
        nodes0, edges0 = self.archive.tensors(self.archive.top(self.elite_replay))  # [C, N], [C, M]
        losses = []
        for _ in range(self.replay_passes):
            self.policy.optimizer.zero_grad()
            loss, _, _ = denoising_loss(self.policy.model, nodes0, edges0, self._generator)
            check_finite_loss(loss, "the elite-replay loss", self._n_updates, self.learning_rate)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, self.max_grad_norm)
            self.policy.optimizer.step()
            losses.append(float(loss.detach()))
        self._n_updates += self.replay_passes
        self.logger.record("train/replay_loss", float(np.mean(losses)))


__all__ = ["CellArchive", "EliteConfig", "EliteDGPO"]
