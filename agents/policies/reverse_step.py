"""The reverse step on a fixed time schedule, over all action entries at once, its parameter-free part looked up.

On the environment's schedule ``T = t_K > ... > t_0 = 0`` a policy only ever takes the steps
``t_k -> t_{k+1}``. The posterior ``q(x_s | x_t, x_0)`` of a position and which clean values may be
mixed (:func:`~dgpo_env.diffusion.noise.reverse_step_posterior`) depend only on the step, the
position and its current value ``x_t``, not on the denoiser. :class:`ScheduledReverseStep` computes
them once for every step, position and value with the same function and gathers them per batch, so
only the mixture with the denoiser's ``p̂(x_0 | G_t)``
(:func:`~dgpo_env.diffusion.noise.mix_reverse_step`) runs on every forward pass.

Nodes and edges are handled as one batch of ``E = N + M`` *entries* padded to ``K_max = max(K, K_e)``
values, the layout of the action distribution (``MultiDiscrete(nvec)`` with ``nvec = [K] * N + [K_e] * M``,
:mod:`agents.policies.distributions`): one gather and one mixture per forward pass instead of one per
kind of position. Padding slots have posterior 0 and are never usable, so they get probability exactly 0.

Only the *free* entries (more than one allowed value: 6 of NAS-Bench-201's 36, 26 of NAS-Bench-101's 28)
are mixed. A fixed entry's reverse step is the one-hot of its current value whatever the denoiser says:
at its allowed value the only usable clean value maps it to itself, and at any other value no clean
value is consistent, so it stays. The real slots get the probabilities of
:meth:`~dgpo_env.diffusion.noise.NoiseProcess.reverse_step_probs` (same function on the same inputs;
the padding adds exact zeros to each sum).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.functional import one_hot, pad

from agents.policies.distributions import LOG_ZERO
from dgpo_env.diffusion.noise import PROB_ATOL, NoiseProcess, mix_reverse_step, reverse_step_posterior


def _posterior_table(noise: NoiseProcess, kind: str, times: Tensor, width: int) -> tuple[Tensor, Tensor]:
    """``(post [S, W, P, W, W], usable [S, W, P, W])`` of every step and current value for ``kind``, padded to ``W``.

    Args:
        noise: The noise process.
        kind: ``"node"`` or ``"edge"``.
        times: ``int64[S + 1]`` the schedule, ``T`` down to 0.
        width: ``W = K_max``; value slots ``>= K`` of the kind get posterior 0 and are not usable.
    """
    marginals, allowed = getattr(noise, f"{kind}_marginals"), getattr(noise, f"{kind}_allowed")
    positions, n_types = marginals.shape
    steps = times.numel() - 1
    values = torch.arange(n_types).repeat(steps)  # [S K]: value of row (k, x)
    x_t = values[:, None].expand(-1, positions).contiguous()  # [S K, P]
    alpha_bar_t = noise.alpha_bar[times[:-1]].repeat_interleave(n_types)  # [S K]
    alpha_bar_s = noise.alpha_bar[times[1:]].repeat_interleave(n_types)
    post, usable = reverse_step_posterior(x_t, alpha_bar_t, alpha_bar_s, marginals, allowed)
    post = post.view(steps, n_types, positions, n_types, n_types)
    usable = usable.view(steps, n_types, positions, n_types)
    extra = width - n_types
    # pad the x_s, x_0 and x_t axes (F.pad lists the last axis first); padded x_t rows are never read
    post = pad(post, (0, extra, 0, extra, 0, 0, 0, extra))  # [S, W, P, W, W]
    usable = pad(usable, (0, extra, 0, 0, 0, extra), value=False)  # [S, W, P, W]
    return post, usable


class ScheduledReverseStep(nn.Module):
    """``p_θ(G_s | G_t)`` of every action entry for the steps of one schedule, from ``p̂(x_0 | G_t)``.

    The tables are non-persistent buffers (rebuilt from the noise process, never saved), so they
    follow the policy to its device.

    Args:
        noise: The diffusion model's noise process.
        timesteps: ``int[S + 1]`` the environment's schedule, ``T`` down to 0.

    Raises:
        ValueError: If the schedule is not strictly decreasing from ``T`` to 0.
    """

    step_lookup: Tensor  # int64[T + 3]: k with t_k = t at index t + 1 (-1 off the schedule, and for t = -1, T + 1)
    times: Tensor  # int64[S + 1]: the schedule, T down to 0
    value_slots: Tensor  # bool[E, K_max]: the real values of each entry (the rest is padding)
    post: Tensor  # float64[S, K_max, F, K_max, K_max]: q(x_s | x_t, x_0) by (step, x_t, free entry, x_0, x_s)
    usable: Tensor  # bool[S, K_max, F, K_max]: the clean values the mixture may use
    free: Tensor  # int64[F]: the free entries (more than one allowed value) among the E
    free_nodes: Tensor  # int64[F_n]: the free nodes (the first F_n free entries)
    free_edges: Tensor  # int64[F_e]: the free upper-triangle edge entries (the other F - F_n)
    free_rows: Tensor  # int64[1, F]: 0 .. F - 1
    entries: Tensor  # int64[1, E]: 0 .. E - 1
    free_columns: Tensor  # int64[F K_max]: column of (free entry, value) in [N K + M K_e] per-value logits (padding 0)
    free_allowed: Tensor  # bool[F, K_max]: the values each free entry may take (padding False)
    free_log_zero: Tensor  # float32[F, K_max]: log 0 of a free entry's values (LOG_ZERO), -inf on padding
    stay_log: Tensor  # float32[K_max, E, K_max]: log one-hot(x_t) of entry e (0, LOG_ZERO; padding -inf)
    one_hot64: Tensor  # float64[K_max, K_max] identity: row x is the one-hot of value x

    def __init__(self, noise: NoiseProcess, timesteps: np.ndarray | Tensor) -> None:
        super().__init__()
        times = torch.as_tensor(np.asarray(timesteps), dtype=torch.int64)
        t_max = noise.diffusion_steps
        if times.ndim != 1 or times.numel() < 2 or times[0] != t_max or times[-1] != 0 or (times.diff() >= 0).any():
            raise ValueError(f"timesteps must decrease strictly from T={t_max} to 0, got {times.tolist()}")
        self.diffusion_steps = t_max
        self.n_nodes, self.n_node_types = noise.node_marginals.shape
        self.n_edges, self.n_edge_types = noise.edge_marginals.shape
        self.width = max(self.n_node_types, self.n_edge_types)
        step_lookup = torch.full((t_max + 3,), -1, dtype=torch.int64)
        step_lookup[times[:-1] + 1] = torch.arange(times.numel() - 1)
        self.register_buffer("step_lookup", step_lookup, persistent=False)
        self.register_buffer("times", times, persistent=False)
        tables = [_posterior_table(noise, kind, times, self.width) for kind in ("node", "edge")]
        allowed = torch.cat([noise.node_allowed.sum(1), noise.edge_allowed.sum(1)])  # [E]: allowed values per entry
        free = (allowed > 1).nonzero()[:, 0]  # [F]
        post = torch.cat([tables[0][0], tables[1][0]], dim=2)[:, :, free]
        usable = torch.cat([tables[0][1], tables[1][1]], dim=2)[:, :, free]
        # invariant the mixture relies on (checked once here instead of on every forward pass):
        # every usable posterior row is a distribution over x_s
        row_sums = post.sum(-1)[usable]
        assert torch.allclose(row_sums, torch.ones_like(row_sums), atol=PROB_ATOL), "posterior rows must sum to 1"
        self.register_buffer("post", post, persistent=False)
        self.register_buffer("usable", usable, persistent=False)
        self.register_buffer("free", free, persistent=False)
        self.register_buffer("free_rows", torch.arange(free.numel())[None], persistent=False)
        self.register_buffer("free_nodes", free[free < self.n_nodes], persistent=False)
        self.register_buffer("free_edges", free[free >= self.n_nodes] - self.n_nodes, persistent=False)
        self.register_buffer("entries", torch.arange(allowed.numel())[None], persistent=False)
        node_values = self.n_nodes * self.n_node_types
        node_columns = torch.arange(node_values).view(self.n_nodes, self.n_node_types)
        edge_columns = node_values + torch.arange(self.n_edges * self.n_edge_types).view(
            self.n_edges, self.n_edge_types
        )
        columns = torch.cat(  # [E, K_max]: column of each (entry, value) in the flat logits; padding reads column 0
            [
                pad(node_columns, (0, self.width - self.n_node_types)),
                pad(edge_columns, (0, self.width - self.n_edge_types)),
            ]
        )
        self.register_buffer("free_columns", columns[free].flatten(), persistent=False)
        allowed_values = torch.cat(
            [
                pad(noise.node_allowed, (0, self.width - self.n_node_types), value=False),
                pad(noise.edge_allowed, (0, self.width - self.n_edge_types), value=False),
            ]
        )  # [E, K_max]
        self.register_buffer("free_allowed", allowed_values[free], persistent=False)
        n_values = torch.tensor([self.n_node_types] * self.n_nodes + [self.n_edge_types] * self.n_edges)  # [E]
        real = torch.arange(self.width) < n_values[:, None]  # [E, K_max]: real values, not padding
        self.register_buffer("value_slots", real, persistent=False)
        log_zero = torch.where(real, LOG_ZERO, float("-inf"))  # [E, K_max]
        self.register_buffer("free_log_zero", log_zero[free], persistent=False)
        is_value = torch.eye(self.width, dtype=torch.bool)[:, None, :]  # [x_t, 1, K_max]
        self.register_buffer("stay_log", torch.where(is_value & real, 0.0, log_zero), persistent=False)
        self.register_buffer("one_hot64", torch.eye(self.width, dtype=torch.float64), persistent=False)

    def steps(self, t: Tensor) -> Tensor:
        """``int64[B]`` the index ``k`` of each ``t = t_k`` on the schedule.

        Raises:
            ValueError: If some ``t`` is not a non-final time of the schedule (the message lists the schedule).
        """
        steps = self.step_lookup.index_select(0, t.clamp(-1, self.diffusion_steps + 1).reshape(-1) + 1).view(t.shape)
        if bool((steps < 0).any()):
            bad = sorted(set(t[steps < 0].tolist()))
            schedule = sorted(((self.step_lookup >= 0).nonzero()[:, 0] - 1).tolist(), reverse=True)
            raise ValueError(f"time index {bad} is not a step of the policy's schedule {schedule}")
        return steps

    def free_entries(self, node_values: Tensor, edge_values: Tensor, fill: float) -> Tensor:
        """``([B, N, K], [B, M, K_e])`` per-value tensors -> ``[B, F, K_max]`` of the free entries, padding ``fill``.

        Only the free rows are selected and padded (none of NAS-Bench-201's edges is free).
        """
        parts = [
            values.index_select(1, rows)
            for values, rows in ((node_values, self.free_nodes), (edge_values, self.free_edges))
            if rows.numel()
        ]
        parts = [
            pad(part, (0, self.width - part.shape[-1]), value=fill) if part.shape[-1] < self.width else part
            for part in parts
        ]
        if not parts:  # a space without free entries: nothing to denoise
            return node_values.new_full((node_values.shape[0], 0, self.width), fill)
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)

    def free_logits(self, flat_logits: Tensor) -> Tensor:
        """Unmasked per-value logits -> the free entries' ``[B, F, K_max]``, ``-inf`` where a value is not allowed.

        Args:
            flat_logits: ``[B, N K + M K_e]`` the denoiser's logits of every node's values, then every
                edge's, before masking (``MLPDenoiser.flat_logits``).

        Returns:
            What :meth:`free_entries` gives for the masked logits with ``fill=-inf``: values that the
            search space does not allow and padding slots are ``-inf``.
        """
        picked = flat_logits.index_select(1, self.free_columns).view(flat_logits.shape[0], -1, self.width)
        return torch.where(self.free_allowed, picked, float("-inf"))

    def mix(self, x_t: Tensor, steps: Tensor, x0_probs: Tensor) -> Tensor:
        """``p_θ(G_s | G_t)`` of the free entries: ``float64[B, F, K_max]`` (padding 0).

        Args:
            x_t: ``int64[B, E]`` the entries of ``G_t`` (node types, then upper-triangle edge types).
            steps: ``int64[B]`` the schedule index of each ``t`` (:meth:`steps`, which checks them).
            x0_probs: ``[B, F, K_max]`` the denoiser's ``p̂(x_0 | G_t)`` of the free entries
                (:meth:`free_entries`, padding 0).
        """
        x_free = x_t.index_select(1, self.free)  # [B, F]
        n_free = self.free.numel()
        # row (step, x_t, entry) of the tables flattened to [S K_max F, ...]: one index_select per table
        index = ((steps[:, None] * self.width + x_free) * n_free + self.free_rows).flatten()  # [B F]
        # rows of K_max * K_max values: a 2-D index_select copies whole rows (several times faster than
        # the same selection from the 3-D view)
        post = (
            self.post.view(-1, self.width * self.width)
            .index_select(0, index)
            .view(*x_free.shape, self.width, self.width)
        )
        usable = self.usable.view(-1, self.width).index_select(0, index).view(*x_free.shape, self.width)
        stay = self.one_hot64.index_select(0, x_free.flatten()).view(*x_free.shape, self.width)  # one-hot of x_t
        return mix_reverse_step(x_free, x0_probs, post, usable, check=False, stay=stay)  # rows sum to 1: see __init__

    def forward(self, x_t: Tensor, steps: Tensor, x0_probs: Tensor) -> Tensor:
        """``p_θ(G_s | G_t)`` of every entry: ``float64[B, E, K_max]`` (padding 0).

        Takes the arguments of :meth:`mix`. The real slots equal ``NoiseProcess.reverse_step_probs``.
        """
        mixed = self.mix(x_t, steps, x0_probs)  # [B, F, K_max]
        stay = one_hot(x_t, self.width).to(mixed.dtype)  # [B, E, K_max]: a fixed entry keeps its value
        return stay.index_copy(1, self.free, mixed)

    def distribution_parameters(self, x_t: Tensor, steps: Tensor, x0_probs: Tensor) -> tuple[Tensor, Tensor]:
        """The action distribution's ``(probs, log_probs)``, ``float32[B, E, K_max]`` each (the policy's fast path).

        The probabilities are :meth:`forward`'s in ``float32``. The log-probabilities are computed on the
        free entries only; a fixed entry's are looked up (0 at its value, ``LOG_ZERO`` at its other
        values); padding slots hold ``-inf``, as :class:`~agents.policies.distributions.FusedCategoricalsMixin`
        stores them. Takes the arguments of :meth:`mix`.
        """
        free_probs, free_logs = self.free_parameters(x_t, steps, x0_probs)
        probs = one_hot(x_t, self.width).to(torch.float32).index_copy(1, self.free, free_probs)
        stay_index = (x_t * self.entries.shape[1] + self.entries).flatten()  # row (x_t, entry) of stay_log
        stay_log = self.stay_log.view(-1, self.width).index_select(0, stay_index).view(*x_t.shape, self.width)
        return probs, stay_log.index_copy(1, self.free, free_logs)

    def free_parameters(self, x_t: Tensor, steps: Tensor, x0_probs: Tensor) -> tuple[Tensor, Tensor]:
        """The free entries' ``(probs, log_probs)``, ``float32[B, F, K_max]`` each: the policy's fast path.

        Rows :attr:`free` of :meth:`distribution_parameters`'s, for
        :meth:`~agents.policies.distributions.FusedCategoricalsMixin.proba_distribution_from_free_entries`.
        Log-probabilities are ``LOG_ZERO`` at probability 0 and ``-inf`` on padding. Takes the arguments of :meth:`mix`.
        """
        mixed = self.mix(x_t, steps, x0_probs)  # float64[B, F, K_max]
        positive = mixed > 0
        log_free = torch.where(positive, torch.log(torch.where(positive, mixed, 1.0)), self.free_log_zero)
        return mixed.to(torch.float32), log_free.to(torch.float32)

    def split(self, probs: Tensor) -> tuple[Tensor, Tensor]:
        """``[B, E, K_max]`` -> ``([B, N, K], [B, M, K_e])`` (drops the padding)."""
        n = self.n_nodes
        return probs[:, :n, : self.n_node_types], probs[:, n:, : self.n_edge_types]
