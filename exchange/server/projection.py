"""What a ledger derives from each record, deterministically, in index order.

Every engine (and every replica of the Kafka engine) stores the same records and
must derive the same state from them: who may see the record, which signal it
creates or retracts, and the key directory. This module is that one function, so
derived state never depends on which replica admitted an entry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from exchange.core.dsse import Envelope
from exchange.core.entries import OPERATOR, Entry, EntryKind, decode_entry, publisher_of
from exchange.core.errors import TrustwireError
from exchange.pb.trustwire.v1 import entries_pb2 as pb

__all__ = ["Meta", "SignalLookup", "decode", "project"]

SignalLookup = Callable[[str, str], "tuple[str, ...] | None"]
"""(publisher, signal_id) → everyone who saw any version of it, or None."""


class Meta(NamedTuple):
    """A record's derived metadata: an immutable value built once per record on the
    append path (a NamedTuple: about a fifth of a frozen dataclass's construction cost)."""

    kind: str
    publisher: str
    audience: tuple[str, ...] | None  # None: public (key events)
    signal_id: str | None = None  # signals: the signal this version belongs to
    signal_audience: tuple[str, ...] | None = None  # signals: union over all versions
    retracts: tuple[str, str] | None = None
    event: pb.KeyEvent | None = None


_KIND_NAMES = {kind: kind.value for kind in EntryKind}  # a dict look-up, not the enum's property, per record


def decode(envelope: bytes) -> tuple[EntryKind, Entry] | None:
    """The entry an envelope carries, read structurally (no signature check), or None."""
    try:
        env = Envelope.decode(envelope)
        return decode_entry(env.payload_type, env.payload)
    except TrustwireError:
        return None


def project(envelope: bytes, seen_by: SignalLookup, decoded: tuple[EntryKind, Entry] | None = None) -> Meta:
    """Derive a record's metadata. The envelope was verified at admission, so only
    its structure is read here (``decoded`` spares decoding it again); a record that
    cannot be decoded is visible to no member (auditors still see it) and changes
    nothing."""
    if decoded is None:
        decoded = decode(envelope)
        if decoded is None:
            return Meta(kind="undecodable", publisher=OPERATOR, audience=())
    kind, entry = decoded
    name = _KIND_NAMES[kind]
    if isinstance(entry, pb.Signal):  # the hot case first; fields read once, Meta built positionally
        publisher = entry.member_id
        groups = tuple(entry.sharing.groups)
        signal_id = entry.signal_id
        before = seen_by(publisher, signal_id)
        union = tuple(sorted({*groups, *before})) if before else tuple(sorted(set(groups)))
        return Meta(name, publisher, groups, signal_id, union)
    if isinstance(entry, pb.KeyEvent):
        return Meta(kind=name, publisher=publisher_of(entry), audience=None, event=entry)
    ref = (entry.signal.member_id, entry.signal.signal_id)
    audience = seen_by(*ref) or ()
    return Meta(
        kind=name,
        publisher=entry.member_id,
        audience=audience,
        retracts=ref if kind is EntryKind.RETRACTION else None,
    )
