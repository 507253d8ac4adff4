"""The stateless half of the rule on many records at once: what a verification worker runs.

:meth:`Record.decode` then :meth:`Envelope.decode` parse and re-encode the record and
its envelope one after the other. ``views.proto`` types the record's envelope bytes
field as the Envelope it holds, so one C parse reads both layers and one deterministic
re-encoding compared with the record's bytes proves both canonical (a nested message
encodes the same wherever it sits, and a parse of bytes equal to a canonical encoding
reads each field exactly once). The payload stays bytes until its signature verifies.

:func:`passes` then works in three sweeps over the batch, so the Ed25519 checks run
back to back like a raw verify loop (the Python work between them no longer evicts
libsodium's tables): parse and find each key; verify every signature; decode and
validate every payload whose signature verified. Every check is the reference's own
function (``accepted_at_ms``, ``signature_of``, ``find_key``, ``verify_signature``,
``decode_entry``, ``validate_entry``, ``check_owner``). A record the view cannot show
passing is handed to ``fallback`` (the reference path), which decides; so a pass
here is always a pass there. An audit range and a member's worker also ask for the
:class:`Facts` read of each record shown passing, so their in-order half does not
parse the record again. tests/unit/test_record_view.py holds both to the same
verdicts on valid, mutated and forged records.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

from google.protobuf.message import DecodeError

from exchange.core.acceptance import KeyTable, check_owner, find_key
from exchange.core.dsse import MAX_ENVELOPE_BYTES, pae, signature_of
from exchange.core.entries import Entry, EntryKind, MemberId, decode_entry, publisher_of, validate_entry
from exchange.core.errors import TrustwireError
from exchange.core.keys import verify_signature
from exchange.core.records import accepted_at_ms
from exchange.pb.trustwire.v1 import views_pb2

__all__ = ["Facts", "passes"]


class Facts(NamedTuple):
    """What the batch pass read from a record it showed passing: what the in-order half
    of the rule needs, so it does not parse the record again (a tuple: one per record)."""

    position: int  # in the batch
    ledger_index: int
    accepted_at_ms: int
    keyid: str
    kind: EntryKind
    entry: Entry
    publisher: MemberId
    payload_at: int  # where the payload's bytes start in the record (they run len(payload) bytes)
    payload_end: int


def _canonical(view: views_pb2.RecordView, raw: bytes) -> bool:
    """True if ``raw`` is the canonical encoding of the view parsed from it (both layers)."""
    view.DiscardUnknownFields()  # recursive: else they are re-emitted and pass the comparison
    return view.SerializeToString(deterministic=True) == raw


_Parsed = tuple[str, bytes, str, bytes, str, bytes, int, int]


def _parsed(raw: bytes, operator_key: bytes, keys: KeyTable) -> _Parsed | None:
    """(owner, public key, keyid, sig, payload_type, payload, index, accepted_at ms) of a
    canonical record with a well-formed envelope signed by a known key; None: not shown here."""
    view = views_pb2.RecordView()
    try:
        view.ParseFromString(raw)
    except DecodeError:
        return None
    at_ms = accepted_at_ms(view)
    if at_ms is None or not _canonical(view, raw):
        return None
    env = view.envelope
    payload_type = env.payload_type
    try:
        keyid, sig = signature_of(payload_type, env.signatures)
        owner, public_key = find_key(keyid, operator_key, keys)
    except TrustwireError:
        return None
    return owner, public_key, keyid, sig, payload_type, env.payload, view.index, at_ms


def passes(
    raws: Sequence[bytes], operator_key: bytes, keys: KeyTable, fallback: Callable[[bytes], bool],
    seen: Callable[[Facts], object] | None = None,
) -> bytes:
    """One byte per record, 1 where the stateless half of the rule passes (as
    :func:`exchange.core.acceptance.check_signed` for verifiers: no admission policy);
    a record not shown passing here gets ``fallback(raw)``. ``seen`` (if given) is
    called with the :class:`Facts` of every record shown passing here, in order (a
    caller that keeps less than the decoded entry lets it go at once: holding a batch's
    entries costs a worker about 5 µs a record)."""
    out = bytearray(len(raws))
    parsed = []
    for i, raw in enumerate(raws):
        # an envelope is at most MAX_ENVELOPE_BYTES and the record a few bytes more: a
        # record at the limit takes the reference path, which checks the envelope's size
        p = _parsed(raw, operator_key, keys) if len(raw) <= MAX_ENVELOPE_BYTES else None
        if p is None:
            out[i] = fallback(raw)
        else:
            parsed.append((i, p))
    verified = []
    for i, p in parsed:  # back to back: the signatures, over the exact bytes received
        try:
            verify_signature(p[1], pae(p[4], p[5]), p[3])
        except TrustwireError:
            out[i] = fallback(raws[i])
            continue
        verified.append((i, p))
    for i, (owner, _, keyid, _, payload_type, payload, index, at_ms) in verified:  # only then decoded
        try:
            kind, entry = decode_entry(payload_type, payload)
            validate_entry(kind, entry)
            publisher = publisher_of(entry)
            check_owner(owner, publisher, keyid)
        except TrustwireError:
            out[i] = fallback(raws[i])
            continue
        out[i] = 1
        if seen is not None:
            # the first place these bytes sit in the record: any place holding them holds the same bytes
            at = raws[i].find(payload)
            seen(Facts(i, index, at_ms, keyid, kind, entry, publisher, at, at + len(payload)))
    return bytes(out)
