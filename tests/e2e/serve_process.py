"""`trustwire serve` as a separate process on 127.0.0.1:0, and its banner."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import insecure_signer

__all__ = ["spawn_serve"]


def spawn_serve(tmp: Path, operator_public_hex: str, origin: str, *extra: str,
                banner_lines: int = 2) -> tuple[subprocess.Popen[str], str, list[str]]:
    """Start the exchange (ledger and log key in ``tmp``); returns the process, its
    address and the first banner lines (port, log verifier key, transport)."""
    (tmp / "log.key").write_text(insecure_signer(f"log-{origin}").seed.hex())
    proc = subprocess.Popen(
        [sys.executable, "-m", "exchange.program", "serve", "--listen", "127.0.0.1:0",
         "--ledger-path", str(tmp / "ledger.db"), "--operator-public-key", operator_public_hex,
         "--log-key-file", str(tmp / "log.key"), "--name", origin, *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None
    banner = [proc.stdout.readline() for _ in range(banner_lines)]  # bounded by pytest-timeout
    port = re.search(r"port (\d+)", banner[0])
    assert port, (banner, proc.stderr.read() if proc.poll() is not None and proc.stderr else "")
    return proc, f"127.0.0.1:{port.group(1)}", banner
