"""``trustwire``: one entry point with role sub-commands.

    trustwire serve …        run an exchange                  (operators)
    trustwire demo           the demo task force, end to end  (everyone)
    trustwire member …       keygen, publish, sync, match, queue (member T&S teams)
    trustwire audit …        verify, prove, consistency, checkpoint, witness (auditors)
    trustwire ops …          enrol, keys, groups, suspension, directory      (operators)

``main(argv)`` returns the exit code, so tests call it in-process. Results go to
stdout (``--json`` for machines), messages to stderr.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from exchange.core.errors import ExitCode, TrustwireError

__all__ = ["main"]


def _configure_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    from clients.cli import audit, demo, member, ops
    from exchange.server import cli as serve

    parser = argparse.ArgumentParser(prog="trustwire", description="Signed signal exchange for T&S task forces")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="-v info, -vv debug")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve.add_parser(sub)
    demo.add_parser(sub)
    member.add_parser(sub)
    audit.add_parser(sub)
    ops.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
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
