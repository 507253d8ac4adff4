"""A `trustwire serve` process on 127.0.0.1, as users and operators run it."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from exchange.core.keys import Signer
from tests.conftest import TaskForce, insecure_signer, start_taskforce


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Signer, str]]:
    operator = insecure_signer("cli-operator")
    log_key = tmp_path / "log.key"
    log_key.write_text(insecure_signer("cli-log").seed.hex())
    proc = subprocess.Popen(
        [sys.executable, "-m", "exchange.program", "serve", "--listen", "127.0.0.1:0",
         "--ledger-path", str(tmp_path / "ledger.db"), "--operator-public-key", operator.public_key.hex(),
         "--log-key-file", str(log_key), "--name", "cli.test.invalid/log"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # blocks until the server prints its port (bounded by pytest-timeout)
        port = re.search(r"port (\d+)", line)
        assert port, (line, proc.stderr.read() if proc.poll() is not None else "")
        vkey = proc.stdout.readline().split("log verifier key: ")[1].strip()
        yield f"127.0.0.1:{port.group(1)}", operator, vkey
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0


@pytest.fixture
def tf(tmp_path: Path) -> Iterator[TaskForce]:
    t = start_taskforce(tmp_path / "exchange")
    try:
        yield t
    finally:
        t.close()
