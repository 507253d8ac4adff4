"""Admission: decide, envelope by envelope, what enters the ledger.

Two phases. The first is stateless and runs in parallel: decode the envelope, find
the signing key, verify the signature over the exact bytes, and only then decode
and validate the entry and check that the authenticated caller is its publisher.
The second runs under one lock in ledger order: idempotency, the acceptance rule at
the index the entry will get (:func:`exchange.core.acceptance.check_at`: key
validity, group and TLP rules), signal existence and visibility. The append comes
after the lock: several batches are in flight at once (batch N+1 is verified and
checked while N is written), the ledger decides their order and groups them into one
transaction (:meth:`exchange.server.ledger.SqliteLedger.append`), and re-checks at
its stamp what may have changed since (idempotency, the key at ``accepted_at``). A
receipt exists only after commit.

Each envelope is decoded once, in phase 1; what admission decided comes back as an
:class:`Admitted`, with the decoded entry, so metrics label it without parsing again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from exchange.core.acceptance import check_at
from exchange.core.entries import Entry, EntryKind
from exchange.core.errors import NotFound, TrustwireError, WrongMember
from exchange.core.keydir import KeyDirectory
from exchange.core.keys import key_id
from exchange.pb.trustwire.v1 import entries_pb2 as pb
from exchange.server.ledger import Ledger, Outcome, SignalState, Submission
from exchange.server.quotas import Quotas
from exchange.server.verification import Checked, VerifierPool

__all__ = ["Admission", "Admitted", "Outcome"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Admitted:
    """What admission decided for one envelope."""

    outcome: Outcome
    decoded: tuple[EntryKind, Entry] | None  # None: phase 1 refused it before (or while) decoding
    duplicate: bool = False  # already in the ledger: the outcome is its original receipt


class Admission:
    def __init__(
        self,
        ledger: Ledger,
        operator_key: bytes,
        clock_ms: Callable[[], int],
        quotas: Quotas,
        verifier: VerifierPool | None = None,
        reserved_keys: Mapping[str, str] | None = None,
    ) -> None:
        """``reserved_keys``: key id → what it is, for keys that may never be enrolled
        as a member key (the log key; the operator key always is)."""
        self._ledger = ledger
        self.operator_key = operator_key
        self.operator_keyid = key_id(operator_key)
        self._clock_ms = clock_ms
        self._quotas = quotas
        self._verifier = verifier or VerifierPool(workers=1)
        self._lock = threading.Lock()
        self._reserved: Mapping[str, str] = dict(reserved_keys or {})

    @property
    def directory(self) -> KeyDirectory:
        """The key directory as of the ledger head (owned by the ledger)."""
        return self._ledger.directory

    # -- phase 1: stateless, parallel (exchange/server/verification.py) ---------------

    def _check_all(self, principal: str, envelopes: Sequence[bytes]) -> list[Checked | TrustwireError]:
        return self._verifier.check(principal, envelopes, self.operator_key, self.directory)

    # -- phase 2: stateful, in ledger order ------------------------------------------

    def publish(self, principal: str, envelopes: Sequence[bytes]) -> list[Outcome]:
        return [a.outcome for a in self.admit(principal, envelopes)]

    def admit(self, principal: str, envelopes: Sequence[bytes]) -> list[Admitted]:
        """Both phases and the append for one batch, in the envelopes' order."""
        self._quotas.take(principal, len(envelopes))
        checked = self._check_all(principal, envelopes)
        with self._lock:
            slots, submissions, known = self._admit_locked(checked)
        outcomes = self._ledger.append(submissions) if submissions else []
        out: list[Admitted] = []
        for item, slot in zip(checked, slots, strict=True):
            if isinstance(item, TrustwireError):
                out.append(Admitted(item, None))
                continue
            outcome = outcomes[slot] if isinstance(slot, int) else slot
            out.append(Admitted(outcome, (item.kind, item.entry), item.envelope.raw in known))
        return out

    def _admit_locked(
        self, checked: list[Checked | TrustwireError]
    ) -> tuple[list[int | TrustwireError], list[Submission], set[bytes]]:
        """Member rules against the ledger's state: each envelope's slot in the
        submissions (or its refusal), the submissions, and the envelopes already known.

        Key events are checked here for a quick answer and again by the ledger, in
        order, which has the last word (another batch in flight, or another replica,
        may move it on).
        """
        ledger = self._ledger
        directory = ledger.directory
        staged_dir: KeyDirectory | None = None
        signals_in_batch: set[tuple[str, str]] = set()
        submissions: list[Submission] = []
        slots: list[int | TrustwireError] = []
        now = self._clock_ms()
        head = ledger.head()
        digests = [item.envelope.digest if isinstance(item, Checked) else b"" for item in checked]
        receipts = ledger.receipts_for([d for d in digests if d])
        known: set[bytes] = set()
        states = ledger.signals({  # the signals the batch's retractions and opinions name: one lookup
            (e.signal.member_id, e.signal.signal_id) for item in checked
            if isinstance(item, Checked) and isinstance(e := item.entry, pb.Retraction | pb.Opinion)
        })
        for item, digest in zip(checked, digests, strict=True):
            if isinstance(item, TrustwireError):
                slots.append(item)
                continue
            index = head + len(submissions)
            if digest in receipts:  # re-publishing skips the rules; the ledger answers the original receipt
                known.add(item.envelope.raw)
            else:
                try:
                    if isinstance(item.entry, pb.KeyEvent):
                        staged_dir = staged_dir or directory.clone()
                        check_at(item, staged_dir, index, now, self._reserved)
                    else:
                        check_at(item, directory, index, now)
                        self._check_member_entry(item, directory, signals_in_batch, states)
                except TrustwireError as exc:
                    slots.append(exc)
                    continue
            slots.append(len(submissions))
            submissions.append(Submission(
                envelope=item.envelope.raw, digest=digest, decoded=(item.kind, item.entry), keyid=item.envelope.keyid,
            ))
        return slots, submissions, known

    def _check_member_entry(
        self,
        item: Checked,
        directory: KeyDirectory,
        signals_in_batch: set[tuple[str, str]],
        states: Mapping[tuple[str, str], SignalState],
    ) -> None:
        entry = item.entry
        if isinstance(entry, pb.Signal):  # its sharing was checked by check_at
            signals_in_batch.add((item.publisher, entry.signal_id))
            return
        if not isinstance(entry, pb.Retraction | pb.Opinion):
            raise TypeError(f"unexpected entry {type(entry).__name__}")
        ref = (entry.signal.member_id, entry.signal.signal_id)
        state = states.get(ref)
        visible = state is not None and (
            state.publisher == item.publisher or any(g in directory.groups_of(item.publisher) for g in state.audience)
        )
        if isinstance(entry, pb.Retraction):
            if ref[0] != item.publisher and visible:
                raise WrongMember(f"member {item.publisher} may retract only its own signals, not one of {ref[0]}")
            allowed = ref[0] == item.publisher and (state is not None or ref in signals_in_batch)
        else:
            allowed = (ref in signals_in_batch and ref[0] == item.publisher) or visible
        if not allowed:
            raise NotFound(f"member {item.publisher} has no access to a signal {ref[1]!r} of member {ref[0]}")
