"""``argparse`` ``type=`` functions: a bad value is reported like any argparse error (one line, exit code 2)."""

from __future__ import annotations

import argparse
import math


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def positive_int(text: str) -> int:
    """An integer ``>= 1`` (counts, steps, budgets)."""
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def nonnegative_int(text: str) -> int:
    """An integer ``>= 0`` (seeds, verbosity, how many to show)."""
    value = _integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """A finite real number ``> 0`` (learning rates)."""
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text!r}")
    return value


def nonnegative_float(text: str) -> float:
    """A finite real number ``>= 0`` (resource amounts such as CPUs per run)."""
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def finite_float(text: str) -> float:
    """Any finite real number (thresholds such as an accuracy in percent)."""
    return _number(text)


def unit_fraction(text: str) -> float:
    """A finite real number in ``(0, 1]`` (a share of a set)."""
    value = _number(text)
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}")
    return value


LIST_FLAGS = ("--weights", "--seeds")
"""Flags whose value is a comma-separated list that may start with a minus sign (``--weights -1,2``)."""


def attach_list_values(argv: list[str], flags: tuple[str, ...] = LIST_FLAGS) -> list[str]:
    """``[..., "--weights", "-1,2"]`` -> ``[..., "--weights=-1,2"]``, so argparse reads the value.

    argparse takes a word starting with ``-`` for an option unless it is a plain negative number, so
    ``--weights -1,2`` failed with "expected one argument" instead of reaching the value's own check
    (which then names the problem: a negative weight, a negative seed). Only the given flags are
    joined, and only when the next word starts with ``-`` and a digit or a point.

    Args:
        argv: Command-line words after the program name.
        flags: Options whose value may look like ``-1,2``.

    Returns:
        A new list; ``argv`` is not modified.
    """
    out: list[str] = []
    i = 0
    while i < len(argv):
        word = argv[i]
        nxt = argv[i + 1] if i + 1 < len(argv) else ""
        if word in flags and len(nxt) > 1 and nxt[0] == "-" and (nxt[1].isdigit() or nxt[1] == "."):
            out.append(f"{word}={nxt}")
            i += 2
            continue
        out.append(word)
        i += 1
    return out
