"""One open queue item per piece of content: further matches are its evidence."""

from __future__ import annotations

from pathlib import Path

import pytest

from clients.bank import Bank, BankSignal, Match
from clients.policy import Action, Decision
from clients.queue import ModerationQueue, QueueFilter, State
from clients.store import MemberStore
from exchange.core.entries import ms_to_timestamp
from exchange.pb.trustwire.v1 import entries_pb2 as pb

NOW = 1_800_000_000_000


def _decision(priority: int) -> Decision:
    return Decision(action=Action.ENQUEUE, priority=priority, rule=f"p{priority}")


@pytest.fixture
def parts(tmp_path: Path) -> tuple[MemberStore, ModerationQueue, dict[str, BankSignal]]:
    store = MemberStore(tmp_path / "state.db")
    bank = Bank(store, clock_ms=lambda: NOW)
    banked = {}
    for n, (publisher, kind, value, group) in enumerate([
        ("alice", "md5", "a" * 32, "g1"), ("carol", "sha256", "b" * 64, "g2"), ("alice", "md5", "c" * 32, "g1"),
    ]):
        s = pb.Signal(signal_id=f"s{n}", member_id=publisher, type=kind, value=value, confidence=80,
                      sharing=pb.Sharing(groups=[group]), created_at=ms_to_timestamp(NOW - 1000))
        bank.add_signal(s, index=10 + n)
        got = bank.get(publisher, f"s{n}")
        assert got is not None
        banked[f"s{n}"] = got
    return store, ModerationQueue(store, clock_ms=lambda: NOW), banked


def test_a_second_signal_on_the_same_file_is_evidence_with_the_more_urgent_priority(parts) -> None:  # type: ignore[no-untyped-def]
    _, q, s = parts
    assert q.enqueue(Match(content_ref="f.bin", signal=s["s0"]), _decision(3))
    assert not q.enqueue(Match(content_ref="f.bin", signal=s["s1"]), _decision(1))
    assert not q.enqueue(Match(content_ref="f.bin", signal=s["s1"]), _decision(1))  # again: a no-op
    assert q.enqueue(Match(content_ref="other.bin", signal=s["s2"]), _decision(2))  # other content: its own item
    (item, other) = q.items()
    assert (item.priority, [e.signal_id for e in item.evidence]) == (1, ["s0", "s1"])
    assert [e.signal_id for e in other.evidence] == ["s2"]
    assert "evidence added: sha256 carol/s1 (rule p1)" in [e.reason for e in q.history(item.id)]
    # filters see the evidence: carol's signal, its type and its group find the item
    for where in (QueueFilter(publisher="carol"), QueueFilter(type="sha256"), QueueFilter(group="g2")):
        assert [i.id for i in q.page(where).items] == [item.id]


def test_a_decided_item_does_not_take_new_evidence(parts) -> None:  # type: ignore[no-untyped-def]
    _, q, s = parts
    q.enqueue(Match(content_ref="f.bin", signal=s["s0"]), _decision(2))
    q.claim(1, "ana")
    q.decide(1, "ana", State.DISMISSED, "not it")
    assert q.enqueue(Match(content_ref="f.bin", signal=s["s1"]), _decision(2))  # a new reason to look: new item
    assert [(i.state, i.signal_id) for i in q.items()] == [(State.DISMISSED, "s0"), (State.PENDING, "s1")]


def test_an_item_from_before_evidence_keeps_its_own_signal_first(parts) -> None:  # type: ignore[no-untyped-def]
    store, q, s = parts
    q.enqueue(Match(content_ref="f.bin", signal=s["s0"]), _decision(2))
    store.conn.execute("DELETE FROM queue_evidence")  # as an older state file has it
    assert q.get(1).evidence == () and q.get(1).live_signals() == [("alice", "s0")]
    q.enqueue(Match(content_ref="f.bin", signal=s["s1"]), _decision(2))
    assert [e.signal_id for e in q.get(1).evidence] == ["s0", "s1"]
    assert q.withdraw("alice", "s0", "retracted: error") == 0
    assert q.withdraw("carol", "s1", "expired") == 1
    assert q.get(1).state is State.WITHDRAWN
