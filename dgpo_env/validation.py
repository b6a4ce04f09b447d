"""Checks for user-given arguments: a clear error instead of a silent coercion.

Every check names the argument, shows the value the caller passed (``repr``, never a converted
value) and says what is allowed. Booleans accept only ``bool`` (``numpy.bool_`` too), counts only
integers (Python or NumPy integers; not ``bool``, not ``float``), reals only finite real numbers
(not ``bool``, not strings), mappings only :class:`~collections.abc.Mapping` objects.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Collection, Mapping
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")


def _shown(value: object) -> str:
    """``repr(value)`` with its type, e.g. ``'no' (str)``."""
    return f"{value!r} ({type(value).__name__})"


def check_bool(name: str, value: object) -> bool:
    """``value`` if it is a boolean.

    Raises:
        TypeError: Naming ``name`` for anything but ``True``/``False`` (``"no"``, ``0``, ``None``).
    """
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise TypeError(f"{name} must be True or False, got {_shown(value)}")


def check_count(name: str, value: object, minimum: int = 0, maximum: int | None = None) -> int:
    """``value`` as an ``int`` if it is an integer in ``minimum .. maximum``.

    Raises:
        TypeError: If ``value`` is not an integer (a ``bool``, a ``float`` such as ``1.7`` or ``2.0``,
            a string).
        ValueError: If it is outside ``minimum .. maximum``.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Integral, np.integer)):
        raise TypeError(f"{name} must be an integer, got {_shown(value)}")
    count = int(value)
    if count < minimum or (maximum is not None and count > maximum):
        allowed = f">= {minimum}" if maximum is None else f"in {minimum} .. {maximum}"
        raise ValueError(f"{name} must be an integer {allowed}, got {value!r}")
    return count


def check_real(
    name: str,
    value: object,
    minimum: float | None = None,
    maximum: float | None = None,
    *,
    open_minimum: bool = False,
) -> float:
    """``value`` as a ``float`` if it is a finite real number in ``[minimum, maximum]``.

    Args:
        name: The argument's name, for the message.
        value: What the caller passed.
        minimum: Smallest allowed value (``None``: no bound).
        maximum: Largest allowed value (``None``: no bound).
        open_minimum: ``minimum`` itself is not allowed (``value > minimum``).

    Raises:
        TypeError: If ``value`` is not a real number (a ``bool``, a string, ``None``, a complex).
        ValueError: If it is NaN, infinite or out of bounds.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, np.integer, np.floating)):
        raise TypeError(f"{name} must be a finite real number, got {_shown(value)}")
    real = float(value)
    if not math.isfinite(real):
        raise ValueError(f"{name} must be a finite real number, got {value!r}")
    low_bad = minimum is not None and (real <= minimum if open_minimum else real < minimum)
    if low_bad or (maximum is not None and real > maximum):
        low = "" if minimum is None else f"{'>' if open_minimum else '>='} {minimum:g}"
        high = "" if maximum is None else f"<= {maximum:g}"
        raise ValueError(f"{name} must be {' and '.join(b for b in (low, high) if b)}, got {value!r}")
    return real


def check_choice(name: str, value: T, choices: Collection[Any]) -> T:
    """``value`` if it is one of ``choices`` (compared by equality; strings are not stripped or lower-cased).

    Raises:
        ValueError: Listing the choices.
    """
    try:
        ok = value in choices
    except TypeError:  # an unhashable value against a set
        ok = False
    if not ok:
        listed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {listed}, got {_shown(value)}")
    return value


def check_mapping(name: str, value: object) -> Mapping[Any, Any]:
    """``value`` if it is a mapping (``dict`` or any :class:`~collections.abc.Mapping`).

    Raises:
        TypeError: For lists, tuples, strings and everything else.
    """
    if not isinstance(value, Mapping):
        raise TypeError(f"{name} must be a mapping such as a dict, got {_shown(value)}")
    return value


def check_callable(name: str, value: T) -> T:
    """``value`` if it can be called.

    Raises:
        TypeError: Naming ``name`` and the value.
    """
    if not callable(value):
        raise TypeError(f"{name} must be a callable (a function), got {_shown(value)}")
    return value


def check_keys(name: str, mapping: Mapping[Any, Any], known: Collection[str]) -> None:
    """Refuse keys of ``mapping`` that are not in ``known``.

    Raises:
        ValueError: Listing the unknown and the known keys.
    """
    unknown = [k for k in mapping if k not in known]
    if unknown:
        raise ValueError(
            f"unknown {name} {', '.join(repr(k) for k in unknown)}; known: {', '.join(repr(k) for k in known)}"
        )


def check_result(name: str, value: object, what: Callable[[], str]) -> float:
    """A function's return value as a ``float`` if it is a finite real number.

    Args:
        name: The function's name, e.g. ``"reward_fn"``.
        value: What it returned.
        what: Describes the input it was called with (called only for the message).

    Raises:
        TypeError: If ``value`` is not a real number (a string such as ``"0.5"``, a ``bool``, ``None``).
        ValueError: If it is NaN or infinite.
    """
    try:
        return check_real(f"{name} return value", value)
    except (TypeError, ValueError) as err:
        raise type(err)(f"{name} returned {_shown(value)} for {what()}; it must return a finite real number") from None
