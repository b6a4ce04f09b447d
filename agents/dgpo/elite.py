"""Reuse of queried cells in DGPO: the archive, elite replay and elite-anchored starts.

Published DGPO (DESIGN.md §4) learns only from the batch it has just sampled and starts every
trajectory from the prior. The *elite* variant (:data:`agents.dgpo.variants.VARIANTS` ``"elite"``)
adds three ways of reusing the cells already looked up — none of them costs a query:

* **elite replay**: after each batch, a few steps of the pretraining loss
  (:func:`agents.diffusion.pretrain.denoising_loss`: the denoiser's cross-entropy against clean
  graphs noised to random ``t``, DESIGN.md §2) on the ``k`` best cells
  found so far — a cross-entropy-method step that keeps the model's mass on the best region even
  when recent batches were poor;
* **elite-anchored starts**: some batches start from a best-so-far cell noised to an intermediate
  time (``GraphDenoiseEnv.reset(options={"start_cell", "start_step"})``, SDEdit-style) instead of
  from the prior, so the fine-tuned denoiser proposes edits of good cells — a learned mutation;
* **novel final step**: at the last denoising step a proposal whose cell is invalid, already
  looked up, or already proposed in the same round is redrawn (a few times), so batch slots are spent
  on new cells.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor


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


__all__ = ["CellArchive"]
