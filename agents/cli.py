"""The ``dgpo`` console script.

Each sub-command lives in ``agents/commands/<name>.py`` and exposes
``add_parser(subparsers) -> argparse.ArgumentParser`` (whose ``func`` default runs it).

Bad arguments are reported like argparse reports them: one line ``dgpo <command>: error: ...`` on
standard error and exit code 2, never a traceback. Out-of-range flags are refused by the ``type=``
functions of :mod:`agents.commands.args`; a ``ValueError`` or ``TypeError`` that the library raises
about a value the command passed on (a checkpoint that does not fit the environment, more steps
than the model's ``T``) is caught here, at the command boundary. Set ``DGPO_TRACEBACK=1`` to see
the full traceback of such an error instead (when it is a bug rather than a bad value). A training
whose loss stops being finite ends with one line and exit code 1; a missing or damaged data file with
one line and exit code 2; Ctrl-C with exit code 130.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading
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


def _build_parser_deferring_ctrl_c() -> argparse.ArgumentParser | None:
    """:func:`build_parser` with Ctrl-C held until the imports are done; ``None`` if it was pressed.

    Building the parser imports the commands, and so torch and gymnasium: the first seconds of every
    run. A ``KeyboardInterrupt`` raised inside an extension module's initialisation can abort the
    process from C++ instead of unwinding, so the signal is only noted there and acted on after.
    """
    if threading.current_thread() is not threading.main_thread():  # signal handlers: main thread only
        return build_parser()
    pressed: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: pressed.append(signum))
    try:
        parser = build_parser()
    finally:
        signal.signal(signal.SIGINT, previous)
    return None if pressed else parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse ``argv`` and run the chosen sub-command; returns the exit code."""
    parser = _build_parser_deferring_ctrl_c()
    if parser is None:
        print("dgpo: interrupted", file=sys.stderr)
        return 130
    from agents.commands.args import attach_list_values

    args = parser.parse_args(attach_list_values(list(sys.argv[1:] if argv is None else argv)))
    from dgpo_env.benchmarks.errors import BenchmarkDataError

    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:  # commands that keep partial work handle Ctrl-C themselves and return 130
        print(f"dgpo {args.command}: interrupted", file=sys.stderr)
        return 130
    except BenchmarkDataError as err:  # a data file that is missing or damaged: the message says what to do
        print(f"dgpo {args.command}: error: {err}", file=sys.stderr)
        return 2
    except FloatingPointError as err:  # a training that diverged (DivergenceError); nothing was saved
        print(f"dgpo {args.command}: error: {err}", file=sys.stderr)
        return 1
    except (ValueError, TypeError) as err:
        if os.environ.get("DGPO_TRACEBACK"):
            raise
        print(f"dgpo {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
