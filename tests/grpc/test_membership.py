"""Membership, keys and access: one test per attack (issue 5).

Each asserts the status, the message, and that nothing changed. mtls-wrong-client-cert
lives in test_tls.py; revoked-key and suspended-member in test_attacks.py.
"""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import pytest

from exchange.core.callauth import sign_call
from exchange.core.entries import ms_to_timestamp
from exchange.core.keys import Signer
from exchange.core.records import Receipt
from exchange.pb.trustwire.v1 import audit_pb2 as apb
from exchange.pb.trustwire.v1 import audit_pb2_grpc as agrpc
from exchange.pb.trustwire.v1 import entries_pb2 as pb
from exchange.pb.trustwire.v1 import exchange_pb2 as xpb
from tests.conftest import GROUP_ALL, GROUP_NCII, TaskForce, accepted, start_taskforce
from tests.grpc.conftest import (
    MD5_A,
    MD5_B,
    MD5_C,
    PUBLISH,
    RPC_TIMEOUT_S,
    Stubs,
    assert_entry_error,
    assert_rpc_error,
    publish_raw,
    sign,
)

CANARY = "CANARY-7f3a9c"  # never appears in anything a non-member receives


def _operator(tf: TaskForce, *events: pb.KeyEvent) -> list[object]:
    op = tf.operator_client()
    try:
        return list(op.publish(events))
    finally:
        op.close()


def _ncii_signal(tf: TaskForce, signal_id: str = "ncii-1") -> Receipt:
    alice = tf.client("alice")
    (r,) = accepted(alice.publish([alice.signal("md5", MD5_A, groups=[GROUP_NCII], signal_id=signal_id,
                                           description=CANARY, labels=["ncii"])]))
    return r


def test_key_not_yet_valid(taskforce: TaskForce, stubs: Stubs) -> None:
    future = Signer.from_seed(b"\x51" * 32)
    op = taskforce.operator_client()
    accepted(op.publish([op.add_key("bob", future.public_key, int(time.time() * 1000) + 3_600_000)]))
    op.close()
    before = taskforce.ledger_snapshot()
    bob = taskforce.client("bob")
    results = publish_raw(stubs.member("bob"), [sign(bob.signal("md5", MD5_B, groups=[GROUP_ALL]), future)])
    assert_entry_error(results[0], "PERMISSION_DENIED", "key-not-valid", "is not valid at index")
    with pytest.raises(grpc.RpcError) as info:
        publish_raw(stubs.member("bob", signer=future), [sign(bob.signal("md5", MD5_B, groups=[GROUP_ALL]), future)])
    assert_rpc_error(info.value, grpc.StatusCode.PERMISSION_DENIED, "key-not-valid", "not yet valid")
    assert taskforce.ledger_snapshot() == before


def test_compromised_since(taskforce: TaskForce, stubs: Stubs) -> None:
    bob = taskforce.client("bob")
    clean, stolen = accepted(bob.publish([bob.signal("md5", MD5_A, groups=[GROUP_ALL], signal_id="clean")])), None
    carol = taskforce.client("carol", state=True)
    assert carol.sync().signals == 1
    # the thief publishes with bob's key before anyone notices
    (stolen,) = accepted(bob.publish([bob.signal("md5", MD5_B, groups=[GROUP_ALL], signal_id="stolen")]))
    assert carol.sync().signals == 1 and carol.bank is not None
    assert carol.bank.get("bob", "stolen") is not None  # it looked fine when it arrived
    # the operator revokes the key as compromised since the thief's first entry, and rotates
    new = Signer.from_seed(b"\x61" * 32)
    op = taskforce.operator_client()
    accepted(op.publish([
        op.add_key("bob", new.public_key, 1_700_000_000_000),
        op.revoke_key("bob", bob.signer.keyid, compromised_since_index=stolen.index),
    ]))
    op.close()
    before = taskforce.ledger_snapshot()
    # the stolen key can no longer publish or call
    results = publish_raw(stubs.member("bob", signer=new), [sign(bob.signal("md5", MD5_C, groups=[GROUP_ALL]), bob.signer)])
    assert_entry_error(results[0], "PERMISSION_DENIED", "key-not-valid", "is not valid at index")
    with pytest.raises(grpc.RpcError) as info:
        publish_raw(stubs.member("bob"), [sign(bob.signal("md5", MD5_C, groups=[GROUP_ALL]), new)])
    assert_rpc_error(info.value, grpc.StatusCode.PERMISSION_DENIED, "key-not-valid", "revoked")
    assert taskforce.ledger_snapshot() == before
    # carol retroactively quarantines what was signed after the compromise, and keeps the rest
    report = carol.sync()
    assert report.quarantined == 1 and "compromised-key" in report.quarantine_reasons[0]
    assert carol.bank.get("bob", "stolen") is None and carol.bank.get("bob", "clean") is not None
    assert carol.store is not None and [i for i, _ in carol.store.quarantined()] == [stolen.index]
    # a member syncing from scratch ends up with the same bank
    fresh = taskforce.client("carol", state=True)
    assert fresh.sync().quarantined == 1 and fresh.bank is not None
    assert fresh.bank.get("bob", "stolen") is None and fresh.bank.get("bob", "clean") is not None
    assert clean[0].index < stolen.index


def test_group_escalation(taskforce: TaskForce, stubs: Stubs) -> None:
    bob = taskforce.client("bob")
    before = taskforce.ledger_snapshot()
    into_ncii = sign(bob.signal("md5", MD5_A, groups=[GROUP_NCII]), bob.signer)
    join_ncii = sign(pb.KeyEvent(created_at=ms_to_timestamp(int(time.time() * 1000)),
                                 groups_set=pb.GroupsSet(member_id="bob", groups=[GROUP_ALL, GROUP_NCII])), bob.signer)
    results = publish_raw(stubs.member("bob"), [into_ncii, join_ncii])
    assert_entry_error(results[0], "PERMISSION_DENIED", "group-not-allowed", f"not in sharing group {GROUP_NCII}")
    assert_entry_error(results[1], "PERMISSION_DENIED", "wrong-member", "cannot publish an entry of member operator")
    assert taskforce.ledger_snapshot() == before


def test_tlp_violation(taskforce: TaskForce, stubs: Stubs) -> None:
    bob = taskforce.client("bob")
    before = taskforce.ledger_snapshot()
    red = sign(bob.signal("md5", MD5_A, groups=[GROUP_ALL], tlp="red"), bob.signer)
    results = publish_raw(stubs.member("bob"), [red])
    assert_entry_error(results[0], "PERMISSION_DENIED", "tlp-not-allowed", "allows TLP up to TLP_AMBER, got TLP_RED")
    assert taskforce.ledger_snapshot() == before


def test_visibility_leak_subscribe(taskforce: TaskForce, stubs: Stubs) -> None:
    hidden = _ncii_signal(taskforce)
    before = taskforce.ledger_snapshot()
    pages = list(stubs.member("bob").Subscribe(xpb.SubscribeRequest(stop_at_head=True), timeout=RPC_TIMEOUT_S))
    received = b"".join(p.SerializeToString() for p in pages)
    assert CANARY.encode() not in received and MD5_A.encode() not in received
    from exchange.core.records import Record

    indices = [Record.decode(r).index for p in pages for r in p.records]
    assert hidden.index not in indices and pages[-1].next_index == hidden.index + 1
    alice_pages = list(stubs.member("alice").Subscribe(xpb.SubscribeRequest(stop_at_head=True), timeout=RPC_TIMEOUT_S))
    assert CANARY.encode() in b"".join(p.SerializeToString() for p in alice_pages)  # control
    assert taskforce.ledger_snapshot() == before


def test_visibility_leak_getentries(taskforce: TaskForce, stubs: Stubs) -> None:
    hidden = _ncii_signal(taskforce)
    before = taskforce.ledger_snapshot()
    bob = stubs.member("bob")
    for start, limit in ((0, 0), (hidden.index, 1), (hidden.index, 1000)):
        page = bob.GetEntries(xpb.GetEntriesRequest(from_index=start, limit=limit), timeout=RPC_TIMEOUT_S)
        assert CANARY.encode() not in page.SerializeToString()
    with pytest.raises(grpc.RpcError) as info:
        agrpc.AuditServiceStub(_channel(stubs, "bob")).GetAllEntries(apb.GetAllEntriesRequest(), timeout=RPC_TIMEOUT_S)
    assert_rpc_error(info.value, grpc.StatusCode.PERMISSION_DENIED, "permission-denied", "only auditors")
    assert taskforce.ledger_snapshot() == before


def _channel(stubs: Stubs, name: str) -> grpc.Channel:
    from clients.transport import connect

    tf = stubs._tf  # noqa: SLF001 - test helper
    channel = connect(tf.target, tf.signers[name], name, origin=tf.origin)
    stubs._channels.append(channel)  # noqa: SLF001
    return channel


def test_visibility_leak_proof(taskforce: TaskForce, stubs: Stubs) -> None:
    hidden = _ncii_signal(taskforce)
    bob = taskforce.client("bob")
    (visible,) = accepted(bob.publish([bob.signal("md5", MD5_B, groups=[GROUP_ALL], signal_id="mine")]))
    from tests.conftest import wait_until

    wait_until(lambda: taskforce.server.checkpoints.latest().size == visible.index + 1)  # type: ignore[union-attr]
    before = taskforce.ledger_snapshot()
    audit = agrpc.AuditServiceStub(_channel(stubs, "bob"))
    with pytest.raises(grpc.RpcError) as hidden_err:
        audit.GetInclusionProof(apb.GetInclusionProofRequest(index=hidden.index), timeout=RPC_TIMEOUT_S)
    assert_rpc_error(hidden_err.value, grpc.StatusCode.NOT_FOUND, "not-found", f"no entry {hidden.index} visible to bob")
    with pytest.raises(grpc.RpcError) as missing_err:
        audit.GetInclusionProof(apb.GetInclusionProofRequest(index=10_000), timeout=RPC_TIMEOUT_S)
    assert_rpc_error(missing_err.value, grpc.StatusCode.OUT_OF_RANGE, "out-of-range", "beyond the ledger head")
    # a proof of bob's own entry carries only hashes (its sibling is the hidden entry's leaf hash)
    proof = audit.GetInclusionProof(apb.GetInclusionProofRequest(index=visible.index), timeout=RPC_TIMEOUT_S)
    assert CANARY.encode() not in proof.SerializeToString() and all(len(h) == 32 for h in proof.hashes)
    assert taskforce.ledger_snapshot() == before


def test_opinion_leak(taskforce: TaskForce, stubs: Stubs) -> None:
    accepted(_operator(taskforce, _groups_event(taskforce, "carol", [GROUP_ALL, GROUP_NCII])))
    _ncii_signal(taskforce)
    carol = taskforce.client("carol")
    (opinion,) = accepted(carol.publish([carol.opinion("alice", "ncii-1", "true_positive")]))
    before = taskforce.ledger_snapshot()
    seen_by_bob = [v.index for v in taskforce.client("bob").subscribe(follow=False)]
    seen_by_alice = [v.index for v in taskforce.client("alice").subscribe(follow=False)]
    assert opinion.index not in seen_by_bob and opinion.index in seen_by_alice
    page = stubs.member("bob").GetEntries(xpb.GetEntriesRequest(from_index=opinion.index, limit=1), timeout=RPC_TIMEOUT_S)
    assert list(page.records) == []
    assert taskforce.ledger_snapshot() == before


def _groups_event(tf: TaskForce, member: str, groups: list[str]) -> pb.KeyEvent:
    op = tf.operator_client()
    try:
        return op.set_groups(member, groups)
    finally:
        op.close()


@pytest.mark.parametrize(
    ("key_hex", "why"),
    [
        ("01" + "00" * 31, "small-order (identity)"),
        ("00" * 32, "small-order (order 4)"),
        ("ec" + "ff" * 30 + "7f", "non-canonical (y = p - 1 + p)"),
        ("ee" + "ff" * 30 + "7f", "non-canonical (y >= p)"),
    ],
)
def test_small_order_key_enrolment(taskforce: TaskForce, key_hex: str, why: str) -> None:
    before = taskforce.ledger_snapshot()
    op = taskforce.operator_client()
    (outcome,) = op.publish([op.add_key("bob", bytes.fromhex(key_hex), 1_700_000_000_000)])
    op.close()
    assert not isinstance(outcome, Receipt), why
    assert outcome.status == "INVALID_ARGUMENT" and outcome.reason == "invalid-key-event"  # type: ignore[union-attr]
    assert "prime-order subgroup" in outcome.message  # type: ignore[union-attr]
    assert taskforce.ledger_snapshot() == before


def test_non_operator_key_event(taskforce: TaskForce, stubs: Stubs) -> None:
    mallory = taskforce.signers["bob"]
    before = taskforce.ledger_snapshot()
    enrol_self = pb.KeyEvent(created_at=ms_to_timestamp(int(time.time() * 1000)),
                             key_added=pb.KeyAdded(member_id="alice", public_key=mallory.public_key,
                                                   valid_from=ms_to_timestamp(1_700_000_000_000)))
    results = publish_raw(stubs.member("bob"), [sign(enrol_self, mallory)])
    assert_entry_error(results[0], "PERMISSION_DENIED", "wrong-member", "cannot publish an entry of member operator")
    # even relayed by the operator principal, a key event signed by a member key is refused
    op = taskforce.operator_client()
    (relayed,) = op.publish_envelopes([sign(enrol_self, mallory)])
    op.close()
    assert relayed.reason == "wrong-member" and "signed by the operator key" in relayed.message  # type: ignore[union-attr]
    assert taskforce.ledger_snapshot() == before


def test_replayed_operator_call(taskforce: TaskForce, stubs: Stubs) -> None:
    op = taskforce.operator_client()
    event = op.create_group("late-group", "Late", "green")
    op.close()
    request = xpb.PublishRequest(envelopes=[sign(event, taskforce.operator)])
    md = sign_call(taskforce.operator, "operator", PUBLISH, taskforce.origin, request.SerializeToString())
    first = stubs.plain().Publish(request, metadata=md, timeout=RPC_TIMEOUT_S)
    assert first.results[0].WhichOneof("result") == "receipt"
    before = taskforce.ledger_snapshot()
    with pytest.raises(grpc.RpcError) as info:
        stubs.plain().Publish(request, metadata=md, timeout=RPC_TIMEOUT_S)
    assert_rpc_error(info.value, grpc.StatusCode.UNAUTHENTICATED, "replayed-call", "nonce was already used")
    assert taskforce.ledger_snapshot() == before


def test_quota_exceeded(tmp_path: Path) -> None:
    tf = start_taskforce(tmp_path, quota_overrides=("bob:1:5:5",))
    try:
        stubs = Stubs(tf)
        bob = tf.client("bob")
        first = [sign(bob.signal("md5", f"{i:032x}", groups=[GROUP_ALL], signal_id=f"q{i}"), bob.signer)
                 for i in range(5)]
        assert all(r.WhichOneof("result") == "receipt" for r in publish_raw(stubs.member("bob"), first))
        before = tf.ledger_snapshot()
        more = [sign(bob.signal("md5", f"{i:032x}", groups=[GROUP_ALL], signal_id=f"q{i}"), bob.signer)
                for i in range(5, 8)]
        with pytest.raises(grpc.RpcError) as info:
            publish_raw(stubs.member("bob"), more)
        assert_rpc_error(info.value, grpc.StatusCode.RESOURCE_EXHAUSTED, "quota-exceeded", "publish quota of 1 entries/s")
        retry_after = int(dict(info.value.trailing_metadata())["retry-after-ms"])  # type: ignore[attr-defined]
        assert 0 < retry_after <= 3000
        with pytest.raises(grpc.RpcError) as info:
            publish_raw(stubs.member("bob"), first + more)
        assert_rpc_error(info.value, grpc.StatusCode.RESOURCE_EXHAUSTED, "oversized-batch", "exceeds the limit of 5")
        assert tf.ledger_snapshot() == before
        # other members keep their own quota, and the operator sees the rejections
        carol = tf.client("carol")
        accepted(carol.publish([carol.signal("md5", MD5_C, groups=[GROUP_ALL])] * 1))
        refused = [(r.member, r.reason) for r in tf.server.core.rejections.since(0)]
        assert ("bob", "quota-exceeded") in refused and ("bob", "oversized-batch") in refused
        stubs.close()
    finally:
        tf.close()


def test_compromised_since_is_flagged_by_the_auditor(taskforce: TaskForce) -> None:
    from exchange.core.audit import Auditor

    from tests.conftest import wait_until

    bob = taskforce.client("bob")
    (clean,) = accepted(bob.publish([bob.signal("md5", MD5_A, groups=[GROUP_ALL], signal_id="clean")]))
    wait_until(lambda: time.time() * 1000 > clean.accepted_at_ms + 1)  # the clock moves on
    (stolen,) = accepted(bob.publish([bob.signal("md5", MD5_B, groups=[GROUP_ALL], signal_id="stolen")]))
    assert stolen.accepted_at_ms > clean.accepted_at_ms
    op = taskforce.operator_client()
    accepted(op.publish([op.revoke_key("bob", bob.signer.keyid, compromised_since_ms=stolen.accepted_at_ms)]))
    op.close()
    ledger = taskforce.server.ledger
    auditor = Auditor(taskforce.operator.public_key, taskforce.log_key, [],
                      key_events=ledger.key_event_records(ledger.head()))
    for stored in taskforce.server.ledger.read(0, 1000):
        auditor.add(stored.record)
    report = auditor.finish()
    assert [(f.index, f.reason) for f in report.findings] == [(stolen.index, "compromised-key")]
