"""Entry kinds, their DSSE payload types, strict decoding and stateless validation.

A payload is decoded only after its signature has been verified, and must be the
canonical protobuf encoding of its message (no unknown fields). Validation here is
what can be checked from the entry alone; rules that need the ledger or the key
directory (group membership, key validity, signal existence) live with their state.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NewType, TypeAlias

from google.protobuf.message import DecodeError, Message
from google.protobuf.timestamp_pb2 import Timestamp

from exchange.core import signals
from exchange.core.errors import InvalidValue, MalformedEntry
from exchange.pb.trustwire.v1 import entries_pb2 as pb

__all__ = [
    "enum_label",
    "Entry",
    "EntryKind",
    "GroupId",
    "MemberId",
    "OPERATOR",
    "PAYLOAD_TYPES",
    "decode_entry",
    "encode_entry",
    "group_id",
    "member_id",
    "ms_to_timestamp",
    "publisher_of",
    "timestamp_to_ms",
    "validate_entry",
]

MemberId = NewType("MemberId", str)

TLP_BY_NAME = {
    "clear": pb.TLP_CLEAR, "green": pb.TLP_GREEN, "amber": pb.TLP_AMBER,
    "amber+strict": pb.TLP_AMBER_STRICT, "red": pb.TLP_RED,
}
SEVERITY_BY_NAME = {
    "low": pb.SEVERITY_LOW, "medium": pb.SEVERITY_MEDIUM, "high": pb.SEVERITY_HIGH, "critical": pb.SEVERITY_CRITICAL,
}
RETRACTION_REASON_BY_NAME = {
    "false_positive": pb.RETRACTION_REASON_FALSE_POSITIVE, "error": pb.RETRACTION_REASON_ERROR,
    "legal": pb.RETRACTION_REASON_LEGAL, "expired": pb.RETRACTION_REASON_EXPIRED,
}
VERDICT_BY_NAME = {
    "seen": pb.VERDICT_SEEN, "true_positive": pb.VERDICT_TRUE_POSITIVE,
    "false_positive": pb.VERDICT_FALSE_POSITIVE, "disputed": pb.VERDICT_DISPUTED,
}


def by_name(names: dict[str, int], value: str, what: str) -> int:
    """Look up an enum value by its lowercase name, or raise InvalidValue listing the choices."""
    try:
        return names[value.lower()]
    except KeyError:
        raise InvalidValue(f"{what} must be one of {', '.join(names)}") from None

GroupId = NewType("GroupId", str)

OPERATOR = MemberId("operator")
"""The reserved principal id of the exchange operator."""

Entry: TypeAlias = pb.Signal | pb.Retraction | pb.Opinion | pb.KeyEvent


class EntryKind(StrEnum):
    SIGNAL = "signal"
    RETRACTION = "retraction"
    OPINION = "opinion"
    KEY_EVENT = "keyevent"

    @property
    def payload_type(self) -> str:
        return f"application/vnd.trustwire.{self.value}.v1+protobuf"


_MESSAGES: dict[EntryKind, type[Message]] = {
    EntryKind.SIGNAL: pb.Signal,
    EntryKind.RETRACTION: pb.Retraction,
    EntryKind.OPINION: pb.Opinion,
    EntryKind.KEY_EVENT: pb.KeyEvent,
}
PAYLOAD_TYPES: dict[str, EntryKind] = {k.payload_type: k for k in EntryKind}

_MEMBER_ID = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}\Z")
_GROUP_ID = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}\Z")
_SIGNAL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}\Z")
_LABEL = re.compile(r"^[a-z0-9][a-z0-9_.:-]{0,63}\Z")
_SEVERITIES = frozenset(pb.Severity.values())
_TLPS = frozenset(pb.Tlp.values()) - {pb.TLP_UNSPECIFIED}
MAX_LABELS = 32
MAX_RELATED = 64
MAX_DESCRIPTION = 512


def member_id(text: str) -> MemberId:
    if not _MEMBER_ID.match(text):
        raise InvalidValue("member ids are 2..63 lowercase letters, digits and hyphens")
    return MemberId(text)


def group_id(text: str) -> GroupId:
    if not _GROUP_ID.match(text):
        raise InvalidValue("group ids are 2..63 lowercase letters, digits and hyphens")
    return GroupId(text)


def ms_to_timestamp(ms: int) -> Timestamp:
    return Timestamp(seconds=ms // 1000, nanos=(ms % 1000) * 1_000_000)


def timestamp_to_ms(ts: Timestamp) -> int:
    return ts.seconds * 1000 + ts.nanos // 1_000_000


def encode_entry(entry: Entry) -> tuple[str, bytes]:
    """Return (payload_type, canonical payload bytes) for an entry message."""
    for kind, cls in _MESSAGES.items():
        if isinstance(entry, cls):
            return kind.payload_type, entry.SerializeToString(deterministic=True)
    raise TypeError(f"not an entry message: {type(entry).__name__}")


def decode_entry(payload_type: str, payload: bytes) -> tuple[EntryKind, Entry]:
    """Decode a verified payload; raise MalformedEntry for anything non-canonical."""
    kind = PAYLOAD_TYPES.get(payload_type)
    if kind is None:
        raise MalformedEntry("unknown payload_type; expected application/vnd.trustwire.<kind>.v1+protobuf")
    msg = _MESSAGES[kind]()
    try:
        msg.ParseFromString(payload)
    except DecodeError as exc:
        raise MalformedEntry(f"payload is not a valid {kind.value} protobuf") from exc
    msg.DiscardUnknownFields()  # else they are re-emitted and pass the canonical check
    if msg.SerializeToString(deterministic=True) != payload:
        raise MalformedEntry(
            f"{kind.value} payload is not canonically encoded (PROTOCOL.md §2: fields in number order, "
            "no explicit default values, no unknown or repeated fields)"
        )
    return kind, msg  # type: ignore[return-value]


def parse_payload(kind: EntryKind, payload: bytes) -> Entry:
    """Parse a payload already checked by :func:`decode_entry` (no checks repeated)."""
    msg = _MESSAGES[kind]()
    msg.ParseFromString(payload)
    return msg  # type: ignore[return-value]


def publisher_of(entry: Entry) -> MemberId:
    """The principal that must have signed the entry."""
    if isinstance(entry, pb.KeyEvent):
        return OPERATOR
    return MemberId(entry.member_id)


def _check_timestamp(name: str, ts: Timestamp, required: bool) -> None:
    if required and ts.seconds <= 0:
        raise MalformedEntry(f"{name} is required")
    if not 0 <= ts.nanos < 1_000_000_000:
        raise MalformedEntry(f"{name} nanos must be 0..999999999")
    if ts.nanos % 1_000_000:
        raise MalformedEntry(f"{name} has sub-millisecond precision; round it to milliseconds")


def _validate_signal(s: pb.Signal) -> None:
    # each field is read once (reading a protobuf field builds a new Python object), and
    # the fields a publisher repeats from entry to entry are checked once per distinct shape
    _require(_SIGNAL_ID.match(s.signal_id), "signal_id must be 1..128 letters, digits and ._:-")
    rule, labels = s.value_rule, s.labels
    # the sharing as its bytes (one C call; a tuple of its groups costs about three times
    # as much): the bytes hold exactly its groups and TLP, whatever their order on the wire
    _known_shape(s.member_id, rule, tuple(labels) if labels else (), s.confidence, s.severity,
                 s.sharing.SerializeToString())
    kind = signals.signal_type(s.type)  # not remembered: the registry is open
    kind.check(s.value, rule or signals.LEGACY_RULE)
    _check_timestamp("created_at", s.created_at, required=True)
    has_from, has_until = s.HasField("valid_from"), s.HasField("valid_until")
    if has_from:
        _check_timestamp("valid_from", s.valid_from, required=False)
    if has_until:
        _check_timestamp("valid_until", s.valid_until, required=False)
    if has_until and has_from:
        _require(timestamp_to_ms(s.valid_until) > timestamp_to_ms(s.valid_from), "valid_until must be after valid_from")
    related = s.related
    if related:
        _require(len(related) <= MAX_RELATED, f"at most {MAX_RELATED} related ids")
        _require(all(_SIGNAL_ID.match(r) for r in related), "related entries are signal ids")
    _require(len(s.description) <= MAX_DESCRIPTION, f"description is at most {MAX_DESCRIPTION} characters")


@functools.lru_cache(maxsize=4096)
def _known_shape(
    member: str, rule: int, labels: tuple[str, ...], confidence: int, severity: int, sharing_bytes: bytes,
) -> None:
    """The checks on a signal's repeated fields (publisher, value rule, labels,
    confidence, severity, sharing: its serialized bytes, which hold exactly its groups
    and TLP), remembered for the few shapes a ledger repeats (only valid ones are
    cached: a failure raises)."""
    sharing = pb.Sharing.FromString(sharing_bytes)
    groups, tlp = tuple(sharing.groups), sharing.tlp
    member_id(member)
    if rule not in (0, signals.CURRENT_RULE):
        raise InvalidValue(f"value_rule is {signals.CURRENT_RULE}, or omitted for rule 1")
    if labels:
        _require(len(labels) <= MAX_LABELS, f"at most {MAX_LABELS} labels")
        _require(all(_LABEL.match(label) for label in labels), "labels are lowercase tags like 'csam' or 'src:hotline'")
        _require(len(set(labels)) == len(labels), "labels must be unique")
    _require(confidence <= 100, "confidence is 0..100")
    _require(severity in _SEVERITIES, "unknown severity")
    _require(len(groups) >= 1, "sharing needs at least one group")
    for g in groups:
        group_id(g)
    _require(len(set(groups)) == len(groups), "sharing groups must be unique")
    _require(tlp in _TLPS, "sharing needs a TLP level")


def _validate_ref(ref: pb.SignalRef) -> None:
    member_id(ref.member_id)
    _require(_SIGNAL_ID.match(ref.signal_id), "signal_id must be 1..128 letters, digits and ._:-")


def _validate_key_event(e: pb.KeyEvent) -> None:
    _check_timestamp("created_at", e.created_at, required=True)
    _require(e.WhichOneof("event") is not None, "key event carries no event")


def validate_entry(kind: EntryKind, entry: Entry) -> None:
    """Stateless checks on a decoded entry; raise InvalidInput subclasses."""
    try:
        if isinstance(entry, pb.Signal):
            _validate_signal(entry)
        elif isinstance(entry, pb.Retraction):
            member_id(entry.member_id)
            _validate_ref(entry.signal)
            _require(entry.reason != pb.RETRACTION_REASON_UNSPECIFIED, "retraction needs a reason")
            _check_timestamp("created_at", entry.created_at, required=True)
        elif isinstance(entry, pb.Opinion):
            member_id(entry.member_id)
            _validate_ref(entry.signal)
            _require(entry.verdict != pb.VERDICT_UNSPECIFIED, "opinion needs a verdict")
            _check_timestamp("created_at", entry.created_at, required=True)
        else:
            _validate_key_event(entry)
    except MalformedEntry:
        raise
    except InvalidValue as exc:
        # keep the precise subclass (e.g. NonNormalizedValue) but say which entry part
        raise type(exc)(f"{kind.value}: {exc.message}") from exc


def enum_label(enum: Any, value: int, prefix: str) -> str:
    """A protobuf enum value for display: its declared name without ``prefix``, in lower
    case, or its number when it has none. Entry enums are open (a retraction's reason
    and an opinion's verdict need only be non-zero, §1), so a verified entry may carry a
    value this build does not know, and reading it must not fail."""
    try:
        return str(enum.Name(value)).removeprefix(prefix).lower()
    except ValueError:
        return str(value)


def _require(ok: object, message: str) -> None:
    if not ok:
        raise MalformedEntry(message)


@dataclass(frozen=True, slots=True, kw_only=True)
class SignalKey:
    """Identifies every version of one signal."""

    publisher: MemberId
    signal_id: str
