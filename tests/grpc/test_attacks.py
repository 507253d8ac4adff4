"""Negative gRPC tests, one per attack, against a real exchange on 127.0.0.1:0.

Each test checks the gRPC status (whole call) or the per-envelope EntryError
(status name + reason), a meaningful part of the message, and that the ledger is
byte-for-byte unchanged.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path

import grpc
import pytest

import clients.operator
from clients.transport import publish_envelopes
from exchange.core.callauth import sign_call
from exchange.core.dsse import sign_envelope
from exchange.core.errors import (
    BatchTooLarge,
    ForgedSignature,
    GroupNotAllowed,
    MalformedEnvelope,
    NonNormalizedValue,
    NotFound,
    TlpNotAllowed,
    UnknownKey,
    WrongMember,
)
from exchange.core.entries import ms_to_timestamp
from exchange.core.keys import Signer
from exchange.core.records import Receipt
from exchange.pb.trustwire.v1 import entries_pb2 as pb
from exchange.pb.trustwire.v1 import envelope_pb2
from exchange.pb.trustwire.v1 import exchange_pb2 as xpb
from tests.conftest import GROUP_ALL, GROUP_NCII, TaskForce, start_taskforce
from tests.grpc.conftest import (
    GET_ENTRIES,
    MD5_A,
    MD5_B,
    PUBLISH,
    RPC_TIMEOUT_S,
    Stubs,
    assert_entry_error,
    assert_rpc_error,
    flip_bit,
    publish_raw,
    reencode_envelope,
    sign,
)


def _signal(tf: TaskForce, name: str, value: str = MD5_A, groups: tuple[str, ...] = (GROUP_ALL,), **kw: object) -> pb.Signal:
    """A valid signal of member ``name`` (built without a live client)."""
    return pb.Signal(
        signal_id=kw.pop("signal_id", f"{name}-{value[:8]}"),  # type: ignore[arg-type]
        member_id=name,
        type=kw.pop("type", "md5"),  # type: ignore[arg-type]
        value=value,
        labels=["spam"],
        confidence=50,
        severity=pb.SEVERITY_MEDIUM,
        sharing=pb.Sharing(groups=list(groups), tlp=kw.pop("tlp", pb.TLP_AMBER)),  # type: ignore[arg-type]
        created_at=ms_to_timestamp(int(time.time() * 1000)),
    )


# -- envelope signatures and keys ------------------------------------------------------------


def test_forged_signature(taskforce: TaskForce, stubs: Stubs) -> None:
    bob = stubs.member("bob")
    good = sign(_signal(taskforce, "bob"), taskforce.signers["bob"])
    env = envelope_pb2.Envelope.FromString(good)
    # 1. one bit of the signature flipped
    bad_sig = reencode_envelope(good, sig=flip_bit(env.signatures[0].sig, 5))
    # 2. payload changed after signing (the value of the signal), signature kept
    tampered = pb.Signal.FromString(env.payload)
    tampered.value = MD5_B
    bad_payload = reencode_envelope(good, payload=tampered.SerializeToString(deterministic=True))
    # 3. a signature of the right length that is all zeroes; 4. a truncated signature
    zero_sig = reencode_envelope(good, sig=bytes(64))
    short_sig = reencode_envelope(good, sig=env.signatures[0].sig[:63])

    before = taskforce.ledger_snapshot()
    results = publish_raw(bob, [bad_sig, bad_payload, zero_sig, short_sig])
    for r in results[:3]:
        assert_entry_error(r, "UNAUTHENTICATED", "forged-signature", "does not verify")
    assert_entry_error(results[3], "UNAUTHENTICATED", "forged-signature", "must be 64 bytes")
    # the SDK maps the per-envelope error back to the same class
    (outcome,) = taskforce.client("bob").publish_envelopes([bad_sig])
    assert isinstance(outcome, ForgedSignature)
    assert taskforce.ledger_snapshot() == before

    # a forged *call* signature (the metadata signed by another key) fails the whole call
    request = xpb.PublishRequest(envelopes=[good])
    body = request.SerializeToString(deterministic=True)
    md = dict(sign_call(taskforce.signers["bob"], "bob", PUBLISH, taskforce.origin, body))
    md["tw-signature"] = dict(sign_call(taskforce.signers["carol"], "bob", PUBLISH, taskforce.origin, body))["tw-signature"]
    with pytest.raises(grpc.RpcError) as info:
        stubs.plain().Publish(request, metadata=list(md.items()), timeout=RPC_TIMEOUT_S)
    assert_rpc_error(info.value, grpc.StatusCode.UNAUTHENTICATED, "bad-call-signature", "does not verify")
    assert taskforce.ledger_snapshot() == before


def test_wrong_member(taskforce: TaskForce, stubs: Stubs) -> None:
    alice_key, bob_key = taskforce.signers["alice"], taskforce.signers["bob"]
    as_bob = stubs.member("bob")
    before = taskforce.ledger_snapshot()

    # bob signs an entry claiming to be alice's with his own key
    claims_alice = sign(_signal(taskforce, "alice"), bob_key)
    # an entry genuinely signed by alice, relayed by a caller authenticated as bob
    relayed = sign(_signal(taskforce, "alice", MD5_B), alice_key)
    # alice's key signing an entry of bob, sent by bob (e.g. a stolen or shared key)
    alice_key_for_bob = sign(_signal(taskforce, "bob"), alice_key)
    # a retraction/opinion naming alice as its author, from bob
    retraction = pb.Retraction(
        member_id="alice",
        signal=pb.SignalRef(member_id="alice", signal_id="alice-d41d8cd9"),
        reason=pb.RETRACTION_REASON_ERROR,
        created_at=ms_to_timestamp(int(time.time() * 1000)),
    )
    forged_retraction = sign(retraction, bob_key)

    # the operator key signing a member entry
    operator_signed = sign(_signal(taskforce, "bob", MD5_B), taskforce.operator)

    results = publish_raw(as_bob, [claims_alice, relayed, alice_key_for_bob, forged_retraction, operator_signed])
    assert_entry_error(results[4], "PERMISSION_DENIED", "wrong-member", "signed by the operator key, and only they are")
    assert_entry_error(results[0], "PERMISSION_DENIED", "wrong-member", "caller bob cannot publish an entry of member alice")
    assert_entry_error(results[1], "PERMISSION_DENIED", "wrong-member", "caller bob cannot publish an entry of member alice")
    assert_entry_error(results[2], "PERMISSION_DENIED", "wrong-member", "does not belong to member bob")
    assert_entry_error(results[3], "PERMISSION_DENIED", "wrong-member", "caller bob cannot publish an entry of member alice")
    (outcome,) = taskforce.client("bob").publish_envelopes([claims_alice])
    assert isinstance(outcome, WrongMember)

    # alice's key used to authenticate a call as bob: the whole call is refused
    request = xpb.PublishRequest(envelopes=[relayed])
    md = sign_call(alice_key, "bob", PUBLISH, taskforce.origin, request.SerializeToString())
    with pytest.raises(grpc.RpcError) as info:
        stubs.plain().Publish(request, metadata=md, timeout=RPC_TIMEOUT_S)
    assert_rpc_error(info.value, grpc.StatusCode.PERMISSION_DENIED, "wrong-member", "does not belong to bob")

    # a member key cannot authenticate as the operator either
    md = sign_call(bob_key, "operator", PUBLISH, taskforce.origin, request.SerializeToString())
    with pytest.raises(grpc.RpcError) as info:
        stubs.plain().Publish(request, metadata=md, timeout=RPC_TIMEOUT_S)
    assert_rpc_error(info.value, grpc.StatusCode.PERMISSION_DENIED, "wrong-member", "operator key")
    assert taskforce.ledger_snapshot() == before


def _operator_events(tf: TaskForce, *events: pb.KeyEvent) -> list[Receipt]:
    op = tf.operator_client()
    try:
        outcomes = op.publish(events)
    finally:
        op.close()
    assert all(isinstance(o, Receipt) for o in outcomes), outcomes
    return outcomes  # type: ignore[return-value]


def _now_ts() -> object:
    return ms_to_timestamp(int(time.time() * 1000))


def test_revoked_key(taskforce: TaskForce, stubs: Stubs) -> None:
    old, new = taskforce.signers["bob"], Signer.from_seed(b"\x42" * 32)
    _operator_events(
        taskforce,
        pb.KeyEvent(created_at=_now_ts(), key_added=pb.KeyAdded(member_id="bob", public_key=new.public_key,
                                                                 valid_from=ms_to_timestamp(1_700_000_000_000))),
        pb.KeyEvent(created_at=_now_ts(), key_revoked=pb.KeyRevoked(member_id="bob", keyid=old.keyid,
                                                                     revoked_at=_now_ts())),
    )
    before = taskforce.ledger_snapshot()
    # an entry signed with the revoked key, sent on a call signed with the new key
    results = publish_raw(stubs.member("bob", signer=new), [sign(_signal(taskforce, "bob"), old)])
    assert_entry_error(results[0], "PERMISSION_DENIED", "key-not-valid", f"is not valid at index {before[0]}")
    # a call signed with the revoked key
    with pytest.raises(grpc.RpcError) as info:
        publish_raw(stubs.member("bob", signer=old), [sign(_signal(taskforce, "bob"), new)])
    assert_rpc_error(info.value, grpc.StatusCode.PERMISSION_DENIED, "key-not-valid", "is revoked or not yet valid")
    assert taskforce.ledger_snapshot() == before
    # the new key works
    (ok,) = publish_raw(stubs.member("bob", signer=new), [sign(_signal(taskforce, "bob"), new)])
    assert ok.WhichOneof("result") == "receipt"


def test_suspended_member(taskforce: TaskForce, stubs: Stubs) -> None:
    _operator_events(taskforce, pb.KeyEvent(created_at=_now_ts(), member_suspended=pb.MemberSuspended(member_id="bob")))
    before = taskforce.ledger_snapshot()
    with pytest.raises(grpc.RpcError) as info:
        publish_raw(stubs.member("bob"), [sign(_signal(taskforce, "bob"), taskforce.signers["bob"])])
    assert_rpc_error(info.value, grpc.StatusCode.PERMISSION_DENIED, "member-suspended", "member bob is suspended")
    with pytest.raises(grpc.RpcError) as info:
        list(stubs.member("bob").Subscribe(xpb.SubscribeRequest(stop_at_head=True), timeout=RPC_TIMEOUT_S))
    assert_rpc_error(info.value, grpc.StatusCode.PERMISSION_DENIED, "member-suspended", "member bob is suspended")
    assert taskforce.ledger_snapshot() == before


def test_member_signed_key_event(taskforce: TaskForce, stubs: Stubs) -> None:
    """A member cannot write key-directory history (e.g. join a group or add a key)."""
    event = pb.KeyEvent(
        created_at=ms_to_timestamp(int(time.time() * 1000)),
        groups_set=pb.GroupsSet(member_id="bob", groups=[GROUP_ALL, GROUP_NCII]),
    )
    before = taskforce.ledger_snapshot()
    results = publish_raw(stubs.member("bob"), [sign(event, taskforce.signers["bob"])])
    assert_entry_error(results[0], "PERMISSION_DENIED", "wrong-member", "caller bob cannot publish an entry of member operator")
    assert taskforce.ledger_snapshot() == before


def test_unknown_key(taskforce: TaskForce, stubs: Stubs) -> None:
    stranger = Signer.from_seed(b"\x07" * 32)
    before = taskforce.ledger_snapshot()

    # an envelope signed by a key nobody enrolled, sent by an authenticated member
    results = publish_raw(stubs.member("bob"), [sign(_signal(taskforce, "bob"), stranger)])
    assert_entry_error(results[0], "UNAUTHENTICATED", "unknown-key", "is not in the key directory")
    (outcome,) = taskforce.client("bob").publish_envelopes([sign(_signal(taskforce, "bob"), stranger)])
    assert isinstance(outcome, UnknownKey)

    # a call authenticated with an unknown key, as an enrolled member and as a stranger
    good = sign(_signal(taskforce, "bob"), taskforce.signers["bob"])
    for principal in ("bob", "mallory"):
        with pytest.raises(grpc.RpcError) as info:
            stubs.member(principal, signer=stranger).Publish(xpb.PublishRequest(envelopes=[good]), timeout=RPC_TIMEOUT_S)
        assert_rpc_error(info.value, grpc.StatusCode.UNAUTHENTICATED, "unknown-key", "is not in the key directory")
        with pytest.raises(grpc.RpcError) as info:
            list(stubs.member(principal, signer=stranger).Subscribe(xpb.SubscribeRequest(stop_at_head=True)))
        assert_rpc_error(info.value, grpc.StatusCode.UNAUTHENTICATED, "unknown-key", "is not in the key directory")
    assert taskforce.ledger_snapshot() == before


@pytest.mark.parametrize(
    ("type_", "value"),
    [
        ("md5", MD5_A.upper()),
        ("md5", f" {MD5_A}"),
        ("sha256", "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"),
        ("pdq", "F8F8F0CEE0F4A84F06370A22038F63F0B36E2ED596621E1D33E6B39C4E9C9B22"),
        ("url", "HTTP://Example.COM:80/a/../b/./c?q=1#frag"),
        ("domain", "Example.COM."),
        ("account", "ExampleChat:ID:1234567"),
        ("text", "  Buy  CHEAP\tfollowers "),
    ],
)
def test_non_normalized_value(taskforce: TaskForce, stubs: Stubs, type_: str, value: str) -> None:
    before = taskforce.ledger_snapshot()
    env = sign(_signal(taskforce, "bob", value, type=type_, signal_id="nn-1"), taskforce.signers["bob"])
    results = publish_raw(stubs.member("bob"), [env])
    assert_entry_error(results[0], "INVALID_ARGUMENT", "non-normalized-value", f"{type_} value is not in canonical form")
    (outcome,) = taskforce.client("bob").publish_envelopes([env])
    assert isinstance(outcome, NonNormalizedValue)
    assert taskforce.ledger_snapshot() == before


def test_invalid_value(taskforce: TaskForce, stubs: Stubs) -> None:
    """Values that cannot be normalized at all are refused too (reason invalid-value)."""
    before = taskforce.ledger_snapshot()
    envs = [
        sign(_signal(taskforce, "bob", "zz" * 16, signal_id="iv-1"), taskforce.signers["bob"]),
        sign(_signal(taskforce, "bob", "examplechat:email:alice@example.com", type="account", signal_id="iv-2"),
             taskforce.signers["bob"]),
    ]
    results = publish_raw(stubs.member("bob"), envs)
    assert_entry_error(results[0], "INVALID_ARGUMENT", "invalid-value", "md5 is 32 hex characters")
    assert_entry_error(results[1], "INVALID_ARGUMENT", "invalid-value", "never in clear")
    assert taskforce.ledger_snapshot() == before


# -- call authentication ---------------------------------------------------------------------


def test_replayed_call(taskforce: TaskForce, stubs: Stubs) -> None:
    stub = stubs.plain()
    bob = taskforce.signers["bob"]
    first = sign(_signal(taskforce, "bob", MD5_A), bob)
    request = xpb.PublishRequest(envelopes=[first])
    md = sign_call(bob, "bob", PUBLISH, taskforce.origin, request.SerializeToString())
    response = stub.Publish(request, metadata=md, timeout=RPC_TIMEOUT_S)
    assert response.results[0].WhichOneof("result") == "receipt"
    before = taskforce.ledger_snapshot()

    # the exact same call again
    with pytest.raises(grpc.RpcError) as info:
        stub.Publish(request, metadata=md, timeout=RPC_TIMEOUT_S)
    assert_rpc_error(info.value, grpc.StatusCode.UNAUTHENTICATED, "replayed-call", "nonce was already used")
    # the same fresh credentials carrying another body: the signature binds the request digest
    second = sign(_signal(taskforce, "bob", MD5_B), bob)
    with pytest.raises(grpc.RpcError) as info:
        stub.Publish(xpb.PublishRequest(envelopes=[second]), metadata=md, timeout=RPC_TIMEOUT_S)
    assert_rpc_error(info.value, grpc.StatusCode.UNAUTHENTICATED, "bad-call-signature", "request body")

    # reads are protected the same way
    md_read = sign_call(bob, "bob", GET_ENTRIES, taskforce.origin, xpb.GetEntriesRequest().SerializeToString())
    stub.GetEntries(xpb.GetEntriesRequest(), metadata=md_read, timeout=RPC_TIMEOUT_S)
    with pytest.raises(grpc.RpcError) as info:
        stub.GetEntries(xpb.GetEntriesRequest(), metadata=md_read, timeout=RPC_TIMEOUT_S)
    assert_rpc_error(info.value, grpc.StatusCode.UNAUTHENTICATED, "replayed-call", "nonce was already used")

    # credentials signed for one method do not authenticate another
    with pytest.raises(grpc.RpcError) as info:
        request = xpb.PublishRequest(envelopes=[second])
        stub.Publish(request, metadata=sign_call(bob, "bob", GET_ENTRIES, taskforce.origin, request.SerializeToString()),
                     timeout=RPC_TIMEOUT_S)
    assert_rpc_error(info.value, grpc.StatusCode.UNAUTHENTICATED, "bad-call-signature", "does not verify")
    assert taskforce.ledger_snapshot() == before


@pytest.mark.parametrize("offset_s", [-600, -121, 121, 3600])
def test_expired_call_timestamp(taskforce: TaskForce, stubs: Stubs, offset_s: int) -> None:
    before = taskforce.ledger_snapshot()
    now_ms = int(time.time() * 1000) + offset_s * 1000
    env = sign(_signal(taskforce, "bob"), taskforce.signers["bob"])
    request = xpb.PublishRequest(envelopes=[env])
    md = sign_call(taskforce.signers["bob"], "bob", PUBLISH, taskforce.origin, request.SerializeToString(), now_ms=now_ms)
    with pytest.raises(grpc.RpcError) as info:
        stubs.plain().Publish(request, metadata=md, timeout=RPC_TIMEOUT_S)
    assert_rpc_error(info.value, grpc.StatusCode.UNAUTHENTICATED, "expired-call", "away from the exchange clock")
    assert "the window is 120s" in info.value.details()  # type: ignore[attr-defined]
    assert taskforce.ledger_snapshot() == before


def test_malformed_call_credentials(taskforce: TaskForce, stubs: Stubs) -> None:
    before = taskforce.ledger_snapshot()
    good = dict(sign_call(taskforce.signers["bob"], "bob", PUBLISH, taskforce.origin))
    cases = {
        "tw-timestamp": "-5",
        "tw-nonce": "not-a-nonce",
        "tw-keyid": "ABC",
        "tw-principal": "Bob Smith",
    }
    for header, value in cases.items():
        md = {**good, header: value}
        with pytest.raises(grpc.RpcError) as info:
            stubs.plain().Publish(xpb.PublishRequest(), metadata=list(md.items()), timeout=RPC_TIMEOUT_S)
        assert_rpc_error(info.value, grpc.StatusCode.UNAUTHENTICATED, "missing-credentials", "malformed")
    md = {**good, "tw-signature": "***"}
    with pytest.raises(grpc.RpcError) as info:
        stubs.plain().Publish(xpb.PublishRequest(), metadata=list(md.items()), timeout=RPC_TIMEOUT_S)
    assert_rpc_error(info.value, grpc.StatusCode.UNAUTHENTICATED, "missing-credentials", "not base64")
    assert taskforce.ledger_snapshot() == before


# -- malformed input -------------------------------------------------------------------------


def test_oversized_batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The shared fixture enrols the task force in one batch of 8 key events; let the
    # operator send it in batches the small limit allows.
    monkeypatch.setattr(clients.operator, "publish_envelopes", functools.partial(publish_envelopes, batch_size=5))
    tf = start_taskforce(tmp_path, max_batch=5)
    try:
        bob = tf.client("bob")
        envelopes = [bob.sign(bob.signal("md5", f"{i:032x}", groups=[GROUP_ALL], signal_id=f"s{i}")) for i in range(6)]
        before = tf.ledger_snapshot()
        stubs = Stubs(tf)
        try:
            with pytest.raises(grpc.RpcError) as info:
                publish_raw(stubs.member("bob"), envelopes)
        finally:
            stubs.close()
        assert_rpc_error(info.value, grpc.StatusCode.RESOURCE_EXHAUSTED, "oversized-batch",
                         "batch of 6 envelopes exceeds the limit of 5")
        with pytest.raises(BatchTooLarge, match="exceeds the limit of 5"):
            bob.publish_envelopes(envelopes, batch_size=6)
        assert tf.ledger_snapshot() == before
        # at the limit the batch is admitted whole
        outcomes = bob.publish_envelopes(envelopes[:5], batch_size=5)
        assert all(isinstance(o, Receipt) for o in outcomes)
        assert tf.ledger_snapshot()[0] == before[0] + 5
    finally:
        tf.close()


def test_oversized_envelope(taskforce: TaskForce, stubs: Stubs) -> None:
    before = taskforce.ledger_snapshot()
    huge = envelope_pb2.Envelope(
        payload=b"x" * (64 * 1024), payload_type="application/vnd.trustwire.signal.v1+protobuf",
        signatures=[envelope_pb2.Signature(sig=bytes(64), keyid=taskforce.signers["bob"].keyid)],
    ).SerializeToString(deterministic=True)
    results = publish_raw(stubs.member("bob"), [huge])
    assert_entry_error(results[0], "INVALID_ARGUMENT", "malformed-envelope", "the limit is 65536")
    assert taskforce.ledger_snapshot() == before


def test_garbage_bytes_envelope(taskforce: TaskForce, stubs: Stubs) -> None:
    bob = taskforce.signers["bob"]
    good = sign(_signal(taskforce, "bob"), bob)
    two_sigs = envelope_pb2.Envelope.FromString(good)
    two_sigs.signatures.append(two_sigs.signatures[0])
    signal_type = "application/vnd.trustwire.signal.v1+protobuf"

    cases: list[tuple[bytes, str, str]] = [
        (b"\xff\xff\xff\xff garbage", "malformed-envelope", "not a DSSE Envelope protobuf"),
        (b"", "malformed-envelope", "exactly one signature, found 0"),
        (good + b"\x00", "malformed-envelope", "not a DSSE Envelope protobuf"),
        (two_sigs.SerializeToString(deterministic=True), "malformed-envelope", "exactly one signature, found 2"),
        (good.replace(bob.keyid.encode(), bob.keyid.upper().encode()),
         "malformed-envelope", "keyid is invalid"),
        # correctly signed, but the payload is garbage / of an unknown type
        (sign_envelope(signal_type, b"\xff\xff\xff", bob).raw, "malformed-entry", "not a valid signal protobuf"),
        (sign_envelope("application/json", b"{}", bob).raw, "malformed-entry", "unknown payload_type"),
    ]
    before = taskforce.ledger_snapshot()
    results = publish_raw(stubs.member("bob"), [raw for raw, _, _ in cases])
    for result, (_, reason, text) in zip(results, cases, strict=True):
        assert_entry_error(result, "INVALID_ARGUMENT", reason, text)
    outcomes = taskforce.client("bob").publish_envelopes([cases[0][0]])
    assert isinstance(outcomes[0], MalformedEnvelope)

    # a request that is not even a PublishRequest fails the whole call
    channel = stubs.channel()
    raw_publish = channel.unary_unary(PUBLISH, request_serializer=None, response_deserializer=None)
    with pytest.raises(grpc.RpcError) as info:
        raw_publish(b"\xff\xff\xff\xff", metadata=sign_call(bob, "bob", PUBLISH, taskforce.origin, b"\xff\xff\xff\xff"), timeout=RPC_TIMEOUT_S)
    assert_rpc_error(info.value, grpc.StatusCode.INVALID_ARGUMENT, "invalid-input", "not a valid trustwire.v1.PublishRequest")
    assert taskforce.ledger_snapshot() == before


# -- group escalation ------------------------------------------------------------------------


def test_publish_into_foreign_group(taskforce: TaskForce, stubs: Stubs) -> None:
    bob = taskforce.signers["bob"]
    before = taskforce.ledger_snapshot()
    envs = [
        sign(_signal(taskforce, "bob", groups=(GROUP_NCII,), signal_id="g1"), bob),
        sign(_signal(taskforce, "bob", groups=(GROUP_ALL, GROUP_NCII), signal_id="g2"), bob),
        sign(_signal(taskforce, "bob", groups=("no-such-group",), signal_id="g3"), bob),
        sign(_signal(taskforce, "bob", groups=(GROUP_ALL,), signal_id="g4", tlp=pb.TLP_RED), bob),
    ]
    results = publish_raw(stubs.member("bob"), envs)
    assert_entry_error(results[0], "PERMISSION_DENIED", "group-not-allowed", f"member bob is not in sharing group {GROUP_NCII}")
    assert_entry_error(results[1], "PERMISSION_DENIED", "group-not-allowed", f"member bob is not in sharing group {GROUP_NCII}")
    assert_entry_error(results[2], "PERMISSION_DENIED", "group-not-allowed", "sharing group no-such-group does not exist")
    assert_entry_error(results[3], "PERMISSION_DENIED", "tlp-not-allowed", "allows TLP up to TLP_AMBER, got TLP_RED")
    outcomes = taskforce.client("bob").publish_envelopes(envs)
    assert [type(o) for o in outcomes] == [GroupNotAllowed, GroupNotAllowed, GroupNotAllowed, TlpNotAllowed]
    assert taskforce.ledger_snapshot() == before


def test_opinion_on_invisible_signal(taskforce: TaskForce, stubs: Stubs) -> None:
    alice = taskforce.client("alice")
    (receipt,) = alice.publish([alice.signal("md5", MD5_A, groups=[GROUP_NCII], signal_id="ncii-1")])
    assert isinstance(receipt, Receipt)
    before = taskforce.ledger_snapshot()

    bob = taskforce.client("bob")
    on_hidden = bob.sign(bob.opinion("alice", "ncii-1", "false_positive"))
    on_missing = bob.sign(bob.opinion("alice", "never-published", "false_positive"))
    retract_foreign = bob.sign(
        pb.Retraction(member_id="bob", signal=pb.SignalRef(member_id="alice", signal_id="ncii-1"),
                      reason=pb.RETRACTION_REASON_FALSE_POSITIVE, created_at=ms_to_timestamp(int(time.time() * 1000)))
    )
    results = publish_raw(stubs.member("bob"), [on_hidden, on_missing, retract_foreign])
    assert_entry_error(results[0], "NOT_FOUND", "not-found", "member bob has no access to a signal 'ncii-1' of member alice")
    assert_entry_error(results[1], "NOT_FOUND", "not-found", "member bob has no access to a signal 'never-published'")
    assert_entry_error(results[2], "NOT_FOUND", "not-found", "member bob has no access to a signal 'ncii-1' of member alice")
    # a hidden signal and a missing one are indistinguishable (no existence oracle)
    assert results[0].error.message.replace("ncii-1", "X") == results[1].error.message.replace("never-published", "X")
    assert isinstance(bob.publish_envelopes([on_hidden])[0], NotFound)
    assert taskforce.ledger_snapshot() == before

    # control: alice herself may give an opinion on it
    (ok,) = alice.publish([alice.opinion("alice", "ncii-1", "true_positive")])
    assert isinstance(ok, Receipt)


# -- partial failure -------------------------------------------------------------------------


def test_mixed_batch_admits_only_the_good_envelope(taskforce: TaskForce, stubs: Stubs) -> None:
    bob = taskforce.signers["bob"]
    good = sign(_signal(taskforce, "bob", MD5_A, signal_id="good"), bob)
    bad = sign(_signal(taskforce, "bob", MD5_B, groups=(GROUP_NCII,), signal_id="bad"), bob)
    head, records = taskforce.ledger_snapshot()
    results = publish_raw(stubs.member("bob"), [bad, good])
    assert_entry_error(results[0], "PERMISSION_DENIED", "group-not-allowed", "not in sharing group")
    assert results[1].WhichOneof("result") == "receipt"
    assert results[1].receipt.index == head
    new_head, new_records = taskforce.ledger_snapshot()
    assert new_head == head + 1
    assert new_records[:head] == records


def test_unknown_fields_smuggled_in_envelope(taskforce: TaskForce, stubs: Stubs) -> None:
    """Unsigned bytes appended to a signed envelope (unknown field 15) are refused;
    otherwise one signed entry could be admitted again and again under new digests.
    The same holds for unknown fields inside the signed payload."""
    bob = taskforce.signers["bob"]
    good = sign(_signal(taskforce, "bob"), bob)
    stub = stubs.member("bob")
    (first,) = publish_raw(stub, [good])
    assert first.WhichOneof("result") == "receipt"
    before = taskforce.ledger_snapshot()
    payload = _signal(taskforce, "bob", MD5_B, signal_id="unk").SerializeToString(deterministic=True)
    signed_unknown = sign_envelope("application/vnd.trustwire.signal.v1+protobuf", payload + b"\x98\x06\x01", bob).raw
    results = publish_raw(stub, [good + b"\x78\x01", signed_unknown])
    assert_entry_error(results[0], "INVALID_ARGUMENT", "malformed-envelope", "not canonically encoded")
    assert_entry_error(results[1], "INVALID_ARGUMENT", "malformed-entry", "not canonically encoded")
    assert taskforce.ledger_snapshot() == before


def test_foreign_retraction(taskforce: TaskForce, stubs: Stubs) -> None:
    """Retracting a signal bob can see but did not publish is wrong-member, not not-found."""
    alice = taskforce.client("alice")
    (receipt,) = alice.publish([alice.signal("md5", MD5_B, groups=[GROUP_ALL], signal_id="visible-1")])
    assert isinstance(receipt, Receipt)
    before = taskforce.ledger_snapshot()
    retract = taskforce.client("bob").sign(
        pb.Retraction(member_id="bob", signal=pb.SignalRef(member_id="alice", signal_id="visible-1"),
                      reason=pb.RETRACTION_REASON_FALSE_POSITIVE, created_at=ms_to_timestamp(int(time.time() * 1000)))
    )
    (result,) = publish_raw(stubs.member("bob"), [retract])
    assert_entry_error(result, "PERMISSION_DENIED", "wrong-member", "may retract only its own signals, not one of alice")
    assert taskforce.ledger_snapshot() == before
