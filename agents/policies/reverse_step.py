"""The reverse step on a fixed time schedule, with its parameter-free part looked up instead of recomputed.

On the environment's schedule ``T = t_K > ... > t_0 = 0`` a policy only ever takes the steps
``t_k -> t_{k+1}``. The posterior ``q(x_s | x_t, x_0)`` of a position and which clean values may be
mixed (:func:`~dgpo_env.diffusion.noise.reverse_step_posterior`) depend only on the step, the
position and its current value ``x_t``, not on the denoiser. :class:`ScheduledReverseStep` computes
them once for every step, position and value with the same function and gathers them per batch, so
only the mixture with the denoiser's ``p̂(x_0 | G_t)``
(:func:`~dgpo_env.diffusion.noise.mix_reverse_step`) runs on every forward pass. The probabilities are
those of :meth:`~dgpo_env.diffusion.noise.NoiseProcess.reverse_step_probs` (same function on the same
inputs, elementwise), about 20 small ``float64`` tensor operations fewer per call.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from dgpo_env.diffusion.noise import NoiseProcess, mix_reverse_step, reverse_step_posterior


def _posterior_table(noise: NoiseProcess, kind: str, times: Tensor) -> tuple[Tensor, Tensor]:
    """``(post [S, K, P, K0, Ks], usable [S, K, P, K0])`` of every step ``k`` and current value for ``kind``.

    Args:
        noise: The noise process.
        kind: ``"node"`` or ``"edge"``.
        times: ``int64[S + 1]`` the schedule, ``T`` down to 0.
    """
    marginals, allowed = getattr(noise, f"{kind}_marginals"), getattr(noise, f"{kind}_allowed")
    positions, n_types = marginals.shape
    steps = times.numel() - 1
    values = torch.arange(n_types).repeat(steps)  # [S K]: value of row (k, x)
    x_t = values[:, None].expand(-1, positions).contiguous()  # [S K, P]
    alpha_bar_t = noise.alpha_bar[times[:-1]].repeat_interleave(n_types)  # [S K]
    alpha_bar_s = noise.alpha_bar[times[1:]].repeat_interleave(n_types)
    post, usable = reverse_step_posterior(x_t, alpha_bar_t, alpha_bar_s, marginals, allowed)
    return post.view(steps, n_types, *post.shape[1:]), usable.view(steps, n_types, *usable.shape[1:])


class ScheduledReverseStep(nn.Module):
    """``p_θ(G_s | G_t)`` for the steps of one schedule, from the denoiser's clean-graph probabilities.

    The tables are non-persistent buffers (rebuilt from the noise process, never saved), so they
    follow the policy to its device.

    Args:
        noise: The diffusion model's noise process.
        timesteps: ``int[S + 1]`` the environment's schedule, ``T`` down to 0.

    Raises:
        ValueError: If the schedule is not strictly decreasing from ``T`` to 0.
    """

    step_of_time: Tensor  # int64[T + 1]: k with t_k = t (-1 off the schedule)
    node_post: Tensor  # float64[S, K, N, K, K]
    node_usable: Tensor  # bool[S, K, N, K]
    edge_post: Tensor  # float64[S, K_e, M, K_e, K_e]
    edge_usable: Tensor  # bool[S, K_e, M, K_e]

    def __init__(self, noise: NoiseProcess, timesteps: np.ndarray | Tensor) -> None:
        super().__init__()
        times = torch.as_tensor(np.asarray(timesteps), dtype=torch.int64)
        t_max = noise.diffusion_steps
        if times.ndim != 1 or times.numel() < 2 or times[0] != t_max or times[-1] != 0 or (times.diff() >= 0).any():
            raise ValueError(f"timesteps must decrease strictly from T={t_max} to 0, got {times.tolist()}")
        step_of_time = torch.full((t_max + 1,), -1, dtype=torch.int64)
        step_of_time[times[:-1]] = torch.arange(times.numel() - 1)
        self.register_buffer("step_of_time", step_of_time, persistent=False)
        for kind in ("node", "edge"):
            post, usable = _posterior_table(noise, kind, times)
            self.register_buffer(f"{kind}_post", post, persistent=False)
            self.register_buffer(f"{kind}_usable", usable, persistent=False)

    def _mix(self, kind: str, steps: Tensor, x_t: Tensor, x0_probs: Tensor) -> Tensor:
        """The reverse-step probabilities ``[B, P, K]`` of one kind of position."""
        post_table, usable_table = getattr(self, f"{kind}_post"), getattr(self, f"{kind}_usable")
        positions = torch.arange(x_t.shape[1], device=x_t.device)[None]  # [1, P]
        rows = steps[:, None]  # [B, 1]
        return mix_reverse_step(x_t, x0_probs, post_table[rows, x_t, positions], usable_table[rows, x_t, positions])

    def forward(
        self, nodes: Tensor, edges: Tensor, t: Tensor, node_x0: Tensor, edge_x0: Tensor
    ) -> tuple[Tensor, Tensor]:
        """``p_θ(G_s | G_t)`` with ``s`` the time after ``t`` on the schedule.

        Args:
            nodes: ``int64[B, N]`` node types of ``G_t``.
            edges: ``int64[B, M]`` edge types of ``G_t``.
            t: ``int64[B]`` non-final times of the schedule (the caller checks them).
            node_x0: ``[B, N, K]`` the denoiser's ``p̂(x_0 | G_t)`` of the nodes.
            edge_x0: ``[B, M, K_e]`` the same for the edges.

        Returns:
            ``([B, N, K], [B, M, K_e])`` ``float64`` probabilities, equal to
            ``NoiseProcess.reverse_step_probs``.
        """
        steps = self.step_of_time[t]  # [B]
        return self._mix("node", steps, nodes, node_x0), self._mix("edge", steps, edges, edge_x0)
