"""The ledger rule: which messages of the ledger topic are ledger entries.

Every reader (every replica's view, every auditor replaying the topic) applies this
one pure function to the ledger topic in offset order, starting from
``RuleState()``; so they all derive the same ledger, whoever wrote what.

- ``EpochStart(epoch, next_index, id)`` is valid iff ``epoch > state.epoch`` and
  ``next_index == state.next_index``; it makes its writer the sequencer.
- ``SequencedEntry(epoch, record)`` is valid iff ``epoch == state.epoch`` and the
  record is a canonical LedgerRecord whose index is ``state.next_index``; it is then
  ledger entry ``next_index``.
- Everything else is ignored: a fenced sequencer's late writes (older epoch),
  duplicates (index already taken), garbage.

So at most one entry is accepted per index, indices are contiguous, and a sequencer
that lost its epoch cannot add anything, whatever it still sends. There is no
consensus of our own: the topic's order decides, and the consumer group decides who
tries to write.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import NamedTuple

from exchange.core.errors import MalformedRecord
from exchange.core.records import Record
from exchange.pb.trustwire.v1 import kafka_pb2 as kpb
from exchange.server.kafka.layout import split_entry
from exchange.server.kafka.wire import decode_ledger_message
from exchange.server.ledger import DecodedRecord

__all__ = ["Accepted", "RuleState", "accept_many", "apply", "apply_many"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleState:
    """Where a reader stands: the next topic offset to read and the ledger so far."""

    offset: int = 0
    epoch: int = 0
    next_index: int = 0
    sequencer_id: str = ""
    """Who wrote the current epoch's EpochStart."""
    genesis_offset: int = -1
    genesis_id: str = ""
    """The first valid EpochStart: identifies this ledger (a view of another is refused)."""


class Accepted(NamedTuple):
    """An accepted record read from the sequencer's layout: the fields of ``Record``,
    immutable, at a fifth of a frozen dataclass's construction cost per entry."""

    index: int  # type: ignore[assignment]  # shadows tuple.index, as Record's field is named
    accepted_at_ms: int
    envelope: bytes
    raw: bytes


def apply(state: RuleState, offset: int, value: bytes | None) -> tuple[RuleState, bytes | None]:
    """Apply the message at ``offset``; return the new state and the accepted record, if any."""
    moved = replace(state, offset=offset + 1)
    msg = decode_ledger_message(value)
    if isinstance(msg, kpb.EpochStart):
        if msg.epoch > state.epoch and msg.next_index == state.next_index:
            moved = replace(moved, epoch=msg.epoch, sequencer_id=msg.sequencer_id)
            if state.genesis_offset < 0:
                moved = replace(moved, genesis_offset=offset, genesis_id=msg.sequencer_id)
        return moved, None
    if isinstance(msg, kpb.SequencedEntry):
        if msg.epoch != state.epoch or state.epoch == 0:
            return moved, None
        try:
            record = Record.decode(msg.record)
        except MalformedRecord:
            return moved, None
        if record.index != state.next_index:
            return moved, None
        return replace(moved, next_index=state.next_index + 1), msg.record
    return moved, None


def apply_many(
    state: RuleState, messages: Iterable[tuple[int, bytes | None]]
) -> tuple[RuleState, list[bytes], int]:
    """:func:`apply` over ``(offset, value)`` pairs in offset order (offsets below
    ``state.offset`` are skipped: delivered again); the state after them, the accepted
    records and the number of accepted claims. The same rule, with one state object
    per call, not per message."""
    state, records, claims = accept_many(state, messages)
    return state, [r.raw for r in records], claims


def accept_many(
    state: RuleState, messages: Iterable[tuple[int, bytes | None]]
) -> tuple[RuleState, list[DecodedRecord], int]:
    """:func:`apply_many` returning the accepted records decoded (and checked canonical),
    so that a view stores them without decoding them again."""
    offset, epoch, next_index = state.offset, state.epoch, state.next_index
    records: list[DecodedRecord] = []
    claims: list[tuple[int, kpb.EpochStart]] = []
    for at, value in messages:
        if at < offset:
            continue
        offset = at + 1
        fast = split_entry(value) if value else None
        if fast is not None:  # the sequencer's own layout, read without protobuf (same outcome)
            if fast[0] == epoch and epoch != 0 and fast[2] == next_index:
                next_index += 1
                records.append(Accepted(fast[2], fast[3], fast[4], fast[1]))
            continue
        msg = decode_ledger_message(value)
        if isinstance(msg, kpb.SequencedEntry):
            if msg.epoch != epoch or epoch == 0:
                continue
            try:
                record = Record.decode(msg.record)
            except MalformedRecord:
                continue
            if record.index == next_index:
                next_index += 1
                records.append(record)
        elif isinstance(msg, kpb.EpochStart) and msg.epoch > epoch and msg.next_index == next_index:
            epoch = msg.epoch
            claims.append((at, msg))
    if claims:
        first_at, first = claims[0]
        state = replace(state, sequencer_id=claims[-1][1].sequencer_id)
        if state.genesis_offset < 0:
            state = replace(state, genesis_offset=first_at, genesis_id=first.sequencer_id)
    return replace(state, offset=offset, epoch=epoch, next_index=next_index), records, len(claims)
