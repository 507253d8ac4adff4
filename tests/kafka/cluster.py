"""Real ``trustwire serve --engine kafka`` processes, and members that drive them,
for the fault tests and the benchmark."""

from __future__ import annotations

import hashlib
import os
import re
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from clients.member import MemberClient
from clients.operator import OperatorClient
from exchange.core.errors import TrustwireError
from exchange.core.keys import Signer
from exchange.core.records import Receipt, Record
from tests.conftest import GROUP_ALL, GROUP_NCII, KEYS_VALID_FROM_MS, MEMBERS, insecure_signer

REPO = Path(__file__).resolve().parents[2]
SERVE_TIMEOUT_S = 60.0
ORIGIN = "test.trustwire.invalid/log"


@dataclass
class Exchange:
    """One ``trustwire serve`` process."""

    name: str
    proc: subprocess.Popen[str]
    port: int
    log: Path

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def epochs_started(self) -> int:
        return self.log_text().count("sequencing the ledger from index")

    def sequencing(self) -> bool:
        """Does this process sequence now (by its own log)?"""
        text = self.log_text()
        return text.count("sequencing the ledger from index") > text.count("stopped sequencing epoch")

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@dataclass
class Cluster:
    """Exchange processes sharing one ledger (one topic prefix) on one Kafka cluster."""

    bootstrap: str
    prefix: str
    workdir: Path
    session_ms: int = 6000
    publish_deadline_s: float = 10.0
    fetch_wait_ms: int = 100
    operator: Signer = field(default_factory=lambda: insecure_signer("operator"))
    log_key: Signer = field(default_factory=lambda: insecure_signer("log"))
    exchanges: list[Exchange] = field(default_factory=list)
    log_vkey: str = ""

    def start(self, name: str, engine: str = "kafka") -> Exchange:
        home = self.workdir / name
        home.mkdir(parents=True, exist_ok=True)
        key_file = self.workdir / "log.key"
        key_file.write_text(self.log_key.seed.hex())
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
            "TRUSTWIRE_KAFKA_GROUP_SESSION_MS": str(self.session_ms),
            "TRUSTWIRE_PUBLISH_DEADLINE_S": str(self.publish_deadline_s),
            "TRUSTWIRE_KAFKA_FETCH_WAIT_MS": str(self.fetch_wait_ms),
            "TRUSTWIRE_KAFKA_ALLOW_UNREPLICATED": "true",  # one tansu broker
            "TRUSTWIRE_METRICS_LISTEN": "127.0.0.1:0",
            # replicas of one exchange share replay protection: one nonce file on this host
            "TRUSTWIRE_REPLAY_PATH": str(self.workdir / "calls.db"),
        }
        log = home / "serve.log"
        argv = [
            sys.executable, "-m", "exchange.program", "-v", "serve", "--listen", "127.0.0.1:0",
            "--engine", engine, "--ledger-path", str(home / "ledger.db"),
            "--operator-public-key", self.operator.public_key.hex(), "--log-key-file", str(key_file),
            "--name", ORIGIN,
        ]
        if engine == "kafka":
            argv += ["--bootstrap", self.bootstrap, "--kafka-topic-prefix", self.prefix]
        with open(log, "a") as err:
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL, text=True, env=env)
        port = _read_port(proc, log)
        exchange = Exchange(name=name, proc=proc, port=port, log=log)
        self.exchanges.append(exchange)
        return exchange

    def stop(self) -> None:
        for x in self.exchanges:
            x.stop()

    def two_replicas(self) -> tuple[Exchange, Exchange, int]:
        """Replicas a and b with the task force enrolled: (the sequencer, the other one,
        epochs the other one has started so far)."""
        a = self.start("a")
        self.enrol(a.target)
        b = self.start("b")
        wait_for(lambda: a.sequencing() or b.sequencing(), 30, "a sequencer")
        sequencer, other = (a, b) if a.sequencing() else (b, a)
        return sequencer, other, other.epochs_started()

    def enrol(self, target: str) -> list[Receipt]:
        """The test task force (tests.conftest.MEMBERS) through ``target``."""
        op = OperatorClient(target, self.operator, origin=ORIGIN)
        try:
            events = [
                op.create_group(GROUP_ALL, "Everyone", "amber", created_at_ms=KEYS_VALID_FROM_MS),
                op.create_group(GROUP_NCII, "NCII response", "amber+strict", created_at_ms=KEYS_VALID_FROM_MS),
            ]
            for name, groups in MEMBERS.items():
                events.append(op.enrol(name, name.title(), groups, created_at_ms=KEYS_VALID_FROM_MS))
                events.append(op.add_key(name, member_signer(name).public_key, KEYS_VALID_FROM_MS,
                                         created_at_ms=KEYS_VALID_FROM_MS))
            deadline = time.monotonic() + SERVE_TIMEOUT_S
            while True:  # the first election can outlast a short publish deadline; re-publishing is exact
                try:
                    outcomes = op.publish(events)
                except TrustwireError as exc:
                    if exc.status != "UNAVAILABLE" or time.monotonic() > deadline:
                        raise
                    continue
                waiting = any(isinstance(o, TrustwireError) and o.status == "UNAVAILABLE" for o in outcomes)
                if not waiting or time.monotonic() > deadline:
                    break
        finally:
            op.close()
        if not all(isinstance(o, Receipt) for o in outcomes):
            raise RuntimeError(f"enrolment failed: {outcomes}")
        return outcomes  # type: ignore[return-value]

    def member(self, name: str, target: str, state: Path | None = None, **kwargs: object) -> MemberClient:
        return MemberClient(
            target, member_id=name, signer=member_signer(name), operator_key=self.operator.public_key,
            log_key=self.log_vkey or self.vkey(), state=state, **kwargs,  # type: ignore[arg-type]
        )

    def vkey(self) -> str:
        from exchange.core import note as notes

        self.log_vkey = notes.NoteSigner(ORIGIN, self.log_key.signing_key).verifier_key()
        return self.log_vkey

    def operator_client(self, target: str) -> OperatorClient:
        return OperatorClient(target, self.operator, origin=ORIGIN)


def member_signer(name: str) -> Signer:
    return insecure_signer(name)


def _read_port(proc: subprocess.Popen[str], log: Path) -> int:
    """The port the server prints on its first stdout line (bounded wait)."""
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + SERVE_TIMEOUT_S
    line = ""
    while time.monotonic() < deadline and proc.poll() is None:
        if sel.select(timeout=0.2):
            line = proc.stdout.readline()
            break
    sel.close()
    match = re.search(r"listening on port (\d+)", line)
    if not match:
        proc.kill()
        raise RuntimeError(f"trustwire serve did not start: {line!r}\n{log.read_text(errors='replace')[-3000:]}")
    threading.Thread(target=proc.stdout.read, daemon=True).start()  # drain the rest
    return int(match.group(1))


# -- members publishing through whichever replica answers ---------------------------------------


@dataclass
class Tally:
    """What publishers were told."""

    acked: dict[bytes, Receipt] = field(default_factory=dict)  # envelope → receipt
    failed: list[tuple[bytes, str]] = field(default_factory=list)  # envelope, error (before any retry)
    retried_ok: dict[bytes, Receipt] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    first_ack_after: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


class Publisher(threading.Thread):
    """Publishes ``batches`` batches of signals; on failure it tries the next target
    with the same envelopes (a retry is idempotent) until ``give_up_s``."""

    def __init__(
        self, cluster: Cluster, member: str, targets: Sequence[str], tally: Tally, *, batches: int, batch: int,
        pause_s: float = 0.0, give_up_s: float = 60.0, retry: bool = True, tag: str = "",
    ) -> None:
        super().__init__(daemon=True, name=f"publisher-{member}{tag}")
        self.cluster = cluster
        self.member = member
        self.targets = list(targets)
        self.tally = tally
        self.batches = batches
        self.batch = batch
        self.pause_s = pause_s
        self.give_up_s = give_up_s
        self.retry = retry
        self.tag = tag or member
        self.stop_flag = threading.Event()
        self.acks: list[tuple[float, int]] = []  # (monotonic time, index)

    def run(self) -> None:
        clients = {t: self.cluster.member(self.member, t) for t in self.targets}
        which = 0
        try:
            for b in range(self.batches):
                if self.stop_flag.is_set():
                    return
                client = clients[self.targets[which]]
                envelopes = [
                    client.sign(client.signal("md5", hashlib.md5(f"{self.tag}-{b}-{i}".encode()).hexdigest(),
                                              groups=[GROUP_ALL], signal_id=f"{self.tag}-{b}-{i}"))
                    for i in range(self.batch)
                ]
                deadline = time.monotonic() + self.give_up_s
                first_try = True
                while True:
                    try:
                        outcomes = clients[self.targets[which]].publish_envelopes(envelopes)
                    except TrustwireError as exc:
                        if first_try:
                            with self.tally.lock:
                                self.tally.failed.extend((e, f"{exc.status}: {exc.message}") for e in envelopes)
                        first_try = False
                        if not self.retry or time.monotonic() > deadline:
                            break
                        which = (which + 1) % len(self.targets)
                        time.sleep(0.2)
                        continue
                    refused = [o for o in outcomes if isinstance(o, TrustwireError) and o.status == "UNAVAILABLE"]
                    if refused and self.retry and time.monotonic() < deadline:
                        if first_try:  # refused near its deadline (no effect): publish the batch again
                            with self.tally.lock:
                                self.tally.failed.extend((e, f"UNAVAILABLE: {refused[0].message}") for e in envelopes)
                        first_try = False
                        continue
                    now = time.monotonic()
                    with self.tally.lock:
                        for env, o in zip(envelopes, outcomes, strict=True):
                            if isinstance(o, Receipt):
                                (self.tally.acked if first_try else self.tally.retried_ok)[env] = o
                                self.acks.append((now, o.index))
                            elif o.status == "UNAVAILABLE":  # refused near its deadline: no effect
                                self.tally.failed.append((env, f"{o.status}: {o.message}"))
                            else:
                                self.tally.errors.append(f"{o.status}: {o.message}")
                    break
                if self.pause_s:
                    time.sleep(self.pause_s)
        finally:
            for c in clients.values():
                c.close()


def ledger_records(cluster: Cluster, target: str) -> list[bytes]:
    """Every record, as an auditor reads them (GetAllEntries)."""
    from clients.auditor import AuditClient
    from exchange.core.entries import OPERATOR

    auditor = AuditClient(
        target, principal=OPERATOR, signer=cluster.operator, operator_key=cluster.operator.public_key,
        log_key=cluster.log_vkey or cluster.vkey(),
    )
    try:
        return list(auditor.records(0))
    finally:
        auditor.close()


def check_ledger(records: Sequence[bytes]) -> dict[bytes, int]:
    """Contiguous indices and no envelope twice; envelope → index."""
    where: dict[bytes, int] = {}
    for position, raw in enumerate(records):
        record = Record.decode(raw)
        assert record.index == position, f"record at position {position} claims index {record.index}"
        assert record.envelope not in where, f"envelope at {position} duplicates entry {where[record.envelope]}"
        where[record.envelope] = position
    return where


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> float:
    """Bounded wait; returns the seconds it took."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if predicate():
            return time.monotonic() - t0
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
