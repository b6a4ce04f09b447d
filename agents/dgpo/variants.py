"""Named DGPO configurations: the published method and the improved variants of this library.

``DGPO(...)`` with no extra arguments *is* DGPO as published (DESIGN.md §4). A variant is a set of
keyword arguments on top of those defaults; :func:`variant_kwargs` returns them, and
``dgpo finetune --variant`` and the comparison harness (``dgpo`` / ``dgpo-elite``) use them.

* ``"published"`` — the official NB201 settings (batch 15, 4 inner passes, ``ppo_sr = 0.3``,
  75% of the layers frozen, gradient clip 2.0). Only the learning rate is the caller's: the
  official 5e-7 is for an 8 × 256 GPU model and does not move a small CPU model.
* ``"elite"`` — published DGPO plus reuse of the queried cells (:mod:`agents.dgpo.elite`): 10 steps
  of elite replay of the 10 best cells per batch, 90% of batches started (once 20 cells are known)
  from one of the 3 best cells noised over the last 20% of the schedule, novel final steps (10
  retries), batches of 10 with one policy-gradient pass, no frozen layers, learning rate 3e-3.
  Tuned for query efficiency on NAS-Bench-201 CIFAR-10/100 and ImageNet16-120 with 10 denoising
  steps and the comparison's small model (``benchmarks/query_efficiency.py``; the settings tried
  and their results are in ``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

VARIANTS: MappingProxyType[str, MappingProxyType[str, Any]] = MappingProxyType(
    {
        "published": MappingProxyType({}),
        "elite": MappingProxyType(
            {
                "learning_rate": 3e-3,
                "batch_size": 10,
                "n_inner_passes": 1,
                "freeze_fraction": 0.0,
                "elite_replay": 10,
                "replay_passes": 10,
                "anchor_prob": 0.9,
                "anchor_skip": 0.8,
                "anchor_top_k": 3,
                "anchor_after": 20,
                "novelty_retries": 10,
            }
        ),
    }
)
"""Variant name -> :class:`~agents.dgpo.dgpo.DGPO` keyword arguments (on top of the published defaults)."""


def variant_kwargs(name: str) -> dict[str, Any]:
    """The :class:`~agents.dgpo.dgpo.DGPO` keyword arguments of variant ``name`` (a fresh dict).

    Raises:
        ValueError: For an unknown name (the message lists the known ones).
    """
    if name not in VARIANTS:
        raise ValueError(f"unknown DGPO variant {name!r}; known variants: {', '.join(VARIANTS)}")
    return dict(VARIANTS[name])


__all__ = ["VARIANTS", "variant_kwargs"]
