"""Noise schedules and sampling-step schedules (docs/diffusion.md §2, §5).

Pure functions of integers, shared by the environment (which time indices an episode visits) and
the diffusion model (how much noise each index carries), so the two can be checked for agreement.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

DEFAULT_DIFFUSION_STEPS = 800
"""``T`` of the official DGPO code, used for every search space (docs/diffusion.md §2)."""

COSINE_OFFSET = 0.008
"""Offset ``s`` of the cosine schedule (Nichol & Dhariwal 2021, as in DiGress)."""


def cosine_alpha_bar(diffusion_steps: int, offset: float = COSINE_OFFSET) -> NDArray[np.float64]:
    """Cumulative signal rates ``ᾱ_t`` of the cosine schedule for ``t = 0..T``.

    ``ᾱ_t = f(t) / f(0)`` with ``f(t) = cos²(π/2 · (t/T + s) / (1 + s))``. ``ᾱ_0 = 1`` and ``ᾱ_T`` is
    (numerically) 0, so ``x_T`` follows the prior exactly.

    Args:
        diffusion_steps: ``T >= 1``.
        offset: The cosine offset ``s``.

    Returns:
        ``float64[T + 1]``, non-increasing, in ``[0, 1]``.
    """
    if diffusion_steps < 1:
        raise ValueError(f"diffusion_steps must be >= 1, got {diffusion_steps}")
    t = np.arange(diffusion_steps + 1, dtype=np.float64) / diffusion_steps
    f = np.cos(0.5 * np.pi * (t + offset) / (1.0 + offset)) ** 2
    alpha_bar = np.clip(f / f[0], 0.0, 1.0)
    alpha_bar[-1] = 0.0  # cos(π/2) rounds to ~1e-33: make the limit exact
    assert np.all(np.diff(alpha_bar) <= 1e-12), "ᾱ_t must be non-increasing"
    return alpha_bar


def step_schedule(diffusion_steps: int, n_steps: int) -> NDArray[np.int64]:
    """The time indices an episode of ``n_steps`` denoising steps visits, from ``T`` down to 0.

    With ``n_steps == T`` every index is visited; fewer steps stride (DDIM-like), which marginal
    transitions allow because ``Q̄_{t|s}`` has the same form as ``Q̄_t``.

    Args:
        diffusion_steps: ``T``.
        n_steps: Number of denoising steps, ``1 <= n_steps <= T``.

    Returns:
        ``int64[n_steps + 1]``, strictly decreasing, first ``T``, last ``0``.
    """
    if not 1 <= n_steps <= diffusion_steps:
        raise ValueError(f"n_steps must be in [1, diffusion_steps={diffusion_steps}], got {n_steps}")
    times = np.round(np.linspace(diffusion_steps, 0, n_steps + 1)).astype(np.int64)
    assert times[0] == diffusion_steps and times[-1] == 0 and np.all(np.diff(times) < 0)
    return times
