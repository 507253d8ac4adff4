"""The client commands of ``trustwire``, and the one way every command runs.

    trustwire member …       keygen, publish, sync, match, queue (member T&S teams)
    trustwire audit …        verify, prove, consistency, checkpoint, witness (auditors)
    trustwire ops …          enrol, keys, groups, suspension, directory      (operators)

The ``trustwire`` program itself (:mod:`exchange.program.cli`) adds ``serve`` and ``demo``,
which need the exchange: the SDK never imports ``exchange.server``.
``main(argv)`` returns the exit code, so tests call it in-process. Results go to
stdout (``--json`` for machines, errors too), messages to stderr; the exit codes are
one table for every command (:data:`EXIT_CODES_HELP`, README "Exit codes").
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from exchange.core.errors import ExitCode, TrustwireError

__all__ = ["main"]


def _configure_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)


EXIT_CODES_HELP = """exit codes (every trustwire command):
  0  OK                  1  failure (a bug; the message has a correlation id)
  2  usage / settings    3  invalid input (a file, a value, an index out of range)
  4  unauthenticated     5  permission denied
  6  not found           7  exchange unavailable (retry)
  8  security: a verifier caught the exchange or a publisher breaking the protocol
  9  resource exhausted (quota; retry later)      130 interrupted
errors: one line on stderr; under --json also {"error": {status, reason, message, exit_code}} on stdout"""

AddParser = Callable[[Any], None]
"""A command's ``add_parser(subparsers)``."""


class _Parser(argparse.ArgumentParser):
    """argparse with usage errors as JSON when ``--json`` is on the command line
    (every sub-parser inherits the class)."""

    json_errors = False

    def error(self, message: str) -> NoReturn:
        if _Parser.json_errors:
            self.print_usage(sys.stderr)
            _print_error("INVALID_ARGUMENT", "usage", message, ExitCode.USAGE, as_json=True)
            sys.exit(int(ExitCode.USAGE))
        super().error(message)


def build_parser(commands: Sequence[AddParser] = ()) -> argparse.ArgumentParser:
    """The parser of ``commands`` followed by the client commands."""
    from clients.cli import audit, member, ops
    from clients.cli.help_text import finish_help

    parser = _Parser(
        prog="trustwire", description="Signed signal exchange for T&S task forces",
        epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="-v info, -vv debug")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (*commands, member.add_parser, audit.add_parser, ops.add_parser):
        add(sub)
    finish_help(parser)
    return parser


def _print_error(status: str, reason: str, message: str, code: ExitCode, *, as_json: bool) -> None:
    """One line on stderr; under ``--json`` also one JSON object on stdout, where the
    results would have been."""
    if as_json:
        error = {"status": status, "reason": reason, "message": message, "exit_code": int(code)}
        print(json.dumps({"error": error}, indent=2, sort_keys=True))
    print(f"trustwire: error: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None, commands: Sequence[AddParser] = ()) -> int:
    """Parse and run one command; the exit code (errors: one line on stderr, JSON under --json)."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    _Parser.json_errors = "--json" in args_list
    parser = build_parser(commands)
    try:
        args = parser.parse_args(args_list)
    except SystemExit as exc:  # --help, or a usage error already printed
        return int(exc.code or 0) if isinstance(exc.code, int) else int(ExitCode.USAGE)
    as_json = bool(getattr(args, "json", False))
    _configure_logging(args.verbose)
    try:
        return int(args.run(args, os.environ))
    except TrustwireError as exc:
        _print_error(exc.status, exc.reason, exc.message, exc.exit_code, as_json=as_json)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        _print_error("CANCELLED", "interrupted", "interrupted", ExitCode.INTERRUPTED, as_json=as_json)
        return int(ExitCode.INTERRUPTED)
    except (FileNotFoundError, PermissionError, IsADirectoryError) as exc:
        _print_error("INVALID_ARGUMENT", "invalid-input", str(exc), ExitCode.INVALID_INPUT, as_json=as_json)
        return int(ExitCode.INVALID_INPUT)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
