"""``trustwire``: one entry point with role sub-commands.

    trustwire serve …        run an exchange                  (operators)
    trustwire demo           the demo task force, end to end  (everyone)
    trustwire member …       keygen, publish, sync, match, queue (member T&S teams)
    trustwire audit …        verify, prove, consistency, checkpoint, witness (auditors)
    trustwire ops …          enrol, keys, groups, suspension, directory      (operators)

``main(argv)`` returns the exit code, so tests call it in-process.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from clients.cli import main as client_cli
from exchange.server import cli as serve
from exchange.program import demo

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    return client_cli.main(argv, commands=(serve.add_parser, demo.add_parser))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
