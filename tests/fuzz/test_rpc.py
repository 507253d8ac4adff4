"""Every RPC with random, mutated and structurally extreme bodies, sent raw over a real channel.

Each body goes out unauthenticated, with a valid call signature over the exact bytes,
and with a valid call signature over the deterministic re-serialization (what the
server binds), so a parseable but non-canonical body reaches the servicer. Properties:
no INTERNAL or UNKNOWN status ever, no side effect (the ledger snapshot is unchanged:
the only valid envelopes in play are already in the ledger, so re-sending one is
idempotent), and the exchange stays healthy afterwards.
"""

from __future__ import annotations

import random

import grpc
from google.protobuf.descriptor import FieldDescriptor
from hypothesis import given
from hypothesis import strategies as st

from exchange.core.dsse import sign_envelope
from exchange.core.entries import decode_entry, validate_entry
from exchange.core.records import Record, Receipt
from exchange.pb.trustwire.v1 import exchange_pb2 as xpb
from reliability.fuzzing import ALLOWED_CODES, RPCS, Rpc, mutate, rpc_table, seed_payloads
from tests.conftest import wait_until
from tests.fuzz.conftest import FuzzTarget, examples

AUTH = st.sampled_from(["none", "raw", "canonical"])
PRINCIPAL = st.sampled_from(["alice", "bob", "carol", "operator"])


def _rpc(target: FuzzTarget, method: str) -> Rpc:
    return next(r for r in rpc_table(target.published) if r.method == method)


def _send(target: FuzzTarget, rpc: Rpc, body: bytes, auth: str, principal: str) -> str:
    outcome = target.fuzzer.call(rpc, body, auth, principal)
    assert outcome.code in ALLOWED_CODES, (rpc.method, auth, principal, outcome, body.hex())
    return outcome.code


@examples(800)
@given(method=st.sampled_from(RPCS), body=st.binary(max_size=300), auth=AUTH, principal=PRINCIPAL)
def test_random_bodies(fuzz_target: FuzzTarget, method: str, body: bytes, auth: str, principal: str) -> None:
    before = fuzz_target.tf.ledger_snapshot()
    _send(fuzz_target, _rpc(fuzz_target, method), body, auth, principal)
    assert fuzz_target.tf.ledger_snapshot() == before


@examples(1500)
@given(
    method=st.sampled_from(RPCS),
    pick=st.integers(min_value=0),
    rnd=st.randoms(use_true_random=False),
    auth=AUTH,
    principal=PRINCIPAL,
)
def test_mutated_bodies(
    fuzz_target: FuzzTarget, method: str, pick: int, rnd: random.Random, auth: str, principal: str
) -> None:
    rpc = _rpc(fuzz_target, method)
    before = fuzz_target.tf.ledger_snapshot()
    _send(fuzz_target, rpc, mutate(rpc.seeds[pick % len(rpc.seeds)], rnd), auth, principal)
    assert fuzz_target.tf.ledger_snapshot() == before


# -- structurally valid requests with extreme field values -----------------------------------

_SCALARS = {
    FieldDescriptor.TYPE_UINT64: st.sampled_from([0, 1, 2, 7, 2**31, 2**32, 2**63 - 1, 2**63, 2**64 - 1])
    | st.integers(min_value=0, max_value=2**64 - 1),
    FieldDescriptor.TYPE_UINT32: st.sampled_from([0, 1, 1000, 1001, 2**31, 2**32 - 1])
    | st.integers(min_value=0, max_value=2**32 - 1),
    FieldDescriptor.TYPE_INT64: st.sampled_from([0, -1, 1, -(2**63), 2**63 - 1])
    | st.integers(min_value=-(2**63), max_value=2**63 - 1),
    FieldDescriptor.TYPE_BOOL: st.booleans(),
}


@st.composite
def _request(draw: st.DrawFn, rpc: Rpc, envelopes: list[bytes]) -> bytes:
    msg = rpc.request()
    for field in rpc.request.DESCRIPTOR.fields:  # type: ignore[attr-defined]
        if field.type == FieldDescriptor.TYPE_BYTES:  # PublishRequest.envelopes
            rnd = draw(st.randoms(use_true_random=False))
            items = draw(st.lists(st.sampled_from(envelopes), max_size=4))
            getattr(msg, field.name).extend(mutate(e, rnd) if draw(st.booleans()) else e for e in items)
        elif field.type in _SCALARS and draw(st.booleans()):
            setattr(msg, field.name, draw(_SCALARS[field.type]))
    return bytes(msg.SerializeToString(deterministic=True))


@examples(1000)
@given(method=st.sampled_from(RPCS), data=st.data(), principal=PRINCIPAL)
def test_extreme_field_values(fuzz_target: FuzzTarget, method: str, data: st.DataObject, principal: str) -> None:
    rpc = _rpc(fuzz_target, method)
    body = data.draw(_request(rpc, fuzz_target.published))
    before = fuzz_target.tf.ledger_snapshot()
    _send(fuzz_target, rpc, body, "canonical", principal)
    assert fuzz_target.tf.ledger_snapshot() == before


def test_oversized_body(fuzz_target: FuzzTarget) -> None:
    """A body over max_message_bytes (32 MiB) is RESOURCE_EXHAUSTED, before any decoding."""
    rpc = _rpc(fuzz_target, "/trustwire.v1.ExchangeService/Publish")
    body = xpb.PublishRequest(envelopes=[b"\x00" * (33 << 20)]).SerializeToString()
    assert _send(fuzz_target, rpc, body, "raw", "alice") == "RESOURCE_EXHAUSTED"


def test_undecodable_body_is_invalid_argument(fuzz_target: FuzzTarget) -> None:
    """grpc itself answers INTERNAL when a request does not parse; the exchange says INVALID_ARGUMENT."""
    for rpc in rpc_table(fuzz_target.published):
        outcome = fuzz_target.fuzzer.call(rpc, b"\x0a\xff\xff\xff\xff\x0f", "raw", "alice")
        assert outcome.code == "INVALID_ARGUMENT", (rpc.method, outcome)
        assert "not a valid trustwire.v1." in outcome.details, outcome
        # without credentials the body is never decoded (call-auth v3: metadata is checked first)
        outcome = fuzz_target.fuzzer.call(rpc, b"\x0a\xff\xff\xff\xff\x0f", "none", "alice")
        assert outcome.code == "UNAUTHENTICATED", (rpc.method, outcome)
    # and the unauthenticated services (health, reflection) too
    health = fuzz_target.fuzzer.channel.unary_unary("/grpc.health.v1.Health/Check")
    try:
        health(b"\xff", timeout=5)
        raise AssertionError("a malformed health check was answered")
    except grpc.RpcError as exc:
        assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT, exc  # type: ignore[attr-defined]
    reflect = fuzz_target.fuzzer.channel.stream_stream("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo")
    try:
        list(reflect(iter([b"\xff"]), timeout=5))
        raise AssertionError("a malformed reflection request was answered")
    except grpc.RpcError as exc:
        assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT, exc  # type: ignore[attr-defined]


# -- Publish deep: mutated payloads, correctly signed by the caller ---------------------------


@examples(800)
@given(pick=st.integers(min_value=0), rnd=st.randoms(use_true_random=False), member=st.sampled_from(["alice", "bob"]))
def test_publish_resigned_mutated_payloads(fuzz_target: FuzzTarget, pick: int, rnd: random.Random, member: str) -> None:
    """A member signs a mutated payload: it passes the signature check and reaches entry
    decoding, validation and the ledger rules. Whatever the exchange accepts must be a
    valid entry by the protocol core's own rules, and land exactly once."""
    tf = fuzz_target.tf
    payloads = seed_payloads()
    payload_type, payload = payloads[pick % len(payloads)]
    mutated = mutate(payload, rnd)
    raw = sign_envelope(payload_type, mutated, fuzz_target.signers[member]).raw
    head, records = tf.ledger_snapshot()
    rpc = _rpc(fuzz_target, "/trustwire.v1.ExchangeService/Publish")
    body = xpb.PublishRequest(envelopes=[raw, raw]).SerializeToString(deterministic=True)
    reply = xpb.PublishResponse.FromString(
        fuzz_target.fuzzer.channel.unary_unary(rpc.method)(
            body, metadata=fuzz_target.fuzzer.metadata(rpc, body, "raw", member), timeout=10
        )
    )
    first, second = reply.results
    assert first == second  # the same envelope twice in a batch: one outcome, one entry
    new_head, new_records = tf.ledger_snapshot()
    assert new_records[:head] == records  # history is never rewritten
    if first.WhichOneof("result") == "error":
        assert first.error.status not in ("INTERNAL", "UNKNOWN", ""), first.error
        assert new_head == head
        return
    kind, entry = decode_entry(payload_type, mutated)  # the core agrees it is an entry...
    validate_entry(kind, entry)  # ...and a valid one
    if first.receipt.index < head:  # a re-publish of an entry already there
        assert new_head == head
    else:
        assert new_head == head + 1 and first.receipt.index == head
        assert Record.decode(new_records[head]).envelope == raw


def test_regression_rpc_vectors(fuzz_target: FuzzTarget) -> None:
    """RPC inputs that once broke the exchange (tests/fuzz/regressions/rpc-*.json)."""
    from reliability.fuzzing import load_vectors

    replayed = 0
    for path, vector in load_vectors():
        if vector["target"] != "rpc":
            continue
        rpc = _rpc(fuzz_target, vector["method"])
        before = fuzz_target.tf.ledger_snapshot()
        outcome = fuzz_target.fuzzer.call(rpc, bytes.fromhex(vector["input_hex"]), vector["auth"], vector["principal"])
        assert outcome.code in ALLOWED_CODES, (path.name, outcome)
        if "expect_code" in vector:
            assert outcome.code == vector["expect_code"], (path.name, outcome)
        assert fuzz_target.tf.ledger_snapshot() == before
        replayed += 1
    assert replayed > 0


def test_healthy_after_campaign(fuzz_target: FuzzTarget) -> None:
    """After everything above: health SERVING, and a normal publish reaches another member."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    tf = fuzz_target.tf
    reply = health_pb2_grpc.HealthStub(fuzz_target.fuzzer.channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    bob, carol = tf.client("bob"), tf.client("carol", state=True)
    signal = bob.signal("md5", "9e107d9d372bb6826bd81d3542a419d6", groups=["all-members"], signal_id="after-fuzz")
    (receipt,) = bob.publish([signal])
    assert isinstance(receipt, Receipt), receipt
    wait_until(lambda: (cp := tf.server.checkpoints.latest()) is not None and cp.size > receipt.index)
    report = carol.sync()
    assert report.quarantined == 0 and report.next_index == receipt.index + 1
    assert carol.bank is not None and carol.bank.get("bob", "after-fuzz") is not None
    assert fuzz_target.fuzzer.codes.get("INTERNAL", 0) == 0 and fuzz_target.fuzzer.codes.get("UNKNOWN", 0) == 0

