"""The product of categoricals of a ``MultiDiscrete`` action as one batched tensor (docs/dgpo.md §1).

The diffusion policy's action is the next graph: one categorical per node and per edge entry (36 on
NAS-Bench-201), with different numbers of categories. SB3's ``MultiCategoricalDistribution`` and
sb3-contrib's ``MaskableMultiCategoricalDistribution`` build one ``torch.distributions.Categorical``
per entry on every forward pass, which costs more than the arithmetic. Here the logits are scattered
once into a padded ``[B, E, K_max]`` tensor (padding at ``-inf``: probability exactly 0, below any
real logit, even the dtype's minimum that marks a value of probability 0) and
log-probabilities, entropies, samples, modes and masks are single tensor operations.

The values are those of the per-entry implementations: logits are normalised as
``Categorical`` does (``x - logsumexp(x)``), masked values get sb3-contrib's ``-1e8`` before a second
normalisation, the entropy clamps ``log 0`` to the dtype's minimum (``Categorical``) and drops masked
values (``MaskableCategorical``), and a sample is ``argmax(p / q)`` with ``q ~ Exp(1)`` drawn entry by
entry, which is what ``torch.multinomial`` does for one draw, so a seeded run draws the same actions.

:class:`FusedMultiCategoricalDistribution` serves ``PPO`` and ``A2C``;
:class:`MaskableFusedMultiCategoricalDistribution` serves ``sb3_contrib.MaskablePPO`` (``apply_masking``).
"""

from __future__ import annotations

from typing import NamedTuple, TypeVar

import numpy as np
import torch
from sb3_contrib.common.maskable.distributions import MaskableMultiCategoricalDistribution
from stable_baselines3.common.distributions import MultiCategoricalDistribution
from torch import Tensor

LOG_ZERO = float(torch.finfo(torch.float32).min)
"""``log 0`` as the action distribution stores it: finite (as ``torch.distributions`` clamps it), so
that ``0 · log 0 = 0`` in every entropy and no NaN arises; ``exp(LOG_ZERO) == 0`` exactly, so a value
of probability 0 is never sampled."""

MASKED_LOGIT = -1e8
"""Logit of a masked-out value, as sb3-contrib's ``MaskableCategorical`` sets it."""

PAD_LOGIT = float("-inf")
"""Logit of a padding slot. Its gradient is 0 everywhere: no product ``0 · inf`` is ever formed."""

MAX_CACHED_BATCH_SIZES = 16
"""Batch sizes whose noise layout :meth:`FusedCategoricalsMixin.sample` keeps (a rollout and ``predict`` use a few)."""

SelfFused = TypeVar("SelfFused", bound="FusedCategoricalsMixin")


def safe_log(probs: Tensor) -> Tensor:
    """``log probs`` with ``log 0 = LOG_ZERO``; the gradient at zero entries is 0 (never NaN).

    Args:
        probs: ``[...]`` probabilities (``>= 0``).

    Returns:
        ``[...]`` log-probabilities, same dtype.
    """
    positive = probs > 0
    logs = torch.log(torch.where(positive, probs, torch.ones_like(probs)))
    return torch.where(positive, logs, torch.full_like(probs, LOG_ZERO))


class FreeEntries(NamedTuple):
    """A product of categoricals whose entries outside ``entries`` keep their current value with probability 1.

    Attributes:
        values: ``int64[B, E]`` the current value of every entry (what a fixed entry keeps).
        entries: ``int64[F]`` the free entries, increasing.
        probs: ``float32[B, F, K_max]`` their probabilities (padding 0).
        logits: ``float32[B, F, K_max]`` their log-probabilities (``LOG_ZERO`` at probability 0, padding ``-inf``).
    """

    values: Tensor
    entries: Tensor
    probs: Tensor
    logits: Tensor


class FusedCategoricalsMixin:
    """Independent categoricals over ``E`` entries with ``n_e`` values each, held as ``[B, E, K_max]``.

    Must precede an SB3 multi-categorical distribution class in the bases (it replaces all of its
    methods but the network head). Attributes after :meth:`proba_distribution`:

    Attributes:
        logits: ``[B, E, K_max]`` normalised log-probabilities (masks applied); padding ``-inf``.
        probs: ``[B, E, K_max]`` probabilities; padding and masked values 0.
        masks: ``bool[B, E, K_max]`` allowed values (padding ``False``), or ``None`` when unmasked.

    Set from :meth:`proba_distribution_from_free_entries`, ``logits`` and ``probs`` are built only when
    read (sampling, the mode, masks): log-probabilities and entropies are computed on the free entries.

    Args:
        action_dims: ``n_e`` of every entry (``MultiDiscrete.nvec``).
    """

    action_dims: list[int]

    def __init__(self, action_dims: list[int]) -> None:
        super().__init__(action_dims)  # type: ignore[call-arg]
        dims = torch.as_tensor([int(n) for n in action_dims], dtype=torch.int64)  # [E]
        if dims.numel() == 0 or int(dims.min()) < 1:
            raise ValueError(f"every action entry needs at least one value, got action_dims={list(action_dims)}")
        self.n_values = int(dims.sum())
        slots = torch.arange(int(dims.max()))  # [K_max]
        self._valid = slots < dims[:, None]  # [E, K_max]
        offsets = torch.cumsum(dims, 0) - dims  # [E]
        # flat index of every slot into [x_0 .. x_{sum n - 1}, pad]; padding slots read the pad column
        self._gather_index = torch.where(self._valid, offsets[:, None] + slots, self.n_values).flatten()  # [E K_max]
        self._dims = dims
        self._log_zero = torch.where(self._valid, LOG_ZERO, PAD_LOGIT)  # [E, K_max]
        self._eye = torch.eye(self._valid.shape[1])  # [K_max, K_max]: one-hot rows
        self._noise_indices: dict[tuple[int, str], Tensor] = {}  # (batch size, device) -> sample()'s noise layout
        self._original: Tensor | None = None  # [B, E, K_max] normalised logits before masking
        self._logits: Tensor | None = None
        self._probs: Tensor | None = None
        self._free: FreeEntries | None = None  # set by proba_distribution_from_free_entries until densified
        self.masks: Tensor | None = None

    # ------------------------------------------------------------------ parameters
    @property
    def logits(self) -> Tensor | None:
        """``[B, E, K_max]`` normalised log-probabilities (masks applied), padding ``-inf``; ``None`` before set."""
        if self._logits is None and self._free is not None:
            # a fixed entry: log 1 = 0 at its value, LOG_ZERO at its other values (padding -inf)
            free = self._free
            log_zero = self._log_zero.to(free.logits.device)  # [E, K_max]: LOG_ZERO on values, -inf on padding
            at_value = (self._one_hot(free.values) > 0) & self._valid.to(log_zero.device)
            fixed = torch.where(at_value, 0.0, log_zero)  # [B, E, K_max]
            self._original = self._logits = fixed.index_copy(1, free.entries, free.logits)
        return self._logits

    @logits.setter
    def logits(self, value: Tensor | None) -> None:
        self._logits = value

    @property
    def probs(self) -> Tensor | None:
        """``[B, E, K_max]`` probabilities, padding and masked values 0; ``None`` before set."""
        if self._probs is None and self._free is not None:  # a fixed entry: probability 1 at its value
            free = self._free
            self._probs = self._one_hot(free.values).to(free.probs.dtype).index_copy(1, free.entries, free.probs)
        return self._probs

    @probs.setter
    def probs(self, value: Tensor | None) -> None:
        self._probs = value

    def _one_hot(self, values: Tensor) -> Tensor:
        """``float32[B, E, K_max]`` the one-hot of ``int64[B, E]`` values (rows of an identity matrix)."""
        eye = self._eye.to(values.device)
        return eye.index_select(0, values.flatten()).view(*values.shape, eye.shape[0])

    # ------------------------------------------------------------------ layout
    def to_padded(self, flat: Tensor, pad: float | bool) -> Tensor:
        """``[B, sum(n)]`` per-value tensor -> ``[B, E, K_max]``, padding slots set to ``pad``."""
        flat = flat.reshape(-1, self.n_values)
        extended = torch.cat([flat, flat.new_full((flat.shape[0], 1), pad)], dim=1)  # [B, sum(n) + 1]
        index = self._gather_index.to(flat.device)
        return extended.index_select(1, index).reshape(flat.shape[0], *self._valid.shape)

    @staticmethod
    def _normalise(logits: Tensor) -> Tensor:
        """``logits - logsumexp(logits)`` over the values of each entry, as ``Categorical`` does."""
        return logits - logits.logsumexp(dim=-1, keepdim=True)

    def _set_logits(self, logits: Tensor) -> None:
        """Set normalised ``[B, E, K_max]`` logits and their probabilities."""
        self.logits = logits
        self.probs = torch.softmax(logits, dim=-1)

    # ------------------------------------------------------------------ SB3 distribution API
    def proba_distribution(self: SelfFused, action_logits: Tensor) -> SelfFused:
        """Set the distribution from ``[B, sum(n)]`` unnormalised logits (masks are cleared).

        Raises:
            ValueError: If a logit is NaN (as ``Categorical``'s argument check; a diverged policy).
        """
        if bool(torch.isnan(action_logits).any()):
            raise ValueError("the action logits hold NaN values: the policy diverged (lower the learning rate)")
        padded = self.to_padded(action_logits, PAD_LOGIT)  # [B, E, K_max]
        self._original = self._normalise(padded)
        self._free = self.masks = None
        self._set_logits(self._original)
        return self

    def proba_distribution_from_probs(self: SelfFused, probs: Tensor, log_probs: Tensor | None = None) -> SelfFused:
        """Set the distribution from probabilities already in the padded ``[B, E, K_max]`` layout (masks cleared).

        The entry point of a policy that computes its action probabilities in this layout (the
        diffusion policy's reverse step, :class:`agents.policies.reverse_step.ScheduledReverseStep`):
        no scatter into the layout and no renormalisation. For rows that sum to 1 it equals
        :meth:`proba_distribution` of ``safe_log(probs)`` up to the float rounding of that
        renormalisation (about 1e-7 per entry).

        Args:
            probs: ``[B, E, K_max]`` probabilities, each entry's values summing to 1, padding slots 0
                (any float dtype; stored as ``float32``).
            log_probs: Their logarithms in the same layout, if the caller has them (``LOG_ZERO`` where a
                probability is 0, ``-inf`` on padding); computed from ``probs`` otherwise.

        Raises:
            ValueError: If the shape is not ``[B, E, K_max]``, or a probability is NaN (a diverged policy).
        """
        if probs.ndim != 3 or probs.shape[1:] != self._valid.shape:
            raise ValueError(f"probs must be [B, {', '.join(map(str, self._valid.shape))}], got {list(probs.shape)}")
        if bool(torch.isnan(probs).any()):
            raise ValueError("the action probabilities hold NaN values: the policy diverged (lower the learning rate)")
        if log_probs is None:
            positive = probs > 0
            log_zero = self._log_zero.to(probs.device)  # [E, K_max]: LOG_ZERO on values, -inf on padding
            log_probs = torch.where(positive, torch.log(torch.where(positive, probs, 1.0)), log_zero)
        elif log_probs.shape != probs.shape:
            raise ValueError(f"log_probs must have the shape of probs {list(probs.shape)}, got {list(log_probs.shape)}")
        logits = log_probs.to(torch.float32)
        self._original = self.logits = logits
        self.probs = probs.to(torch.float32)
        self._free = self.masks = None
        return self

    def proba_distribution_from_free_entries(
        self: SelfFused, values: Tensor, index: Tensor, probs: Tensor, log_probs: Tensor
    ) -> SelfFused:
        """Set the distribution from its free entries; every other entry keeps its value (masks cleared).

        The entry point of the diffusion policy, whose reverse step leaves every entry that the
        search space fixes at its current value (:class:`agents.policies.reverse_step.ScheduledReverseStep`).
        It equals :meth:`proba_distribution_from_probs` of the full ``[B, E, K_max]`` tensors (one-hot
        of ``values`` outside ``index``), bitwise, but :meth:`log_prob` and :meth:`entropy` work on the
        ``F`` free entries only (``[B, F, K_max]``: the fixed ones add exactly 0) and the full tensors
        are built only if read (:attr:`probs` and :attr:`logits`, for sampling, the mode or masks).

        Args:
            values: ``int64[B, E]`` the current value of every entry.
            index: ``int64[F]`` the free entries, increasing.
            probs: ``float32[B, F, K_max]`` the free entries' probabilities, summing to 1, padding 0.
            log_probs: ``float32[B, F, K_max]`` their logarithms (``LOG_ZERO`` where a probability is 0,
                ``-inf`` on padding).

        Raises:
            ValueError: If the shapes disagree with each other or the action space, or a probability
                is NaN (a diverged policy).
        """
        batch, n_free = values.shape[0], index.shape[0]
        if values.shape != (batch, self._valid.shape[0]) or probs.shape != (batch, n_free, self._valid.shape[1]):
            raise ValueError(
                f"values must be [B, {self._valid.shape[0]}] and probs [B, {n_free}, {self._valid.shape[1]}], "
                f"got {list(values.shape)} and {list(probs.shape)}"
            )
        if log_probs.shape != probs.shape:
            raise ValueError(f"log_probs must have the shape of probs {list(probs.shape)}, got {list(log_probs.shape)}")
        if bool(torch.isnan(probs).any()):
            raise ValueError("the action probabilities hold NaN values: the policy diverged (lower the learning rate)")
        self._free = FreeEntries(values, index, probs, log_probs)
        self._original = self.logits = self.probs = self.masks = None
        return self

    def apply_masking(self, masks: np.ndarray | Tensor | None) -> None:
        """Give values whose mask is ``False`` probability 0; ``None`` removes the masks.

        Args:
            masks: ``bool[B, sum(n)]`` (or any shape with that many values per row), or ``None``.
        """
        if self._free is not None:
            self._original = self.logits  # built from the free entries
        self._free = None  # masked or not, the full tensors hold the distribution from now on
        original = self._require(self._original)
        if masks is None:
            self.masks = None
            self._set_logits(original)
            return
        flat = torch.as_tensor(masks, dtype=torch.bool, device=original.device)
        allowed = self.to_padded(flat, True)  # [B, E, K_max]; padding keeps its own (lower) logit
        self.masks = allowed & self._valid.to(original.device)
        self._set_logits(self._normalise(torch.where(allowed, original, original.new_tensor(MASKED_LOGIT))))

    def log_prob(self, actions: Tensor) -> Tensor:
        """``[B]`` sum over entries of ``log p_e(a_e)`` for ``[B, E]`` integer actions.

        Raises:
            ValueError: If an action is outside ``0 .. n_e - 1`` (as ``Categorical``'s support check).
        """
        free = self._free if self.masks is None else None
        batch = free.values.shape[0] if free is not None else self._require(self.logits).shape[0]
        index = actions.reshape(batch, -1).long()  # [B, E]
        dims = self._dims.to(index.device)
        outside = (index < 0) | (index >= dims)  # [B, E]
        if bool(outside.any()):
            raise ValueError(f"actions must lie in 0 .. nvec - 1; got {sorted(set(index[outside].tolist()))}")
        if free is None:
            return self._require(self.logits).gather(-1, index.unsqueeze(-1)).squeeze(-1).sum(dim=1)  # [B, E] -> [B]
        # a fixed entry: log 1 = 0 at its value, LOG_ZERO elsewhere; the same [B, E] terms, summed alike
        fixed = torch.where(index == free.values, 0.0, LOG_ZERO).to(free.logits.dtype)  # [B, E]
        picked = free.logits.gather(-1, index.index_select(1, free.entries).unsqueeze(-1)).squeeze(-1)  # [B, F]
        return fixed.index_copy(1, free.entries, picked).sum(dim=1)

    def entropy(self) -> Tensor:
        """``[B]`` sum of the entries' entropies; masked values and padding contribute exactly 0."""
        free = self._free if self.masks is None else None
        if free is None:
            logits, probs = self._require(self.logits), self._require(self.probs)
            keep = self._valid.to(logits.device) if self.masks is None else self.masks  # [(B,) E, K_max]
        else:  # the free entries only: a fixed entry's terms are 1 · log 1 and 0 · LOG_ZERO, all 0
            logits, probs = free.logits, free.probs  # [B, F, K_max]
            keep = self._valid.to(logits.device).index_select(0, free.entries)  # [F, K_max]
        p_log_p = logits.clamp(min=torch.finfo(logits.dtype).min) * probs  # 0 · log 0 = 0
        terms = torch.where(keep, p_log_p, p_log_p.new_zeros(()))
        if free is not None:  # summed as [B, E, K_max], as the full tensors would be (the same float sum)
            full = terms.new_zeros((terms.shape[0], *self._valid.shape))
            terms = full.index_copy(1, free.entries, terms)
        return -terms.sum(dim=(1, 2))

    def sample(self) -> Tensor:
        """``int64[B, E]`` a draw of every entry (``torch.multinomial``'s stream, entry by entry).

        The per-entry samplers draw a ``[B, n_e]`` block of ``Exp(1)`` values for each entry in turn;
        this draws the same ``B · sum(n)`` values in one call and lays the blocks out as ``[B, E, K_max]``.
        """
        probs = self._require(self.probs)
        batch = probs.shape[0]
        stream = torch.empty(batch * self.n_values + 1, dtype=probs.dtype, device=probs.device)
        stream[:-1].exponential_()  # ~ Exp(1), in the order the per-entry samplers draw
        stream[-1] = 1.0  # what padding slots read: their probability stays 0
        noise = stream.index_select(0, self._noise_index(batch, probs.device))  # [B E K_max]
        return (probs / noise.view_as(probs)).argmax(dim=-1)

    def _noise_index(self, batch: int, device: torch.device) -> Tensor:
        """``int64[B E K_max]``: where slot ``(b, e, v)`` reads the noise stream (cached per batch size).

        Entry ``e``'s block starts at ``B · offset_e``, row ``b`` of it at ``b · n_e``; padding reads the last value.
        """
        key = (batch, str(device))
        index = self._noise_indices.get(key)
        if index is None:
            dims = self._dims  # [E]
            offsets = torch.cumsum(dims, 0) - dims
            slots = torch.arange(self._valid.shape[1])  # [K_max]
            rows = torch.arange(batch)[:, None, None]  # [B, 1, 1]
            start = batch * offsets[:, None] + slots  # [E, K_max]
            index = torch.where(self._valid, start + rows * dims[:, None], batch * self.n_values).flatten()
            if len(self._noise_indices) >= MAX_CACHED_BATCH_SIZES:
                self._noise_indices.clear()
            index = self._noise_indices[key] = index.to(device)
        return index

    def mode(self) -> Tensor:
        """``int64[B, E]`` the most probable allowed value of every entry."""
        return self._require(self.probs).argmax(dim=-1)

    @staticmethod
    def _require(value: Tensor | None) -> Tensor:
        """``value``, or an error when the distribution has no parameters yet."""
        if value is None:
            raise RuntimeError("the distribution has no parameters: call proba_distribution(action_logits) first")
        return value


class FusedMultiCategoricalDistribution(FusedCategoricalsMixin, MultiCategoricalDistribution):
    """SB3's ``MultiCategoricalDistribution`` computed in one batched tensor (for ``PPO``, ``A2C``)."""


class MaskableFusedMultiCategoricalDistribution(FusedCategoricalsMixin, MaskableMultiCategoricalDistribution):
    """sb3-contrib's ``MaskableMultiCategoricalDistribution`` in one batched tensor (for ``MaskablePPO``)."""
