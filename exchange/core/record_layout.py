"""The canonical bytes of a ``LedgerRecord`` (PROTOCOL §9) built by concatenation,
without a protobuf object: the ledger writes one per entry, the Kafka sequencer one per
entry of a round (``exchange.server.kafka.layout`` builds its other messages on these).
The output is exactly the deterministic protobuf encoding (tests/unit/test_record_layout.py
and tests/kafka/test_layout.py prove it against the encoder on random values).
"""

from __future__ import annotations

__all__ = ["SHORT", "accepted_at_field", "field", "record", "timestamp_body", "varint"]

_SMALL = [bytes((n,)) for n in range(0x80)]


def varint(n: int) -> bytes:
    """Protobuf's base-128 varint of a non-negative integer."""
    if n < 0x80:
        return _SMALL[n]
    if n < 0x4000:
        return bytes((n & 0x7F | 0x80, n >> 7))
    if n < 0x200000:
        return bytes((n & 0x7F | 0x80, (n >> 7) & 0x7F | 0x80, n >> 14))
    if n < 0x10000000:
        return bytes((n & 0x7F | 0x80, (n >> 7) & 0x7F | 0x80, (n >> 14) & 0x7F | 0x80, n >> 21))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


SHORT = [varint(n) for n in range(1 << 14)]
"""Varints of lengths below 16 KiB (one or two bytes): a list index, not a call, per field."""


def field(tag: bytes, value: bytes) -> bytes:
    """A length-delimited field."""
    return tag + varint(len(value)) + value


def timestamp_body(accepted_at_ms: int) -> bytes:
    """The body of a ``google.protobuf.Timestamp`` holding whole milliseconds (>= 0)."""
    seconds, ms = divmod(accepted_at_ms, 1000)
    return (b"\x08" + varint(seconds) if seconds else b"") + (b"\x10" + varint(ms * 1_000_000) if ms else b"")


def accepted_at_field(accepted_at_ms: int) -> bytes:
    """``LedgerRecord.accepted_at`` (field 2, always present), shared by a round's records."""
    return field(b"\x12", timestamp_body(accepted_at_ms))


def record(index: int, accepted_at: bytes, envelope: bytes) -> bytes:
    """The canonical ``LedgerRecord`` (``accepted_at`` from :func:`accepted_at_field`)."""
    return (b"\x08" + varint(index) if index else b"") + accepted_at + b"\x1a" + varint(len(envelope)) + envelope
