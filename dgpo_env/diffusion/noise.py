"""The discrete noise process of a search space: :class:`NoiseProcess` (docs/diffusion.md §3-§4).

A :class:`NoiseProcess` holds a schedule ``ᾱ_0 = 1 .. ᾱ_T = 0`` and the per-position marginals of a
search space, and applies the maths of :mod:`dgpo_env.diffusion.transitions` (forward noising, posterior,
reverse step; re-exported here) to whole graphs: nodes ``[B, N]`` and edge entries ``[B, M]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from dgpo_env.diffusion import transitions
from dgpo_env.diffusion.marginals import Marginals
from dgpo_env.diffusion.schedule import DEFAULT_DIFFUSION_STEPS, cosine_alpha_bar, step_schedule
from dgpo_env.diffusion.transitions import *  # noqa: F403  (re-exported: their home before the split)
from dgpo_env.diffusion.transitions import (
    DTYPE,
    SCHEDULES,
    forward_probs,
    posterior_probs,
    reverse_step_probs,
    sample_categorical,
)
from dgpo_env.search_spaces.base import SearchSpace


# ---------------------------------------------------------------------------------------------- process
@dataclass(frozen=True, eq=False)
class NoiseProcess:
    """The noise process of one search space: schedule, per-position marginals and the maths above.

    Shared by the environment (prior, step schedule) and the diffusion model (training noise,
    reverse step), so :meth:`check_compatible` can refuse a policy for a different process.

    Attributes:
        diffusion_steps: ``T``.
        alpha_bar: ``float64[T + 1]`` cumulative signal rates ``ᾱ_0 = 1 .. ᾱ_T = 0``.
        node_marginals: ``float64[N, K]`` per-node marginals ``m`` (fixed nodes one-hot).
        edge_marginals: ``float64[M, K_e]`` per-edge marginals (fixed edges one-hot).
        node_allowed: ``bool[N, K]`` the values each node may take (the search space's mask).
        edge_allowed: ``bool[M, K_e]`` the values each edge entry may take.
        space_name: Name of the search space the marginals belong to.
        schedule: Name of the schedule that produced ``alpha_bar`` (one of :data:`SCHEDULES`).
    """

    diffusion_steps: int
    alpha_bar: Tensor
    node_marginals: Tensor
    edge_marginals: Tensor
    node_allowed: Tensor
    edge_allowed: Tensor
    space_name: str
    schedule: str = "cosine"

    def __post_init__(self) -> None:
        ab = torch.as_tensor(self.alpha_bar, dtype=DTYPE)
        if ab.shape != (self.diffusion_steps + 1,):
            raise ValueError(f"alpha_bar must have T + 1 = {self.diffusion_steps + 1} entries, got {tuple(ab.shape)}")
        if ab[0] != 1.0 or ab[-1] != 0.0 or (ab.diff() > 1e-12).any():
            raise ValueError("alpha_bar must be non-increasing from ᾱ_0 = 1 to ᾱ_T = 0")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; choose one of {SCHEDULES}")
        for name in ("node_marginals", "edge_marginals"):
            m = torch.as_tensor(getattr(self, name), dtype=DTYPE)
            if m.ndim != 2 or (m < 0).any() or not torch.allclose(m.sum(1), torch.ones((), dtype=DTYPE)):
                raise ValueError(f"{name} must be [positions, types] with probability rows")
            object.__setattr__(self, name, m)
        for kind in ("node", "edge"):
            m, allowed = getattr(self, f"{kind}_marginals"), torch.as_tensor(getattr(self, f"{kind}_allowed"))
            if allowed.shape != m.shape:
                raise ValueError(f"{kind}_allowed has shape {tuple(allowed.shape)}, marginals {tuple(m.shape)}")
            allowed = allowed.to(torch.bool)
            if (m[~allowed] > 0).any():
                raise ValueError(f"{kind}_marginals put mass on values {kind}_allowed excludes")
            object.__setattr__(self, f"{kind}_allowed", allowed)
        object.__setattr__(self, "alpha_bar", ab)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_marginals(
        cls,
        space: SearchSpace,
        marginals: Marginals | None = None,
        diffusion_steps: int = DEFAULT_DIFFUSION_STEPS,
    ) -> NoiseProcess:
        """The cosine-schedule process of ``space`` with prior ``marginals``.

        Args:
            space: The search space.
            marginals: Per-position marginals (default :meth:`Marginals.uniform`); checked against
                ``space``.
            diffusion_steps: ``T`` (docs/diffusion.md §2: the official code uses 800).
        """
        marginals = Marginals.uniform(space) if marginals is None else marginals
        marginals.check_compatible(space)
        return cls(
            diffusion_steps=int(diffusion_steps),
            alpha_bar=torch.from_numpy(cosine_alpha_bar(int(diffusion_steps))),
            node_marginals=torch.from_numpy(np.array(marginals.nodes)),
            edge_marginals=torch.from_numpy(np.array(marginals.edges)),
            node_allowed=torch.from_numpy(np.array(space.allowed[0])),
            edge_allowed=torch.from_numpy(np.array(space.allowed[1])),
            space_name=space.name,
        )

    @classmethod
    def from_env(cls, env: Any) -> NoiseProcess:
        """The process a :class:`~dgpo_env.envs.graph_denoise.GraphDenoiseEnv` uses (its ``T`` and prior).

        Args:
            env: The environment, possibly wrapped (``env.unwrapped`` is read).

        Raises:
            ValueError: If the environment lacks ``search_space``, ``prior`` or ``diffusion_steps``.
        """
        base = getattr(env, "unwrapped", env)
        try:
            space, prior, steps = base.search_space, base.prior, base.diffusion_steps
        except AttributeError as err:
            raise ValueError(
                f"{type(base).__name__} is not a graph-denoising environment: it needs search_space, "
                f"prior and diffusion_steps ({err})"
            ) from err
        return cls.from_marginals(space, prior, steps)

    @property
    def marginals(self) -> Marginals:
        """The prior as a :class:`Marginals` (``numpy``)."""
        return Marginals(self.node_marginals.numpy().copy(), self.edge_marginals.numpy().copy())

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        """Plain, ``torch.load(weights_only=True)``-safe description of the process."""
        return {
            "diffusion_steps": self.diffusion_steps,
            "schedule": self.schedule,
            "space_name": self.space_name,
            "alpha_bar": self.alpha_bar.clone(),
            "node_marginals": self.node_marginals.clone(),
            "edge_marginals": self.edge_marginals.clone(),
            "node_allowed": self.node_allowed.clone(),
            "edge_allowed": self.edge_allowed.clone(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NoiseProcess:
        """Inverse of :meth:`to_dict`.

        Raises:
            ValueError: If a key is missing.
        """
        keys = (
            "diffusion_steps",
            "schedule",
            "space_name",
            "alpha_bar",
            "node_marginals",
            "edge_marginals",
            "node_allowed",
            "edge_allowed",
        )
        missing = [k for k in keys if k not in data]
        if missing:
            raise ValueError(f"noise-process description lacks {missing}")
        return cls(**{k: data[k] for k in keys})

    # ------------------------------------------------------------------ checks
    def check_compatible(self, other: NoiseProcess, atol: float = 1e-9) -> None:
        """Raise ``ValueError`` naming every difference from ``other`` (space, masks, T, schedule, prior).

        A policy trained under one process is only the reverse of that process; the environment
        calls this to refuse a mismatched policy.
        """
        problems: list[str] = []
        if self.space_name != other.space_name:
            problems.append(f"search space {self.space_name!r} vs {other.space_name!r}")
        if self.diffusion_steps != other.diffusion_steps:
            problems.append(f"diffusion steps T={self.diffusion_steps} vs T={other.diffusion_steps}")
        elif self.schedule != other.schedule or not torch.allclose(self.alpha_bar, other.alpha_bar, atol=atol):
            problems.append(f"noise schedule {self.schedule!r} vs {other.schedule!r} (ᾱ_t differ)")
        for name in ("node_allowed", "edge_allowed"):
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine.shape != theirs.shape or not torch.equal(mine, theirs):
                problems.append(f"search-space masks {name} differ")
        for name in ("node_marginals", "edge_marginals"):
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine.shape != theirs.shape:
                problems.append(f"{name} shape {tuple(mine.shape)} vs {tuple(theirs.shape)}")
            elif not torch.allclose(mine, theirs, atol=atol):
                worst = (mine - theirs).abs().max().item()
                problems.append(f"{name} (prior) differ by up to {worst:.3g}")
        if problems:
            raise ValueError(
                "incompatible noise processes: " + "; ".join(problems) + ". Build the environment with the "
                "policy's T and prior (e.g. prior=model.noise.marginals) or use a matching checkpoint."
            )

    # ------------------------------------------------------------------ time
    def step_schedule(self, n_steps: int) -> np.ndarray:
        """Time indices ``T = t_K > ... > t_0 = 0`` of ``n_steps`` strided steps (:func:`step_schedule`)."""
        return step_schedule(self.diffusion_steps, n_steps)

    def next_times(self, t: int | Tensor, n_steps: int, batch: int) -> Tensor:
        """The time ``s < t`` that an ``n_steps`` schedule visits right after each ``t``: ``int64[batch]``.

        A policy that observes only ``t`` (the environment's ``obs["t"]``) uses this to know which
        reverse step ``p(G_s | G_t)`` it takes.

        Raises:
            ValueError: If some ``t`` is ``0`` or not on the schedule :meth:`step_schedule` ``(n_steps)``.
        """
        schedule = torch.from_numpy(self.step_schedule(n_steps))  # [n_steps + 1], decreasing
        times = self.times(t, batch)
        position = (schedule[None, :-1] == times[:, None]).to(torch.int64)  # [batch, n_steps]
        if (position.sum(1) != 1).any():
            raise ValueError(
                f"times {times.tolist()} are not all non-final points of the {n_steps}-step schedule "
                f"{schedule.tolist()}"
            )
        return schedule[1:][position.argmax(1)]

    def times(self, t: int | Tensor, batch: int) -> Tensor:
        """``t`` as checked ``int64[batch]`` (a scalar is repeated).

        Raises:
            ValueError: If the shape is not ``[batch]`` or some ``t`` is outside ``0..T``.
        """
        if isinstance(t, int | np.integer) or (isinstance(t, Tensor) and t.ndim == 0):
            times = torch.full((batch,), int(t), dtype=torch.int64)
        else:
            times = torch.as_tensor(t).to(torch.int64).reshape(-1)
        if times.shape != (batch,):
            raise ValueError(f"need one time per graph: expected shape ({batch},), got {tuple(times.shape)}")
        if (times < 0).any() or (times > self.diffusion_steps).any():
            raise ValueError(f"times must lie in 0..T={self.diffusion_steps}, got {times.tolist()}")
        return times

    def alpha_bar_at(self, t: int | Tensor, batch: int) -> Tensor:
        """``ᾱ_t`` as ``float64[batch]`` (see :meth:`times`)."""
        return self.alpha_bar[self.times(t, batch)]

    def _pair(self, t: int | Tensor, s: int | Tensor, batch: int) -> tuple[Tensor, Tensor]:
        """``(ᾱ_t, ᾱ_s)`` for a reverse step, checking ``s < t``."""
        t_, s_ = self.times(t, batch), self.times(s, batch)
        if (s_ >= t_).any():
            raise ValueError(f"a reverse step needs s < t, got t={t_.tolist()} s={s_.tolist()}")
        return self.alpha_bar[t_], self.alpha_bar[s_]

    # ------------------------------------------------------------------ sampling and probabilities
    def prior_sample(self, batch: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """``G_T ~ m``: ``(nodes [B, N], edges [B, M])`` ``int64``."""
        nodes = sample_categorical(self.node_marginals[None].expand(batch, -1, -1), generator)
        edges = sample_categorical(self.edge_marginals[None].expand(batch, -1, -1), generator)
        return nodes, edges

    def forward_probs(self, nodes0: Tensor, edges0: Tensor, t: int | Tensor) -> tuple[Tensor, Tensor]:
        """``q(G_t | G_0)``: ``([B, N, K], [B, M, K_e])``."""
        ab = self.alpha_bar_at(t, nodes0.shape[0])
        return forward_probs(nodes0, ab, self.node_marginals), forward_probs(edges0, ab, self.edge_marginals)

    def forward_sample(
        self, nodes0: Tensor, edges0: Tensor, t: int | Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """``G_t ~ q(G_t | G_0)``: ``(nodes [B, N], edges [B, M])``."""
        node_probs, edge_probs = self.forward_probs(nodes0, edges0, t)
        return sample_categorical(node_probs, generator), sample_categorical(edge_probs, generator)

    def posterior_probs(
        self,
        nodes_t: Tensor,
        edges_t: Tensor,
        nodes0: Tensor,
        edges0: Tensor,
        t: int | Tensor,
        s: int | Tensor,
    ) -> tuple[Tensor, Tensor]:
        """``q(G_s | G_t, G_0)`` for ``s < t``: ``([B, N, K], [B, M, K_e])``."""
        ab_t, ab_s = self._pair(t, s, nodes_t.shape[0])
        return (
            posterior_probs(nodes_t, nodes0, ab_t, ab_s, self.node_marginals),
            posterior_probs(edges_t, edges0, ab_t, ab_s, self.edge_marginals),
        )

    def reverse_step_probs(
        self,
        nodes_t: Tensor,
        edges_t: Tensor,
        node_x0_probs: Tensor,
        edge_x0_probs: Tensor,
        t: int | Tensor,
        s: int | Tensor,
    ) -> tuple[Tensor, Tensor]:
        """``p(G_s | G_t)`` from clean-graph probabilities: ``([B, N, K], [B, M, K_e])`` ``float64``."""
        ab_t, ab_s = self._pair(t, s, nodes_t.shape[0])
        return (
            reverse_step_probs(nodes_t, node_x0_probs, ab_t, ab_s, self.node_marginals, self.node_allowed),
            reverse_step_probs(edges_t, edge_x0_probs, ab_t, ab_s, self.edge_marginals, self.edge_allowed),
        )


__all__ = ["NoiseProcess", *transitions.__all__]
