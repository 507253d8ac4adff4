"""Happy paths of the ExchangeService against a real server on 127.0.0.1:0."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from clients.member import MemberClient
from exchange.core.dsse import Envelope
from exchange.core.entries import EntryKind, decode_entry
from exchange.core.errors import MissingCredentials
from exchange.core.records import Receipt, Record
from exchange.core.verify import VerifiedEntry
from exchange.pb.trustwire.v1 import entries_pb2 as pb
from exchange.pb.trustwire.v1 import exchange_pb2 as xpb
from tests.conftest import GROUP_ALL, GROUP_NCII, MEMBERS, TaskForce, wait_until
from tests.grpc.conftest import MD5_A, MD5_B, MD5_C, RPC_TIMEOUT_S, SERVICE, Reflected, Stubs, publish_raw

N_KEY_EVENTS = 2 + 2 * len(MEMBERS)  # two groups, then enrolment + key per member


def _receipts(outcomes: list[object]) -> list[Receipt]:
    assert all(isinstance(o, Receipt) for o in outcomes), outcomes
    return outcomes  # type: ignore[return-value]


def _records(tf: TaskForce) -> list[bytes]:
    return tf.ledger_snapshot()[1]


def _kinds_and_refs(entries: list[VerifiedEntry]) -> list[tuple[str, str, str]]:
    """(kind, publisher, signal id it is about) per entry, for readable assertions."""
    out = []
    for v in entries:
        e = v.entry
        if isinstance(e, pb.Signal):
            out.append(("signal", e.member_id, e.signal_id))
        elif isinstance(e, pb.Retraction | pb.Opinion):
            out.append((v.kind.value, e.member_id, e.signal.signal_id))
        else:
            out.append(("keyevent", "operator", ""))
    return out


def _visible_indices(tf: TaskForce, client: MemberClient) -> list[int]:
    return [v.index for v in client.subscribe(follow=False)]


# -- publish ---------------------------------------------------------------------------------


def test_publish_receipts_are_contiguous_and_hash_the_stored_record(taskforce: TaskForce) -> None:
    alice = taskforce.client("alice")
    head = taskforce.server.ledger.head()
    assert head == N_KEY_EVENTS
    entries = [alice.signal("md5", v, groups=[GROUP_ALL], labels=["spam"]) for v in (MD5_A, MD5_B, MD5_C)]
    envelopes = [alice.sign(e) for e in entries]
    receipts = _receipts(alice.publish_envelopes(envelopes))
    assert [r.index for r in receipts] == [head, head + 1, head + 2]
    assert receipts[0].accepted_at_ms <= receipts[1].accepted_at_ms <= receipts[2].accepted_at_ms

    records = _records(taskforce)
    assert len(records) == head + 3
    for r, env in zip(receipts, envelopes, strict=True):
        stored = records[r.index]
        assert r.leaf_hash == hashlib.sha256(b"\x00" + stored).digest()
        rec = Record.decode(stored)
        assert rec.index == r.index
        assert rec.accepted_at_ms == r.accepted_at_ms
        assert rec.envelope == env  # the envelope bytes exactly as published

    # the next batch continues the sequence with no gap
    (more,) = _receipts(alice.publish([alice.signal("domain", "Example.COM.", groups=[GROUP_ALL])]))
    assert more.index == head + 3


def test_republish_is_idempotent(taskforce: TaskForce, stubs: Stubs) -> None:
    bob = taskforce.client("bob")
    entry = bob.signal("md5", MD5_A, groups=[GROUP_ALL], signal_id="dup")
    env = bob.sign(entry)
    (first,) = _receipts(bob.publish_envelopes([env]))
    snapshot = taskforce.ledger_snapshot()

    # the same envelope again (Ed25519 is deterministic: re-signing gives the same bytes)
    assert bob.sign(entry) == env
    assert _receipts(bob.publish_envelopes([env])) == [first]
    assert _receipts(bob.publish([entry])) == [first]
    # raw: the receipt fields are identical on the wire too
    (raw1,) = publish_raw(stubs.member("bob"), [env])
    assert raw1.receipt.index == first.index and raw1.receipt.leaf_hash == first.leaf_hash
    assert taskforce.ledger_snapshot() == snapshot

    # within one batch: a new envelope twice, and the old one, cost one new record
    fresh = bob.sign(bob.signal("md5", MD5_B, groups=[GROUP_ALL], signal_id="dup-2"))
    outcomes = _receipts(bob.publish_envelopes([fresh, env, fresh]))
    assert outcomes[0] == outcomes[2]
    assert outcomes[1] == first
    assert outcomes[0].index == snapshot[0]
    head, records = taskforce.ledger_snapshot()
    assert head == snapshot[0] + 1
    assert records[: snapshot[0]] == snapshot[1]


# -- reading ---------------------------------------------------------------------------------


def test_subscribe_from_zero_returns_everything_visible_verified(taskforce: TaskForce) -> None:
    alice, bob = taskforce.client("alice"), taskforce.client("bob")
    _receipts(alice.publish([
        alice.signal("md5", MD5_A, groups=[GROUP_ALL], signal_id="a1"),
        alice.signal("url", "https://example.com/x", groups=[GROUP_ALL], signal_id="a2"),
    ]))
    _receipts(bob.publish([bob.signal("text", "buy cheap followers", groups=[GROUP_ALL], signal_id="b1")]))
    _receipts(bob.publish([bob.opinion("alice", "a1", "true_positive")]))
    _receipts(alice.publish([alice.retraction("a2", "false_positive")]))
    head, records = taskforce.ledger_snapshot()

    for client in (alice, bob, taskforce.client("carol")):
        entries = list(client.subscribe(from_index=0, follow=False))
        assert all(isinstance(v, VerifiedEntry) for v in entries)
        assert [v.index for v in entries] == list(range(head))
        assert [v.record for v in entries] == records
        assert [v.kind for v in entries[:N_KEY_EVENTS]] == [EntryKind.KEY_EVENT] * N_KEY_EVENTS
        assert _kinds_and_refs(entries[N_KEY_EVENTS:]) == [
            ("signal", "alice", "a1"), ("signal", "alice", "a2"), ("signal", "bob", "b1"),
            ("opinion", "bob", "a1"), ("retraction", "alice", "a2"),
        ]
        assert entries[N_KEY_EVENTS].keyid == taskforce.signers["alice"].keyid

    # starting mid-ledger primes the key directory and yields the rest
    tail = list(bob.subscribe(from_index=N_KEY_EVENTS + 2, follow=False))
    assert [v.index for v in tail] == list(range(N_KEY_EVENTS + 2, head))


def test_visibility_of_group_restricted_signal(taskforce: TaskForce, stubs: Stubs) -> None:
    alice, bob = taskforce.client("alice"), taskforce.client("bob")
    _receipts(alice.publish([
        alice.signal("md5", MD5_A, groups=[GROUP_NCII], tlp="amber+strict", signal_id="ncii-only"),
        alice.signal("md5", MD5_B, groups=[GROUP_ALL], signal_id="shared"),
    ]))
    _receipts(alice.publish([alice.opinion("alice", "ncii-only", "true_positive")]))
    _receipts(alice.publish([alice.retraction("ncii-only", "legal")]))
    _receipts(bob.publish([bob.opinion("alice", "shared", "seen")]))
    head = taskforce.server.ledger.head()
    hidden = set(range(N_KEY_EVENTS, head)) - {N_KEY_EVENTS + 1, head - 1}  # signal, opinion, retraction

    # alice sees everything
    assert _visible_indices(taskforce, alice) == list(range(head))
    alice_about = _kinds_and_refs(list(alice.subscribe(follow=False)))
    assert ("retraction", "alice", "ncii-only") in alice_about and ("opinion", "alice", "ncii-only") in alice_about

    # bob and carol: key events, the shared signal and the opinion on it; nothing about ncii-only
    for name in ("bob", "carol"):
        client = taskforce.client(name)
        entries = list(client.subscribe(follow=False))
        assert [v.index for v in entries] == [i for i in range(head) if i not in hidden]
        assert all(ref != "ncii-only" for _, _, ref in _kinds_and_refs(entries))
        assert sum(v.kind is EntryKind.KEY_EVENT for v in entries) == N_KEY_EVENTS

        # GetEntries agrees, page by page, and pages skip what is hidden
        stub = stubs.member(name)
        seen: list[int] = []
        cursor = 0
        while True:
            page = stub.GetEntries(xpb.GetEntriesRequest(from_index=cursor, limit=3), timeout=RPC_TIMEOUT_S)
            assert page.head == head
            seen += [Record.decode(r).index for r in page.records]
            if page.next_index >= head:
                break
            assert page.next_index > cursor
            cursor = page.next_index
        assert seen == [v.index for v in entries]
        for raw in stub.GetEntries(xpb.GetEntriesRequest(), timeout=RPC_TIMEOUT_S).records:
            assert b"ncii-only" not in raw

    # raw Subscribe (stop_at_head) to bob also ends at the head without hidden records
    pages = list(stubs.member("bob").Subscribe(xpb.SubscribeRequest(stop_at_head=True), timeout=RPC_TIMEOUT_S))
    assert pages[-1].next_index == head
    assert all(b"ncii-only" not in r for p in pages for r in p.records)


def test_subscribe_follow_delivers_new_entries(taskforce: TaskForce) -> None:
    bob = taskforce.client("bob")
    alice = taskforce.client("alice")
    received: list[VerifiedEntry] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def consume() -> None:
        try:
            for v in bob.subscribe(from_index=0, follow=True):
                received.append(v)
                if isinstance(v.entry, pb.Signal) and v.entry.signal_id == "late":
                    break
        except BaseException as exc:  # surfaced to the test thread below
            errors.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    wait_until(lambda: len(received) >= N_KEY_EVENTS or errors, timeout=10)
    assert not errors
    assert not done.is_set()  # caught up, still following

    (hidden,) = _receipts(alice.publish([alice.signal("md5", MD5_B, groups=[GROUP_NCII], signal_id="hidden")]))
    (late,) = _receipts(alice.publish([alice.signal("md5", MD5_A, groups=[GROUP_ALL], signal_id="late")]))
    wait_until(done.is_set, timeout=10)
    thread.join(timeout=5)
    assert not errors, errors
    assert [v.index for v in received] == list(range(N_KEY_EVENTS)) + [late.index]
    assert hidden.index not in [v.index for v in received]
    assert received[-1].leaf_hash == late.leaf_hash


def test_get_key_directory_returns_all_key_events(taskforce: TaskForce, stubs: Stubs) -> None:
    alice = taskforce.client("alice")
    _receipts(alice.publish([alice.signal("md5", MD5_A, groups=[GROUP_NCII])]))
    records = _records(taskforce)
    key_event_records = records[:N_KEY_EVENTS]

    for name in MEMBERS:
        reply = stubs.member(name).GetKeyDirectory(xpb.GetKeyDirectoryRequest(), timeout=RPC_TIMEOUT_S)
        assert list(reply.records) == key_event_records
        assert reply.head == len(records)
    kinds = []
    for raw in key_event_records:
        env = Envelope.decode(Record.decode(raw).envelope)
        assert env.keyid == taskforce.operator.keyid
        env.verify(taskforce.operator.public_key)
        kind, event = decode_entry(env.payload_type, env.payload)
        assert kind is EntryKind.KEY_EVENT
        kinds.append(event.WhichOneof("event"))  # type: ignore[union-attr]
    assert kinds == ["group_created", "group_created"] + ["member_enrolled", "key_added"] * len(MEMBERS)

    # until_index bounds the answer
    partial = stubs.member("bob").GetKeyDirectory(xpb.GetKeyDirectoryRequest(until_index=3), timeout=RPC_TIMEOUT_S)
    assert list(partial.records) == key_event_records[:3]
    # ... and an until_index past the head (uint64 max) means "up to the head"
    everything = stubs.member("bob").GetKeyDirectory(xpb.GetKeyDirectoryRequest(until_index=2**64 - 1),
                                                     timeout=RPC_TIMEOUT_S)
    assert list(everything.records) == key_event_records


def test_retraction_reaches_everyone_who_saw_a_version(taskforce: TaskForce) -> None:
    alice, bob = taskforce.client("alice"), taskforce.client("bob", state=True)
    _receipts(alice.publish([alice.signal("md5", MD5_A, groups=[GROUP_ALL], signal_id="narrowed")]))
    assert bob.sync().signals == 1
    # a new version shared more narrowly, then the retraction
    _receipts(alice.publish([alice.signal("md5", MD5_A, groups=[GROUP_NCII], signal_id="narrowed", confidence=90)]))
    _receipts(alice.publish([alice.retraction("narrowed", "false_positive")]))
    bob.sync()
    assert bob.bank is not None
    banked = bob.bank.get("alice", "narrowed")
    assert banked is not None and banked.retracted_index is not None, "bob still matches a retracted signal"


# -- authentication, health, reflection ------------------------------------------------------


def test_unauthenticated_call_is_refused(taskforce: TaskForce, stubs: Stubs) -> None:
    stub = stubs.plain()
    before = taskforce.ledger_snapshot()
    env = taskforce.client("bob").sign(taskforce.client("bob").signal("md5", MD5_A, groups=[GROUP_ALL]))
    calls = {
        "Publish": lambda: stub.Publish(xpb.PublishRequest(envelopes=[env]), timeout=RPC_TIMEOUT_S),
        "GetEntries": lambda: stub.GetEntries(xpb.GetEntriesRequest(), timeout=RPC_TIMEOUT_S),
        "GetKeyDirectory": lambda: stub.GetKeyDirectory(xpb.GetKeyDirectoryRequest(), timeout=RPC_TIMEOUT_S),
        "Subscribe": lambda: list(stub.Subscribe(xpb.SubscribeRequest(stop_at_head=True), timeout=RPC_TIMEOUT_S)),
    }
    for name, call in calls.items():
        with pytest.raises(grpc.RpcError) as info:
            call()
        exc = info.value
        assert exc.code() == grpc.StatusCode.UNAUTHENTICATED, name  # type: ignore[attr-defined]
        assert "not authenticated" in exc.details(), name  # type: ignore[attr-defined]
        assert ("tw-reason", "missing-credentials") in tuple(exc.trailing_metadata())  # type: ignore[attr-defined]
    # the SDK maps it back to the error class
    from clients.transport import rpc_error

    with pytest.raises(grpc.RpcError) as info:
        calls["GetEntries"]()
    assert isinstance(rpc_error(info.value), MissingCredentials)
    assert taskforce.ledger_snapshot() == before


def test_health_check_reports_serving(taskforce: TaskForce, stubs: Stubs) -> None:
    health = health_pb2_grpc.HealthStub(stubs.channel())  # no call credentials needed
    for service in ("", SERVICE):
        reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=RPC_TIMEOUT_S)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    with pytest.raises(grpc.RpcError) as info:
        health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=RPC_TIMEOUT_S)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]


def test_reflection_lists_exchange_service(taskforce: TaskForce, stubs: Stubs) -> None:
    reflected = Reflected(stubs.channel(), [SERVICE])
    assert {SERVICE, "grpc.health.v1.Health"} <= reflected.services
    assert {m.name for m in reflected.service(SERVICE).method} == {"Publish", "Subscribe", "GetEntries", "GetKeyDirectory"}


def test_large_batches_are_verified_by_worker_processes(tmp_path: Path) -> None:
    """Batches over the threshold go to `python -m exchange.server.verification` workers;
    the outcome is exactly the inline one, including per-envelope errors."""
    from tests.conftest import start_taskforce

    tf = start_taskforce(tmp_path, verify_workers=2)
    try:
        alice = tf.client("alice")
        envs = [alice.sign(alice.signal("md5", f"{i:032x}", groups=[GROUP_ALL], signal_id=f"w{i}")) for i in range(200)]
        from tests.grpc.conftest import flip_bit, reencode_envelope
        from exchange.core.dsse import Envelope

        envs[150] = reencode_envelope(envs[150], sig=flip_bit(Envelope.decode(envs[150]).sig, 7))
        outcomes = alice.publish_envelopes(envs)
        assert [type(o).__name__ for o in outcomes].count("Receipt") == 199
        assert getattr(outcomes[150], "reason", None) == "forged-signature"
        workers = tf.server._pool._procs  # noqa: SLF001 - white-box: the workers really ran
        assert len(workers) == 2 and all(w.proc.poll() is None for w in workers)
    finally:
        tf.close()
    assert all(w.proc.poll() is not None for w in workers)  # and stop with the server
