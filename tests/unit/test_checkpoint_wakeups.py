"""Streams are woken when followers have something new to see (issue 18): a signed
checkpoint, or a key directory change (streams re-authorize at once), not every commit
the checkpoint has yet to cover.

A real SQLite ledger and a real checkpoint log; the listener is what the gRPC server's
pulse is."""

from __future__ import annotations

import hashlib
from pathlib import Path

from exchange.core import note as notes
from exchange.core.keys import Signer
from exchange.server.checkpoints import CheckpointLog
from exchange.server.ledger import SqliteLedger
from tests.ledger_contract import G1, receipts, set_groups, signal, task_force

ORIGIN = "example.org/wakeups-test"
LOG_KEY = notes.NoteSigner(ORIGIN, Signer.from_seed(hashlib.sha256(b"wakeups-log-INSECURE").digest()).signing_key)


def test_growth_alone_wakes_no_stream_but_a_signature_or_a_key_event_does(tmp_path: Path) -> None:
    ledger = SqliteLedger(tmp_path / "ledger.db")
    receipts(ledger.append(task_force()))
    log = CheckpointLog(ledger, tmp_path / "audit", LOG_KEY, ORIGIN, interval_ms=3_600_000)  # signs once, at start
    woken: list[int] = []
    log.add_listener(lambda: woken.append(ledger.head()))
    try:
        receipts(ledger.append([signal("alice", f"s{i}", [G1]) for i in range(5)]))
        assert log.catch_up() is True  # the tree grew ...
        assert woken == []  # ... but nothing is signed: followers have nothing new to see
        receipts(ledger.append([set_groups("bob", [G1], n=1)]))  # a key directory change
        log.catch_up()
        assert woken == [ledger.head()]  # streams re-check their caller at once
    finally:
        log.stop()
        ledger.close()
    log = CheckpointLog(ledger := SqliteLedger(tmp_path / "ledger.db"), tmp_path / "audit", LOG_KEY, ORIGIN,
                        interval_ms=0)
    woken.clear()
    log.add_listener(lambda: woken.append(ledger.head()))
    try:
        receipts(ledger.append([signal("alice", "s9", [G1])]))
        log.catch_up()
        latest = log.latest()
        assert latest is not None and latest.size == ledger.head() and woken == [ledger.head()]  # signed: woken
    finally:
        log.stop()
        ledger.close()
