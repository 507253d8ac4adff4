"""The byte layouts of the Kafka engine's hot messages, built and read without
protobuf objects.

The sequencer handles every entry once and every view reads it once; a protobuf
message object per entry costs more than the rest of their work. These functions
concatenate (and split) the canonical encodings directly:

- ``LedgerRecord{index, accepted_at, envelope}`` (PROTOCOL §9), whose
  ``accepted_at`` field is the same for a whole sequencing round;
- ``LedgerMessage{entry: SequencedEntry{epoch, record}}`` (PROTOCOL §12);
- ``PublishResult{receipt}`` and ``SubmissionResult`` (the sequencer's answers).

Each builder yields exactly the bytes of the protobuf encoder (tests/kafka/test_layout.py
proves it on random values). The reader :func:`split_entry` accepts only the exact
layout the builders make; for anything else it returns None and the caller falls back
to the protobuf path, which decides (so the fast path never changes an outcome).
"""

from __future__ import annotations

from collections.abc import Sequence
from hashlib import sha256

from exchange.core.record_layout import SHORT as _SHORT
from exchange.core.record_layout import accepted_at_field, field as _field, record, timestamp_body, varint

__all__ = [
    "accepted_at_field",
    "entry_message",
    "receipt_result",
    "record",
    "seal_round",
    "split_entry",
    "submission_batch",
    "submission_result",
    "timestamp_body",
    "varint",
]

_MAX_U64 = (1 << 64) - 1
_MAX_TS_SECONDS = (1 << 63) - 1


def entry_message(epoch_field: bytes, record_bytes: bytes) -> bytes:
    """``LedgerMessage{entry: SequencedEntry{epoch, record}}``; ``epoch_field`` is
    ``b"\\x08" + varint(epoch)`` (empty for epoch 0), computed once per round."""
    return _field(b"\x12", epoch_field + _field(b"\x12", record_bytes))


def receipt_result(index: int, timestamp: bytes, leaf_hash: bytes) -> bytes:
    """``PublishResult{receipt: Receipt{index, accepted_at, leaf_hash}}`` (``timestamp``
    from :func:`timestamp_body`; the receipt's ``accepted_at`` is always present)."""
    body = (b"\x08" + varint(index) if index else b"") + _field(b"\x12", timestamp) + _field(b"\x1a", leaf_hash)
    return _field(b"\x0a", body)


def submission_result(request_id: bytes, replica_id: str, results: Sequence[bytes]) -> bytes:
    """``SubmissionResult`` from encoded ``PublishResult``s, in order."""
    head = (_field(b"\x0a", request_id) if request_id else b"") + (
        _field(b"\x12", replica_id.encode()) if replica_id else b""
    )
    return head + b"".join([_field(b"\x1a", r) for r in results])


def submission_batch(
    request_id: bytes, replica_id: str, envelopes: Sequence[tuple[bytes, bytes, str]], deadline_ms: int
) -> bytes:
    """``SubmissionBatch`` of ``(envelope, digest, member_keyid)`` triples, in order."""
    join = b"".join
    items = [
        _field(b"\x1a", join((_field(b"\x0a", e) if e else b"", _field(b"\x12", d) if d else b"",
                                _field(b"\x1a", k.encode()) if k else b"")))
        for e, d, k in envelopes
    ]
    head = (_field(b"\x0a", request_id) if request_id else b"") + (
        _field(b"\x12", replica_id.encode()) if replica_id else b""
    )
    tail = b"\x20" + varint(deadline_ms & _MAX_U64) if deadline_ms else b""  # int64: two's complement
    return join((head, *items, tail))


def seal_round(
    start: int, accepted_at_ms: int, epoch: int, envelopes: Sequence[bytes]
) -> tuple[list[bytes], list[bytes], list[bytes]]:
    """A sequencing round in one pass: for the envelopes taking indices ``start``, …
    (one ``accepted_at``, one epoch), their ledger messages (:func:`entry_message`),
    records (:func:`record`) and receipts (:func:`receipt_result`)."""
    accepted_at = accepted_at_field(accepted_at_ms)  # a Receipt's accepted_at is field 2 as well
    epoch_field = b"\x08" + varint(epoch) if epoch else b""
    fixed = len(epoch_field) + 1
    messages: list[bytes] = []
    records: list[bytes] = []
    receipts: list[bytes] = []
    join, short, hash_ = b"".join, _SHORT, sha256
    for index, envelope in enumerate(envelopes, start):
        index_field = b"\x08" + varint(index) if index else b""
        n = len(envelope)
        raw = join((index_field, accepted_at, b"\x1a", short[n] if n < 0x4000 else varint(n), envelope))
        n = len(raw)
        size = short[n] if n < 0x4000 else varint(n)
        records.append(raw)
        n += fixed + len(size)
        messages.append(join((b"\x12", short[n] if n < 0x4000 else varint(n), epoch_field, b"\x12", size, raw)))
        body = join((index_field, accepted_at, b"\x1a\x20", hash_(b"\x00" + raw).digest()))
        n = len(body)
        receipts.append(join((b"\x0a", short[n] if n < 0x4000 else varint(n), body)))
    return messages, records, receipts


def _read_varint(data: bytes, at: int) -> tuple[int, int]:
    """(value, next position) of a minimal varint (as protobuf writes it); raises
    IndexError past the end or for a longer encoding than needed."""
    b = data[at]
    if b < 0x80:
        return b, at + 1
    value, shift = b & 0x7F, 7
    while True:
        at += 1
        b = data[at]
        value |= (b & 0x7F) << shift
        if b < 0x80:
            if b == 0:
                raise IndexError("varint longer than needed")
            return value, at + 1
        shift += 7
        if shift > 63:
            raise IndexError("varint too long")


def split_entry(value: bytes) -> tuple[int, bytes, int, int, bytes] | None:
    """``(epoch, record, index, accepted_at_ms, envelope)`` of a ledger message in the
    layout :func:`entry_message` makes around a canonical record; None for anything
    else (another message, another layout, a non-canonical record): the caller then
    decides with the protobuf path. The record is canonical when its fields are in
    order, none holds its default value, every varint is minimal and the timestamp is
    whole milliseconds (what ``encode_record`` writes, and all it can write)."""
    read = _read_varint
    try:
        if value[0] != 0x12:
            return None
        size, at = read(value, 1)
        end = len(value)
        if at + size != end:
            return None
        epoch = 0
        if value[at] == 0x08:
            epoch, at = read(value, at + 1)
        if value[at] != 0x12:
            return None
        size, at = read(value, at + 1)
        if at + size != end:
            return None
        first = at
        index = 0
        if value[at] == 0x08:
            index, at = read(value, at + 1)
            if index == 0:
                return None
        if value[at] != 0x12:
            return None
        size, at = read(value, at + 1)
        stop = at + size
        seconds = nanos = 0
        if at < stop and value[at] == 0x08:
            seconds, at = read(value, at + 1)
            if seconds == 0:
                return None
        if at < stop and value[at] == 0x10:
            nanos, at = read(value, at + 1)
            if nanos == 0:
                return None
        if at != stop or value[at] != 0x1A:
            return None
        size, at = read(value, at + 1)
        if at + size != end or size == 0:
            return None
    except IndexError:
        return None
    if epoch > _MAX_U64 or index > _MAX_U64 or seconds > _MAX_TS_SECONDS or nanos >= 1_000_000_000 or nanos % 1_000_000:
        return None
    return epoch, value[first:], index, seconds * 1000 + nanos // 1_000_000, value[at:]
