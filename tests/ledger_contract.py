"""The ledger contract: what every stream engine promises the exchange.

Written once against a ``make_ledger`` fixture and run unchanged against every
engine: tests/unit/test_ledger_contract_sqlite.py (SqliteLedger) and
tests/kafka/test_ledger_contract_kafka.py (KafkaLedger on a real broker). A module
that runs it does ``from tests.ledger_contract import *`` and provides

    make_ledger(clock_ms=None) -> Ledger

which opens the test's ledger; called again after ``close()``, it reopens the same
ledger (same storage). The fixture closes whatever is still open at teardown.
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
import time
from collections.abc import Callable, Sequence

from exchange.core.dsse import Envelope, sign_envelope
from exchange.core.entries import OPERATOR, Entry, decode_entry, encode_entry, ms_to_timestamp
from exchange.core.errors import InvalidKeyEvent, TrustwireError
from exchange.core.keys import Signer
from exchange.core.records import Receipt, Record, leaf_hash
from exchange.pb.trustwire.v1 import entries_pb2 as pb
from exchange.server.ledger import Ledger, Outcome, Submission
from tests.conftest import holds_for

MakeLedger = Callable[..., Ledger]

G1, G2, G3 = "g-one", "g-two", "g-three"
T0 = 1_700_000_000_000


def _signer(name: str) -> Signer:
    return Signer.from_seed(hashlib.sha256(f"trustwire-contract-INSECURE:{name}".encode()).digest())


OPERATOR_KEY = _signer("operator")
ALICE = _signer("alice")
BOB = _signer("bob")


def submission(entry: Entry, signer: Signer = OPERATOR_KEY) -> Submission:
    env = sign_envelope(*encode_entry(entry), signer)
    return Submission(envelope=env.raw, digest=env.digest)


def _event(n: int = 0, **event: object) -> pb.KeyEvent:
    return pb.KeyEvent(created_at=ms_to_timestamp(T0 + n), **event)  # type: ignore[arg-type]


def group(gid: str) -> Submission:
    return submission(_event(group_created=pb.GroupCreated(group_id=gid, display_name=gid, max_tlp=pb.TLP_AMBER)))


def enrol(member: str, groups: Sequence[str]) -> Submission:
    return submission(
        _event(member_enrolled=pb.MemberEnrolled(member_id=member, display_name=member, groups=list(groups), role=pb.ROLE_MEMBER))
    )


def add_key(member: str, signer: Signer) -> Submission:
    return submission(
        _event(key_added=pb.KeyAdded(member_id=member, public_key=signer.public_key, valid_from=ms_to_timestamp(T0)))
    )


def set_groups(member: str, groups: Sequence[str], n: int = 0) -> Submission:
    return submission(_event(n, groups_set=pb.GroupsSet(member_id=member, groups=list(groups))))


def signal(member: str, signal_id: str, groups: Sequence[str], value: str = "d41d8cd98f00b204e9800998ecf8427e",
           signer: Signer = ALICE) -> Submission:
    return submission(
        pb.Signal(
            signal_id=signal_id,
            member_id=member,
            type="md5",
            value=value,
            confidence=50,
            severity=pb.SEVERITY_MEDIUM,
            sharing=pb.Sharing(groups=list(groups), tlp=pb.TLP_AMBER),
            created_at=ms_to_timestamp(T0),
        ),
        signer,
    )


def retraction(member: str, signal_id: str, signer: Signer = ALICE) -> Submission:
    return submission(
        pb.Retraction(
            member_id=member,
            signal=pb.SignalRef(member_id=member, signal_id=signal_id),
            reason=pb.RETRACTION_REASON_ERROR,
            created_at=ms_to_timestamp(T0 + 1),
        ),
        signer,
    )


def opinion(member: str, publisher: str, signal_id: str, signer: Signer = BOB) -> Submission:
    return submission(
        pb.Opinion(
            member_id=member,
            signal=pb.SignalRef(member_id=publisher, signal_id=signal_id),
            verdict=pb.VERDICT_TRUE_POSITIVE,
            created_at=ms_to_timestamp(T0 + 2),
        ),
        signer,
    )


def task_force() -> list[Submission]:
    """Three groups, alice (G1, G2) and bob (G1), each with a key: 7 key events."""
    return [group(G1), group(G2), group(G3), enrol("alice", [G1, G2]), add_key("alice", ALICE),
            enrol("bob", [G1]), add_key("bob", BOB)]


def receipts(outcomes: Sequence[Outcome]) -> list[Receipt]:
    bad = [o for o in outcomes if not isinstance(o, Receipt)]
    assert not bad, bad
    return list(outcomes)  # type: ignore[arg-type]


def everything(ledger: Ledger) -> list[bytes]:
    return [s.record for s in ledger.read(0, ledger.head() + 1)]


# -- appending ---------------------------------------------------------------------------------


def test_an_empty_ledger(make_ledger: MakeLedger) -> None:
    ledger = make_ledger()
    assert ledger.head() == 0
    assert ledger.read(0, 10) == []
    assert ledger.key_event_records(10) == []
    assert ledger.receipt_for(b"\0" * 32) is None
    assert ledger.signal("alice", "nothing") is None
    assert ledger.append([]) == []
    assert ledger.head() == 0
    assert ledger.directory.members == {}


def test_indices_are_contiguous_and_receipts_match_records(make_ledger: MakeLedger) -> None:
    ledger = make_ledger()
    batch = task_force()
    got = receipts(ledger.append(batch))
    assert [r.index for r in got] == list(range(len(batch)))
    more = receipts(ledger.append([signal("alice", "s1", [G1]), signal("alice", "s2", [G2])]))
    assert [r.index for r in more] == [len(batch), len(batch) + 1]
    assert ledger.head() == len(batch) + 2
    stored = ledger.read(0, 100)
    assert [s.index for s in stored] == list(range(ledger.head()))
    last_ms = 0
    for receipt, s, sub in zip(got + more, stored, batch + [signal("alice", "s1", [G1]), signal("alice", "s2", [G2])],
                               strict=True):
        record = Record.decode(s.record)
        assert record.index == s.index == receipt.index
        assert record.envelope == sub.envelope  # the exact bytes, never re-encoded
        assert record.accepted_at_ms == receipt.accepted_at_ms
        assert receipt.leaf_hash == leaf_hash(s.record)
        assert record.accepted_at_ms >= last_ms  # time never goes back
        last_ms = record.accepted_at_ms


def test_every_record_reads_back_with_its_metadata(make_ledger: MakeLedger) -> None:
    ledger = make_ledger()
    receipts(ledger.append(task_force() + [signal("alice", "s1", [G2])]))
    stored = ledger.read(0, 100)
    assert all(s.kind == "keyevent" and s.audience is None and s.publisher == OPERATOR for s in stored[:7])
    sig = stored[7]
    assert (sig.kind, sig.publisher, sig.audience) == ("signal", "alice", (G2,))
    assert sig.visible_to("alice", frozenset({G1})) and not sig.visible_to("bob", frozenset({G1}))
    assert stored[0].visible_to("bob", frozenset())  # key events are public


def test_republishing_returns_the_original_receipt_and_adds_nothing(make_ledger: MakeLedger) -> None:
    ledger = make_ledger()
    first = receipts(ledger.append(task_force()))
    s1 = signal("alice", "s1", [G1])
    (original,) = receipts(ledger.append([s1]))
    before = everything(ledger)
    again = receipts(ledger.append(task_force() + [s1]))
    assert again == first + [original]
    assert everything(ledger) == before
    assert ledger.receipt_for(s1.digest) == original


def test_a_duplicate_within_a_batch_gets_one_index(make_ledger: MakeLedger) -> None:
    ledger = make_ledger()
    receipts(ledger.append(task_force()))
    s1, s2 = signal("alice", "s1", [G1]), signal("alice", "s2", [G1])
    got = receipts(ledger.append([s1, s2, s1, s2, s1]))
    assert [r.index for r in got] == [7, 8, 7, 8, 7]
    assert got[0] == got[2] == got[4]
    assert ledger.head() == 9


def test_key_events_are_checked_in_order_against_the_directory(make_ledger: MakeLedger) -> None:
    ledger = make_ledger()
    outcomes = ledger.append([
        enrol("alice", [G1]),  # group does not exist yet
        group(G1),
        enrol("alice", [G1]),  # same bytes as the first: it was refused, so it is new now
        group(G1),  # same envelope as the second: deduplicated, not a conflict
        submission(_event(7, group_created=pb.GroupCreated(group_id=G1, display_name="again", max_tlp=pb.TLP_AMBER))),
        add_key("alice", ALICE),
    ])
    assert isinstance(outcomes[0], InvalidKeyEvent) and "does not exist" in outcomes[0].message
    r_group, r_enrol, r_dup, r_key = outcomes[1], outcomes[2], outcomes[3], outcomes[5]
    assert isinstance(r_group, Receipt) and isinstance(r_enrol, Receipt) and isinstance(r_key, Receipt)
    assert [r_group.index, r_enrol.index, r_key.index] == [0, 1, 2]  # refused entries take no index
    assert r_dup == r_group
    assert isinstance(outcomes[4], InvalidKeyEvent) and "already exists" in outcomes[4].message
    assert ledger.head() == 3
    assert set(ledger.directory.members) == {"alice"}
    assert ledger.directory.groups_of("alice") == frozenset({G1})
    assert ledger.directory.last_index == 2


def test_a_refused_entry_has_no_side_effect(make_ledger: MakeLedger) -> None:
    ledger = make_ledger()
    receipts(ledger.append(task_force()))
    before = everything(ledger)
    (outcome,) = ledger.append([enrol("alice", [G1])])  # already enrolled
    assert isinstance(outcome, TrustwireError) and outcome.status == "INVALID_ARGUMENT"
    assert everything(ledger) == before
    assert ledger.receipt_for(enrol("alice", [G1]).digest) is None
    (next_one,) = receipts(ledger.append([signal("alice", "s1", [G1])]))
    assert next_one.index == len(before)


def as_admitted(s: Submission) -> Submission:
    """``s`` as admission hands it over: decoded, with its signing key id (the Kafka
    engine then sends the sequencer the key id instead of having it parse the envelope)."""
    env = Envelope.decode(s.envelope)
    return dataclasses.replace(s, decoded=decode_entry(env.payload_type, env.payload), keyid=env.keyid)


def test_an_entry_of_a_member_suspended_after_admission_is_refused_at_append(make_ledger: MakeLedger) -> None:
    """The key check is repeated at the entry's index: a member suspended between
    admission and the append gets nothing in, whether or not admission named the key."""
    ledger = make_ledger()
    receipts(ledger.append(task_force()))
    receipts(ledger.append([submission(_event(1, member_suspended=pb.MemberSuspended(member_id="alice")))]))
    before = everything(ledger)
    plain, named = signal("alice", "late-1", [G1]), as_admitted(signal("alice", "late-2", [G1]))
    assert named.keyid and named.decoded
    outcomes = ledger.append([plain, named])
    assert all(isinstance(o, TrustwireError) and o.status == "PERMISSION_DENIED" for o in outcomes), outcomes
    assert everything(ledger) == before
    (ok,) = receipts(ledger.append([as_admitted(signal("bob", "on-time", [G1], signer=BOB))]))
    assert ok.index == len(before)


# -- derived state -----------------------------------------------------------------------------


def test_signal_state_follows_versions_and_retraction(make_ledger: MakeLedger) -> None:
    ledger = make_ledger()
    receipts(ledger.append(task_force()))
    (v1,) = receipts(ledger.append([signal("alice", "s1", [G1])]))
    state = ledger.signal("alice", "s1")
    assert state is not None
    assert (state.audience, state.last_index, state.retracted) == ((G1,), v1.index, False)
    (v2,) = receipts(ledger.append([signal("alice", "s1", [G2], value="0cc175b9c0f1b6a831c399e269772661")]))
    state = ledger.signal("alice", "s1")
    assert state is not None and state.last_index == v2.index
    assert set(state.audience) == {G1, G2}  # everyone who saw any version
    (r,) = receipts(ledger.append([retraction("alice", "s1")]))
    state = ledger.signal("alice", "s1")
    assert state is not None and state.retracted
    # the retraction reaches everyone who saw any version, not only the last one's groups
    (stored,) = ledger.read(r.index, 1)
    assert stored.kind == "retraction" and set(stored.audience or ()) == {G1, G2}
    assert stored.visible_to("bob", frozenset({G1}))


def test_opinions_inherit_the_audience_of_their_signal(make_ledger: MakeLedger) -> None:
    ledger = make_ledger()
    receipts(ledger.append(task_force() + [signal("alice", "s1", [G1])]))
    (o,) = receipts(ledger.append([opinion("bob", "alice", "s1")]))
    (stored,) = ledger.read(o.index, 1)
    assert (stored.kind, stored.publisher, stored.audience) == ("opinion", "bob", (G1,))


def test_the_directory_follows_key_events(make_ledger: MakeLedger) -> None:
    ledger = make_ledger()
    receipts(ledger.append(task_force()))
    d = ledger.directory
    assert set(d.members) == {"alice", "bob"}
    assert {k.member_id for k in d.keys.values()} == {"alice", "bob"}
    assert d.groups_of("bob") == frozenset({G1})
    receipts(ledger.append([set_groups("bob", [G1, G3])]))
    assert ledger.directory.groups_of("bob") == frozenset({G1, G3})
    assert d.groups_of("bob") == frozenset({G1})  # replace-on-write: an old reference stays valid


def test_key_event_records_until_an_index(make_ledger: MakeLedger) -> None:
    ledger = make_ledger()
    tf = task_force()
    receipts(ledger.append(tf[:3] + [enrol("alice", [G1, G2]), add_key("alice", ALICE)]))
    receipts(ledger.append([signal("alice", "s1", [G1])]))
    receipts(ledger.append(tf[5:]))
    records = ledger.key_event_records(ledger.head())
    assert [Record.decode(r).index for r in records] == [0, 1, 2, 3, 4, 6, 7]
    assert [Record.decode(r).envelope for r in records] == [s.envelope for s in tf]
    assert [Record.decode(r).index for r in ledger.key_event_records(4)] == [0, 1, 2, 3]


def test_read_pages(make_ledger: MakeLedger) -> None:
    ledger = make_ledger()
    receipts(ledger.append(task_force() + [signal("alice", f"s{i}", [G1]) for i in range(13)]))
    assert ledger.head() == 20
    assert [s.index for s in ledger.read(5, 4)] == [5, 6, 7, 8]
    assert [s.index for s in ledger.read(18, 10)] == [18, 19]
    assert ledger.read(20, 10) == []
    assert ledger.read(200, 10) == []


def test_receipt_for_every_entry(make_ledger: MakeLedger) -> None:
    ledger = make_ledger()
    batch = task_force() + [signal("alice", "s1", [G1])]
    got = receipts(ledger.append(batch))
    for sub, r in zip(batch, got, strict=True):
        assert ledger.receipt_for(sub.digest) == r


def test_wait_for_wakes_up_on_growth_and_times_out(make_ledger: MakeLedger) -> None:
    ledger = make_ledger()
    receipts(ledger.append(task_force()))
    t0 = time.monotonic()
    assert ledger.wait_for(100, timeout=0.2) == 7
    assert time.monotonic() - t0 >= 0.15
    assert ledger.wait_for(3, timeout=5) == 7  # already there: no wait
    woke: list[int] = []
    waiter = threading.Thread(target=lambda: woke.append(ledger.wait_for(7, timeout=20)))
    waiter.start()
    holds_for(lambda: waiter.is_alive() and not woke, 0.1)  # blocked: nothing past index 7 yet
    receipts(ledger.append([signal("alice", "s1", [G1])]))
    waiter.join(20)
    assert woke == [8]


def test_concurrent_appends_get_distinct_contiguous_indices(make_ledger: MakeLedger) -> None:
    ledger = make_ledger()
    receipts(ledger.append(task_force()))
    results: list[list[Outcome]] = []
    errors: list[BaseException] = []

    def publish(worker: int) -> None:
        try:
            for round_ in range(3):
                batch = [signal("alice", f"w{worker}-{round_}-{i}", [G1]) for i in range(4)]
                results.append(ledger.append(batch))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    workers = [threading.Thread(target=publish, args=(w,)) for w in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert not errors, errors
    indices = sorted(r.index for batch in results for r in receipts(batch))
    assert indices == list(range(7, 7 + 48))
    assert ledger.head() == 55
    assert [s.index for s in ledger.read(0, 100)] == list(range(55))


def test_the_same_batch_appended_at_once_from_several_threads_lands_once(make_ledger: MakeLedger) -> None:
    ledger = make_ledger()
    receipts(ledger.append(task_force()))
    batch = [signal("alice", f"same-{i}", [G1]) for i in range(6)]
    results: list[list[Outcome]] = []
    start = threading.Barrier(4)

    def publish() -> None:
        start.wait(30)
        results.append(ledger.append(batch))

    workers = [threading.Thread(target=publish) for _ in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert len(results) == 4 and all(receipts(r) == receipts(results[0]) for r in results)  # one original receipt
    assert [r.index for r in receipts(results[0])] == list(range(7, 13))
    assert ledger.head() == 13


def test_batch_lookups_of_receipts_and_leaf_hashes(make_ledger: MakeLedger) -> None:
    ledger = make_ledger()
    subs = task_force()
    got = receipts(ledger.append(subs))
    assert ledger.receipts_for([s.digest for s in subs] + [b"\0" * 32]) == {s.digest: r for s, r in zip(subs, got)}
    assert ledger.leaf_hashes(2, 3) == [r.leaf_hash for r in got[2:5]]
    assert ledger.leaf_hashes(5, 10) == [r.leaf_hash for r in got[5:]]  # fewer at the head


def test_reopening_keeps_everything(make_ledger: MakeLedger) -> None:
    ledger = make_ledger()
    got = receipts(ledger.append(task_force() + [signal("alice", "s1", [G1, G2])]))
    before = everything(ledger)
    ledger.close()
    again = make_ledger()
    assert again.head() == len(before)
    assert everything(again) == before
    assert again.receipt_for(task_force()[0].digest) == got[0]
    assert set(again.directory.members) == {"alice", "bob"}
    state = again.signal("alice", "s1")
    assert state is not None and set(state.audience) == {G1, G2}
    (r,) = receipts(again.append([signal("alice", "s2", [G1])]))
    assert r.index == len(before)
    assert receipts(again.append([task_force()[3]])) == [got[3]]  # dedupe survives the restart


def test_key_events_are_public(make_ledger: MakeLedger) -> None:
    ledger = make_ledger()
    receipts(ledger.append(task_force()))
    assert all(s.audience is None and s.visible_to("nobody", frozenset()) for s in ledger.read(0, 7))


__all__ = [name for name in dict(globals()) if name.startswith("test_")]
