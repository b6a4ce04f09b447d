"""The maths of the discrete noise process on DAGs: transitions, posterior, reverse step (docs/diffusion.md §3-§4).

Every node and every strict-upper-triangle edge entry is a categorical variable that is noised
independently. A *position* ``p`` has its own marginal ``m_p`` (:class:`Marginals`), and with
one-hot rows

* one forward step:      ``Q_t = α_t I + (1 - α_t) 1 m_pᵀ``;
* from ``s`` to ``t > s``: ``Q̄_{t|s} = (ᾱ_t/ᾱ_s) I + (1 - ᾱ_t/ᾱ_s) 1 m_pᵀ`` (``Q̄_t = Q̄_{t|0}``,
  ``Q_t = Q̄_{t|t-1}``), so jumping over several steps has the same form (striding);
* prior ``p(x_T) = m_p`` (``ᾱ_T = 0``);
* posterior ``q(x_s | x_t, x_0) ∝ (x_t Q̄_{t|s}ᵀ) ⊙ (x_0 Q̄_s)``, normaliser ``(x_0 Q̄_t)[x_t]``;
* reverse step ``p(x_s | G_t) = Σ_{x_0} q(x_s | x_t, x_0) p̂(x_0 | G_t)`` given the denoiser's
  clean-graph probabilities ``p̂``.

A fixed position (input/output node, NB201's adjacency) has a one-hot marginal, so ``Q`` keeps it
put and clamping is automatic; :class:`NoiseProcess` also restricts ``p̂`` to the search space's
allowed values, so the reverse step keeps fixed positions put whatever the denoiser predicts.

Node and edge positions use the same functions (only ``K`` differs): they take integer states
``[B, P]``, marginals ``[P, K]`` and return probabilities ``[B, P, K]`` in ``float64``.

Zero normalisers: ``q(x_t | x_0 = k)`` is 0 when ``x_t`` cannot be reached from ``k`` (``x_t ≠ k``
and ``m_p[x_t] = 0``). Such ``k`` are impossible given ``x_t``, so the reverse step drops them and
renormalises ``p̂`` over the consistent values; if ``p̂`` puts no mass on any consistent value (only
possible when ``x_t`` itself has zero probability under the process), the position stays at
``x_t``. Nothing divides by zero and no NaN is produced, and gradients flow through ``p̂``.
"""

from __future__ import annotations

import torch
from torch import Tensor

DTYPE = torch.float64
"""All probabilities are computed in double precision (exact enough for ``ᾱ_T/ᾱ_s`` near 0)."""

PROB_ATOL = 1e-9
"""Tolerance of the asserted invariant "rows sum to 1"."""

SCHEDULES = ("cosine",)
"""Noise schedules :class:`NoiseProcess` knows (docs/diffusion.md §2: cosine, as DiGress)."""


# ---------------------------------------------------------------------------------------------- maths
def keep_rate(alpha_bar_t: Tensor, alpha_bar_s: Tensor) -> Tensor:
    """``ᾱ_t / ᾱ_s``: the weight of the identity in ``Q̄_{t|s}`` (``α_t`` when ``s = t - 1``).

    Args:
        alpha_bar_t: ``[B]`` cumulative signal rates at the later time ``t``.
        alpha_bar_s: ``[B]`` cumulative signal rates at the earlier time ``s < t``, all ``> 0``.

    Returns:
        ``[B]`` ``float64`` rates in ``[0, 1]``.
    """
    alpha_bar_t, alpha_bar_s = alpha_bar_t.to(DTYPE), alpha_bar_s.to(DTYPE)
    if (alpha_bar_s <= 0).any():
        raise ValueError("ᾱ_s must be > 0 (the earlier time s must be < T)")
    return (alpha_bar_t / alpha_bar_s).clamp(0.0, 1.0)


def transition_matrices(keep: Tensor, marginals: Tensor) -> Tensor:
    """The per-position matrices ``keep I + (1 - keep) 1 mᵀ`` (``Q_t``, ``Q̄_t`` or ``Q̄_{t|s}``).

    Row ``i`` is the distribution of the next state given the current state ``i``. The other
    functions never build these matrices (they use the closed forms); this is for inspection and
    tests.

    Args:
        keep: ``[B]`` identity weights (:func:`keep_rate`, or ``ᾱ_t`` for ``Q̄_t``).
        marginals: ``[P, K]`` per-position marginals.

    Returns:
        ``[B, P, K, K]`` row-stochastic matrices.
    """
    keep = keep.to(DTYPE)[:, None, None, None]  # [B, 1, 1, 1]
    m = marginals.to(DTYPE)
    eye = torch.eye(m.shape[1], dtype=DTYPE)  # [K, K]
    q = keep * eye + (1.0 - keep) * m[None, :, None, :]  # [B, P, K, K]
    _assert_rows_sum_to_one(q)
    return q


def forward_probs(x0: Tensor, alpha_bar_t: Tensor, marginals: Tensor) -> Tensor:
    """``q(x_t | x_0) = x_0 Q̄_t = ᾱ_t onehot(x_0) + (1 - ᾱ_t) m``.

    Args:
        x0: ``[B, P]`` integer clean states.
        alpha_bar_t: ``[B]`` cumulative signal rates.
        marginals: ``[P, K]``.

    Returns:
        ``[B, P, K]`` ``float64`` probabilities.
    """
    return _jump_probs(x0, alpha_bar_t.to(DTYPE), marginals)


def posterior_probs(x_t: Tensor, x0: Tensor, alpha_bar_t: Tensor, alpha_bar_s: Tensor, marginals: Tensor) -> Tensor:
    """``q(x_s | x_t, x_0) ∝ (x_t Q̄_{t|s}ᵀ) ⊙ (x_0 Q̄_s)`` for known ``x_0``.

    Args:
        x_t: ``[B, P]`` integer noisy states at time ``t``.
        x0: ``[B, P]`` integer clean states; ``q(x_t | x_0)`` must be positive.
        alpha_bar_t: ``[B]`` ``ᾱ_t``.
        alpha_bar_s: ``[B]`` ``ᾱ_s`` with ``s < t``.
        marginals: ``[P, K]``.

    Returns:
        ``[B, P, K]`` ``float64`` probabilities of ``x_s``.

    Raises:
        ValueError: If ``x_t`` is unreachable from ``x_0`` at some position (zero normaliser).
    """
    unnorm = _posterior_unnormalised(x_t, alpha_bar_t, alpha_bar_s, marginals)  # [B, P, K0, Ks]
    rows = torch.gather(unnorm, 2, x0[:, :, None, None].expand(-1, -1, 1, unnorm.shape[-1]))[:, :, 0]
    z = rows.sum(-1, keepdim=True)  # [B, P, 1]
    if (z <= 0).any():
        raise ValueError("q(x_t | x_0) is 0 at some position: x_t cannot be reached from this x_0")
    probs = rows / z
    _assert_rows_sum_to_one(probs)
    return probs


def reverse_step_probs(
    x_t: Tensor,
    x0_probs: Tensor,
    alpha_bar_t: Tensor,
    alpha_bar_s: Tensor,
    marginals: Tensor,
    allowed: Tensor | None = None,
) -> Tensor:
    """``p(x_s | G_t) = Σ_{x_0} q(x_s | x_t, x_0) p̂(x_0 | G_t)`` (docs/diffusion.md §4, DiGress).

    Clean values ``x_0`` from which ``x_t`` is unreachable, or that ``allowed`` excludes, are
    dropped and ``p̂`` is renormalised over the rest (see the module docstring); differentiable in
    ``x0_probs``. With ``allowed`` a fixed position (one allowed value, one-hot marginal) never moves
    from that value, whatever ``p̂`` says.

    Args:
        x_t: ``[B, P]`` integer states at time ``t``.
        x0_probs: ``[B, P, K]`` the denoiser's probabilities of the clean state.
        alpha_bar_t: ``[B]`` ``ᾱ_t``.
        alpha_bar_s: ``[B]`` ``ᾱ_s`` with ``s < t``.
        marginals: ``[P, K]``.
        allowed: Optional ``bool[P, K]``: the values ``x_0`` may take (the search space's masks).

    Returns:
        ``[B, P, K]`` ``float64`` probabilities of ``x_s``; every row sums to 1.
    """
    if x0_probs.shape[:2] != x_t.shape or x0_probs.shape[2] != marginals.shape[1]:
        raise ValueError(
            f"x0_probs must have shape [B, P, K] = {[*x_t.shape, marginals.shape[1]]}, got {list(x0_probs.shape)}"
        )
    post, usable = reverse_step_posterior(x_t, alpha_bar_t, alpha_bar_s, marginals, allowed)
    return mix_reverse_step(x_t, x0_probs, post, usable)


def reverse_step_posterior(
    x_t: Tensor, alpha_bar_t: Tensor, alpha_bar_s: Tensor, marginals: Tensor, allowed: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """The part of :func:`reverse_step_probs` that does not depend on ``p̂``: a function of ``x_t``, ``t``, ``s``.

    Args:
        x_t: ``[B, P]`` integer states at time ``t``.
        alpha_bar_t: ``[B]`` ``ᾱ_t``.
        alpha_bar_s: ``[B]`` ``ᾱ_s`` with ``s < t``.
        marginals: ``[P, K]``.
        allowed: Optional ``bool[P, K]`` values ``x_0`` may take.

    Returns:
        ``(post, usable)``: ``float64[B, P, K0, Ks]`` the posteriors ``q(x_s | x_t, x_0 = k)`` (rows of
        unreachable ``k`` are 0) and ``bool[B, P, K0]`` the clean values the mixture may use.
    """
    unnorm = _posterior_unnormalised(x_t, alpha_bar_t, alpha_bar_s, marginals)  # [B, P, K0, Ks]
    z = unnorm.sum(-1)  # [B, P, K0] = q(x_t | x_0 = k)
    consistent = z > 0
    post = unnorm / torch.where(consistent, z, torch.ones_like(z))[..., None]  # [B, P, K0, Ks]
    usable = consistent if allowed is None else consistent & allowed.to(torch.bool)[None]
    return post, usable


def mix_reverse_step(
    x_t: Tensor, x0_probs: Tensor, post: Tensor, usable: Tensor, check: bool = True, stay: Tensor | None = None
) -> Tensor:
    """``Σ_{x_0} q(x_s | x_t, x_0) p̂(x_0 | G_t)`` over the usable ``x_0`` (see :func:`reverse_step_probs`).

    Every row of the result sums to 1 by construction when every usable row of ``post`` does: it is a
    convex combination of those rows, or the one-hot of ``x_t``.

    Args:
        x_t: ``[B, P]`` integer states at time ``t`` (where a position with no usable mass stays).
        x0_probs: ``[B, P, K]`` the denoiser's clean-state probabilities (differentiable).
        post: ``float64[B, P, K0, Ks]`` posteriors from :func:`reverse_step_posterior`.
        usable: ``bool[B, P, K0]`` the clean values to mix, from :func:`reverse_step_posterior`.
        check: Assert that the rows sum to 1. A caller whose ``post`` rows were checked once (a
            precomputed table, :class:`agents.policies.reverse_step.ScheduledReverseStep`) skips the
            per-call check.
        stay: ``float64[B, P, K]`` the one-hot of ``x_t``, if the caller has it (built otherwise).

    Returns:
        ``[B, P, K]`` ``float64`` probabilities of ``x_s``; every row sums to 1.
    """
    weights = x0_probs.to(DTYPE) * usable  # [B, P, K0]: p̂ restricted to consistent, allowed x_0
    mass = weights.sum(-1, keepdim=True)  # [B, P, 1]
    ok = mass > 0
    # Σ_k weights[b, p, k] post[b, p, k, s] as one batched [1, K0] @ [K0, Ks] product per position (what
    # einsum("bpk,bpks->bps") runs, without its index parsing and permutes)
    n_values = post.shape[-1]
    products = torch.bmm(weights.reshape(-1, 1, weights.shape[-1]), post.reshape(-1, post.shape[-2], n_values))
    mixed = products.view(*weights.shape[:-1], n_values) / torch.where(ok, mass, 1.0)
    if stay is None:
        stay = torch.nn.functional.one_hot(x_t, n_values).to(DTYPE)  # [B, P, K]
    probs = torch.where(ok, mixed, stay)
    if check:
        _assert_rows_sum_to_one(probs)
    return probs


def sample_categorical(probs: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """One draw per row of ``probs`` by inverse CDF (values of probability 0 are never drawn).

    Args:
        probs: ``[..., K]`` probabilities (rows sum to 1).
        generator: The caller's generator (``None``: torch's default one).

    Returns:
        ``[...]`` ``int64`` indices.
    """
    cdf = probs.detach().to(DTYPE).cumsum(-1)  # [..., K]
    u = torch.rand(probs.shape[:-1], generator=generator, dtype=DTYPE) * cdf[..., -1]
    idx = (cdf <= u[..., None]).sum(-1)
    # guard round-off at the top end: land on the last value with positive probability
    last_positive = probs.shape[-1] - 1 - torch.argmax((probs.flip(-1) > 0).to(torch.int8), dim=-1)
    return torch.minimum(idx, last_positive).to(torch.int64)


def categorical_log_prob(probs: Tensor, x: Tensor) -> Tensor:
    """``Σ_p log probs[b, p, x[b, p]]``: the log-probability of a factorised draw.

    Args:
        probs: ``[B, P, K]``.
        x: ``[B, P]`` integer values.

    Returns:
        ``[B]`` log-probabilities (``-inf`` when a value has probability 0).
    """
    picked = torch.gather(probs, 2, x[:, :, None])[:, :, 0]  # [B, P]
    return torch.log(picked).sum(-1)


def _jump_probs(x: Tensor, keep: Tensor, marginals: Tensor) -> Tensor:
    """``onehot(x) Q`` with ``Q = keep I + (1 - keep) 1 mᵀ``: ``[B, P] -> [B, P, K]``."""
    m = marginals.to(DTYPE)
    if x.shape[1] != m.shape[0]:
        raise ValueError(f"states have {x.shape[1]} positions but the marginals have {m.shape[0]}")
    keep = keep.to(DTYPE)[:, None, None]  # [B, 1, 1]
    onehot = torch.nn.functional.one_hot(x, m.shape[1]).to(DTYPE)  # [B, P, K]
    return keep * onehot + (1.0 - keep) * m[None]


def _posterior_unnormalised(x_t: Tensor, alpha_bar_t: Tensor, alpha_bar_s: Tensor, marginals: Tensor) -> Tensor:
    """``(x_t Q̄_{t|s}ᵀ)[j] · (e_k Q̄_s)[j]`` for every clean value ``k`` and earlier value ``j``.

    Returns:
        ``[B, P, K0, Ks]``; its sum over ``Ks`` is ``q(x_t | x_0 = k)`` (because ``Q̄_s Q̄_{t|s} = Q̄_t``).
    """
    m = marginals.to(DTYPE)  # [P, K]
    n_types = m.shape[1]
    keep_ts = keep_rate(alpha_bar_t, alpha_bar_s)[:, None, None]  # [B, 1, 1]
    onehot_t = torch.nn.functional.one_hot(x_t, n_types).to(DTYPE)  # [B, P, K]
    m_at_xt = torch.gather(m[None].expand(x_t.shape[0], -1, -1), 2, x_t[:, :, None])  # [B, P, 1]
    # (x_t Q̄_{t|s}ᵀ)[j] = Q̄_{t|s}[j, x_t] = keep δ(j, x_t) + (1 - keep) m[x_t]
    likelihood = keep_ts * onehot_t + (1.0 - keep_ts) * m_at_xt  # [B, P, Ks]
    ab_s = alpha_bar_s.to(DTYPE)[:, None, None, None]  # [B, 1, 1, 1]
    eye = torch.eye(n_types, dtype=DTYPE)
    prior_s = ab_s * eye + (1.0 - ab_s) * m[None, :, None, :]  # [B, P, K0, Ks] rows e_k Q̄_s
    return prior_s * likelihood[:, :, None, :]


def _assert_rows_sum_to_one(probs: Tensor) -> None:
    assert torch.allclose(probs.detach().sum(-1), torch.ones((), dtype=probs.dtype), atol=PROB_ATOL), (
        "probability rows must sum to 1"
    )


__all__ = [
    "DTYPE",
    "PROB_ATOL",
    "SCHEDULES",
    "categorical_log_prob",
    "forward_probs",
    "keep_rate",
    "mix_reverse_step",
    "posterior_probs",
    "reverse_step_posterior",
    "reverse_step_probs",
    "sample_categorical",
    "transition_matrices",
]
