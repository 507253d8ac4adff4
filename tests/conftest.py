"""Shared fixtures: a real exchange on 127.0.0.1:0 with a small enrolled task force."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from clients.member import MemberClient
from clients.operator import OperatorClient
from clients.transport import ClientTls
from exchange.core.entries import OPERATOR
from exchange.core.keys import Signer
from exchange.core.records import Receipt
from exchange.server.config import ServerConfig
from exchange.server.grpc_server import RunningServer, build_server

REPO = Path(__file__).resolve().parents[1]
# Third-party vectors are vendored with their licences; no test reads outside the repository.
VECTORS = REPO / "conformance" / "third_party"

GROUP_ALL = "all-members"
GROUP_NCII = "ncii-response"
MEMBERS = {"alice": [GROUP_ALL, GROUP_NCII], "bob": [GROUP_ALL], "carol": [GROUP_ALL]}
KEYS_VALID_FROM_MS = 1_700_000_000_000


def insecure_signer(name: str) -> Signer:
    """Deterministic INSECURE test keys."""
    return Signer.from_seed(hashlib.sha256(f"trustwire-test-INSECURE:{name}".encode()).digest())


@dataclass
class TaskForce:
    server: RunningServer
    operator: Signer
    signers: dict[str, Signer]
    tmp: Path
    tls: Callable[[str], ClientTls | None] = lambda principal: None
    """The TLS settings each principal's channel uses (None: plaintext, the default)."""
    _clients: list[MemberClient] = field(default_factory=list)

    @property
    def target(self) -> str:
        return self.server.target

    @property
    def origin(self) -> str:
        """The exchange's name: every call is signed for it (call-auth v3)."""
        return self.server.checkpoints.origin

    @property
    def log_key(self) -> str:
        """The log's verifier key (signed-note vkey), the members' second trust anchor."""
        return self.server.checkpoints.verifier_key

    def client(self, name: str, state: bool = False, **kwargs: object) -> MemberClient:
        c = MemberClient(
            self.target,
            member_id=name,
            signer=self.signers[name],
            operator_key=self.operator.public_key,
            log_key=self.log_key,
            state=(self.tmp / f"{name}-{len(self._clients)}.db") if state else None,
            **{"tls": self.tls(name), **kwargs},  # type: ignore[arg-type]
        )
        self._clients.append(c)
        return c

    def operator_client(self) -> OperatorClient:
        return OperatorClient(self.target, self.operator, tls=self.tls(OPERATOR), origin=self.origin)

    def ledger_snapshot(self) -> tuple[int, list[bytes]]:
        """Head and every record, to assert that a rejected call changed nothing."""
        head = self.server.ledger.head()
        return head, [s.record for s in self.server.ledger.read(0, head + 1)]

    def close(self) -> None:
        for c in self._clients:
            c.close()
        self.server.stop(grace=0.2)


def start_taskforce(
    tmp: Path, tls: Callable[[str], ClientTls | None] | None = None, **config: object
) -> TaskForce:
    """A served, enrolled task force; ``tls(principal)`` gives each client's TLS settings
    when the server config (``tls_cert_file=…``) asks for TLS."""
    operator = insecure_signer("operator")
    tmp.mkdir(parents=True, exist_ok=True)
    log_key_file = tmp / "log.key"
    log_key_file.write_text(insecure_signer("log").seed.hex())
    config.setdefault("name", "test.trustwire.invalid/log")
    config.setdefault("metrics_listen", "127.0.0.1:0")  # parallel servers must not fight over a port
    server = build_server(
        ServerConfig(
            operator_public_key=operator.public_key.hex(),
            log_key_file=log_key_file,
            listen="127.0.0.1:0",
            ledger_path=tmp / "ledger.db",
            **config,  # type: ignore[arg-type]
        )
    )
    tf = TaskForce(server=server, operator=operator, signers={m: insecure_signer(m) for m in MEMBERS}, tmp=tmp)
    if tls is not None:  # under mutual TLS even the operator's enrolment below needs its certificate
        tf.tls = tls
    op = tf.operator_client()
    events = [
        op.create_group(GROUP_ALL, "Everyone", "amber"),
        op.create_group(GROUP_NCII, "NCII response", "amber+strict"),
    ]
    for name, groups in MEMBERS.items():
        events.append(op.enrol(name, name.title(), groups))
        events.append(op.add_key(name, tf.signers[name].public_key, KEYS_VALID_FROM_MS))
    outcomes = op.publish(events)
    op.close()
    if not all(isinstance(o, Receipt) for o in outcomes):
        tf.close()
        raise RuntimeError(f"enrolment failed: {outcomes}")
    return tf


@pytest.fixture
def taskforce(tmp_path: Path) -> Iterator[TaskForce]:
    tf = start_taskforce(tmp_path)
    try:
        yield tf
    finally:
        tf.close()


def accepted(outcomes: list[object]) -> list[Receipt]:
    """Assert every publish outcome is a receipt, and return them."""
    assert all(isinstance(o, Receipt) for o in outcomes), outcomes
    return outcomes  # type: ignore[return-value]


def wait_until(predicate: object, timeout: float = 10.0, interval: float = 0.02) -> None:
    """Bounded retry on a condition (never a bare sleep)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(interval)
    raise AssertionError("condition not met within %.1fs" % timeout)


def holds_for(predicate: object, seconds: float, interval: float = 0.1) -> None:
    """Check that a condition stays true over an observation window (fails at its first
    breach): how a test shows that something does *not* happen, e.g. a log that stays quiet."""
    deadline = time.monotonic() + seconds
    while True:
        assert predicate(), "condition broken within the %.1fs window" % seconds  # type: ignore[operator]
        if time.monotonic() >= deadline:
            return
        time.sleep(interval)
