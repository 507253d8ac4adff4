"""End-to-end verification of ledger records, for members and auditors alike.

An :class:`EntryVerifier` replays the ledger in index order. For every record it
checks the DSSE signature over the exact bytes with a key the key directory (as of
that index) lets the publisher use, then decodes and re-validates the entry with
the same rules the exchange applies at admission. Key events must be signed by the
pinned operator key and are applied to the verifier's own directory, so nothing the
exchange says about keys is taken on trust.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Executor
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


@dataclass(frozen=True, slots=True)
class _Checked:
    record: Record
    envelope: Envelope
    key: bytes


class EntryVerifier:
    def __init__(self, operator_key: bytes, directory: KeyDirectory | None = None) -> None:
        self.operator_key = operator_key
        self.operator_keyid = key_id(operator_key)
        self.directory = directory or KeyDirectory()
        self.last_index = -1

    def verify_many(
        self, raws: Sequence[bytes], pool: Executor | None = None, workers: int = 2
    ) -> list[VerifiedEntry | UntrustedEntry]:
        """Verify records in order; signatures are checked up front, on ``pool``'s
        threads when given (libsodium releases the GIL), the rest in order."""
        if pool is None or len(raws) < 2 * workers:
            verified_with = [self._signature_key(raw) for raw in raws]
        else:
            size = -(-len(raws) // workers)
            chunks = [raws[i : i + size] for i in range(0, len(raws), size)]
            verified_with = [k for part in pool.map(self._signature_keys, chunks) for k in part]
        out: list[VerifiedEntry | UntrustedEntry] = []
        for raw, pre in zip(raws, verified_with, strict=True):
            try:
                out.append(self._verify_record(raw, pre))
            except UntrustedEntry as exc:
                out.append(exc)
        return out

    def _signature_keys(self, raws: Sequence[bytes]) -> list[_Checked | None]:
        return [self._signature_key(raw) for raw in raws]

    def _signature_key(self, raw: bytes) -> _Checked | None:
        """The decoded record and envelope, and the key its signature verified with
        (None: not checked, or bad: the in-order pass will say why)."""
        try:
            record = Record.decode(raw)
            env = Envelope.decode(record.envelope)
            public_key = self._public_key(env.keyid)
            if public_key is None:
                return None
            env.verify(public_key)
            return _Checked(record, env, public_key)
        except TrustwireError:
            return None

    def _public_key(self, keyid: str) -> bytes | None:
        if keyid == self.operator_keyid:
            return self.operator_key
        info = self.directory.keys.get(keyid)  # type: ignore[call-overload]
        return None if info is None else info.public_key

    def verify(self, raw_record: bytes) -> VerifiedEntry:
        """Verify one record (and apply it if it is a key event); raise UntrustedEntry."""
        return self._verify_record(raw_record, None)

    def _verify_record(self, raw_record: bytes, pre: _Checked | None) -> VerifiedEntry:
        """``pre``: the record already decoded, its signature checked with ``pre.key``."""
        record = pre.record if pre is not None else _decode_record(raw_record)
        i = record.index
        if i <= self.last_index:
            raise UntrustedEntry(f"entry {i}: delivered out of order (after {self.last_index})", cause="ledger-gap")
        try:
            verified = self._verify(record, pre)
        except UntrustedEntry:
            raise
        except TrustwireError as exc:
            raise UntrustedEntry(f"entry {i}: {exc.reason}: {exc.message}", cause=exc.reason) from exc
        self.last_index = i
        return verified

    def _verify(self, record: Record, pre: _Checked | None = None) -> VerifiedEntry:
        env = pre.envelope if pre is not None else Envelope.decode(record.envelope)
        signed_by_operator = env.keyid == self.operator_keyid
        public_key = self._public_key(env.keyid)
        if public_key is None:
            raise UntrustedEntry(
                f"entry {record.index}: unknown-key: key {env.keyid[:16]}… is not in the directory", cause="unknown-key"
            )
        if pre is None or public_key != pre.key:
            env.verify(public_key)
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
