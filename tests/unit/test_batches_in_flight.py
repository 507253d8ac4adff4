"""Several batches in flight (issue 18): admission releases its lock before the append,
the SQLite engine groups the batches waiting meanwhile into one transaction.

Real admission over a real SQLite ledger file. The ledger's clock is read once per
write transaction, at its start, so a clock that waits on a gate holds one group open
while other batches arrive: deterministic "in flight", with no sleeps.
"""

from __future__ import annotations

import threading
from pathlib import Path

from exchange.core.records import Receipt
from exchange.server.admission import Admission
from exchange.server.ledger import SqliteLedger
from tests.unit.test_time_base import T, exchange_on, replay_verifies, signal

WAIT_S = 30.0


class GatedClock:
    """The ledger's clock; while closed, a write transaction that reads it waits."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.gate.set()
        self.waiting = threading.Event()

    def __call__(self) -> int:
        if not self.gate.is_set():
            self.waiting.set()
            assert self.gate.wait(WAIT_S)
        return T + 1000


def _start(admission: Admission, envelopes: list[bytes], out: dict[str, list[object]], key: str) -> threading.Thread:
    thread = threading.Thread(target=lambda: out.__setitem__(key, admission.publish("alice", envelopes)))
    thread.start()
    return thread


def _queued(ledger: SqliteLedger, batches: int) -> None:
    """Bounded wait until ``batches`` callers wait in the group-commit queue."""
    done = threading.Event()
    for _ in range(int(WAIT_S / 0.01)):
        with ledger._queued:  # noqa: SLF001 - white-box: the queue really holds them
            if len(ledger._queue) >= batches:  # noqa: SLF001
                return
        done.wait(0.01)
    raise AssertionError(f"{batches} batches never queued")


def test_republish_while_in_flight_returns_the_original_receipt(tmp_path: Path) -> None:
    clock = GatedClock()
    ledger = SqliteLedger(tmp_path / "ledger.db", clock_ms=clock)
    admission = exchange_on(ledger, {"admission": T + 1000})
    head = ledger.head()
    first, again = [signal(n) for n in range(100)], [signal(n) for n in range(50, 150)]
    out: dict[str, list[object]] = {}
    clock.gate.clear()
    a = _start(admission, first, out, "first")
    assert clock.waiting.wait(WAIT_S)  # the first batch is being written, not yet committed
    b = _start(admission, again, out, "again")  # half of it re-publishes the first batch
    _queued(ledger, 1)
    clock.gate.set()
    a.join(WAIT_S)
    b.join(WAIT_S)
    assert all(isinstance(o, Receipt) for o in out["first"] + out["again"])
    assert out["again"][:50] == out["first"][50:]  # the original receipts, not new entries
    indices = [o.index for o in out["first"] + out["again"][50:]]  # type: ignore[union-attr]
    assert indices == list(range(head, head + 150))  # contiguous, each batch in one run
    assert ledger.head() == head + 150
    replay_verifies(ledger)
    ledger.close()


def test_batches_waiting_together_commit_in_one_group(tmp_path: Path) -> None:
    clock = GatedClock()
    ledger = SqliteLedger(tmp_path / "ledger.db", clock_ms=clock)
    admission = exchange_on(ledger, {"admission": T + 1000})
    head, groups = ledger.head(), ledger.groups_committed
    out: dict[str, list[object]] = {}
    clock.gate.clear()
    threads = [_start(admission, [signal(n) for n in range(0, 10)], out, "lead")]
    assert clock.waiting.wait(WAIT_S)
    threads += [_start(admission, [signal(n) for n in range(k * 10, k * 10 + 10)], out, f"b{k}") for k in (1, 2, 3)]
    _queued(ledger, 3)
    clock.gate.set()
    for t in threads:
        t.join(WAIT_S)
    assert ledger.groups_committed - groups == 2  # the leader's batch, then the three that waited
    for key in out:
        got = [o.index for o in out[key]]  # type: ignore[union-attr]
        assert got == list(range(got[0], got[0] + 10)), key  # each batch contiguous
    assert sorted(o.index for v in out.values() for o in v) == list(range(head, head + 40))  # type: ignore[union-attr]
    ledger.close()
