"""The byte layouts (exchange/server/kafka/layout.py) against the protobuf encoder and
the protobuf rule: the fast path must write the same bytes and accept the same entries.
Pure (no broker)."""

from __future__ import annotations

import random

from exchange.core.entries import ms_to_timestamp
from exchange.core.errors import MalformedRecord, UnknownKey
from exchange.core.records import Receipt, Record, encode_record, leaf_hash
from exchange.pb.trustwire.v1 import exchange_pb2 as xpb
from exchange.pb.trustwire.v1 import kafka_pb2 as kpb
from exchange.server.kafka import layout
from exchange.server.kafka.rule import RuleState, accept_many, apply
from exchange.server.kafka.wire import (
    decode_batch,
    decode_ledger_message,
    decode_result,
    encode_entries,
    encode_epoch_start,
    encode_result,
)

RNG_SEED = 1818


def _values(rng: random.Random) -> list[int]:
    """Integers around every varint length boundary, and 0."""
    edges = [0, 1, 127, 128, 16383, 16384, 2**32, 2**63 - 1]
    return [*edges, *(rng.randrange(1 << rng.randint(1, 62)) for _ in range(40))]


def _proto_entry(epoch: int, record: bytes) -> bytes:
    msg = kpb.LedgerMessage(entry=kpb.SequencedEntry(epoch=epoch, record=record))
    return msg.SerializeToString(deterministic=True)


def test_records_and_entries_are_the_protobuf_encoders_bytes() -> None:
    rng = random.Random(RNG_SEED)
    ms_values = [0, 1, 999, 1000, 1_700_000_000_000, 1_700_000_000_123, *(rng.randrange(2**45) for _ in range(30))]
    for index in _values(rng):
        for at_ms in rng.sample(ms_values, 6):
            envelope = rng.randbytes(rng.choice((1, 5, 127, 128, 300, 20_000)))
            raw = layout.record(index, layout.accepted_at_field(at_ms), envelope)
            assert raw == encode_record(index, at_ms, envelope)
            epoch = rng.choice(_values(rng))
            assert encode_entries(epoch, [raw]) == [_proto_entry(epoch, raw)]


def test_results_are_the_protobuf_encoders_bytes() -> None:
    rng = random.Random(RNG_SEED + 1)
    for index in _values(rng):
        at_ms = rng.choice((0, 1000, 1_700_000_000_123, rng.randrange(2**45)))
        leaf = rng.randbytes(32)
        fast = layout.receipt_result(index, layout.timestamp_body(at_ms), leaf)
        receipt = xpb.Receipt(index=index, accepted_at=ms_to_timestamp(at_ms), leaf_hash=leaf)
        reference = xpb.PublishResult(receipt=receipt)
        reference.receipt.accepted_at.SetInParent()  # a receipt's accepted_at is always present
        assert fast == reference.SerializeToString(deterministic=True)
    outcomes = [Receipt(index=i, accepted_at_ms=1_700_000_000_000 + i, leaf_hash=leaf_hash(b"%d" % i))
                for i in range(5)]
    encoded = encode_result(b"req", "replica-a", [*outcomes, UnknownKey("no such key")])
    reference_msg = kpb.SubmissionResult(request_id=b"req", replica_id="replica-a")
    for o in outcomes:
        reference_msg.results.add().receipt.CopyFrom(
            xpb.Receipt(index=o.index, accepted_at=ms_to_timestamp(o.accepted_at_ms), leaf_hash=o.leaf_hash))
    error = UnknownKey("no such key")
    reference_msg.results.add().error.CopyFrom(
        xpb.EntryError(status=error.status, reason=error.reason, message=error.message))
    assert encoded == reference_msg.SerializeToString(deterministic=True)
    result = decode_result(encoded)
    assert result is not None and result.outcomes[:5] == tuple(outcomes) and isinstance(result.outcomes[5], UnknownKey)


def _reference_split(value: bytes) -> tuple[int, bytes, int, int, bytes] | None:
    """What the protobuf path makes of a message: an entry with a canonical record, or None."""
    msg = decode_ledger_message(value)
    if not isinstance(msg, kpb.SequencedEntry):
        return None
    try:
        record = Record.decode(msg.record)
    except MalformedRecord:
        return None
    return msg.epoch, msg.record, record.index, record.accepted_at_ms, record.envelope


def _mutations(rng: random.Random, value: bytes) -> list[bytes]:
    """The value with bytes flipped, cut, added, or a field duplicated or padded."""
    out = []
    for _ in range(6):
        b = bytearray(value)
        at = rng.randrange(len(b))
        b[at] ^= 1 << rng.randrange(8)
        out.append(bytes(b))
    out += [value[: rng.randrange(len(value))], value + b"\x00", value + b"\x08\x01", value + value,
            value[:2] + b"\x80" + value[2:], b"\x0a\x00" + value, value.replace(b"\x1a", b"\x22", 1)]
    return out


def _non_canonical(raw: bytes) -> list[bytes]:
    """Encodings of the same LedgerRecord fields that are not canonical (each must be refused)."""
    record = Record.decode(raw)
    seconds, ms = divmod(record.accepted_at_ms, 1000)
    envelope = b"\x1a" + layout.varint(len(record.envelope)) + record.envelope
    ts = layout.accepted_at_field(record.accepted_at_ms)
    index = b"\x08" + layout.varint(record.index)
    padded = bytearray(layout.varint(record.index))
    padded[-1] |= 0x80
    return [
        raw + b"\x00",
        b"\x08" + bytes(padded) + b"\x00" + ts + envelope,  # index as a longer varint
        b"\x08\x00" + ts + envelope if record.index == 0 else index + index + ts + envelope,
        index + b"\x12" + layout.varint(len(ts) + 2) + ts[2:] + b"\x08\x00" + envelope if not seconds else raw + raw,
        index + b"\x12\x02\x10" + layout.varint(ms * 1_000_000 + 1) + envelope,  # finer than a millisecond
        index + envelope + ts,  # fields out of order
    ]


def test_split_entry_agrees_with_protobuf_on_good_and_mutated_messages() -> None:
    """Whatever the fast reader accepts, protobuf reads the same way; what it does not,
    it leaves to protobuf (it returns None, never a different entry)."""
    rng = random.Random(RNG_SEED + 2)
    accepted = declined = 0
    for index in _values(rng):
        at_ms = rng.choice((0, 1000, 1_700_000_000_123))
        raw = encode_record(index, at_ms, rng.randbytes(rng.randint(1, 200)))
        good = _proto_entry(rng.choice((0, 1, 300)), raw)
        assert layout.split_entry(good) == _reference_split(good)
        for value in [*_mutations(rng, good), *(_proto_entry(1, r) for r in _non_canonical(raw)),
                      _proto_entry(2, b"\x08\x01garbage"), encode_epoch_start(3, index, "s")]:
            fast = layout.split_entry(value)
            if fast is None:
                declined += 1
            else:
                accepted += 1
                assert fast == _reference_split(value), value.hex()
    assert accepted > 40 and declined > 400


def test_accept_many_is_apply_on_mutated_topics() -> None:
    """The tailer's fast form against the reference rule message by message, on a topic
    of claims and entries where a quarter of the messages are mutated."""
    rng = random.Random(RNG_SEED + 3)
    values: list[bytes] = []
    now = RuleState()
    for offset in range(1500):
        roll = rng.random()
        if now.epoch == 0 or roll < 0.05:
            value = encode_epoch_start(now.epoch + 1, now.next_index + (rng.random() < 0.2), "s")
        else:
            epoch = now.epoch - (rng.random() < 0.05)
            value = _proto_entry(epoch, encode_record(now.next_index, 1_700_000_000_000 + offset, rng.randbytes(40)))
        if rng.random() < 0.25:
            value = rng.choice(_mutations(rng, value))
        values.append(value)
        now, _ = apply(now, offset, value)
    expected, records = RuleState(), []  # (values holds bytes only: the rule's None case is in test_rule.py)
    for offset, value in enumerate(values):
        expected, record = apply(expected, offset, value)
        if record is not None:
            records.append(record)
    state, got, _ = accept_many(RuleState(), list(enumerate(values)))
    assert state == expected
    assert [r.raw for r in got] == records
    assert [(r.index, r.accepted_at_ms, r.envelope) for r in got] == [
        (d.index, d.accepted_at_ms, d.envelope) for d in map(Record.decode, records)]
    assert len(records) > 900


def test_a_sealed_round_is_its_entries_built_one_by_one() -> None:
    rng = random.Random(RNG_SEED + 4)
    for start in (0, 1, 126, 16_380, 2**35):
        for at_ms in (0, 1000, 1_700_000_000_123):
            sizes = (1, 100, 200, 5000, 16_370, 20_000)  # around the 16 KiB varint table
            envelopes = [rng.randbytes(rng.choice(sizes)) for _ in range(rng.randint(0, 8))]
            messages, records, receipts = layout.seal_round(start, at_ms, 7, envelopes)
            assert records == [encode_record(start + i, at_ms, e) for i, e in enumerate(envelopes)]
            assert messages == [_proto_entry(7, r) for r in records]
            timestamp = layout.timestamp_body(at_ms)
            assert receipts == [
                layout.receipt_result(start + i, timestamp, leaf_hash(r)) for i, r in enumerate(records)]


def test_submission_batches_are_the_protobuf_encoders_bytes() -> None:
    rng = random.Random(RNG_SEED + 5)
    for deadline_ms in (0, 1, 1_700_000_000_000, -1, -(2**63)):
        items = [(rng.randbytes(rng.choice((0, 1, 200, 300))), rng.randbytes(rng.choice((0, 32))),
                  rng.choice(("", "ed25519:" + "ab" * 32))) for _ in range(rng.randint(0, 6))]
        for request_id, replica_id in ((b"", ""), (rng.randbytes(16), "replica-é")):
            reference = kpb.SubmissionBatch(
                request_id=request_id, replica_id=replica_id, deadline_ms=deadline_ms,
                envelopes=[kpb.SubmittedEnvelope(envelope=e, digest=d, member_keyid=k) for e, d, k in items],
            ).SerializeToString(deterministic=True)
            assert layout.submission_batch(request_id, replica_id, items, deadline_ms) == reference


def test_the_sequencer_reads_a_batch_column_by_column_and_refuses_a_malformed_one() -> None:
    items = [(b"env-%d" % i, bytes([i]) * 32, "ed25519:" + "cd" * 32 if i % 2 else "") for i in range(5)]
    batch = decode_batch(layout.submission_batch(b"request", "replica-a", items, 1_700_000_000_000))
    assert batch is not None
    assert (batch.request_id, batch.replica_id, batch.deadline_ms) == (b"request", "replica-a", 1_700_000_000_000)
    assert list(zip(batch.envelopes, batch.digests, batch.keyids, strict=True)) == items
    for bad in ([(b"env", b"short-digest", "")], [(b"", b"\x01" * 32, "")]):
        assert decode_batch(layout.submission_batch(b"request", "replica-a", bad, 0)) is None
    assert decode_batch(layout.submission_batch(b"", "replica-a", items, 0)) is None  # no request id
    assert decode_batch(b"\xff\xff not a batch") is None
