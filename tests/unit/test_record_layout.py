"""The ledger's records are built by concatenation (exchange.core.record_layout): the
bytes are exactly the protobuf encoder's, for any index, accepted_at and envelope."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from exchange.core.entries import ms_to_timestamp
from exchange.core.records import Record, encode_record, encode_records
from exchange.pb.trustwire.v1 import ledger_pb2


def _reference(index: int, at_ms: int, envelope: bytes) -> bytes:
    msg = ledger_pb2.LedgerRecord(index=index, accepted_at=ms_to_timestamp(at_ms), envelope=envelope)
    return msg.SerializeToString(deterministic=True)


INDEX = st.integers(0, (1 << 64) - 1) | st.integers(0, 300)
AT_MS = st.integers(0, 253_402_300_799_999) | st.integers(0, 2_000)  # up to year 9999, and around 0
ENVELOPE = st.binary(min_size=1, max_size=20_000)


@given(INDEX, AT_MS, ENVELOPE)
def test_a_record_is_the_encoders_bytes(index: int, at_ms: int, envelope: bytes) -> None:
    raw = encode_record(index, at_ms, envelope)
    assert raw == _reference(index, at_ms, envelope)
    decoded = Record.decode(raw)
    assert (decoded.index, decoded.accepted_at_ms, decoded.envelope) == (index, at_ms, envelope)


@given(st.integers(0, 1 << 40), AT_MS, st.lists(ENVELOPE, max_size=5))
def test_a_round_of_records_is_the_encoders_bytes(start: int, at_ms: int, envelopes: list[bytes]) -> None:
    assert encode_records(start, at_ms, envelopes) == [
        _reference(i, at_ms, e) for i, e in enumerate(envelopes, start)
    ]
