"""The ledger rule on hand-written topic contents: zombies, duplicates, races, garbage.
Pure (no broker): the rule is a function of the topic's messages in offset order."""

from __future__ import annotations

import random
from dataclasses import replace

from exchange.core.errors import UnknownKey
from exchange.core.records import Receipt, Record, encode_record, encode_records, leaf_hash
from exchange.server.kafka.rule import RuleState, accept_many, apply, apply_many
from exchange.server.kafka.wire import (
    decode_result,
    encode_entries,
    encode_entry,
    encode_epoch_start,
    encode_result,
)


def run(messages: list[bytes | None], start: RuleState = RuleState()) -> tuple[RuleState, list[tuple[int, bytes]]]:
    """Apply messages at offsets 0, 1, …; return the final state and (offset, record) accepted."""
    state, accepted = start, []
    for offset, value in enumerate(messages, start.offset):
        state, record = apply(state, offset, value)
        if record is not None:
            accepted.append((offset, record))
    return state, accepted


def rec(index: int, tag: str = "x") -> bytes:
    return encode_record(index, 1_700_000_000_000 + index, f"envelope-{tag}-{index}".encode())


def test_entries_need_an_epoch_and_the_next_index() -> None:
    state, accepted = run([
        encode_entry(1, rec(0)),  # no epoch started yet
        encode_epoch_start(1, 0, "a"),
        encode_entry(1, rec(0)),
        encode_entry(1, rec(2)),  # gap
        encode_entry(1, rec(1)),
        encode_entry(1, rec(1, "dup")),  # index already taken
        encode_entry(2, rec(2)),  # epoch not started
    ])
    assert [r for _, r in accepted] == [rec(0), rec(1)]
    assert (state.epoch, state.next_index, state.sequencer_id, state.offset) == (1, 2, "a", 7)


def test_a_new_epoch_fences_the_old_sequencer() -> None:
    state, accepted = run([
        encode_epoch_start(1, 0, "a"),
        encode_entry(1, rec(0, "a")),
        encode_epoch_start(2, 1, "b"),  # b took over at head 1
        encode_entry(1, rec(1, "a")),  # a, late: ignored
        encode_entry(2, rec(1, "b")),
        encode_entry(1, rec(2, "a")),  # still ignored
    ])
    assert [r for _, r in accepted] == [rec(0, "a"), rec(1, "b")]
    assert (state.epoch, state.sequencer_id, state.next_index) == (2, "b", 2)


def test_claims_race_and_only_one_wins() -> None:
    state, _ = run([
        encode_epoch_start(1, 0, "a"),
        encode_epoch_start(1, 0, "b"),  # same epoch: not higher
        encode_epoch_start(0, 0, "c"),  # lower
        encode_epoch_start(5, 3, "d"),  # not at the head
    ])
    assert (state.epoch, state.sequencer_id) == (1, "a")
    state, accepted = run([encode_entry(1, rec(0)), encode_epoch_start(7, 1, "e"), encode_entry(7, rec(1))], state)
    assert len(accepted) == 2 and (state.epoch, state.sequencer_id, state.next_index) == (7, "e", 2)


def test_garbage_and_malformed_records_are_ignored() -> None:
    state, accepted = run([
        None,
        b"\xff\xff not protobuf",
        encode_epoch_start(1, 0, "a"),
        encode_entry(1, b"not a record"),
        encode_entry(1, rec(0) + b"\x00"),  # trailing bytes: not canonical
        encode_entry(1, rec(0)),
    ])
    assert [r for _, r in accepted] == [rec(0)]
    assert state.offset == 6


def test_the_first_valid_claim_names_the_ledger() -> None:
    state, _ = run([b"junk", encode_epoch_start(3, 1, "x"), encode_epoch_start(1, 0, "genesis"),
                    encode_epoch_start(2, 0, "later")])
    assert (state.genesis_offset, state.genesis_id) == (2, "genesis")
    assert state.sequencer_id == "later"


def test_resuming_from_a_saved_state_equals_reading_from_the_start() -> None:
    messages = [encode_epoch_start(1, 0, "a"), *(encode_entry(1, rec(i)) for i in range(5)),
                encode_epoch_start(2, 5, "b"), encode_entry(1, rec(5, "a")), encode_entry(2, rec(5, "b"))]
    whole, all_accepted = run(messages)
    half, first = run(messages[:4])
    rest, second = run(messages[4:], half)
    assert rest == whole
    assert first + second == all_accepted


def test_apply_many_is_the_rule_message_by_message() -> None:
    """The tailer's batched form derives exactly what apply() does, message by message,
    over a topic with claims, rival and stale claims, stale-epoch, duplicate, malformed
    and foreign messages, and redelivered offsets."""
    rng = random.Random(18)
    values: list[bytes | None] = []
    now = RuleState()  # the rule's state so far steers the generator towards valid messages
    for offset in range(600):
        epoch, index = now.epoch, now.next_index
        roll = rng.random()
        if roll < 0.08 or epoch == 0:
            value: bytes | None = encode_epoch_start(epoch + rng.choice((1, 2)), index + (rng.random() < 0.2), "s")
        elif roll < 0.12:
            value = encode_epoch_start(epoch - 1, index, "zombie")
        elif roll < 0.85:
            stale = rng.random() < 0.1
            i = index if rng.random() < 0.9 else max(0, index - 1)
            value = encode_entry(epoch - 1 if stale else epoch, encode_record(i, 1, b"env%d" % i))
        elif roll < 0.92:
            value = encode_entry(epoch, b"\x08\x01garbage")
        else:
            value = rng.choice((None, b"", b"\xff\xfe", b"not a protobuf"))
        values.append(value)
        now, _ = apply(now, offset, value)
    expected, accepted, claims = RuleState(), [], 0
    for offset, value in enumerate(values):
        before = expected.epoch
        expected, record = apply(expected, offset, value)
        claims += expected.epoch != before
        if record is not None:
            accepted.append(record)
    state, got, got_claims = RuleState(), [], 0
    offset = 0
    while offset < len(values):  # uneven batches, each starting a little before the last end
        end = min(len(values), offset + rng.randint(1, 50))
        start = max(0, offset - rng.randint(0, 3))
        state, records, n = apply_many(state, [(o, values[o]) for o in range(start, end)])
        got.extend(records)
        got_claims += n
        offset = end
    assert (state, got, got_claims) == (expected, accepted, claims)
    assert len(accepted) > 100 and claims > 5


def test_batch_encoders_write_the_same_bytes_as_one_at_a_time() -> None:
    """A sequencing round encodes its records, entries and results together: the bytes
    (hence leaf hashes and what every reader accepts) must not change."""
    envelopes = [f"envelope-{i}".encode() * (i + 1) for i in range(5)]
    for at_ms in (1_700_000_000_000, 1_700_000_000_999, 0):
        records = encode_records(7, at_ms, envelopes)
        assert records == [encode_record(7 + i, at_ms, e) for i, e in enumerate(envelopes)]
        assert [Record.decode(r).accepted_at_ms for r in records] == [at_ms] * 5
    records = encode_records(7, 1_700_000_000_123, envelopes)
    assert encode_entries(3, records) == [encode_entry(3, r) for r in records]
    state, accepted, _ = accept_many(RuleState(), enumerate([encode_epoch_start(3, 0, "a")]))
    state, accepted, _ = accept_many(
        replace(state, next_index=7), [(1 + i, v) for i, v in enumerate(encode_entries(3, records))]
    )
    assert [r.raw for r in accepted] == records and state.next_index == 12
    outcomes = [Receipt(index=7 + i, accepted_at_ms=1_700_000_000_123 + i, leaf_hash=leaf_hash(r))
                for i, r in enumerate(records)]
    result = decode_result(encode_result(b"req", "replica-a", [*outcomes, UnknownKey("no such key")]))
    assert result is not None and result.outcomes[:5] == tuple(outcomes)
    assert isinstance(result.outcomes[5], UnknownKey) and result.outcomes[5].message == "no such key"
