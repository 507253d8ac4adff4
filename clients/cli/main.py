"""The client commands of ``trustwire``, and the one way every command runs.

    trustwire member …       keygen, publish, sync, match, queue (member T&S teams)
    trustwire audit …        verify, prove, consistency, checkpoint, witness (auditors)
    trustwire ops …          enrol, keys, groups, suspension, directory      (operators)

The ``trustwire`` program itself (:mod:`exchange.program.cli`) adds ``serve`` and ``demo``,
which need the exchange: the SDK never imports ``exchange.server``.
``main(argv)`` returns the exit code, so tests call it in-process. Results go to
stdout (``--json`` for machines), messages to stderr.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from exchange.core.errors import ExitCode, TrustwireError

__all__ = ["main"]


def _configure_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)


AddParser = Callable[[Any], None]
"""A command's ``add_parser(subparsers)``."""


def build_parser(commands: Sequence[AddParser] = ()) -> argparse.ArgumentParser:
    """The parser of ``commands`` followed by the client commands."""
    from clients.cli import audit, member, ops

    parser = argparse.ArgumentParser(prog="trustwire", description="Signed signal exchange for T&S task forces")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="-v info, -vv debug")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (*commands, member.add_parser, audit.add_parser, ops.add_parser):
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None, commands: Sequence[AddParser] = ()) -> int:
    """Parse and run one command; the exit code (errors: one line on stderr)."""
    parser = build_parser(commands)
    args = parser.parse_args(argv)
    _configure_logging(args.verbose)
    try:
        return int(args.run(args, os.environ))
    except TrustwireError as exc:
        print(f"trustwire: error: {exc.message}", file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        print("trustwire: interrupted", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)
    except (FileNotFoundError, PermissionError, IsADirectoryError) as exc:
        print(f"trustwire: error: {exc}", file=sys.stderr)
        return int(ExitCode.INVALID_INPUT)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
