"""``python -m clients.witness --config witness.toml``: serve until interrupted."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from clients.witness.config import WitnessConfig
from clients.witness.core import Witness
from clients.witness.server import serve_witness
from exchange.core.errors import ExitCode, TrustwireError


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m clients.witness --config witness.toml``: serve until interrupted."""
    parser = argparse.ArgumentParser(prog="trustwire-witness", description="Run a C2SP tlog-witness.")
    parser.add_argument("--config", type=Path, required=True, help="witness TOML file")
    parser.add_argument("-v", "--verbose", action="count", default=0)
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = WitnessConfig.load(args.config)
        witness = Witness.from_config(config)
        running = serve_witness(witness, config.listen, config.prefix)
    except TrustwireError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    print(f"witness {witness.name} on {running.url}\n{witness.verifier_key}")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        # poll: a SIGTERM that lands on another thread only sets CPython's flag, and the
        # handler runs when the main thread next executes bytecode (never, in a bare wait())
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        return int(ExitCode.INTERRUPTED)
    finally:
        running.stop()
    return int(ExitCode.OK)


if __name__ == "__main__":
    sys.exit(main())
