"""End-to-end verification of ledger records, for members and auditors alike.

An :class:`EntryVerifier` replays the ledger in index order and applies to every
record the acceptance rule the exchange applied at admission
(:mod:`exchange.core.acceptance`): the signature over the exact bytes with a key the
key directory (as of that index) lets the publisher use, the entry re-validated.
Key events must be signed by the pinned operator key and are applied to the
verifier's own directory, so nothing the exchange says about keys is taken on trust.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from google.protobuf.message import DecodeError

from exchange.core.acceptance import (KeyTable, Signed, check_at, check_member_at, check_signed, directory_keys, find_key,
                                      key_table)
from exchange.core.dsse import Envelope
from exchange.core.entries import PAYLOAD_TYPES, Entry, EntryKind, MemberId, parse_payload, publisher_of
from exchange.core.errors import TrustwireError, UntrustedEntry
from exchange.core.keydir import KeyDirectory
from exchange.core.keys import KeyId
from exchange.core import record_view
from exchange.core.records import Record, accepted_at_ms
from exchange.pb.trustwire.v1 import views_pb2

__all__ = ["EntryVerifier", "Fact", "Passes", "Prechecker", "Submitted", "Verdicts", "VerifiedEntry", "signed_passes",
           "signed_verdicts"]


Fact = tuple[int, int, str, str, int, int]
"""What a worker read of a member's entry it showed passing (not a key event), compact
(cheap to ship back): (ledger index, accepted_at ms, signing key id, entry kind, payload
start, payload end in the record)."""


class Verdicts(NamedTuple):
    """A worker's answer for a page: one byte per record (1: the stateless half passed)
    and, by position, the :data:`Fact` of each member's entry shown passing in batch."""

    flags: bytes
    facts: dict[int, Fact]


def signed_verdicts(operator_key: bytes, keys: KeyTable, raws: Sequence[bytes]) -> Verdicts:
    """The stateless half of the rule (record decoding and :func:`check_signed`) for each
    record: what a verification worker process returns. Checked in batch by
    :func:`exchange.core.record_view.passes`, with :func:`check_signed` on the
    reference decoders for any record it cannot show passing (passed, but no fact)."""
    def reference(raw: bytes) -> bool:
        try:
            check_signed(Record.decode(raw).envelope, operator_key, keys)
        except TrustwireError:
            return False
        return True

    facts: dict[int, Fact] = {}

    def seen(f: record_view.Facts) -> None:  # the decoded entry is let go here
        if f.kind is not EntryKind.KEY_EVENT:
            facts[f.position] = (f.ledger_index, f.accepted_at_ms, f.keyid, f.kind.value, f.payload_at, f.payload_end)

    return Verdicts(record_view.passes(raws, operator_key, keys, reference, seen), facts)


def signed_passes(operator_key: bytes, keys: KeyTable, raws: Sequence[bytes]) -> bytes:
    """:func:`signed_verdicts`' one byte per record."""
    return signed_verdicts(operator_key, keys, raws).flags


Passes = Callable[[], "Verdicts | None"]
"""The result of a submitted precheck: the workers' :class:`Verdicts` (waits for them), or None."""


@dataclass(frozen=True, slots=True)
class Submitted:
    """:data:`Passes` of a page submitted by :meth:`EntryVerifier.submit`, with the
    number of directory keys the workers checked it against."""

    result: Passes
    keys: int

    def __call__(self) -> Verdicts | None:
        return self.result()


class Prechecker(Protocol):
    """Runs :func:`signed_verdicts` elsewhere (other processes), for :meth:`EntryVerifier.verify_many`."""

    def submit(self, operator_key: bytes, keys: dict[str, tuple[str, bytes]], raws: Sequence[bytes]) -> Passes | None:
        """Start checking; None to check them in the caller's process instead (a small page, say)."""
        ...


_KINDS = {kind.value: kind for kind in EntryKind if kind is not EntryKind.KEY_EVENT}  # a fact's kinds
_RESUBMITS = 4  # rounds of worker checks a page gets again as its key events add keys


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
    signed: Signed


class EntryVerifier:
    def __init__(self, operator_key: bytes, directory: KeyDirectory | None = None) -> None:
        self.operator_key = operator_key
        self.directory = directory or KeyDirectory()
        self.last_index = -1

    @property
    def _keys(self) -> KeyTable:
        return directory_keys(self.directory)

    def submit(
        self, raws: Sequence[bytes], pool: Prechecker | None, table: dict[str, tuple[str, bytes]] | None = None
    ) -> Passes | None:
        """Start the stateless half on ``pool``'s processes against the keys known now,
        or ``table`` (a :meth:`key_snapshot` taken earlier, for a caller on another
        thread): a record whose key comes later in the ledger fails there and is checked
        again in order; hand the result to :meth:`verify_many` as ``passed``."""
        if pool is None:
            return None
        table = key_table(self.directory) if table is None else table
        pending = pool.submit(self.operator_key, table, raws)
        return None if pending is None else Submitted(pending, len(table))

    def key_snapshot(self) -> dict[str, tuple[str, bytes]]:
        """The directory's keys now, as a table :meth:`submit` can take from another thread."""
        return key_table(self.directory)

    def verify_many(
        self, raws: Sequence[bytes], pool: Executor | Prechecker | None = None, workers: int = 2,
        passed: Passes | None = None,
    ) -> list[VerifiedEntry | UntrustedEntry]:
        """Verify records in order; the stateless half of the rule runs up front, on
        ``pool``'s threads when given (libsodium releases the GIL) or in a
        :class:`Prechecker`'s processes (``passed``: already submitted), the rest in order."""
        prechecker: Prechecker | None = None
        if pool is not None and not isinstance(pool, Executor):
            prechecker, pool = pool, None
            if passed is None:
                passed = self.submit(raws, prechecker)
        verdicts = passed() if passed is not None else None
        if verdicts is not None:
            known = passed.keys if isinstance(passed, Submitted) else len(self.directory.keys)
            return self._in_order_passed(raws, bytearray(verdicts.flags), dict(verdicts.facts), prechecker, known)
        if pool is None or len(raws) < 2 * workers:
            prechecked = [self._precheck(raw) for raw in raws]
        else:
            size = -(-len(raws) // workers)
            chunks = [raws[i : i + size] for i in range(0, len(raws), size)]
            prechecked = [k for part in pool.map(self._prechecks, chunks) for k in part]
        return self._in_order(raws, prechecked)

    def _in_order(self, raws: Sequence[bytes], prechecked: Sequence[_Checked | None]) -> list[VerifiedEntry | UntrustedEntry]:
        out: list[VerifiedEntry | UntrustedEntry] = []
        for raw, pre in zip(raws, prechecked, strict=True):
            try:
                out.append(self._verify_record(raw, pre))
            except UntrustedEntry as exc:
                out.append(exc)
        return out

    def _in_order_passed(
        self, raws: Sequence[bytes], flags: bytearray, facts: dict[int, Fact], pool: Prechecker | None, known: int
    ) -> list[VerifiedEntry | UntrustedEntry]:
        """In order, with the workers' verdicts (``flags`` and ``facts``, against the
        ``known`` keys of the directory when the page was submitted). A member's entry
        a worker showed passing is finished from its :data:`Fact` (:meth:`_from_fact`:
        the record is not parsed here again); any other passed record is rebuilt against
        the directory as of its index, its signature not checked again; one not passed
        is decided by the reference path. Keys added inside the page (a new member's key event) would send
        every later record of theirs down that path, signature and all: so when the
        directory has grown, the records still not passed go back to the workers, against
        the keys as of here, before the first of them is decided (at most
        ``_RESUBMITS`` times a page)."""
        out: list[VerifiedEntry | UntrustedEntry] = []
        rounds = 0
        for i, raw in enumerate(raws):
            grown = len(self.directory.keys) != known
            if not flags[i] and grown and pool is not None and rounds < _RESUBMITS:  # (no fact without a flag)
                known, rounds = len(self.directory.keys), rounds + 1
                self._resubmit(raws, flags, facts, i, pool)
            fact = facts.get(i)
            if fact is not None and (v := self._from_fact(raw, fact)) is not None:
                out.append(v)
                continue
            try:
                out.append(self._verify_record(raw, self._rebuild(raw) if flags[i] else None))
            except UntrustedEntry as exc:
                out.append(exc)
        return out

    def _from_fact(self, raw: bytes, fact: Fact) -> VerifiedEntry | None:
        """A member's entry from what a worker read of ``raw`` (its stateless half
        passed there): the key and sharing checked at its index against this directory
        (:func:`check_member_at`, as :func:`check_at`), the entry parsed from the
        payload's bytes in ``raw`` itself. None: not decided here (out of order, or a
        check failed), the reference path decides and says why. The workers are this
        member's own processes running this code over a copy of these very bytes, so
        what they read is what the reference path would read here."""
        index, at_ms, keyid, kind, start, end = fact
        if index <= self.last_index:
            return None
        try:
            entry = parse_payload(_KINDS[kind], raw[start:end])
            publisher = publisher_of(entry)
            check_member_at(keyid, publisher, entry, self.directory, index, at_ms)
        except (TrustwireError, DecodeError, KeyError):
            return None
        self.last_index = index
        return VerifiedEntry(index=index, accepted_at_ms=at_ms, kind=_KINDS[kind], entry=entry, publisher=publisher,
                             keyid=KeyId(keyid), record=raw)

    def _resubmit(
        self, raws: Sequence[bytes], flags: bytearray, facts: dict[int, Fact], start: int, pool: Prechecker
    ) -> None:
        """Check the records from ``start`` not passed yet on the workers again, against
        the directory's keys now; set ``flags`` (and ``facts``) for those that pass."""
        rest = [j for j in range(start, len(raws)) if not flags[j]]
        pending = self.submit([raws[j] for j in rest], pool)
        verdicts = pending() if pending is not None else None
        if verdicts is not None:
            for j, ok in zip(rest, verdicts.flags, strict=True):
                flags[j] = ok
            for position, fact in verdicts.facts.items():
                facts[rest[position]] = fact

    def _prechecks(self, raws: Sequence[bytes]) -> list[_Checked | None]:
        return [self._precheck(raw) for raw in raws]

    def _precheck(self, raw: bytes) -> _Checked | None:
        """The record with the stateless half of the rule passed against the directory
        as it is now (None: not passed yet; the in-order pass checks again and says why)."""
        try:
            record = Record.decode(raw)
            return _Checked(record, check_signed(record.envelope, self.operator_key, self._keys))
        except TrustwireError:
            return None

    def _rebuild(self, raw: bytes) -> _Checked | None:
        """What :meth:`_precheck` returns, for a record a worker found passing
        :func:`check_signed` (against a copy of this directory's keys): parsed again
        here in one pass (its canonical form, signature and entry are not checked
        twice). The key's owner is read again (a key id names one key and one member
        for good), so the check stands."""
        view = views_pb2.RecordView()
        try:
            view.ParseFromString(raw)
            env = view.envelope
            payload_type, payload, sig = env.payload_type, env.payload, env.signatures[0]
            kind = PAYLOAD_TYPES[payload_type]
            entry = parse_payload(kind, payload)
            publisher = publisher_of(entry)
            keyid = KeyId(sig.keyid)
            owner, _ = find_key(keyid, self.operator_key, self._keys)
            at_ms = accepted_at_ms(view)
        except (TrustwireError, KeyError, IndexError, DecodeError):
            return None
        if owner != publisher or at_ms is None:
            return None  # cannot happen for a record that passed; the in-order pass says why
        env_raw = raw[len(raw) - env.ByteSize():]  # canonical: the envelope is the record's last field
        record = Record(index=view.index, accepted_at_ms=at_ms, envelope=env_raw, raw=raw)
        envelope = Envelope(payload_type=payload_type, payload=payload, keyid=keyid, sig=sig.sig, raw=env_raw)
        return _Checked(record, Signed(envelope, kind, entry, publisher))

    def verify_passed(self, raw_record: bytes, passed: bool) -> VerifiedEntry:
        """:meth:`verify`, for a record whose stateless half was checked already
        (:func:`signed_passes`, against keys of this ledger) with the verdict ``passed``."""
        return self._verify_record(raw_record, self._rebuild(raw_record) if passed else None)

    def verify(self, raw_record: bytes) -> VerifiedEntry:
        """Verify one record (and apply it if it is a key event); raise UntrustedEntry."""
        return self._verify_record(raw_record, None)

    def _verify_record(self, raw_record: bytes, pre: _Checked | None) -> VerifiedEntry:
        """``pre``: the record already decoded and its signed bytes checked."""
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
        if pre is not None:
            # a key id names one public key: still finding it means the check stands
            find_key(pre.signed.envelope.keyid, self.operator_key, self._keys)
            signed = pre.signed
        else:
            signed = check_signed(record.envelope, self.operator_key, self._keys)
        check_at(signed, self.directory, record.index, record.accepted_at_ms)
        return VerifiedEntry(
            index=record.index,
            accepted_at_ms=record.accepted_at_ms,
            kind=signed.kind,
            entry=signed.entry,
            publisher=signed.publisher,
            keyid=KeyId(signed.envelope.keyid),
            record=record.raw,
        )


def _decode_record(raw: bytes) -> Record:
    try:
        return Record.decode(raw)
    except TrustwireError as exc:
        raise UntrustedEntry(f"entry ?: {exc.reason}: {exc.message}", cause=exc.reason) from exc
