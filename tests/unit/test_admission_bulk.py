"""Retractions and opinions in one batch (issue 18): the signals they name are looked
up once for the batch, and each still gets the answer it got entry by entry.

Real admission over a real SQLite ledger file; the ledger's reader connection is
traced to count the statements that read the ``signals`` table.
"""

from __future__ import annotations

from pathlib import Path

from exchange.core.dsse import sign_envelope
from exchange.core.entries import encode_entry, ms_to_timestamp
from exchange.core.errors import NotFound, WrongMember
from exchange.core.records import Receipt
from exchange.pb.trustwire.v1 import entries_pb2 as pb
from exchange.server.ledger import SqliteLedger
from tests.unit.test_time_base import ALICE, T, exchange_on, replay_verifies, signal


def _retraction(signal_id: str, owner: str = "alice") -> bytes:
    e = pb.Retraction(member_id="alice", signal=pb.SignalRef(member_id=owner, signal_id=signal_id),
                      reason=pb.RETRACTION_REASON_ERROR, created_at=ms_to_timestamp(T))
    return sign_envelope(*encode_entry(e), ALICE).raw


def _opinion(signal_id: str, owner: str = "alice") -> bytes:
    e = pb.Opinion(member_id="alice", signal=pb.SignalRef(member_id=owner, signal_id=signal_id),
                   verdict=pb.VERDICT_SEEN, created_at=ms_to_timestamp(T))
    return sign_envelope(*encode_entry(e), ALICE).raw


def test_a_batch_of_retractions_and_opinions_reads_the_signals_once(tmp_path: Path) -> None:
    ledger = SqliteLedger(tmp_path / "ledger.db", clock_ms=lambda: T + 1000)
    admission = exchange_on(ledger, {"admission": T + 1000})
    assert all(isinstance(o, Receipt) for o in admission.publish("alice", [signal(n) for n in range(40)]))
    reads: list[str] = []
    ledger._reader().set_trace_callback(  # noqa: SLF001 - white-box: count what admission reads
        lambda sql: reads.append(sql) if "FROM signals" in sql else None
    )
    batch = [_retraction(f"s{n}") for n in range(20)] + [_opinion(f"s{n}") for n in range(20, 40)]
    outcomes = admission.publish("alice", batch)
    assert all(isinstance(o, Receipt) for o in outcomes), outcomes[:3]
    assert len(reads) == 1, reads  # one lookup for the 40 signals the batch names
    replay_verifies(ledger)
    ledger.close()


def test_a_mixed_batch_answers_each_entry_as_alone(tmp_path: Path) -> None:
    ledger = SqliteLedger(tmp_path / "ledger.db", clock_ms=lambda: T + 1000)
    admission = exchange_on(ledger, {"admission": T + 1000})
    assert isinstance(admission.publish("alice", [signal(0)])[0], Receipt)
    outcomes = admission.publish("alice", [
        _retraction("s0"),  # a known signal of the caller
        _opinion("s0"),  # visible to the caller
        _retraction("nope"),  # unknown
        _opinion("nope"),  # unknown
        signal(7), _retraction("s7"),  # a signal and its retraction in one batch
        _retraction("s0", owner="bob"),  # another member's signal, which the caller cannot see
    ])
    assert [type(o) for o in outcomes[:2]] == [Receipt, Receipt]
    assert isinstance(outcomes[2], NotFound) and isinstance(outcomes[3], NotFound)
    assert [type(o) for o in outcomes[4:6]] == [Receipt, Receipt]
    assert isinstance(outcomes[6], (NotFound, WrongMember))
    replay_verifies(ledger)
    ledger.close()
