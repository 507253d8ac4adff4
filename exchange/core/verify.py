"""End-to-end verification of ledger records, for members and auditors alike.

An :class:`EntryVerifier` replays the ledger in index order. For every record it
checks the DSSE signature over the exact bytes with a key the key directory (as of
that index) lets the publisher use, then decodes and re-validates the entry with
the same rules the exchange applies at admission. Key events must be signed by the
pinned operator key and are applied to the verifier's own directory, so nothing the
exchange says about keys is taken on trust.
"""

from __future__ import annotations

from dataclasses import dataclass

from exchange.core.dsse import Envelope
from exchange.core.entries import OPERATOR, Entry, EntryKind, MemberId, decode_entry, publisher_of, validate_entry
from exchange.core.errors import TrustwireError, UntrustedEntry
from exchange.core.keydir import KeyDirectory
from exchange.core.keys import KeyId, key_id
from exchange.core.records import Record
from exchange.pb.trustwire.v1 import entries_pb2 as pb

__all__ = ["EntryVerifier", "VerifiedEntry"]


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifiedEntry:
    index: int
    accepted_at_ms: int
    kind: EntryKind
    entry: Entry
    publisher: MemberId
    keyid: KeyId
    record: bytes

    @property
    def leaf_hash(self) -> bytes:
        from exchange.core.records import leaf_hash

        return leaf_hash(self.record)


class EntryVerifier:
    def __init__(self, operator_key: bytes, directory: KeyDirectory | None = None) -> None:
        self.operator_key = operator_key
        self.operator_keyid = key_id(operator_key)
        self.directory = directory or KeyDirectory()
        self.last_index = -1

    def verify(self, raw_record: bytes) -> VerifiedEntry:
        """Verify one record (and apply it if it is a key event); raise UntrustedEntry."""
        record = _decode_record(raw_record)
        i = record.index
        if i <= self.last_index:
            raise UntrustedEntry(f"entry {i}: delivered out of order (after {self.last_index})", cause="ledger-gap")
        try:
            verified = self._verify(record)
        except UntrustedEntry:
            raise
        except TrustwireError as exc:
            raise UntrustedEntry(f"entry {i}: {exc.reason}: {exc.message}", cause=exc.reason) from exc
        self.last_index = i
        return verified

    def _verify(self, record: Record) -> VerifiedEntry:
        env = Envelope.decode(record.envelope)
        signed_by_operator = env.keyid == self.operator_keyid
        if signed_by_operator:
            env.verify(self.operator_key)
        else:
            info = self.directory.keys.get(env.keyid)
            if info is None:
                raise UntrustedEntry(
                    f"entry {record.index}: unknown-key: key {env.keyid[:16]}… is not in the directory", cause="unknown-key"
                )
            env.verify(info.public_key)
        kind, entry = decode_entry(env.payload_type, env.payload)
        validate_entry(kind, entry)
        publisher = publisher_of(entry)
        if signed_by_operator != (publisher == OPERATOR):
            raise UntrustedEntry(
                f"entry {record.index}: wrong-member: only key events are signed by the operator", cause="wrong-member"
            )
        if isinstance(entry, pb.KeyEvent):
            self.directory.apply(entry, record.index)
        else:
            self.directory.signing_key(env.keyid, publisher, record.index, record.accepted_at_ms)
            if isinstance(entry, pb.Signal):
                self.directory.check_sharing(publisher, entry.sharing)
        return VerifiedEntry(
            index=record.index,
            accepted_at_ms=record.accepted_at_ms,
            kind=kind,
            entry=entry,
            publisher=publisher,
            keyid=env.keyid,
            record=record.raw,
        )


def _decode_record(raw: bytes) -> Record:
    try:
        return Record.decode(raw)
    except TrustwireError as exc:
        raise UntrustedEntry(f"entry ?: {exc.reason}: {exc.message}", cause=exc.reason) from exc
