"""The verification workers' batch path (exchange/core/record_view.py) gives the
reference's verdict (Record.decode, then check_signed) on valid, mutated and forged
records; on its own (no fallback) it never passes a record the reference refuses, and
each check it makes is needed: breaking any one of them makes these tests fail."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exchange.core import record_view
from exchange.core.acceptance import check_signed
from exchange.core.dsse import pae, sign_envelope
from exchange.core.entries import encode_entry, ms_to_timestamp
from exchange.core.errors import TrustwireError
from exchange.core.keys import Signer
from exchange.core.records import Record, encode_record
from exchange.core.verify import signed_passes
from exchange.pb.trustwire.v1 import entries_pb2 as pb
from exchange.pb.trustwire.v1 import envelope_pb2, ledger_pb2

T = 1_800_000_000_000
OPERATOR = Signer.from_seed(hashlib.sha256(b"record-view-operator-INSECURE").digest())
ALICE = Signer.from_seed(hashlib.sha256(b"record-view-alice-INSECURE").digest())
BOB = Signer.from_seed(hashlib.sha256(b"record-view-bob-INSECURE").digest())
CAROL = Signer.from_seed(hashlib.sha256(b"record-view-carol-INSECURE").digest())  # not in the key table
KEYS: dict[str, tuple[str, bytes]] = {ALICE.keyid: ("alice", ALICE.public_key), BOB.keyid: ("bob", BOB.public_key)}


def _signal(member: str, i: int, **fields: object) -> pb.Signal:
    h = hashlib.sha256(b"%d" % i).hexdigest()
    values = [("md5", h[:32]), ("sha256", h), ("pdq", h), ("url", f"https://ex.example/{h[:10]}"),
              ("url", f"http://example.com/{h[:6]}?q=1"), ("domain", f"x{h[:6]}.example.com")]
    kind, value = values[i % len(values)]
    base: dict[str, object] = dict(
        signal_id=f"s-{i}", member_id=member, type=kind, value=value, value_rule=2 if i % 3 else 0,
        labels=["csam"] if i % 2 else [], confidence=50, severity=pb.SEVERITY_HIGH,
        sharing=pb.Sharing(groups=["g-one"], tlp=pb.TLP_AMBER), created_at=ms_to_timestamp(T + i))
    return pb.Signal(**{**base, **fields})  # type: ignore[arg-type]


def _envelope(entry: object, signer: Signer) -> bytes:
    return sign_envelope(*encode_entry(entry), signer).raw  # type: ignore[arg-type]


def _corpus() -> list[bytes]:
    """Valid records of every kind, and records the reference refuses for one reason each."""
    t = ms_to_timestamp(T)
    envs = [_envelope(_signal("alice" if i % 2 else "bob", i), ALICE if i % 2 else BOB) for i in range(24)]
    envs += [
        _envelope(pb.KeyEvent(created_at=t, group_created=pb.GroupCreated(group_id="g-one", display_name="G")), OPERATOR),
        _envelope(pb.Retraction(member_id="alice", signal=pb.SignalRef(member_id="alice", signal_id="s-1"),
                                reason=pb.RETRACTION_REASON_ERROR, created_at=t), ALICE),
        _envelope(pb.Opinion(member_id="bob", signal=pb.SignalRef(member_id="alice", signal_id="s-1"),
                             verdict=pb.VERDICT_SEEN, created_at=t), BOB),
        # refused: wrong member's key, unknown key, operator signing a signal, member signing a key event
        _envelope(_signal("alice", 101), BOB),
        _envelope(_signal("alice", 102), CAROL),
        _envelope(_signal("alice", 103), OPERATOR),
        _envelope(pb.KeyEvent(created_at=t, group_created=pb.GroupCreated(group_id="g-two", display_name="G")), ALICE),
        # refused: invalid entries, validly signed
        _envelope(_signal("alice", 104, value="D41D8CD98F00B204E9800998ECF8427E", type="md5"), ALICE),
        _envelope(_signal("alice", 105, confidence=101), ALICE),
        _envelope(_signal("alice", 106, value_rule=3), ALICE),
        _envelope(_signal("alice", 107, labels=["Bad Label"]), ALICE),
        _envelope(_signal("alice", 108, created_at=Timestamp(seconds=T // 1000, nanos=1)), ALICE),
        _unknown_payload_field(),
        _forged(),
        _two_signatures(),
        _envelope_with_unknown_field(),
    ]
    records = [encode_record(i, T + i, env) for i, env in enumerate(envs)]
    bad_time = ledger_pb2.LedgerRecord(index=1, envelope=envs[0])
    bad_time.accepted_at.seconds, bad_time.accepted_at.nanos = T // 1000, 1  # finer than a millisecond
    records += [
        bad_time.SerializeToString(deterministic=True),
        ledger_pb2.LedgerRecord(index=2, envelope=envs[0]).SerializeToString(deterministic=True),  # no accepted_at
        records[0] + b"\x20\x01",  # an unknown field in the record
        records[1][:-1],  # truncated
        b"\x0a\x00" + records[2],  # a leading field of the wrong wire type
    ]
    return records


def _unknown_payload_field() -> bytes:
    payload_type, payload = encode_entry(_signal("alice", 109))
    payload += b"\xf8\x07\x01"  # field 127, varint: not canonical
    sig = ALICE.sign(pae(payload_type, payload))
    return envelope_pb2.Envelope(payload=payload, payload_type=payload_type, signatures=[
        envelope_pb2.Signature(sig=sig, keyid=ALICE.keyid)]).SerializeToString(deterministic=True)


def _forged() -> bytes:
    msg = envelope_pb2.Envelope()
    msg.ParseFromString(_envelope(_signal("alice", 110), ALICE))
    msg.payload = encode_entry(_signal("alice", 111))[1]  # another payload under the same signature
    return msg.SerializeToString(deterministic=True)


def _two_signatures() -> bytes:
    msg = envelope_pb2.Envelope()
    msg.ParseFromString(_envelope(_signal("alice", 112), ALICE))
    msg.signatures.append(msg.signatures[0])
    return msg.SerializeToString(deterministic=True)


def _envelope_with_unknown_field() -> bytes:
    return _envelope(_signal("alice", 113), ALICE) + b"\x20\x01"


CORPUS = _corpus()
VALID = 27  # the first records are valid


def _reference(raw: bytes) -> bool:
    try:
        check_signed(Record.decode(raw).envelope, OPERATOR.public_key, KEYS)
    except TrustwireError:
        return False
    return True


def _alone(raws: list[bytes]) -> bytes:
    """The batch path with no fallback: what it shows passing by itself."""
    return record_view.passes(raws, OPERATOR.public_key, KEYS, lambda raw: False)


def test_the_corpus_holds_valid_and_refused_records() -> None:
    verdicts = [_reference(r) for r in CORPUS]
    assert verdicts[:VALID] == [True] * VALID and not any(verdicts[VALID:])


def test_batch_path_gives_the_reference_verdicts() -> None:
    assert signed_passes(OPERATOR.public_key, KEYS, CORPUS) == bytes(_reference(r) for r in CORPUS)


def test_batch_path_alone_passes_every_valid_record_and_nothing_else() -> None:
    """Valid records never need the reference path (the speed), refused ones never pass (the rule)."""
    assert _alone(CORPUS) == bytes(_reference(r) for r in CORPUS)


def _mutations(raw: bytes) -> st.SearchStrategy[bytes]:
    n = len(raw)
    flip = st.tuples(st.integers(0, n - 1), st.integers(1, 255)).map(
        lambda p: raw[: p[0]] + bytes([raw[p[0]] ^ p[1]]) + raw[p[0] + 1 :])
    insert = st.tuples(st.integers(0, n), st.binary(min_size=1, max_size=4)).map(
        lambda p: raw[: p[0]] + p[1] + raw[p[0] :])
    delete = st.tuples(st.integers(0, n - 1), st.integers(1, 4)).map(lambda p: raw[: p[0]] + raw[p[0] + p[1] :])
    return st.one_of(flip, insert, delete)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_records_get_the_reference_verdict(data: st.DataObject) -> None:
    raw = data.draw(st.sampled_from(CORPUS[:VALID]))
    mutated = data.draw(_mutations(raw))
    expected = _reference(mutated)
    assert _alone([mutated]) <= bytes([expected])  # never a pass the reference refuses
    assert signed_passes(OPERATOR.public_key, KEYS, [mutated]) == bytes([expected])


def _broken() -> Iterator[tuple[str, str, Callable[..., object]]]:
    yield "verify_signature", "verify_signature", lambda *a: None
    yield "accepted_at_ms", "accepted_at_ms", lambda msg: 0
    yield "validate_entry", "validate_entry", lambda *a: None
    yield "check_owner", "check_owner", lambda *a: None
    yield "signature_of", "signature_of", lambda pt, sigs: (sigs[0].keyid, sigs[0].sig)

    def decode_entry(payload_type: str, payload: bytes) -> tuple[object, object]:
        from exchange.core.entries import PAYLOAD_TYPES, parse_payload

        kind = PAYLOAD_TYPES[payload_type]
        return kind, parse_payload(kind, payload)  # no canonical check

    yield "decode_entry", "decode_entry", decode_entry


@pytest.mark.parametrize("name, attr, replacement", list(_broken()), ids=[b[0] for b in _broken()])
def test_a_check_left_out_is_caught(monkeypatch: pytest.MonkeyPatch, name: str, attr: str,
                                    replacement: Callable[..., object]) -> None:
    """Each check the batch path makes is exercised: without it, a refused record passes."""
    monkeypatch.setattr(record_view, attr, replacement)
    assert _alone(CORPUS) != bytes(_reference(r) for r in CORPUS)


def test_the_canonical_comparison_is_needed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(record_view, "_canonical", lambda view, raw: True)
    assert _alone(CORPUS) != bytes(_reference(r) for r in CORPUS)


def test_unknown_fields_are_not_re_emitted_into_the_comparison(monkeypatch: pytest.MonkeyPatch) -> None:
    def kept(view: object, raw: bytes) -> bool:
        return view.SerializeToString(deterministic=True) == raw  # type: ignore[attr-defined,no-any-return]

    monkeypatch.setattr(record_view, "_canonical", kept)
    assert _alone(CORPUS) != bytes(_reference(r) for r in CORPUS)
