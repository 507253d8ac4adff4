"""Encoding of the engine's Kafka messages (proto/exchange/pb/trustwire/v1/kafka.proto).

Decoders never raise on foreign bytes: whatever does not parse is reported as None
and ignored by the caller (a topic can hold anything anyone with write access put
there; the ledger rule only accepts what it can check).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from google.protobuf.message import DecodeError

from exchange.core.entries import EntryKind, ms_to_timestamp, timestamp_to_ms
from exchange.core.errors import TrustwireError, error_for
from exchange.core.records import Receipt
from exchange.pb.trustwire.v1 import exchange_pb2 as xpb
from exchange.pb.trustwire.v1 import kafka_pb2 as kpb
from exchange.server.kafka import layout
from exchange.server.ledger import Outcome, Submission

__all__ = [
    "Batch",
    "Received",
    "Result",
    "decode_batch",
    "decode_ledger_message",
    "decode_result",
    "encode_batch",
    "encode_entries",
    "encode_entry",
    "encode_epoch_start",
    "encode_outcome",
    "encode_result",
]

LedgerMessage = kpb.EpochStart | kpb.SequencedEntry


def encode_epoch_start(epoch: int, next_index: int, sequencer_id: str) -> bytes:
    msg = kpb.LedgerMessage(
        epoch_start=kpb.EpochStart(epoch=epoch, next_index=next_index, sequencer_id=sequencer_id)
    )
    return msg.SerializeToString(deterministic=True)


def encode_entry(epoch: int, record: bytes) -> bytes:
    return encode_entries(epoch, [record])[0]


def encode_entries(epoch: int, records: Sequence[bytes]) -> list[bytes]:
    """``encode_entry`` for each record of one epoch (byte layout, no message objects)."""
    epoch_field = b"\x08" + layout.varint(epoch) if epoch else b""
    return [layout.entry_message(epoch_field, r) for r in records]


def decode_ledger_message(value: bytes | None) -> LedgerMessage | None:
    if not value:
        return None
    msg = kpb.LedgerMessage()
    try:
        msg.ParseFromString(value)
    except DecodeError:
        return None
    kind = msg.WhichOneof("kind")
    if kind == "epoch_start":
        return msg.epoch_start
    if kind == "entry":
        return msg.entry
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class Batch:
    """A replica's request to the sequencer."""

    request_id: bytes
    replica_id: str
    submissions: tuple[Submission, ...]
    deadline_ms: int


def _member_keyid(s: Submission) -> str:
    """The signing key of a member entry admission decoded; "" for a key event or unknown."""
    if s.keyid is None or s.decoded is None or s.decoded[0] is EntryKind.KEY_EVENT:
        return ""
    return s.keyid


def encode_batch(batch: Batch) -> bytes:
    return layout.submission_batch(
        batch.request_id, batch.replica_id, [(s.envelope, s.digest, _member_keyid(s)) for s in batch.submissions],
        batch.deadline_ms,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Received:
    """A replica's request as the sequencer reads it: its envelopes column by column
    (no object per envelope)."""

    request_id: bytes
    replica_id: str
    envelopes: list[bytes]
    digests: list[bytes]
    keyids: list[str]  # "" where the replica named none (a key event, or unknown)
    deadline_ms: int


def decode_batch(value: bytes | None) -> Received | None:
    msg = kpb.SubmissionBatch()
    try:
        msg.ParseFromString(value or b"")
    except DecodeError:
        return None
    items = msg.envelopes
    envelopes = [e.envelope for e in items]
    digests = [e.digest for e in items]
    if not msg.request_id or not all(envelopes) or any(len(d) != 32 for d in digests):
        return None
    return Received(
        request_id=msg.request_id,
        replica_id=msg.replica_id,
        envelopes=envelopes,
        digests=digests,
        keyids=[e.member_keyid for e in items],
        deadline_ms=msg.deadline_ms,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Result:
    """The sequencer's answer to one batch: one outcome per envelope."""

    request_id: bytes
    replica_id: str
    outcomes: tuple[Outcome, ...]


def _outcome_pb(outcome: Outcome) -> xpb.PublishResult:
    if isinstance(outcome, Receipt):
        return xpb.PublishResult(
            receipt=xpb.Receipt(
                index=outcome.index, accepted_at=ms_to_timestamp(outcome.accepted_at_ms), leaf_hash=outcome.leaf_hash
            )
        )
    return xpb.PublishResult(error=xpb.EntryError(status=outcome.status, reason=outcome.reason, message=outcome.message))


def _outcome(result: xpb.PublishResult) -> Outcome:
    if result.HasField("receipt"):
        r = result.receipt
        return Receipt(index=r.index, accepted_at_ms=timestamp_to_ms(r.accepted_at), leaf_hash=r.leaf_hash)
    e = result.error
    return error_for(e.status, e.reason, e.message)


def encode_outcome(outcome: Outcome) -> bytes:
    """One ``PublishResult`` (a receipt by byte layout, an error through protobuf)."""
    if isinstance(outcome, Receipt):
        return layout.receipt_result(outcome.index, layout.timestamp_body(outcome.accepted_at_ms), outcome.leaf_hash)
    return _outcome_pb(outcome).SerializeToString()


def encode_result(request_id: bytes, replica_id: str, outcomes: Sequence[Outcome | bytes]) -> bytes:
    """``SubmissionResult``; an outcome may already be an encoded ``PublishResult``."""
    return layout.submission_result(
        request_id, replica_id, [o if isinstance(o, bytes) else encode_outcome(o) for o in outcomes]
    )


def decode_result(value: bytes | None) -> Result | None:
    msg = kpb.SubmissionResult()
    try:
        msg.ParseFromString(value or b"")
        outcomes = tuple(_outcome(r) for r in msg.results)
    except (DecodeError, TrustwireError):
        return None
    if not msg.request_id:
        return None
    return Result(request_id=msg.request_id, replica_id=msg.replica_id, outcomes=outcomes)
