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
from exchange.server.ledger import Ledger, Outcome, Submission
from exchange.server.quotas import Quotas

__all__ = ["Admission", "Limits", "Outcome"]

log = logging.getLogger(__name__)



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

    @property
    def directory(self) -> KeyDirectory:
        """The key directory as of the ledger head (owned by the ledger)."""
        return self._ledger.directory

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
        """Member rules against the ledger's state, then one append for the batch.

        Key events are checked here for a quick answer and again by the ledger, in
        order, which has the last word (another replica may have moved it on).
        """
        ledger = self._ledger
        directory = ledger.directory
        staged_dir: KeyDirectory | None = None
        signals_in_batch: set[tuple[str, str]] = set()
        submissions: list[Submission] = []
        slots: list[int | TrustwireError] = []
        now = self._clock_ms()
        head = ledger.head()
        for item in checked:
            if isinstance(item, TrustwireError):
                slots.append(item)
                continue
            index = head + len(submissions)
            try:
                if ledger.receipt_for(item.envelope.digest) is None:  # re-publishing skips the rules
                    if isinstance(item.entry, pb.KeyEvent):
                        staged_dir = staged_dir or directory.clone()
                        staged_dir.apply(item.entry, index)
                    else:
                        directory.signing_key(item.envelope.keyid, item.publisher, index, now)
                        self._check_member_entry(item, directory, signals_in_batch)
            except TrustwireError as exc:
                slots.append(exc)
                continue
            slots.append(len(submissions))
            submissions.append(
                Submission(envelope=item.envelope.raw, digest=item.envelope.digest, decoded=(item.kind, item.entry))
            )
        outcomes = ledger.append(submissions)
        return [outcomes[s] if isinstance(s, int) else s for s in slots]

    def _check_member_entry(
        self, item: _Checked, directory: KeyDirectory, signals_in_batch: set[tuple[str, str]]
    ) -> None:
        entry = item.entry
        if isinstance(entry, pb.Signal):
            directory.check_sharing(item.publisher, entry.sharing)
            signals_in_batch.add((item.publisher, entry.signal_id))
            return
        if not isinstance(entry, pb.Retraction | pb.Opinion):
            raise TypeError(f"unexpected entry {type(entry).__name__}")
        ref = (entry.signal.member_id, entry.signal.signal_id)
        state = self._ledger.signal(*ref)
        if isinstance(entry, pb.Retraction):
            allowed = ref[0] == item.publisher and (state is not None or ref in signals_in_batch)
        elif ref in signals_in_batch and ref[0] == item.publisher:
            allowed = True
        else:
            allowed = state is not None and (
                state.publisher == item.publisher
                or any(g in directory.groups_of(item.publisher) for g in state.audience)
            )
        if not allowed:
            raise NotFound(f"member {item.publisher} has no access to a signal {ref[1]!r} of member {ref[0]}")
