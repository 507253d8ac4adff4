"""Admission: decide, envelope by envelope, what enters the ledger.

Two phases. The first is stateless and runs in parallel: decode the envelope, find
the signing key, verify the signature over the exact bytes, and only then decode
and validate the entry and check that the authenticated caller is its publisher.
The second runs under one lock in ledger order: idempotency, key validity at the
index the entry will get, group and TLP rules, signal existence and visibility; it
ends with one ledger transaction for the batch. A receipt exists only after commit.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass

from exchange.core.dsse import Envelope
from exchange.core.entries import (
    OPERATOR,
    Entry,
    EntryKind,
    MemberId,
    decode_entry,
    publisher_of,
    validate_entry,
)
from exchange.core.errors import (
    NotFound,
    TrustwireError,
    UnknownKey,
    WrongMember,
)
from exchange.core.keydir import KeyDirectory
from exchange.core.keys import KeyId, key_id
from exchange.pb.trustwire.v1 import entries_pb2 as pb
from exchange.server.ledger import Ledger, Pending, Receipt, SignalState
from exchange.server.quotas import Quotas

__all__ = ["Admission", "Limits", "Outcome"]

log = logging.getLogger(__name__)

Outcome = Receipt | TrustwireError


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    parallel_threshold: int = 64  # batches at least this large verify in the pool


@dataclass(frozen=True, slots=True)
class _Checked:
    envelope: Envelope
    kind: EntryKind
    entry: Entry
    publisher: MemberId


class Admission:
    def __init__(
        self,
        ledger: Ledger,
        operator_key: bytes,
        clock_ms: Callable[[], int],
        quotas: Quotas,
        limits: Limits = Limits(),
        pool: Executor | None = None,
    ) -> None:
        self._ledger = ledger
        self.operator_key = operator_key
        self.operator_keyid = key_id(operator_key)
        self._clock_ms = clock_ms
        self._limits = limits
        self._quotas = quotas
        self._pool = pool
        self._lock = threading.Lock()
        self.directory = self._replay_directory()

    def _replay_directory(self) -> KeyDirectory:
        from exchange.core.records import Record

        directory = KeyDirectory()
        for raw in self._ledger.key_event_records(self._ledger.head()):
            rec = Record.decode(raw)
            env = Envelope.decode(rec.envelope)
            _, event = decode_entry(env.payload_type, env.payload)
            directory.apply(event, rec.index)  # type: ignore[arg-type]
        return directory

    # -- phase 1: stateless, parallel ---------------------------------------------

    def _public_key(self, directory: KeyDirectory, keyid: KeyId) -> bytes:
        if keyid == self.operator_keyid:
            return self.operator_key
        info = directory.keys.get(keyid)
        if info is None:
            raise UnknownKey(f"key {keyid[:16]}… is not in the key directory")
        return info.public_key

    def _check(self, principal: str, raw: bytes, directory: KeyDirectory) -> _Checked:
        env = Envelope.decode(raw)
        env.verify(self._public_key(directory, env.keyid))
        kind, entry = decode_entry(env.payload_type, env.payload)
        validate_entry(kind, entry)
        publisher = publisher_of(entry)
        if publisher != principal:
            raise WrongMember(f"caller {principal} cannot publish an entry of member {publisher}")
        signer_is_operator = env.keyid == self.operator_keyid
        if signer_is_operator != (publisher == OPERATOR):
            raise WrongMember("key events are signed by the operator key, and only they are")
        if not signer_is_operator and directory.keys[env.keyid].member_id != publisher:
            raise WrongMember(f"key {env.keyid[:16]}… does not belong to member {publisher}")
        return _Checked(env, kind, entry, publisher)

    def _check_all(self, principal: str, envelopes: Sequence[bytes]) -> list[_Checked | TrustwireError]:
        directory = self.directory

        def one(raw: bytes) -> _Checked | TrustwireError:
            try:
                return self._check(principal, raw, directory)
            except TrustwireError as exc:
                return exc

        if self._pool is not None and len(envelopes) >= self._limits.parallel_threshold:
            return list(self._pool.map(one, envelopes, chunksize=32))  # type: ignore[call-arg]
        return [one(raw) for raw in envelopes]

    # -- phase 2: stateful, in ledger order ------------------------------------------

    def publish(self, principal: str, envelopes: Sequence[bytes]) -> list[Outcome]:
        self._quotas.take(principal, len(envelopes))
        checked = self._check_all(principal, envelopes)
        with self._lock:
            return self._admit_locked(checked)

    def _admit_locked(self, checked: list[_Checked | TrustwireError]) -> list[Outcome]:
        ledger = self._ledger
        directory = self.directory
        staged_dir: KeyDirectory | None = None
        batch_signals: dict[tuple[str, str], SignalState] = {}
        pending: list[Pending] = []
        slots: list[int | TrustwireError | Receipt] = []
        by_digest: dict[bytes, int] = {}
        now = self._clock_ms()
        head = ledger.head()
        for item in checked:
            if isinstance(item, TrustwireError):
                slots.append(item)
                continue
            digest = item.envelope.digest
            if digest in by_digest:
                slots.append(by_digest[digest])
                continue
            known = ledger.receipt_for(digest)
            if known is not None:
                slots.append(known)
                continue
            index = head + len(pending)
            try:
                if isinstance(item.entry, pb.KeyEvent):
                    staged_dir = staged_dir or directory.clone()
                    staged_dir.apply(item.entry, index)
                    p = self._pending(item, None)
                else:
                    directory.signing_key(item.envelope.keyid, item.publisher, index, now)
                    p = self._member_entry(item, directory, batch_signals, index)
            except TrustwireError as exc:
                slots.append(exc)
                continue
            by_digest[digest] = len(pending)
            slots.append(len(pending))
            pending.append(p)
        receipts = ledger.append(pending)
        if staged_dir is not None:
            self.directory = staged_dir
        return [receipts[s] if isinstance(s, int) else s for s in slots]

    def _member_entry(
        self,
        item: _Checked,
        directory: KeyDirectory,
        batch_signals: dict[tuple[str, str], SignalState],
        index: int,
    ) -> Pending:
        entry = item.entry
        if isinstance(entry, pb.Signal):
            directory.check_sharing(item.publisher, entry.sharing)
            audience = tuple(entry.sharing.groups)
            key = (item.publisher, entry.signal_id)
            prior = batch_signals.get(key) or self._ledger.signal(*key)
            # retractions and opinions must reach everyone who saw any version
            seen_by = tuple(sorted(set(audience) | set(prior.audience if prior else ())))
            batch_signals[key] = SignalState(
                publisher=item.publisher, signal_id=entry.signal_id, audience=seen_by, last_index=index, retracted=False
            )
            return self._pending(item, audience, signal_id=entry.signal_id, signal_audience=seen_by)
        if not isinstance(entry, pb.Retraction | pb.Opinion):
            raise TypeError(f"unexpected entry {type(entry).__name__}")
        ref = (entry.signal.member_id, entry.signal.signal_id)
        state = batch_signals.get(ref) or self._ledger.signal(*ref)
        if isinstance(entry, pb.Retraction):
            allowed = state is not None and state.publisher == item.publisher
        else:
            allowed = state is not None and (
                state.publisher == item.publisher
                or any(g in directory.groups_of(item.publisher) for g in state.audience)
            )
        if state is None or not allowed:
            raise NotFound(f"member {item.publisher} has no access to a signal {ref[1]!r} of member {ref[0]}")
        return self._pending(item, state.audience, retracts=ref if isinstance(entry, pb.Retraction) else None)

    @staticmethod
    def _pending(
        item: _Checked,
        audience: tuple[str, ...] | None,
        *,
        signal_id: str | None = None,
        signal_audience: tuple[str, ...] | None = None,
        retracts: tuple[str, str] | None = None,
    ) -> Pending:
        return Pending(
            envelope=item.envelope.raw,
            digest=item.envelope.digest,
            kind=item.kind.value,
            publisher=item.publisher,
            audience=audience,
            signal_id=signal_id,
            signal_audience=signal_audience,
            retracts=retracts,
        )
