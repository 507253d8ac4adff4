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

__all__ = [
    "accepted_at_field",
    "entry_message",
    "receipt_result",
    "record",
    "split_entry",
    "submission_result",
    "timestamp_body",
    "varint",
]

_SMALL = [bytes((n,)) for n in range(0x80)]
_MAX_U64 = (1 << 64) - 1
_MAX_TS_SECONDS = (1 << 63) - 1


def varint(n: int) -> bytes:
    """Protobuf's base-128 varint of a non-negative integer."""
    if n < 0x80:
        return _SMALL[n]
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(tag: bytes, value: bytes) -> bytes:
    """A length-delimited field."""
    return tag + varint(len(value)) + value


def timestamp_body(accepted_at_ms: int) -> bytes:
    """The body of a ``google.protobuf.Timestamp`` holding whole milliseconds (>= 0)."""
    seconds, ms = divmod(accepted_at_ms, 1000)
    return (b"\x08" + varint(seconds) if seconds else b"") + (b"\x10" + varint(ms * 1_000_000) if ms else b"")


def accepted_at_field(accepted_at_ms: int) -> bytes:
    """``LedgerRecord.accepted_at`` (field 2, always present), shared by a round's records."""
    return _field(b"\x12", timestamp_body(accepted_at_ms))


def record(index: int, accepted_at: bytes, envelope: bytes) -> bytes:
    """The canonical ``LedgerRecord`` (``accepted_at`` from :func:`accepted_at_field`)."""
    return (b"\x08" + varint(index) if index else b"") + accepted_at + b"\x1a" + varint(len(envelope)) + envelope


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


def _read_varint(data: bytes, at: int) -> tuple[int, int]:
    """(value, next position); raises IndexError past the end."""
    b = data[at]
    if b < 0x80:
        return b, at + 1
    value, shift = 0, 0
    while True:
        b = data[at]
        at += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, at
        shift += 7
        if shift > 63:
            raise IndexError("varint too long")


def split_entry(value: bytes) -> tuple[int, bytes, int, int, bytes] | None:
    """``(epoch, record, index, accepted_at_ms, envelope)`` of a ledger message in the
    exact layout :func:`entry_message` makes around a canonical record; None for
    anything else (another message, another layout, a non-canonical record): the
    caller then decides with the protobuf path."""
    try:
        if value[0] != 0x12:
            return None
        size, at = _read_varint(value, 1)
        if at + size != len(value):
            return None
        epoch = 0
        if value[at] == 0x08:
            epoch, at = _read_varint(value, at + 1)
        if value[at] != 0x12:
            return None
        size, at = _read_varint(value, at + 1)
        if at + size != len(value):
            return None
        raw = value[at:]
        index, at = 0, 0
        if raw[0] == 0x08:
            index, at = _read_varint(raw, 1)
        if raw[at] != 0x12:
            return None
        size, at = _read_varint(raw, at + 1)
        end = at + size
        seconds = nanos = 0
        if at < end and raw[at] == 0x08:
            seconds, at = _read_varint(raw, at + 1)
        if at < end and raw[at] == 0x10:
            nanos, at = _read_varint(raw, at + 1)
        if at != end or raw[at] != 0x1A:
            return None
        size, at = _read_varint(raw, at + 1)
        if at + size != len(raw) or size == 0:
            return None
        envelope = raw[at:]
    except IndexError:
        return None
    if epoch > _MAX_U64 or index > _MAX_U64 or seconds > _MAX_TS_SECONDS or nanos >= 1_000_000_000 or nanos % 1_000_000:
        return None
    accepted_at_ms = seconds * 1000 + nanos // 1_000_000
    # canonical iff rebuilding it gives the same bytes (minimal varints, no zero fields)
    if record(index, accepted_at_field(accepted_at_ms), envelope) != raw:
        return None
    if entry_message(b"\x08" + varint(epoch) if epoch else b"", raw) != value:
        return None
    return epoch, raw, index, accepted_at_ms, envelope
