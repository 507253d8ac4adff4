"""DSSE v1 envelopes (exchange.core.dsse) and entry decoding/validation (exchange.core.entries).

Non-canonical byte strings are built by hand from protobuf wire primitives so the
tests do not depend on how the library happens to serialize.
"""

from __future__ import annotations

import dataclasses
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange.core.dsse import MAX_ENVELOPE_BYTES, Envelope, pae, sign_envelope
from exchange.core.entries import (
    PAYLOAD_TYPES,
    EntryKind,
    decode_entry,
    encode_entry,
    ms_to_timestamp,
    validate_entry,
)
from exchange.core.errors import (
    ForgedSignature,
    InvalidValue,
    MalformedEntry,
    MalformedEnvelope,
    NonNormalizedValue,
)
from exchange.core.keys import Signer
from exchange.pb.trustwire.v1 import entries_pb2 as pb

SIGNER = Signer.from_seed(hashlib.sha256(b"trustwire-test-INSECURE:dsse").digest())
OTHER = Signer.from_seed(hashlib.sha256(b"trustwire-test-INSECURE:other").digest())
SIGNAL_TYPE = EntryKind.SIGNAL.payload_type
CREATED_MS = 1_700_000_123_456


# -- protobuf wire helpers ---------------------------------------------------------------


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field_bytes(number: int, value: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(value)) + value


def field_varint(number: int, value: int) -> bytes:
    return varint(number << 3 | 0) + varint(value)


def signature_msg(sig: bytes, keyid: str) -> bytes:
    return field_bytes(1, sig) + field_bytes(2, keyid.encode())


def envelope_bytes(payload: bytes, payload_type: str, *signatures: bytes) -> bytes:
    return field_bytes(1, payload) + field_bytes(2, payload_type.encode()) + b"".join(field_bytes(3, s) for s in signatures)


# -- PAE ---------------------------------------------------------------------------------


def test_pae_spec_vector() -> None:
    # from the DSSE protocol specification
    assert pae("http://example.com/HelloWorld", b"hello world") == b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"


@pytest.mark.parametrize(
    ("payload_type", "payload", "expected"),
    [
        ("", b"", b"DSSEv1 0  0 "),
        ("t", b"", b"DSSEv1 1 t 0 "),
        ("\u00e9", b"x", b"DSSEv1 2 \xc3\xa9 1 x"),  # the length counts UTF-8 bytes
        ("a b", b" \x00 ", b"DSSEv1 3 a b 3  \x00 "),
        ("t", b"x" * 1234, b"DSSEv1 1 t 1234 " + b"x" * 1234),
    ],
)
def test_pae_encoding(payload_type: str, payload: bytes, expected: bytes) -> None:
    assert pae(payload_type, payload) == expected


def test_pae_is_unambiguous_where_naive_concatenation_is_not() -> None:
    assert pae("ab", b"c") != pae("a", b"bc")
    assert pae("a 1 b", b"") != pae("a", b"b 0 ")


# -- sign / decode / verify --------------------------------------------------------------


def test_round_trip() -> None:
    env = sign_envelope(SIGNAL_TYPE, b"\x0a\x03abc", SIGNER)
    decoded = Envelope.decode(env.raw)
    assert decoded == env
    assert decoded.payload_type == SIGNAL_TYPE
    assert decoded.payload == b"\x0a\x03abc"
    assert decoded.keyid == SIGNER.keyid
    assert decoded.raw == env.raw
    assert decoded.digest == hashlib.sha256(env.raw).digest()
    decoded.verify(SIGNER.public_key)
    # the bytes are exactly the hand-built canonical encoding
    assert env.raw == envelope_bytes(env.payload, SIGNAL_TYPE, signature_msg(env.sig, SIGNER.keyid))


def test_signature_is_over_pae() -> None:
    env = sign_envelope("t", b"payload", SIGNER)
    assert env.sig == SIGNER.sign(pae("t", b"payload"))
    assert env.sig != SIGNER.sign(b"payload")


def test_wrong_key_is_forged() -> None:
    env = Envelope.decode(sign_envelope(SIGNAL_TYPE, b"payload", SIGNER).raw)
    with pytest.raises(ForgedSignature):
        env.verify(OTHER.public_key)


def test_empty_payload_round_trips() -> None:
    env = sign_envelope(SIGNAL_TYPE, b"", SIGNER)
    Envelope.decode(env.raw).verify(SIGNER.public_key)


def _flips(data: bytes) -> list[bytes]:
    return [bytes(data[:i]) + bytes([data[i] ^ (1 << b)]) + data[i + 1 :] for i in range(len(data)) for b in range(8)]


ENV = sign_envelope("application/vnd.trustwire.test.v1+protobuf", b"\x08\x01\x12\x04abcd", SIGNER)


def test_any_bit_flip_in_payload_fails() -> None:
    for payload in _flips(ENV.payload):
        with pytest.raises(ForgedSignature):
            dataclasses.replace(ENV, payload=payload).verify(SIGNER.public_key)


def test_any_bit_flip_in_payload_type_fails() -> None:
    flips = [
        ENV.payload_type[:i] + chr(ord(c) ^ (1 << b)) + ENV.payload_type[i + 1 :]
        for i, c in enumerate(ENV.payload_type)
        for b in range(7)
    ]
    assert len(flips) == 7 * len(ENV.payload_type)
    for payload_type in flips:
        with pytest.raises(ForgedSignature):
            dataclasses.replace(ENV, payload_type=payload_type).verify(SIGNER.public_key)


def test_any_bit_flip_in_signature_fails() -> None:
    flips = _flips(ENV.sig)
    assert len(flips) == 512
    for sig in flips:
        with pytest.raises(ForgedSignature):
            dataclasses.replace(ENV, sig=sig).verify(SIGNER.public_key)


def test_any_bit_flip_in_envelope_bytes_is_caught() -> None:
    """Flipped bytes either do not decode, or name another key, or do not verify."""
    outcomes = {"malformed": 0, "other-keyid": 0, "forged": 0}
    for raw in _flips(ENV.raw):
        try:
            env = Envelope.decode(raw)
        except MalformedEnvelope:
            outcomes["malformed"] += 1
            continue
        if env.keyid != SIGNER.keyid:
            outcomes["other-keyid"] += 1  # the lookup by keyid then finds no (or another) key
            continue
        with pytest.raises(ForgedSignature):
            env.verify(SIGNER.public_key)
        outcomes["forged"] += 1
    assert all(outcomes.values()), outcomes


# -- non-canonical and malformed envelopes -----------------------------------------------

GOOD_SIG = signature_msg(ENV.sig, SIGNER.keyid)


def test_hand_built_canonical_envelope_decodes() -> None:
    assert Envelope.decode(envelope_bytes(ENV.payload, ENV.payload_type, GOOD_SIG)) == ENV


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(ENV.raw + field_varint(4, 5), id="unknown-varint-field-appended"),
        pytest.param(ENV.raw + field_bytes(15, b"hidden"), id="unknown-bytes-field-appended"),
        pytest.param(ENV.raw + field_bytes(1000, b""), id="unknown-empty-field-appended"),
        pytest.param(
            envelope_bytes(ENV.payload, ENV.payload_type, GOOD_SIG + field_bytes(3, b"hidden")),
            id="unknown-field-inside-signature",
        ),
        pytest.param(
            field_bytes(2, ENV.payload_type.encode()) + field_bytes(1, ENV.payload) + field_bytes(3, GOOD_SIG),
            id="fields-out-of-order",
        ),
        pytest.param(
            field_bytes(1, ENV.payload) + field_bytes(3, GOOD_SIG) + field_bytes(2, ENV.payload_type.encode()),
            id="signatures-before-type",
        ),
        pytest.param(
            envelope_bytes(ENV.payload, ENV.payload_type, field_bytes(2, SIGNER.keyid.encode()) + field_bytes(1, ENV.sig)),
            id="signature-fields-out-of-order",
        ),
        pytest.param(field_bytes(1, b"junk") + ENV.raw, id="payload-repeated"),
        pytest.param(ENV.raw + field_bytes(2, ENV.payload_type.encode()), id="payload-type-repeated"),
        pytest.param(
            varint(1 << 3 | 2) + bytes([len(ENV.payload) | 0x80, 0x00]) + ENV.payload
            + field_bytes(2, ENV.payload_type.encode()) + field_bytes(3, GOOD_SIG),
            id="non-minimal-length-varint",
        ),
        pytest.param(
            bytes([0x8A, 0x00]) + varint(len(ENV.payload)) + ENV.payload
            + field_bytes(2, ENV.payload_type.encode()) + field_bytes(3, GOOD_SIG),
            id="non-minimal-tag-varint",
        ),
        pytest.param(envelope_bytes(ENV.payload, ENV.payload_type, GOOD_SIG, GOOD_SIG), id="two-signatures"),
        pytest.param(
            envelope_bytes(ENV.payload, ENV.payload_type, GOOD_SIG, signature_msg(OTHER.sign(pae(ENV.payload_type, ENV.payload)), OTHER.keyid)),
            id="two-different-signatures",
        ),
        pytest.param(envelope_bytes(ENV.payload, ENV.payload_type), id="zero-signatures"),
        pytest.param(field_bytes(1, ENV.payload) + field_bytes(3, GOOD_SIG), id="no-payload-type"),
        pytest.param(envelope_bytes(ENV.payload, "t" * 129, GOOD_SIG), id="payload-type-too-long"),
        pytest.param(
            field_bytes(1, ENV.payload) + field_bytes(2, b"bad\xff\xfeutf8") + field_bytes(3, GOOD_SIG),
            id="payload-type-not-utf8",
        ),
        pytest.param(envelope_bytes(ENV.payload, ENV.payload_type, signature_msg(ENV.sig, "")), id="keyid-empty"),
        pytest.param(envelope_bytes(ENV.payload, ENV.payload_type, field_bytes(1, ENV.sig)), id="keyid-missing"),
        pytest.param(
            envelope_bytes(ENV.payload, ENV.payload_type, signature_msg(ENV.sig, SIGNER.keyid.upper())),
            id="keyid-uppercase",
        ),
        pytest.param(
            envelope_bytes(ENV.payload, ENV.payload_type, signature_msg(ENV.sig, SIGNER.keyid[:-1])), id="keyid-short"
        ),
        pytest.param(
            envelope_bytes(ENV.payload, ENV.payload_type, signature_msg(ENV.sig, SIGNER.keyid + "0")), id="keyid-long"
        ),
        pytest.param(
            envelope_bytes(ENV.payload, ENV.payload_type, signature_msg(ENV.sig, SIGNER.keyid + "\n")),
            id="keyid-trailing-newline",
        ),
        pytest.param(
            envelope_bytes(ENV.payload, ENV.payload_type, signature_msg(ENV.sig, "z" * 64)), id="keyid-not-hex"
        ),
        pytest.param(
            envelope_bytes(ENV.payload, ENV.payload_type, signature_msg(ENV.sig, SIGNER.keyid[:32])), id="keyid-half"
        ),
        # garbage
        pytest.param(b"", id="empty"),
        pytest.param(b"\xff\xff\xff\xff", id="garbage"),
        pytest.param(b"\x0a\x10abc", id="length-past-end"),
        pytest.param(ENV.raw[:-1], id="truncated"),
        pytest.param(b"\x0b", id="start-group"),
        pytest.param(b"not a protobuf at all", id="text"),
        pytest.param(b"\x08", id="truncated-varint"),
    ],
)
def test_malformed_envelopes_are_refused(raw: bytes) -> None:
    with pytest.raises(MalformedEnvelope):
        Envelope.decode(raw)


def test_envelope_size_limit() -> None:
    overhead = len(sign_envelope("t", b"", SIGNER).raw)
    # find the largest payload whose envelope fits (the length varint grows with it)
    size = MAX_ENVELOPE_BYTES - overhead
    while len(sign_envelope("t", b"x" * size, SIGNER).raw) > MAX_ENVELOPE_BYTES:
        size -= 1
    at_limit = sign_envelope("t", b"x" * size, SIGNER)
    assert len(at_limit.raw) == MAX_ENVELOPE_BYTES
    Envelope.decode(at_limit.raw).verify(SIGNER.public_key)
    over = sign_envelope("t", b"x" * (size + 1), SIGNER)
    assert len(over.raw) == MAX_ENVELOPE_BYTES + 1
    with pytest.raises(MalformedEnvelope):
        Envelope.decode(over.raw)
    with pytest.raises(MalformedEnvelope):
        Envelope.decode(b"\x00" * (10 * MAX_ENVELOPE_BYTES))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_decode_canonically_or_raise_malformed(raw: bytes) -> None:
    try:
        env = Envelope.decode(raw)
    except MalformedEnvelope:
        return
    # anything accepted is the canonical encoding of what was decoded
    assert env.raw == raw
    assert envelope_bytes(env.payload, env.payload_type, signature_msg(env.sig, env.keyid)) == raw


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=40))
def test_appending_anything_to_a_good_envelope_is_refused(tail: bytes) -> None:
    raw = ENV.raw + tail
    try:
        env = Envelope.decode(raw)
    except MalformedEnvelope:
        return
    raise AssertionError(f"accepted {len(tail)} appended bytes as {env!r}")


# -- entries -----------------------------------------------------------------------------


def good_signal(**changes: object) -> pb.Signal:
    s = pb.Signal(
        signal_id="sig-1",
        member_id="alice",
        type="md5",
        value="d41d8cd98f00b204e9800998ecf8427e",
        labels=["csam", "src:hotline"],
        confidence=90,
        severity=pb.SEVERITY_HIGH,
        sharing=pb.Sharing(groups=["all-members"], tlp=pb.TLP_AMBER),
        created_at=ms_to_timestamp(CREATED_MS),
        related=["acct-7"],
        description="seen in three reports",
    )
    for name, value in changes.items():
        if isinstance(value, list):
            field = getattr(s, name)
            del field[:]
            field.extend(value)
        elif value is None:
            s.ClearField(name)
        else:
            target = getattr(s, name) if hasattr(value, "DESCRIPTOR") else None
            if target is not None:
                target.CopyFrom(value)
            else:
                setattr(s, name, value)
    return s


def ref(member: str = "alice", signal_id: str = "sig-1") -> pb.SignalRef:
    return pb.SignalRef(member_id=member, signal_id=signal_id)


def test_payload_types_name_each_kind() -> None:
    assert PAYLOAD_TYPES == {
        "application/vnd.trustwire.signal.v1+protobuf": EntryKind.SIGNAL,
        "application/vnd.trustwire.retraction.v1+protobuf": EntryKind.RETRACTION,
        "application/vnd.trustwire.opinion.v1+protobuf": EntryKind.OPINION,
        "application/vnd.trustwire.keyevent.v1+protobuf": EntryKind.KEY_EVENT,
    }


def test_entry_round_trip_through_an_envelope() -> None:
    signal = good_signal()
    payload_type, payload = encode_entry(signal)
    assert payload_type == SIGNAL_TYPE
    env = Envelope.decode(sign_envelope(payload_type, payload, SIGNER).raw)
    env.verify(SIGNER.public_key)
    kind, decoded = decode_entry(env.payload_type, env.payload)
    assert kind is EntryKind.SIGNAL
    assert decoded == signal
    validate_entry(kind, decoded)


@pytest.mark.parametrize(
    "payload_type",
    [
        "application/vnd.trustwire.bogus.v1+protobuf",
        "application/vnd.trustwire.signal.v2+protobuf",
        "application/vnd.trustwire.signal.v1+json",
        "application/json",
        "APPLICATION/VND.TRUSTWIRE.SIGNAL.V1+PROTOBUF",
        "application/vnd.trustwire.signal.v1+protobuf ",
        "",
    ],
)
def test_decode_entry_rejects_unknown_payload_types(payload_type: str) -> None:
    _, payload = encode_entry(good_signal())
    with pytest.raises(MalformedEntry):
        decode_entry(payload_type, payload)


CANONICAL_SIGNAL = encode_entry(good_signal())[1]
CREATED_AT = ms_to_timestamp(CREATED_MS).SerializeToString()


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(CANONICAL_SIGNAL + field_varint(99, 1), id="unknown-field-appended"),
        pytest.param(CANONICAL_SIGNAL + field_bytes(14, b"x"), id="next-field-number-unknown"),
        pytest.param(
            encode_entry(good_signal(created_at=None))[1] + field_bytes(13, CREATED_AT + field_varint(7, 1)),
            id="unknown-field-in-nested-timestamp",
        ),
        pytest.param(field_bytes(2, b"alice") + field_bytes(1, b"sig-1"), id="fields-out-of-order"),
        pytest.param(field_bytes(1, b"sig-0") + CANONICAL_SIGNAL, id="field-repeated"),
        pytest.param(field_varint(6, 0) + field_bytes(1, b"sig-1"), id="explicit-default-value"),
        pytest.param(b"\xff\xff\xff", id="garbage"),
        pytest.param(CANONICAL_SIGNAL[:-1], id="truncated"),
        pytest.param(field_bytes(3, b"md5\xff"), id="invalid-utf8"),
    ],
)
def test_decode_entry_rejects_non_canonical_payloads(payload: bytes) -> None:
    with pytest.raises(MalformedEntry):
        decode_entry(SIGNAL_TYPE, payload)


@pytest.mark.parametrize("kind", list(EntryKind))
def test_decode_entry_rejects_unknown_fields_for_every_kind(kind: EntryKind) -> None:
    with pytest.raises(MalformedEntry):
        decode_entry(kind.payload_type, field_varint(500, 1))


def test_valid_signal_passes() -> None:
    validate_entry(EntryKind.SIGNAL, good_signal())
    validate_entry(EntryKind.SIGNAL, good_signal(signal_id="A" * 128, confidence=100, labels=[], related=[]))
    validate_entry(EntryKind.SIGNAL, good_signal(valid_from=ms_to_timestamp(1000), valid_until=ms_to_timestamp(2000)))


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        # signal ids
        ({"signal_id": ""}, MalformedEntry),
        ({"signal_id": "-abc"}, MalformedEntry),
        ({"signal_id": "a b"}, MalformedEntry),
        ({"signal_id": "a" * 129}, MalformedEntry),
        ({"signal_id": "abc\n"}, MalformedEntry),
        ({"signal_id": "s\u00efg"}, MalformedEntry),
        ({"signal_id": "a/b"}, MalformedEntry),
        # member ids
        ({"member_id": ""}, InvalidValue),
        ({"member_id": "a"}, InvalidValue),
        ({"member_id": "Alice"}, InvalidValue),
        ({"member_id": "-alice"}, InvalidValue),
        ({"member_id": "al_ice"}, InvalidValue),
        ({"member_id": "alice\n"}, InvalidValue),
        ({"member_id": "a" * 64}, InvalidValue),
        # labels
        ({"labels": ["CSAM"]}, MalformedEntry),
        ({"labels": [""]}, MalformedEntry),
        ({"labels": ["has space"]}, MalformedEntry),
        ({"labels": ["csam\n"]}, MalformedEntry),
        ({"labels": ["csam", "csam"]}, MalformedEntry),
        ({"labels": [f"l{i}" for i in range(33)]}, MalformedEntry),
        ({"labels": ["a" * 65]}, MalformedEntry),
        # confidence, severity
        ({"confidence": 101}, MalformedEntry),
        ({"confidence": 2**32 - 1}, MalformedEntry),
        ({"severity": 99}, MalformedEntry),
        # sharing
        ({"sharing": pb.Sharing(tlp=pb.TLP_AMBER)}, MalformedEntry),
        ({"sharing": pb.Sharing(groups=["all-members", "all-members"], tlp=pb.TLP_AMBER)}, MalformedEntry),
        ({"sharing": pb.Sharing(groups=["All Members"], tlp=pb.TLP_AMBER)}, InvalidValue),
        ({"sharing": pb.Sharing(groups=["all-members"])}, MalformedEntry),
        ({"sharing": pb.Sharing(groups=["all-members"], tlp=99)}, MalformedEntry),
        ({"sharing": None}, MalformedEntry),
        # timestamps
        ({"created_at": None}, MalformedEntry),
        ({"created_at": ms_to_timestamp(0)}, MalformedEntry),
        ({"created_at": ms_to_timestamp(CREATED_MS).__class__(seconds=1_700_000_000, nanos=1)}, MalformedEntry),
        ({"created_at": ms_to_timestamp(CREATED_MS).__class__(seconds=1_700_000_001, nanos=-1_000_000)}, MalformedEntry),
        ({"created_at": ms_to_timestamp(CREATED_MS).__class__(seconds=1_700_000_000, nanos=2_000_000_000)}, MalformedEntry),
        ({"valid_from": ms_to_timestamp(2000), "valid_until": ms_to_timestamp(2000)}, MalformedEntry),
        ({"valid_from": ms_to_timestamp(3000), "valid_until": ms_to_timestamp(2000)}, MalformedEntry),
        # values and types
        ({"value": "D41D8CD98F00B204E9800998ECF8427E"}, NonNormalizedValue),
        ({"value": "not-a-hash"}, InvalidValue),
        ({"type": "Not A Type"}, InvalidValue),
        # related and description
        ({"related": ["bad id"]}, MalformedEntry),
        ({"related": [f"r{i}" for i in range(65)]}, MalformedEntry),
        ({"description": "d" * 513}, MalformedEntry),
    ],
    ids=lambda v: repr(v)[:60] if isinstance(v, dict) else v.__name__,
)
def test_invalid_signals_are_refused(changes: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        validate_entry(EntryKind.SIGNAL, good_signal(**changes))


@pytest.mark.parametrize(
    "sharing",
    [
        pb.Sharing(groups=["all-members"], tlp=99),
        pb.Sharing(groups=["all-members"]),
        pb.Sharing(groups=["all-members", "all-members"], tlp=pb.TLP_AMBER),
        pb.Sharing(groups=["all-members", "Bad Group"], tlp=pb.TLP_AMBER),
        pb.Sharing(tlp=pb.TLP_AMBER),
    ],
    ids=["unknown-tlp", "no-tlp", "group-repeated", "bad-second-group", "no-group"],
)
def test_a_remembered_valid_shape_vouches_for_no_other_sharing(sharing: pb.Sharing) -> None:
    """The repeated fields are checked once per distinct shape, the sharing keyed by its
    bytes: a shape remembered as valid must not pass a signal that differs from it only
    in its sharing, and other valid sharings of that shape pass."""
    validate_entry(EntryKind.SIGNAL, good_signal())  # the shape remembered as valid
    validate_entry(EntryKind.SIGNAL, good_signal(sharing=pb.Sharing(groups=["all-members", "g-2"], tlp=pb.TLP_RED)))
    with pytest.raises((MalformedEntry, InvalidValue)):
        validate_entry(EntryKind.SIGNAL, good_signal(sharing=sharing))
    # the same sharing with unknown fields on the wire reads the same groups and TLP
    odd = pb.Sharing()
    odd.ParseFromString(sharing.SerializeToString() + field_varint(99, 1))
    with pytest.raises((MalformedEntry, InvalidValue)):
        validate_entry(EntryKind.SIGNAL, good_signal(sharing=odd))


def test_non_normalized_value_keeps_its_class_through_validation() -> None:
    with pytest.raises(NonNormalizedValue) as info:
        validate_entry(EntryKind.SIGNAL, good_signal(value="D41D8CD98F00B204E9800998ECF8427E"))
    assert "md5" in str(info.value)


def test_unknown_type_is_carried() -> None:
    validate_entry(EntryKind.SIGNAL, good_signal(type="future_hash", value="Anything"))


def test_retraction_validation() -> None:
    good = pb.Retraction(
        member_id="alice", signal=ref(), reason=pb.RETRACTION_REASON_FALSE_POSITIVE, created_at=ms_to_timestamp(CREATED_MS)
    )
    validate_entry(EntryKind.RETRACTION, good)
    bad = [
        (pb.Retraction(member_id="alice", signal=ref(), created_at=ms_to_timestamp(CREATED_MS)), MalformedEntry),
        (pb.Retraction(member_id="alice", signal=ref(), reason=1), MalformedEntry),
        (pb.Retraction(member_id="Alice", signal=ref(), reason=1, created_at=ms_to_timestamp(CREATED_MS)), InvalidValue),
        (pb.Retraction(member_id="alice", signal=ref("B"), reason=1, created_at=ms_to_timestamp(CREATED_MS)), InvalidValue),
        (pb.Retraction(member_id="alice", signal=ref(signal_id=""), reason=1, created_at=ms_to_timestamp(CREATED_MS)), MalformedEntry),
    ]
    for entry, error in bad:
        with pytest.raises(error):
            validate_entry(EntryKind.RETRACTION, entry)


def test_opinion_validation() -> None:
    good = pb.Opinion(member_id="bob", signal=ref(), verdict=pb.VERDICT_TRUE_POSITIVE, created_at=ms_to_timestamp(CREATED_MS))
    validate_entry(EntryKind.OPINION, good)
    bad = [
        (pb.Opinion(member_id="bob", signal=ref(), created_at=ms_to_timestamp(CREATED_MS)), MalformedEntry),
        (pb.Opinion(member_id="bob", signal=ref(), verdict=pb.VERDICT_SEEN), MalformedEntry),
        (pb.Opinion(member_id="", signal=ref(), verdict=1, created_at=ms_to_timestamp(CREATED_MS)), InvalidValue),
        (pb.Opinion(member_id="bob", signal=ref(signal_id="x y"), verdict=1, created_at=ms_to_timestamp(CREATED_MS)), MalformedEntry),
    ]
    for entry, error in bad:
        with pytest.raises(error):
            validate_entry(EntryKind.OPINION, entry)


def test_key_event_validation() -> None:
    good = pb.KeyEvent(created_at=ms_to_timestamp(CREATED_MS), member_suspended=pb.MemberSuspended(member_id="bob"))
    validate_entry(EntryKind.KEY_EVENT, good)
    with pytest.raises(MalformedEntry):
        validate_entry(EntryKind.KEY_EVENT, pb.KeyEvent(created_at=ms_to_timestamp(CREATED_MS)))
    with pytest.raises(MalformedEntry):
        validate_entry(EntryKind.KEY_EVENT, pb.KeyEvent(member_suspended=pb.MemberSuspended(member_id="bob")))


# -- ledger records share the canonical-bytes rule ---------------------------------------


def test_ledger_record_with_unknown_field_is_refused() -> None:
    from exchange.core.errors import MalformedRecord
    from exchange.core.records import Record, encode_record

    raw = encode_record(7, CREATED_MS, ENV.raw)
    record = Record.decode(raw)
    assert (record.index, record.accepted_at_ms, record.envelope) == (7, CREATED_MS, ENV.raw)
    with pytest.raises(MalformedRecord):
        Record.decode(raw + field_varint(99, 1))


@pytest.mark.parametrize("seconds,nanos,present", [
    (1_700_000_000, 0, False),  # accepted_at absent
    (1_700_000_000, 1, True),  # finer than a millisecond
    (1_700_000_000, 1_000_000_000, True),  # nanos out of range (one second too many)
    (1_700_000_000, -1_000_000, True),  # negative nanos
])
def test_ledger_record_with_a_second_encoding_of_its_time_is_refused(seconds: int, nanos: int, present: bool) -> None:
    """Record.decode compares the re-encoded parse instead of building encode_record's
    message: a time encode_record would write otherwise must still be refused."""
    from google.protobuf.timestamp_pb2 import Timestamp

    from exchange.core.errors import MalformedRecord
    from exchange.core.records import Record
    from exchange.pb.trustwire.v1 import ledger_pb2

    msg = ledger_pb2.LedgerRecord(index=3, envelope=ENV.raw)
    if present:
        msg.accepted_at.CopyFrom(Timestamp(seconds=seconds, nanos=nanos))
    with pytest.raises(MalformedRecord):
        Record.decode(msg.SerializeToString(deterministic=True))


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**40), st.integers(-(2**40), 2**40), st.integers(-(10**9), 2 * 10**9), st.booleans())
def test_ledger_record_decode_accepts_exactly_what_encode_record_makes(
    index: int, seconds: int, nanos: int, present: bool
) -> None:
    from google.protobuf.timestamp_pb2 import Timestamp

    from exchange.core.errors import MalformedRecord
    from exchange.core.records import Record, encode_record
    from exchange.pb.trustwire.v1 import ledger_pb2

    msg = ledger_pb2.LedgerRecord(index=index, envelope=ENV.raw)
    if present:
        msg.accepted_at.CopyFrom(Timestamp(seconds=seconds, nanos=nanos))
    raw = msg.SerializeToString(deterministic=True)
    ms = seconds * 1000 + nanos // 1_000_000
    canonical = present and encode_record(index, ms, ENV.raw) == raw
    try:
        record = Record.decode(raw)
    except MalformedRecord:
        assert not canonical
    else:
        assert canonical and (record.index, record.accepted_at_ms) == (index, ms)


def test_remembered_id_checks_still_refuse_a_bad_id_every_time() -> None:
    """Member and group ids are checked once per distinct id (a cache of valid ones):
    a bad id is never remembered as good."""
    validate_entry(EntryKind.SIGNAL, good_signal())
    bad = good_signal(member_id="Not_A_Member")
    for _ in range(2):
        with pytest.raises(InvalidValue):
            validate_entry(EntryKind.SIGNAL, bad)
    bad = good_signal()
    bad.sharing.groups[:] = ["Bad Group"]
    for _ in range(2):
        with pytest.raises(InvalidValue):
            validate_entry(EntryKind.SIGNAL, bad)
