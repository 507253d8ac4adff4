"""Real processes for the fault and soak campaigns: a ``trustwire serve`` subprocess on
127.0.0.1:0, enrolment, publishing with bookkeeping, and checks on what survived.

Loopback only; every wait is bounded.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from clients.auditor import AuditClient
from clients.operator import OperatorClient
from exchange.core.entries import OPERATOR
from exchange.core.keys import Signer
from exchange.core.records import Receipt, Record

REPO = Path(__file__).resolve().parents[1]
KEYS_VALID_FROM_MS = 1_700_000_000_000


def insecure_signer(name: str) -> Signer:
    """Deterministic INSECURE keys for campaigns (the same derivation as the tests)."""
    return Signer.from_seed(hashlib.sha256(f"trustwire-test-INSECURE:{name}".encode()).digest())


def rss_kib(pid: int) -> int:
    """Resident set size of a process in KiB (VmRSS of /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


class ExchangeProcess:
    """``trustwire serve`` (SQLite engine) as operators run it, restartable on the same files."""

    def __init__(
        self, directory: Path, name: str = "campaign.trustwire.invalid/log", ledger: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.env = dict(env or {})  # TRUSTWIRE_* settings of this exchange
        self.directory.mkdir(parents=True, exist_ok=True)
        self.operator = insecure_signer("campaign-operator")
        self.name = name
        self.ledger = ledger or self.directory / "ledger.db"
        self.log_key_file = self.directory / "log.key"
        if not self.log_key_file.exists():
            self.log_key_file.write_text(insecure_signer("campaign-log").seed.hex())
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0
        self.log_key = ""
        self._stderr: list[str] = []

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "exchange.program", "serve", "--listen", "127.0.0.1:0",
            "--ledger-path", str(self.ledger), "--operator-public-key", self.operator.public_key.hex(),
            "--log-key-file", str(self.log_key_file), "--name", self.name,
        ]

    def start(self, timeout: float = 60.0) -> ExchangeProcess:
        """Start and wait (bounded) for the port line; raise with stderr if it exits."""
        self._stderr = []
        self.proc = subprocess.Popen(
            self.command(), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, **self.env, "PYTHONUNBUFFERED": "1"},
        )
        lines: list[str] = []
        ready = threading.Event()

        def read_stdout() -> None:
            assert self.proc is not None and self.proc.stdout is not None
            for line in self.proc.stdout:
                lines.append(line)
                if len(lines) >= 2:
                    ready.set()
            ready.set()

        def read_stderr() -> None:
            assert self.proc is not None and self.proc.stderr is not None
            for line in self.proc.stderr:
                self._stderr.append(line)

        threading.Thread(target=read_stdout, daemon=True).start()
        threading.Thread(target=read_stderr, daemon=True).start()
        if not ready.wait(timeout) or len(lines) < 2:
            code = self.proc.poll()
            if code is None:
                self.kill9()
            time.sleep(0.2)
            raise RuntimeError(f"exchange did not start (exit {code}): {''.join(self._stderr)[-3000:]}")
        port = re.search(r"port (\d+)", lines[0])
        assert port, lines
        self.port = int(port.group(1))
        self.log_key = lines[1].split("log verifier key: ")[1].strip()
        return self

    def run_to_exit(self, timeout: float = 60.0) -> tuple[int, str, str]:
        """Start expecting failure: (exit code, stdout, stderr)."""
        proc = subprocess.Popen(
            self.command(), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, **self.env, "PYTHONUNBUFFERED": "1"},
        )
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:  # it is serving: that is the failure to report
            proc.kill()
            out, err = proc.communicate(timeout=30)
            return -9, out, err
        return proc.returncode, out, err

    @property
    def stderr(self) -> str:
        return "".join(self._stderr)

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait; the exit code (0 for a clean shutdown)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill9()
            raise AssertionError(f"the exchange did not shut down within {timeout:.0f}s of SIGTERM") from None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # -- clients ------------------------------------------------------------------------------

    def operator_client(self) -> OperatorClient:
        return OperatorClient(self.target, self.operator, origin=self.name)

    def audit_client(self) -> AuditClient:
        return AuditClient(
            self.target, principal=OPERATOR, signer=self.operator, operator_key=self.operator.public_key,
            log_key=self.log_key,
        )

    def enrol(self, members: dict[str, Sequence[str]], groups: Iterable[tuple[str, str]]) -> dict[str, Signer]:
        """Create groups (id, max TLP) and enrol members with deterministic keys."""
        signers = {m: insecure_signer(f"campaign-member:{m}") for m in members}
        op = self.operator_client()
        try:
            events = [op.create_group(g, g, tlp) for g, tlp in groups]
            for m, gs in members.items():
                events.append(op.enrol(m, m.title(), list(gs)))
                events.append(op.add_key(m, signers[m].public_key, KEYS_VALID_FROM_MS))
            outcomes = op.publish(events)
        finally:
            op.close()
        if not all(isinstance(o, Receipt) for o in outcomes):
            raise RuntimeError(f"enrolment failed: {outcomes}")
        return signers

    def all_records(self) -> list[Record]:
        """Every ledger record, read as the operator (full view)."""
        client = self.audit_client()
        try:
            return [Record.decode(raw) for raw in client.records()]
        finally:
            client.close()

    def audit_offline(self, timeout: float = 300.0) -> subprocess.CompletedProcess[str]:
        """``trustwire audit verify --ledger``: every signature and every signed checkpoint."""
        return subprocess.run(
            [
                sys.executable, "-m", "exchange.program", "audit", "verify", "--ledger", str(self.ledger),
                "--operator-public-key", self.operator.public_key.hex(), "--log-key", self.log_key, "--json",
            ],
            cwd=REPO, capture_output=True, text=True, timeout=timeout,
        )


@dataclass
class Book:
    """What a publisher sent and what the exchange acknowledged."""

    acked: dict[bytes, int] = field(default_factory=dict)  # envelope → receipt index
    in_doubt: list[bytes] = field(default_factory=list)  # sent, no answer (the call failed)
    refused: dict[str, int] = field(default_factory=dict)  # status name → count
    lock: threading.Lock = field(default_factory=threading.Lock)

    def merge(self, other: Book) -> None:
        with self.lock:
            self.acked.update(other.acked)
            self.in_doubt.extend(other.in_doubt)
            for k, v in other.refused.items():
                self.refused[k] = self.refused.get(k, 0) + v


def check_ledger(records: Sequence[Record], book: Book) -> dict[str, int]:
    """Every acknowledged envelope exactly once at its receipt index; indices contiguous;
    no envelope twice. Returns counts; raises AssertionError naming the first violation."""
    for position, rec in enumerate(records):
        if rec.index != position:
            raise AssertionError(f"ledger is not contiguous: position {position} holds index {rec.index}")
    seen: dict[bytes, int] = {}
    for rec in records:
        if rec.envelope in seen:
            raise AssertionError(f"envelope stored twice: indices {seen[rec.envelope]} and {rec.index}")
        seen[rec.envelope] = rec.index
    missing = [env for env, index in book.acked.items() if seen.get(env) != index]
    if missing:
        env = missing[0]
        raise AssertionError(
            f"{len(missing)} acknowledged entries lost or moved; e.g. acked at {book.acked[env]}, found at {seen.get(env)}"
        )
    in_doubt_landed = sum(1 for env in book.in_doubt if env in seen)
    return {"records": len(records), "acked": len(book.acked), "in_doubt": len(book.in_doubt), "in_doubt_landed": in_doubt_landed}
