"""A small Gaussian process over categorical cells: the reward model of the surrogate preset (docs/dgpo.md §4).

The surrogate preset (:class:`agents.dgpo.surrogate.SurrogateDGPO`) ranks the diffusion model's
candidate cells before it spends a query on them. Its model is a Gaussian process fitted only on the
cells already looked up (each of them a counted query), in plain numpy:

* **inputs**: the free entries of a cell's flat vector ``concat(nodes, edges)`` (the entries its search
  space does not fix), ``int64[P]``; for NAS-Bench-201 the six op labels;
* **kernel**: ``k(x, x') = w · (1 - d / P) + (1 - w) · exp(-d / ℓ)``, ``d = d(x, x')`` the number of free
  entries in which the cells differ. The first term is the additive overlap kernel (the share of
  entries that agree: one independent effect per entry and value), which lets the model carry what it
  learned about an op on an edge to cells far from the ones looked up; the second is the exponentiated
  Hamming kernel, the product over entries of ``exp(-[x_p ≠ x'_p] / ℓ)``, which models interactions
  between entries (the categorical kernel of COMBO, Oh et al., NeurIPS 2019, on a complete graph has this
  form). Both are positive definite, so is their weighted sum;
* **targets**: accuracies replaced by their normal scores (rank -> ``Φ⁻¹((rank + ½) / n)``), so the
  long tail of broken cells (about 10% on CIFAR-10) does not dominate the fit and only the order of the
  accuracies matters;
* **hyperparameters**: the weight ``w``, ``ℓ`` and the noise variance chosen by the largest log marginal likelihood on a
  small grid (Rasmussen & Williams, *Gaussian Processes for Machine Learning*, 2006, eq. 2.30); the
  signal variance is 1, the variance of the normal scores.

The posterior (R&W Algorithm 2.1) gives a mean and a covariance over a set of candidates; a batch is
picked by upper confidence bound with the chosen candidates conditioned on as pending observations
(their mean kept, their variance removed: the "kriging believer" / GP-BUCB batch rule of Desautels,
Krause & Burdick, JMLR 2014), so the cells of one batch spread out instead of piling on one peak.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import torch

LENGTH_SCALES: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)
"""Grid of Hamming length scales ``ℓ`` (in differing entries) searched by marginal likelihood."""
ADDITIVE_WEIGHTS: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75)
"""Grid of weights ``w`` of the additive overlap kernel searched by marginal likelihood."""
NOISE_VARIANCES: tuple[float, ...] = (1e-3, 1e-2, 1e-1)
"""Grid of noise variances (in units of the normal scores' variance, 1) searched by marginal likelihood."""
Acquisition = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""``(mean float64[C], std float64[C]) -> float64[C]``: a score per candidate, larger is better."""
JITTER = 1e-9
"""Added to the diagonal of every Cholesky factorisation for numerical safety."""


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``float64[A, B]``: how many entries of each row of ``a`` ``int[A, P]`` differ from each row of ``b``."""
    return (a[:, None, :] != b[None, :, :]).sum(-1).astype(np.float64)


def normal_scores(y: np.ndarray) -> np.ndarray:
    """``float64[n]``: ``Φ⁻¹((rank + ½) / n)`` of ``y`` ``float[n]`` (ties keep their order of appearance)."""
    n = len(y)
    ranks = np.empty(n, dtype=np.int64)
    ranks[np.argsort(y, kind="stable")] = np.arange(n)
    inv_cdf = NormalDist().inv_cdf
    return np.array([inv_cdf((r + 0.5) / n) for r in ranks], dtype=np.float64)


@dataclass
class CellGP:
    """A Gaussian process fitted on categorical cells (see the module docstring).

    Build it with :meth:`fit`. Attributes:
        x: ``int64[n, P]`` training inputs (free entries of looked-up cells).
        length_scale: The chosen ``ℓ``.
        additive_weight: The chosen ``w``.
        noise: The chosen noise variance.
        chol: ``float64[n, n]`` lower Cholesky factor of ``K + noise · I``.
        alpha: ``float64[n]`` ``(K + noise · I)⁻¹ y``.
        log_marginal_likelihood: Its value at the chosen hyperparameters.
    """

    x: np.ndarray
    length_scale: float
    additive_weight: float
    noise: float
    chol: np.ndarray
    alpha: np.ndarray
    log_marginal_likelihood: float

    @classmethod
    def fit(
        cls,
        x: np.ndarray,
        y: np.ndarray,
        length_scales: tuple[float, ...] = LENGTH_SCALES,
        additive_weights: tuple[float, ...] = ADDITIVE_WEIGHTS,
        noise_variances: tuple[float, ...] = NOISE_VARIANCES,
    ) -> CellGP:
        """Fit on ``x`` ``int[n, P]`` with accuracies ``y`` ``float[n]`` (``n >= 2``); hyperparameters by likelihood.

        Raises:
            ValueError: For fewer than two cells or mismatched shapes.
        """
        x = np.asarray(x, dtype=np.int64)
        y = np.asarray(y, dtype=np.float64)
        if x.ndim != 2 or y.shape != (len(x),) or len(x) < 2:
            raise ValueError(f"CellGP.fit needs x int[n, P] and y float[n] with n >= 2, got {x.shape} and {y.shape}")
        z = normal_scores(y)
        distance = hamming(x, x)
        best: CellGP | None = None
        for length_scale in length_scales:
            for weight in additive_weights:
                kernel = _kernel(distance, x.shape[1], length_scale, weight)
                for noise in noise_variances:
                    chol = _cholesky(kernel + (noise + JITTER) * np.eye(len(x)))
                    alpha = _solve_cholesky(chol, z)
                    lml = -0.5 * z @ alpha - np.log(np.diag(chol)).sum() - 0.5 * len(x) * np.log(2 * np.pi)
                    if best is None or lml > best.log_marginal_likelihood:
                        best = cls(x, length_scale, weight, noise, chol, alpha, float(lml))
        assert best is not None
        return best

    def posterior(self, candidates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean ``float64[C]`` and covariance ``float64[C, C]`` (latent, without noise) at ``int[C, P]``."""
        candidates = np.asarray(candidates, dtype=np.int64)
        width = self.x.shape[1]
        cross = _kernel(hamming(self.x, candidates), width, self.length_scale, self.additive_weight)  # [n, C]
        mean = cross.T @ self.alpha
        v = _solve_lower(self.chol, cross)  # [n, C]
        prior = _kernel(hamming(candidates, candidates), width, self.length_scale, self.additive_weight)
        cov = prior - v.T @ v
        return mean, cov

    def select_batch(
        self,
        candidates: np.ndarray,
        beta: float,
        plan: list[int | None],
        groups: np.ndarray | None = None,
        acquisition: Acquisition | None = None,
    ) -> list[int]:
        """Candidates picked one by one by ``mean + beta · std`` (or ``acquisition``), each then conditioned on.

        After a pick ``j`` the covariance becomes ``Σ - Σ[:, j] Σ[j, :] / (Σ[j, j] + noise)`` (the pick
        treated as observed at its mean), so near-copies of a pick lose their bonus.

        Args:
            candidates: ``int[C, P]`` the candidate cells' free entries.
            beta: Exploration weight (in standard deviations of the normal scores).
            plan: One entry per pick: ``None`` (any candidate not yet picked) or a group id (only the
                candidates of that group).
            groups: ``int[C]`` the group of each candidate (needed when ``plan`` names groups).
            acquisition: ``(mean float64[C], std float64[C]) -> float64[C]`` scores to maximise instead of
                the upper confidence bound (``beta`` is then unused), e.g. a constrained expected improvement.

        Returns:
            One candidate index per entry of ``plan``, ``-1`` where none was left to pick.
        """
        mean, cov = self.posterior(candidates)
        chosen: list[int] = []
        available = np.ones(len(candidates), dtype=bool)
        for group in plan:
            allowed = available if group is None else available & (np.asarray(groups) == group)
            if not allowed.any():
                chosen.append(-1)
                continue
            std = np.sqrt(np.clip(np.diag(cov), 0.0, None))
            score = mean + beta * std if acquisition is None else acquisition(mean, std)
            j = int(np.argmax(np.where(allowed, score, -np.inf)))
            chosen.append(j)
            available[j] = False
            column = cov[:, j].copy()
            cov = cov - np.outer(column, column) / (column[j] + self.noise)
        return chosen


def _kernel(distance: np.ndarray, width: int, length_scale: float, additive_weight: float) -> np.ndarray:
    """``w · (1 - d / P) + (1 - w) · exp(-d / ℓ)`` of a Hamming-distance matrix ``d`` (``P = width`` free entries)."""
    overlap = 1.0 - distance / max(width, 1)
    return additive_weight * overlap + (1.0 - additive_weight) * np.exp(-distance / length_scale)


def _cholesky(matrix: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor of a symmetric positive-definite ``float64[n, n]`` (torch's LAPACK call)."""
    return torch.linalg.cholesky(torch.from_numpy(matrix)).numpy()


def _solve_lower(chol: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``L⁻¹ b`` for a lower-triangular ``L`` ``float64[n, n]`` and ``b`` ``float64[n, C]`` (a triangular solve)."""
    return torch.linalg.solve_triangular(torch.from_numpy(chol), torch.from_numpy(b), upper=False).numpy()


def _solve_cholesky(chol: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(L Lᵀ)⁻¹ b`` for a lower-triangular ``L`` and ``b`` ``float64[n]``."""
    return torch.cholesky_solve(torch.from_numpy(b)[:, None], torch.from_numpy(chol)).numpy()[:, 0]


__all__ = ["ADDITIVE_WEIGHTS", "LENGTH_SCALES", "NOISE_VARIANCES", "CellGP", "hamming", "normal_scores"]
