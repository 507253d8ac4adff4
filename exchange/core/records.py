"""Ledger records: ``index + accepted_at + envelope bytes``, serialized once.

The record bytes are what the audit log hashes (leaf = SHA-256(0x00 || record)), so
they are produced once at acceptance and only ever copied afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from google.protobuf.message import DecodeError

from exchange.core import record_layout
from exchange.core.errors import MalformedRecord
from exchange.core.merkle import leaf_hash
from exchange.core.entries import ms_to_timestamp, timestamp_to_ms
from exchange.pb.trustwire.v1 import ledger_pb2, views_pb2

__all__ = ["Receipt", "Record", "accepted_at_ms", "encode_record", "encode_records", "leaf_hash"]


def encode_record(index: int, accepted_at_ms: int, envelope: bytes) -> bytes:
    """The canonical record bytes (concatenated: :mod:`exchange.core.record_layout`)."""
    if accepted_at_ms >= 0:
        return record_layout.record(index, record_layout.accepted_at_field(accepted_at_ms), envelope)
    msg = ledger_pb2.LedgerRecord(index=index, accepted_at=ms_to_timestamp(accepted_at_ms), envelope=envelope)
    return msg.SerializeToString(deterministic=True)


def encode_records(start: int, accepted_at_ms: int, envelopes: Sequence[bytes]) -> list[bytes]:
    """``encode_record`` for consecutive indices from ``start`` sharing one accepted_at
    (a sequencing round): the same bytes, the shared field built once."""
    if accepted_at_ms >= 0:
        at = record_layout.accepted_at_field(accepted_at_ms)
        return [record_layout.record(index, at, envelope) for index, envelope in enumerate(envelopes, start)]
    msg = ledger_pb2.LedgerRecord(accepted_at=ms_to_timestamp(accepted_at_ms))
    out: list[bytes] = []
    for index, envelope in enumerate(envelopes, start):
        msg.index = index
        msg.envelope = envelope
        out.append(msg.SerializeToString(deterministic=True))
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class Receipt:
    """Proof of acceptance handed to a publisher: where its entry sits in the ledger."""

    index: int
    accepted_at_ms: int
    leaf_hash: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Record:
    index: int
    accepted_at_ms: int
    envelope: bytes
    raw: bytes

    @property
    def leaf_hash(self) -> bytes:
        return leaf_hash(self.raw)

    @classmethod
    def decode(cls, raw: bytes) -> Record:
        msg = ledger_pb2.LedgerRecord()
        try:
            msg.ParseFromString(raw)
        except DecodeError as exc:
            raise MalformedRecord("bytes are not a LedgerRecord protobuf") from exc
        msg.DiscardUnknownFields()  # else they are re-emitted and pass the canonical check
        if not msg.envelope:
            raise MalformedRecord("ledger record carries no envelope")
        # exactly the bytes encode_record makes: an accepted_at that is absent, or finer
        # than a millisecond (or with nanos out of range) would give two byte strings (two
        # leaf hashes) one record; with those excluded, re-encoding what was parsed is
        # encode_record's output, so it is compared without building a second message
        at_ms = accepted_at_ms(msg)
        if at_ms is None or msg.SerializeToString(deterministic=True) != raw:
            raise MalformedRecord("ledger record is not canonically encoded")
        return cls(index=msg.index, accepted_at_ms=at_ms, envelope=msg.envelope, raw=raw)


def accepted_at_ms(msg: ledger_pb2.LedgerRecord | views_pb2.RecordView) -> int | None:
    """A parsed record's accepted_at in ms; None if it is absent or not a whole, in-range
    millisecond (such a record is not canonical: encode_record never makes it)."""
    if not msg.HasField("accepted_at"):
        return None
    ts = msg.accepted_at
    nanos = ts.nanos
    if not 0 <= nanos < 1_000_000_000 or nanos % 1_000_000:
        return None
    return ts.seconds * 1000 + nanos // 1_000_000
