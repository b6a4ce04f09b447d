"""The ``dgpo`` console script.

Each sub-command lives in ``agents/commands/<name>.py`` and exposes
``add_parser(subparsers) -> argparse.ArgumentParser`` (whose ``func`` default runs it).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

COMMANDS: tuple[str, ...] = ("random_agent", "compare", "finetune", "pretrain", "sample")
"""Sub-command modules under ``agents.commands``, in help order."""


def build_parser() -> argparse.ArgumentParser:
    """The ``dgpo`` argument parser with every sub-command."""
    parser = argparse.ArgumentParser(prog="dgpo", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f"agents.commands.{name}").add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse ``argv`` and run the chosen sub-command; returns the exit code."""
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
