"""Ingesting verified entries into the member's bank and queue.

A page at a time, inside the caller's transaction (a sync page), in ledger order: key events are
kept (what a compromised key signed after its compromise point is undone: its signal
versions dropped and the last untainted version restored, its retractions and
opinions undone, queue items withdrawn or matched again), signals are banked and re-matched against the member's own content as
their type says (:class:`exchange.core.signals.Content`), retractions withdraw queue
items, opinions are banked. An entry that failed verification is quarantined.
Consecutive signals of distinct keys are banked with one batched write
(:meth:`clients.bank.Bank.add_signals`); any other entry, or a second version of a
signal in the run, writes the run first, so the page ends as entry-by-entry would.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from clients.accounts import AccountLookup, account_ref, lookup_accounts
from clients.bank import Bank, Match
from clients.client import claimed_index
from clients.content import ContentStore
from clients.content_index import ContentIndex
from clients.media import MediaHashes
from clients.queue import ModerationQueue
from clients.routing import Router
from clients.store import MemberStore
from exchange.core import signals
from exchange.core.entries import enum_label
from exchange.core.errors import UntrustedEntry
from exchange.core.keys import KeyId
from exchange.core.verify import EntryVerifier, VerifiedEntry
from exchange.pb.trustwire.v1 import entries_pb2 as pb

__all__ = ["Ingester", "SyncReport"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class SyncReport:
    verified: int = 0
    quarantined: int = 0
    key_events: int = 0
    signals: int = 0
    retractions: int = 0
    opinions: int = 0
    queued: int = 0
    withdrawn: int = 0
    expired: int = 0
    opinions_published: int = 0
    next_index: int = 0
    head: int = 0
    quarantine_reasons: list[str] = field(default_factory=list)
    compromised: int = 0  # of ``quarantined``: expected (a compromised key's entries)

    @property
    def corrupt(self) -> int:
        """Quarantined entries that are not expected: what makes a sync fail (exit 8)."""
        return self.quarantined - self.compromised


class Ingester:
    def __init__(
        self,
        store: MemberStore,
        bank: Bank,
        queue: ModerationQueue,
        content: ContentStore,
        router: Router,
        clock_ms: Callable[[], int],
        account_lookup: AccountLookup | None = None,
    ) -> None:
        self._store = store
        self._bank = bank
        self._queue = queue
        self._content = content
        self._router = router
        self._clock_ms = clock_ms
        self.account_lookup = account_lookup
        self._content_indexes: dict[str, ContentIndex] = {}

    def content_changed(self, h: MediaHashes) -> None:
        """Keep the retro-hunt indexes already built in step with a newly hashed file."""
        for name, index in self._content_indexes.items():
            kind = signals.signal_type(name)
            found = h.get(kind.content_type())
            ok = found is not None and (found.quality is None or found.quality >= kind.min_quality)
            index.put(h.path, found.value if ok and found is not None else None)

    def apply_page(
        self, results: Iterable[tuple[bytes, VerifiedEntry | UntrustedEntry]], verifier: EntryVerifier,
        report: SyncReport, admit: Callable[[VerifiedEntry | UntrustedEntry], VerifiedEntry | UntrustedEntry],
    ) -> None:
        """Apply a page's verification results in ledger order, batching runs of signals.
        ``admit`` (the recipient's right to receive) sees the bank as entry by entry would:
        what it reads is written first; for a signal it must not read the bank."""
        run: list[tuple[pb.Signal, int, str, int]] = []
        keys: set[tuple[str, str]] = set()
        for raw, checked in results:
            if not (isinstance(checked, VerifiedEntry) and isinstance(checked.entry, pb.Signal)):
                self._bank_signals(run, report)  # a retraction or opinion is admitted by what is banked
                run, keys = [], set()
            v = admit(checked)
            if isinstance(v, VerifiedEntry) and isinstance(e := v.entry, pb.Signal) \
                    and (e.member_id, e.signal_id) not in keys:
                report.verified += 1
                report.signals += 1
                run.append((e, v.index, v.keyid, v.accepted_at_ms))
                keys.add((e.member_id, e.signal_id))
                continue
            self._bank_signals(run, report)
            run, keys = [], set()
            self.apply(raw, v, verifier, report)
        self._bank_signals(run, report)

    def _bank_signals(self, run: list[tuple[pb.Signal, int, str, int]], report: SyncReport) -> None:
        """Bank a run of distinct signals at once, then match each new one, in order (the
        member's files with an exact hash looked up once per type for the run)."""
        fresh = [s for (s, *_), new in zip(run, self._bank.add_signals(run), strict=True) if new]
        kinds = {t: signals.signal_type(t) for t in {s.type for s in fresh}}  # once per type, not per entry
        exact: dict[str, list[str]] = {}
        for s in fresh:
            kind = kinds[s.type]
            if kind.content is signals.Content.MEDIA and kind.matcher not in (signals.Matcher.SCAN,
                                                                               signals.Matcher.HAMMING):
                exact.setdefault(kind.content_type(), []).append(s.value)
        refs = {t: self._content.refs_with_many(t, values) for t, values in exact.items()}
        content_type = {t: kind.content_type() for t, kind in kinds.items()}
        for s in fresh:
            if kinds[s.type].content is signals.Content.NONE:
                continue
            found = refs.get(content_type[s.type])
            if found is None:
                report.queued += self.rematch(s)
            elif hits := found.get(s.value):  # the common case, no file of ours has it: nothing to do
                report.queued += self.rematch(s, [(r, 0) for r in hits])

    def apply(self, raw: bytes, v: VerifiedEntry | UntrustedEntry, verifier: EntryVerifier, report: SyncReport) -> None:
        """Apply one verification result to the bank and queue."""
        if isinstance(v, UntrustedEntry):
            # the index the record claims: the verifier's position is wrong after records
            # hidden from this member, and repeats for consecutive bad records
            index = claimed_index(raw, fallback=verifier.last_index + 1)
            self._store.quarantine(index, str(v), raw, self._clock_ms())
            report.quarantined += 1
            report.quarantine_reasons.append(str(v))
            log.warning("quarantined: %s", v)
            return
        report.verified += 1
        e = v.entry
        if isinstance(e, pb.KeyEvent):
            self._store.add_key_event(v.index, v.record)
            report.key_events += 1
            if e.WhichOneof("event") == "key_revoked" and e.key_revoked.compromised:
                self._quarantine_compromised(verifier, KeyId(e.key_revoked.keyid), v.index, report)
        elif isinstance(e, pb.Signal):
            report.signals += 1
            if self._bank.add_signal(e, v.index, v.keyid, v.accepted_at_ms):
                report.queued += self.rematch(e)
        elif isinstance(e, pb.Retraction):
            report.retractions += 1
            self._bank.retract(e.signal.member_id, e.signal.signal_id, v.index, v.accepted_at_ms, v.keyid)
            reason = enum_label(pb.RetractionReason, e.reason, "RETRACTION_REASON_")  # open: may be undeclared
            report.withdrawn += self._queue.withdraw(e.signal.member_id, e.signal.signal_id, f"retracted: {reason}")
        elif isinstance(e, pb.Opinion):
            report.opinions += 1
            self._bank.add_opinion(e, v.index, v.keyid, v.accepted_at_ms)

    def _quarantine_compromised(
        self, verifier: EntryVerifier, keyid: KeyId, revoked_at_index: int, report: SyncReport
    ) -> None:
        """Retroactively quarantine what a stolen key signed before its revocation reached us."""
        key = verifier.directory.keys[keyid]
        dropped, restored = self._bank.drop_tainted(key)
        for index, publisher, signal_id in dropped:
            reason = (
                f"entry {index}: compromised-key: signed by key {keyid[:16]}… after its compromise "
                f"(revoked at entry {revoked_at_index})"
            )
            self._store.quarantine(index, reason, b"", self._clock_ms())
            report.withdrawn += self._queue.withdraw(publisher, signal_id, "signal signed by a compromised key")
            report.quarantined += 1
            report.compromised += 1
            report.quarantine_reasons.append(reason)
            log.warning("retroactively quarantined: %s", reason)
        for publisher, signal_id in restored:  # the last untainted version is back: match it again
            back = self._bank.get(publisher, signal_id)
            if back is not None and back.retracted_index is None:
                report.queued += self.rematch(pb.Signal(member_id=publisher, signal_id=signal_id,
                                                        type=back.type, value=back.value))
        for index, publisher, signal_id in self._bank.restore_tainted_retractions(key):
            reason = (
                f"entry {index}: compromised-key: a retraction signed by key {keyid[:16]}… after its compromise"
                f" (revoked at entry {revoked_at_index}); the signal is restored"
            )
            self._store.quarantine(index, reason, b"", self._clock_ms())
            report.quarantined += 1
            report.compromised += 1
            report.quarantine_reasons.append(reason)
            log.warning("retroactively undone: %s", reason)
            back = self._bank.get(publisher, signal_id)
            if back is not None:  # its queue items were withdrawn by the retraction: match it again
                report.queued += self.rematch(pb.Signal(member_id=publisher, signal_id=signal_id,
                                                        type=back.type, value=back.value))

    def sweep_expired(self, report: SyncReport | None = None) -> int:
        """Withdraw the open queue items of signals whose ``valid_until`` has passed."""
        expired = self._bank.sweep_expired()
        for s in expired:
            n = self._queue.withdraw(s.publisher, s.signal_id, "expired")
            if report is not None:
                report.withdrawn += n
        return len(expired)

    # -- re-matching a new signal against the member's own content -------------------------

    def rematch(self, s: pb.Signal, media_hits: list[tuple[str, int]] | None = None) -> int:
        """Match a newly banked signal against the member's own content, as its type says
        (``media_hits``: its (ref, distance) among the member's files, if already looked up)."""
        kind = signals.signal_type(s.type)
        if kind.content is signals.Content.NONE:
            return 0
        hits: list[tuple[str, int]] = []
        if kind.content is signals.Content.MEDIA:
            hits = self._media_hits(kind, s.value) if media_hits is None else media_hits
            if not hits:
                return 0  # the common case: nothing of ours matches; skip reading the signal back
        banked = self._bank.get(s.member_id, s.signal_id)
        if banked is None or not banked.live_at(self._clock_ms()):
            return 0
        if kind.content is signals.Content.ACCOUNT:
            ids = lookup_accounts(self.account_lookup, banked.value, banked.publisher, banked.signal_id)
            hits = [(account_ref(i), 0) for i in ids]
        return sum(self._router.route(Match(content_ref=ref, signal=banked, distance=d)) for ref, d in hits)

    def _media_hits(self, kind: signals.SignalType, value: str) -> list[tuple[str, int]]:
        """(ref, distance) of the member's hashed files a signal value matches."""
        if kind.matcher is signals.Matcher.SCAN:
            stored = self._content.all_of(kind.content_type(), kind.min_quality)
            return [(ref, d) for ref, v in stored if (d := kind.distance(value, v)) is not None]
        if kind.matcher is not signals.Matcher.HAMMING:
            return [(ref, 0) for ref in self._content.refs_with(kind.content_type(), value)]
        return self._content_index(kind).search(value, self._bank.pdq_threshold)

    def _content_index(self, kind: signals.SignalType) -> ContentIndex:
        """An index over the member's own hashes of a Hamming type (those reaching its
        min_quality): a new signal is matched by lookup, not by a scan of every file.
        Built on first use, then kept up to date by :meth:`content_changed`."""
        cached = self._content_indexes.get(kind.name)
        if cached is None:
            rows = self._content.all_of(kind.content_type(), kind.min_quality)
            cached = self._content_indexes[kind.name] = ContentIndex.build(rows, self._bank.pdq_threshold)
        return cached
