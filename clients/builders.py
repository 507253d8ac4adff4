"""Building a member's entries: signals (values normalized for their type),
retractions and opinions, ready to sign."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Required, TypedDict, Unpack

from google.protobuf.timestamp_pb2 import Timestamp

from exchange.core import signals
from exchange.core.entries import (
    RETRACTION_REASON_BY_NAME,
    SEVERITY_BY_NAME,
    TLP_BY_NAME,
    VERDICT_BY_NAME,
    by_name,
    ms_to_timestamp,
)
from exchange.pb.trustwire.v1 import entries_pb2 as pb

__all__ = ["EntryBuilder", "SignalOptions"]


class SignalOptions(TypedDict, total=False):
    """The keyword options of a signal (``groups`` is required)."""

    groups: Required[Sequence[str]]
    signal_id: str | None
    labels: Sequence[str]
    confidence: int
    severity: str  # low, medium, high, critical
    tlp: str  # clear, green, amber, amber+strict, red
    valid_from_ms: int | None
    valid_until_ms: int | None
    related: Sequence[str]
    description: str
    created_at_ms: int | None


class EntryBuilder:
    """Entries of one member, stamped by its clock."""

    def __init__(self, member_id: str, clock_ms: Callable[[], int]) -> None:
        self.member_id = member_id
        self._clock_ms = clock_ms

    def _at(self, created_at_ms: int | None) -> Timestamp:
        return ms_to_timestamp(created_at_ms if created_at_ms is not None else self._clock_ms())

    def signal(self, type: str, value: str, **options: Unpack[SignalOptions]) -> pb.Signal:
        """A Signal of this member with ``value`` normalized for its type under the current
        value rule (and within its limits: ``BroadValue`` otherwise)."""
        o = options
        created_at_ms = o.get("created_at_ms")
        s = pb.Signal(
            signal_id=o.get("signal_id") or uuid.uuid4().hex,
            member_id=self.member_id,
            type=type,
            value=signals.signal_value(type, value),
            value_rule=signals.CURRENT_RULE,
            labels=list(o.get("labels", ())),
            confidence=o.get("confidence", 50),
            severity=by_name(SEVERITY_BY_NAME, o.get("severity", "medium"), "severity"),  # type: ignore[arg-type]
            sharing=pb.Sharing(
                groups=list(o["groups"]),
                tlp=by_name(TLP_BY_NAME, o.get("tlp", "amber"), "tlp"),  # type: ignore[arg-type]
            ),
            related=list(o.get("related", ())),
            description=o.get("description", ""),
            created_at=self._at(created_at_ms),
        )
        valid_from_ms, valid_until_ms = o.get("valid_from_ms"), o.get("valid_until_ms")
        if valid_from_ms is not None:
            s.valid_from.CopyFrom(ms_to_timestamp(valid_from_ms))
        if valid_until_ms is not None:
            s.valid_until.CopyFrom(ms_to_timestamp(valid_until_ms))
        return s

    def retraction(self, signal_id: str, reason: str = "error", created_at_ms: int | None = None) -> pb.Retraction:
        return pb.Retraction(
            member_id=self.member_id,
            signal=pb.SignalRef(member_id=self.member_id, signal_id=signal_id),
            reason=by_name(RETRACTION_REASON_BY_NAME, reason, "reason"),  # type: ignore[arg-type]
            created_at=self._at(created_at_ms),
        )

    def opinion(self, publisher: str, signal_id: str, verdict: str, created_at_ms: int | None = None) -> pb.Opinion:
        return pb.Opinion(
            member_id=self.member_id,
            signal=pb.SignalRef(member_id=publisher, signal_id=signal_id),
            verdict=by_name(VERDICT_BY_NAME, verdict, "verdict"),  # type: ignore[arg-type]
            created_at=self._at(created_at_ms),
        )
