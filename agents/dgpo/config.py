"""DGPO's settings in one place: :class:`DGPOConfig`, its defaults and their sources (docs/dgpo.md §3).

The defaults are the official NAS-Bench-201 settings of DGPO ("DGPO: RL-Steered Graph Diffusion for
Neural Architecture Generation", arXiv 2602.19261, and its companion code). Every field is checked in
``__post_init__``: a wrong type raises :class:`TypeError`, a value out of range :class:`ValueError`; both
messages name the setting, the value and what is allowed. Counts must be ``int`` (``numpy`` integers are
accepted and stored as ``int``; ``bool`` and ``float`` are refused); fractions and other real settings
accept any real number (stored as ``float``).

Example:
    >>> config = DGPOConfig(learning_rate=1e-3)
    >>> config.replace(batch_size=10).batch_size
    10
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any, Generic, Literal, NoReturn, TypeVar, overload

import numpy as np
from stable_baselines3.common.type_aliases import Schedule

from agents.dgpo.advantages import BASELINES, Baseline
from agents.dgpo.explore import EXPLORE_ADVANTAGES, EXPLORE_BASELINES, ExploreAdvantage, ExploreBaseline
from agents.dgpo.losses import GRADIENTS, KL_DIRECTIONS, Gradient, KLDirection

EPOCHS = 80
"""Batches per fine-tuning run: official NB201, 80 batches x 15 trajectories = 1,200 samples (docs/dgpo.md §3)."""

KLSchedule = Literal["constant", "linear"]
KL_SCHEDULES: tuple[str, ...] = ("constant", "linear")
"""How ``DGPOConfig.kl_coef`` changes over a run: not at all, or linearly down to 0."""

SelfSettings = TypeVar("SelfSettings", bound="Settings")
T = TypeVar("T")


class Settings:
    """Behaviour shared by the settings dataclasses: field names, checked copies, a plain dict, checks."""

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """The names of the settings, in declaration order."""
        return tuple(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]

    @classmethod
    def check_names(cls, names: Any) -> None:
        """Raise :class:`TypeError` naming the known settings if any of ``names`` is not one of them."""
        unknown = [name for name in names if name not in cls.field_names()]
        if unknown:
            raise TypeError(
                f"unknown {cls.__name__} setting(s) {', '.join(map(repr, unknown))}; "
                f"known settings: {', '.join(cls.field_names())}"
            )

    def replace(self: SelfSettings, **changes: Any) -> SelfSettings:
        """A copy with ``changes`` applied (checked like the constructor).

        Raises:
            TypeError: For an unknown setting name (the message lists the known ones) or a wrong type.
            ValueError: For a value out of range.
        """
        self.check_names(changes)
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]

    def to_dict(self) -> dict[str, Any]:
        """``{name: value}`` of every setting (a learning-rate schedule stays a callable)."""
        return {name: getattr(self, name) for name in self.field_names()}

    # ---------------------------------------------------------------------------------------- checks
    def _set(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)  # frozen dataclass: normalise in __post_init__

    def _check_count(self, name: str, minimum: int) -> None:
        """``name`` must be an ``int`` (or ``numpy`` integer, not ``bool``) ``>= minimum``; stored as ``int``."""
        value = getattr(self, name)
        allowed = f"an int >= {minimum}"
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"{type(self).__name__}.{name} must be {allowed}, got {value!r} ({type(value).__name__})")
        if value < minimum:
            raise ValueError(f"{type(self).__name__}.{name} must be {allowed}, got {value!r}")
        self._set(name, int(value))

    def _check_bool(self, name: str) -> None:
        """``name`` must be a ``bool`` (``numpy.bool_`` accepted, stored as ``bool``; ``0``/``"False"`` refused)."""
        value = getattr(self, name)
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{type(self).__name__}.{name} must be a bool, got {value!r} ({type(value).__name__})")
        self._set(name, bool(value))

    def _check_choice(self, name: str, choices: tuple[str, ...]) -> None:
        """``name`` must be one of the strings ``choices``."""
        value = getattr(self, name)
        allowed = f"{type(self).__name__}.{name} must be one of {choices}, got {value!r}"
        if not isinstance(value, str):
            raise TypeError(f"{allowed} ({type(value).__name__})")
        if value not in choices:
            raise ValueError(allowed)

    def _check_real(
        self, name: str, low: float, high: float, low_open: bool = False, high_open: bool = False, note: str = ""
    ) -> None:
        """``name`` must be a real number (not ``bool``) in the interval; stored as ``float``.

        Args:
            name: The field.
            low: Lower bound (``-inf``: none).
            high: Upper bound (``inf``: none; ``inf`` itself is then allowed unless ``high_open``).
            low_open: Whether ``low`` itself is excluded.
            high_open: Whether ``high`` itself is excluded.
            note: Appended to the allowed range in messages.
        """
        value = getattr(self, name)
        allowed = f"a real number {_interval(low, high, low_open, high_open)}{note}"
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{type(self).__name__}.{name} must be {allowed}, got {value!r} ({type(value).__name__})")
        x = float(value)
        inside = not math.isnan(x) and (low < x if low_open else low <= x) and (x < high if high_open else x <= high)
        if not inside:
            raise ValueError(f"{type(self).__name__}.{name} must be {allowed}, got {value!r}")
        self._set(name, x)


def _interval(low: float, high: float, low_open: bool, high_open: bool) -> str:
    """``"in (0, 1]"``, ``"> 0"`` or ``">= 0"`` for messages."""
    if math.isinf(high):
        return f"{'>' if low_open else '>='} {low:g}"
    return f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"


@dataclasses.dataclass(frozen=True)
class DGPOConfig(Settings):
    """The settings of published DGPO (docs/dgpo.md §3 lists each with its source).

    Defaults are the official NAS-Bench-201 settings of the DGPO paper (arXiv 2602.19261) and its
    code; only the learning rate must usually change (it is for the paper's 8-layer, width-256 GPU
    model; the small CPU models of this project need about 1e-4 to 3e-3).

    Attributes:
        learning_rate: Adam learning rate, or an SB3 schedule (``progress_remaining -> lr``); finite, > 0.
        batch_size: Whole denoising trajectories (cells) per batch; >= 1 and a multiple of the number of
            environment copies.
        n_inner_passes: Optimizer steps per batch, each on fresh timestep subsets; >= 1.
        timestep_fraction: Share of each trajectory's timesteps in the loss (``ppo_sr``); in (0, 1].
        reward_smoothing: Weight ``β`` of a new batch in the reward mean/std moving averages; in (0, 1].
        advantage_clip: Advantages are clipped to ``[-c, c]``; > 0 (``inf``: no clipping).
        max_grad_norm: Gradient-norm clip; > 0 (``inf``: no clipping).
        freeze_fraction: Share of denoiser layers (transformer layers, MLP blocks) frozen, first ones
            first (and the input embeddings with them); in [0, 1].
        gradient_accumulation: Micro-batches whose gradients are summed before each optimizer step;
            >= 1. Changes memory, not the gradient.
        gradient: ``"eager"`` (GDPO's ``log p̂_θ(G_0 | G_t)``, published) or ``"ddpo"`` (per-step
            ``log p_θ(G_s | G_t)``, for comparison; docs/dgpo.md §2).
        count_repeats: Count every copy of a cell repeated within a batch in the advantages' statistics
            and the loss (``False``, published: the first copy only; docs/dgpo.md §3).
        baseline: ``"ema"`` (published: the reward moving averages) or ``"batch"`` (the current batch's
            mean and std; docs/dgpo.md §3).
        entropy_coef: Weight of the entropy of ``p̂_θ(· | G_t)`` subtracted from the loss (an entropy
            bonus); >= 0 (0, published: none; docs/dgpo.md §3).
        kl_coef: Weight of ``KL(p̂_θ(· | G_t) ‖ p̂_ref(· | G_t))`` added to the loss, ``ref`` the model
            fine-tuning started from; >= 0 (0, published: none; docs/dgpo.md §3).
        kl_schedule: ``"constant"`` (``kl_coef`` throughout) or ``"linear"`` (from ``kl_coef`` at the start
            down to 0 once ``kl_anneal_fraction`` of the run is done, 0 afterwards).
        kl_direction: ``"reverse"`` (``KL(p̂_θ ‖ p̂_ref)``) or ``"forward"`` (``KL(p̂_ref ‖ p̂_θ)``, which
            keeps every value the starting model gives probability).
        kl_anneal_fraction: Share of the run (of ``total_timesteps``) over which the linear KL schedule falls
            to 0; in (0, 1].
        explore_copies: Environment copies (the last ones of each round) whose denoising steps the starting
            model draws instead of the policy; >= 0 and at most ``n_envs - 2`` (0, published: none). Their
            cells take no part in the advantages' statistics; one counts only when it beats the policy's own
            copies (``explore_baseline``), with the positive part of its advantage (:mod:`agents.dgpo.explore`,
            docs/dgpo.md §3).
        explore_baseline: What such a cell must beat: ``"best"`` (the best reward of the policy's copies in
            the batch) or ``"mean"`` (their mean).
        explore_memory: How many such cells (the best, with their trajectories) are kept and learnt from
            again in every later batch they still beat; >= 0 (0: none); only used with ``explore_copies > 0``.
        explore_advantage: The advantage of such a cell: ``"scaled"`` (``clip((R - b) / σ, 0, c)``, ``σ`` the
            std of the policy's copies) or ``"clip"`` (``c``, the advantage clip, which must then be finite).

    Raises:
        TypeError: For a setting of the wrong type.
        ValueError: For a setting out of range.
    """

    learning_rate: float | Schedule = 5e-7
    """Paper, official NB201: Adam lr 5e-7 (for the 8 x 256 GPU model; docs/dgpo.md §3)."""
    batch_size: int = 15
    """Paper, official NB201: 15 trajectories per batch (docs/dgpo.md §3)."""
    n_inner_passes: int = 4
    """Paper, official NB201: 4 gradient passes over each batch (docs/dgpo.md §3)."""
    timestep_fraction: float = 0.3
    """Paper, official NB201: ``ppo_sr = 0.3`` of each trajectory's timesteps per loss (docs/dgpo.md §3)."""
    reward_smoothing: float = 0.1
    """Paper, official NB201: reward mean/std moving averages with smoothing 0.1 (docs/dgpo.md §3)."""
    advantage_clip: float = 5.0
    """Paper, official NB201: advantages clipped to [-5, 5] (docs/dgpo.md §3)."""
    max_grad_norm: float = 2.0
    """Paper, official NB201: gradient-norm clip 2.0 (docs/dgpo.md §3)."""
    freeze_fraction: float = 0.75
    """Paper, official NB201: 75% of the transformer layers frozen (docs/dgpo.md §3)."""
    gradient_accumulation: int = 2
    """Paper, official NB201: gradient accumulation over 2 micro-batches (docs/dgpo.md §3)."""
    gradient: Gradient = "eager"
    """Paper: GDPO's eager gradient; ``"ddpo"`` is this project's comparison option (docs/dgpo.md §2)."""
    count_repeats: bool = False
    """Paper (GDPO's advantages): a cell repeated within a batch counts once (docs/dgpo.md §1, §3)."""
    baseline: Baseline = "ema"
    """Paper, official NB201: the reward moving averages are the baseline and scale (docs/dgpo.md §1, §3)."""
    entropy_coef: float = 0.0
    """Paper: no entropy term (docs/dgpo.md §1, §3)."""
    kl_coef: float = 0.0
    """Paper: no KL term (docs/dgpo.md §1, §3)."""
    kl_schedule: KLSchedule = "constant"
    """This project: a KL weight that does not change (docs/dgpo.md §3); only used with ``kl_coef > 0``."""
    kl_anneal_fraction: float = 1.0
    """This project: the linear KL schedule reaches 0 at the end of the run (docs/dgpo.md §3)."""
    kl_direction: KLDirection = "reverse"
    """This project: ``KL(p̂_θ ‖ p̂_ref)``, the direction of DPOK's KL term (docs/dgpo.md §3)."""
    explore_copies: int = 0
    """Paper: every copy samples the policy (docs/dgpo.md §3)."""
    explore_baseline: ExploreBaseline = "best"
    """This project: a starting-model cell counts only when it beats every cell of the policy's copies
    (docs/dgpo.md §3); only used with ``explore_copies > 0``."""
    explore_memory: int = 0
    """This project: a starting-model cell is learnt from in the batch that drew it only (docs/dgpo.md §3)."""
    explore_advantage: ExploreAdvantage = "scaled"
    """This project: a starting-model cell's advantage is its margin over the bar in the policy's stds, as
    for the policy's own cells (docs/dgpo.md §3); only used with ``explore_copies > 0``."""

    def __post_init__(self) -> None:
        lr = self.learning_rate
        if not callable(lr):
            self._check_real(
                "learning_rate", 0.0, math.inf, low_open=True, high_open=True, note=" (finite) or a schedule (callable)"
            )
        self._check_count("batch_size", 1)
        self._check_count("n_inner_passes", 1)
        self._check_real("timestep_fraction", 0.0, 1.0, low_open=True)
        self._check_real("reward_smoothing", 0.0, 1.0, low_open=True)
        self._check_real("advantage_clip", 0.0, math.inf, low_open=True)
        self._check_real("max_grad_norm", 0.0, math.inf, low_open=True)
        self._check_real("freeze_fraction", 0.0, 1.0)
        self._check_count("gradient_accumulation", 1)
        allowed = f"DGPOConfig.gradient must be one of {GRADIENTS}, got {self.gradient!r}"
        if not isinstance(self.gradient, str):
            raise TypeError(f"{allowed} ({type(self.gradient).__name__})")
        if self.gradient not in GRADIENTS:
            raise ValueError(allowed)
        self._check_bool("count_repeats")
        self._check_choice("baseline", BASELINES)
        self._check_real("entropy_coef", 0.0, math.inf, high_open=True)
        self._check_real("kl_coef", 0.0, math.inf, high_open=True)
        self._check_choice("kl_schedule", KL_SCHEDULES)
        self._check_real("kl_anneal_fraction", 0.0, 1.0, low_open=True)
        self._check_choice("kl_direction", KL_DIRECTIONS)
        self._check_count("explore_copies", 0)
        self._check_choice("explore_baseline", EXPLORE_BASELINES)
        self._check_count("explore_memory", 0)
        self._check_choice("explore_advantage", EXPLORE_ADVANTAGES)
        if self.explore_advantage == "clip" and not math.isfinite(self.advantage_clip):
            raise ValueError(
                "explore_advantage='clip' gives a starting-model cell the advantage clip, so advantage_clip must be "
                "finite, got inf: set a finite advantage_clip (dgpo finetune --advantage-clip) or "
                "explore_advantage='scaled' (--explore-advantage scaled)"
            )


class Setting(Generic[T]):
    """A read-only algorithm attribute that reads the same-named field of one of its settings dataclasses.

    ``DGPO.batch_size`` is ``Setting("config")``: ``agent.batch_size`` is ``agent.config.batch_size``, so
    the dataclass stays the one place the value lives. Assigning raises :class:`AttributeError`.
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, objtype: type | None = None) -> Setting[T]: ...

    @overload
    def __get__(self, obj: object, objtype: type | None = None) -> T: ...

    def __get__(self, obj: object | None, objtype: type | None = None) -> T | Setting[T]:
        if obj is None:
            return self
        value: T = getattr(getattr(obj, self.source), self.name)
        return value

    def __set__(self, obj: object, value: object) -> NoReturn:
        raise AttributeError(
            f"{type(obj).__name__}.{self.name} is read from .{self.source}; "
            f"pass {self.name}=... to the constructor or use {self.source}.replace({self.name}=...)"
        )


def settings_from(
    name: str, cls: type[SelfSettings], given: SelfSettings | None, kwargs: dict[str, Any]
) -> SelfSettings:
    """``given`` (default ``cls()``) with the fields of ``cls`` found in ``kwargs`` popped and applied.

    The constructor step of the algorithms with an extra settings dataclass (``elite=``, ``surrogate=``).

    Raises:
        TypeError: If ``given`` is not a ``cls`` (the message names ``name``), or from :meth:`Settings.replace`.
        ValueError: From :meth:`Settings.replace`.
    """
    if given is not None and not isinstance(given, cls):
        article = "an" if cls.__name__[0] in "AEIOU" else "a"
        raise TypeError(f"{name} must be {article} {cls.__name__} or None, got {type(given).__name__}")
    overrides = {field: kwargs.pop(field) for field in cls.field_names() if field in kwargs}
    return (given or cls()).replace(**overrides)


def adopt_loaded(state: dict[str, Any], current: SelfSettings) -> SelfSettings:
    """``current`` with the fields a loaded agent's ``state`` (its ``vars``) holds loose, popped from ``state``."""
    found = {field: state.pop(field) for field in current.field_names() if field in state}
    return current.replace(**found) if found else current


def as_config(config: object) -> DGPOConfig:
    """``config``, or the default :class:`DGPOConfig` for ``None``.

    Raises:
        TypeError: If ``config`` is neither.
    """
    if config is None:
        return DGPOConfig()
    if not isinstance(config, DGPOConfig):
        raise TypeError(f"config must be a DGPOConfig or None, got {type(config).__name__}")
    return config


__all__ = [
    "EPOCHS",
    "KL_SCHEDULES",
    "DGPOConfig",
    "KLSchedule",
    "Setting",
    "Settings",
    "adopt_loaded",
    "as_config",
    "settings_from",
]
