"""The member SDK: publish signed entries, consume the stream with end-to-end
verification, keep a bank, match content and feed the moderation queue.

    client = MemberClient(target, member_id="northwind", signer=key, operator_key=op_pub, state="nw.db")
    client.publish([client.signal("pdq", pdq_hex, labels=["csam"], groups=["hash-sharing"])])
    client.sync()                                  # verify every entry, fill bank + queue
    matches = client.match_files(["upload.jpg"])   # hash, match, enqueue per policy
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from clients.accounts import AccountIndicator, AccountLookup, account_ref
from clients.bank import Bank, BankSignal, Match
from clients.feedback import VERDICT_FOR_DECISION, Outbox
from clients.media import MIN_PDQ_QUALITY, MediaHashes, hash_file, iter_files
from clients.pdq_index import brute_force, pdq_words, pdq_words_many
from clients.policy import Action, Decision, MatchFacts, Policy
from clients.queue import ModerationQueue, QueueItem, State
from clients.store import MemberStore
from clients.transport import ClientTls, PublishOutcome, connect, origin_of_log_key, publish_envelopes, translate_errors
from exchange.core import signals
from exchange.core.dsse import sign_envelope
from exchange.core.entries import (
    RETRACTION_REASON_BY_NAME,
    SEVERITY_BY_NAME,
    TLP_BY_NAME,
    VERDICT_BY_NAME,
    Entry,
    by_name,
    encode_entry,
    ms_to_timestamp,
)
from exchange.core.errors import InvalidValue, TrustwireError, UntrustedEntry
from exchange.core.keydir import KeyDirectory
from exchange.core.keys import KeyId, Signer
from exchange.core.logview import LogView
from exchange.core.records import Receipt
from exchange.core.verify import EntryVerifier, VerifiedEntry
from exchange.pb.trustwire.v1 import entries_pb2 as pb
from exchange.pb.trustwire.v1 import ledger_pb2
from exchange.pb.trustwire.v1 import exchange_pb2 as xpb
from exchange.pb.trustwire.v1 import exchange_pb2_grpc as xgrpc

__all__ = ["MemberClient", "PublishOutcome", "SyncReport", "FileMatches"]

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


@dataclass(frozen=True, slots=True)
class FileMatches:
    hashes: MediaHashes
    matches: list[tuple[Match, Decision]]


class MemberClient:
    def __init__(
        self,
        target: str,
        *,
        member_id: str,
        signer: Signer,
        operator_key: bytes,
        log_key: str,
        witnesses: Sequence[str] = (),
        witness_quorum: int = 0,
        state: str | Path | None = None,
        policy: Policy | None = None,
        on_auto_action: Callable[[Match, Decision], None] | None = None,
        clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
        channel: grpc.Channel | None = None,
        tls: ClientTls | None = None,
        account_lookup: AccountLookup | None = None,
    ) -> None:
        self.member_id = member_id
        self.signer = signer
        self.operator_key = operator_key
        self._log_trust = (log_key, tuple(witnesses), witness_quorum)
        self._clock_ms = clock_ms
        self._channel = channel or connect(target, signer, member_id, tls=tls, origin=origin_of_log_key(log_key))
        self._stub = xgrpc.ExchangeServiceStub(self._channel)
        self.policy = policy or Policy(rules=())
        self._on_auto_action = on_auto_action
        self.store = MemberStore(state) if state is not None else None
        self.bank = Bank(self.store, clock_ms=clock_ms) if self.store else None
        self.queue = ModerationQueue(self.store, clock_ms=clock_ms) if self.store else None
        self.outbox = Outbox(self.store, clock_ms=clock_ms) if self.store else None
        self._account_lookup = account_lookup
        self._content_cache: tuple[list[str], Any] | None = None
        self._verifier = self._load_verifier()
        self.log_view = self._load_log_view()
        # signature checks of a page run on two threads (libsodium releases the GIL)
        self._verify_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="tw-verify")

    def _local(self) -> tuple[MemberStore, Bank, ModerationQueue]:
        """The member's state file, bank and queue (for methods that need them)."""
        if self.store is None or self.bank is None or self.queue is None:
            raise InvalidValue("this needs a state file (MemberClient(state=...))")
        return self.store, self.bank, self.queue

    def _load_log_view(self) -> LogView:
        """The last checkpoint this member trusts (from its state file, if any)."""
        log_key, witnesses, quorum = self._log_trust
        trusted = self.store.get_meta("trusted_checkpoint") if self.store is not None else None
        return LogView(log_key, witnesses, quorum, trusted_note=trusted)

    def close(self) -> None:
        self._verify_pool.shutdown(wait=False)
        self._channel.close()
        if self.store is not None:
            if self.bank is not None:
                try:
                    self.bank.save_index()  # a large bank restarts without a rebuild
                except OSError as exc:
                    log.warning("could not save the PDQ index: %s", exc)
            self.store.close()

    def __enter__(self) -> MemberClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- building entries ------------------------------------------------------------------

    def signal(
        self,
        type: str,
        value: str,
        *,
        groups: Sequence[str],
        signal_id: str | None = None,
        labels: Sequence[str] = (),
        confidence: int = 50,
        severity: str = "medium",
        tlp: str = "amber",
        valid_from_ms: int | None = None,
        valid_until_ms: int | None = None,
        related: Sequence[str] = (),
        description: str = "",
        created_at_ms: int | None = None,
    ) -> pb.Signal:
        """A Signal of this member with ``value`` normalized for its type."""
        s = pb.Signal(
            signal_id=signal_id or uuid.uuid4().hex,
            member_id=self.member_id,
            type=type,
            value=signals.normalize(type, value),
            labels=list(labels),
            confidence=confidence,
            severity=by_name(SEVERITY_BY_NAME, severity, "severity"),
            sharing=pb.Sharing(groups=list(groups), tlp=by_name(TLP_BY_NAME, tlp, "tlp")),
            related=list(related),
            description=description,
            created_at=ms_to_timestamp(created_at_ms if created_at_ms is not None else self._clock_ms()),
        )
        if valid_from_ms is not None:
            s.valid_from.CopyFrom(ms_to_timestamp(valid_from_ms))
        if valid_until_ms is not None:
            s.valid_until.CopyFrom(ms_to_timestamp(valid_until_ms))
        return s

    def retraction(self, signal_id: str, reason: str = "error", created_at_ms: int | None = None) -> pb.Retraction:
        return pb.Retraction(
            member_id=self.member_id,
            signal=pb.SignalRef(member_id=self.member_id, signal_id=signal_id),
            reason=by_name(RETRACTION_REASON_BY_NAME, reason, "reason"),
            created_at=ms_to_timestamp(created_at_ms if created_at_ms is not None else self._clock_ms()),
        )

    def opinion(
        self, publisher: str, signal_id: str, verdict: str, created_at_ms: int | None = None
    ) -> pb.Opinion:
        return pb.Opinion(
            member_id=self.member_id,
            signal=pb.SignalRef(member_id=publisher, signal_id=signal_id),
            verdict=by_name(VERDICT_BY_NAME, verdict, "verdict"),
            created_at=ms_to_timestamp(created_at_ms if created_at_ms is not None else self._clock_ms()),
        )

    # -- publishing -------------------------------------------------------------------------

    def sign(self, entry: Entry) -> bytes:
        payload_type, payload = encode_entry(entry)
        return sign_envelope(payload_type, payload, self.signer).raw

    def publish_envelopes(self, envelopes: Sequence[bytes], batch_size: int = 500) -> list[PublishOutcome]:
        """Send already-signed envelopes in batches; one outcome per envelope, in order."""
        return publish_envelopes(self._stub, envelopes, batch_size)

    def publish(self, entries: Iterable[Entry], batch_size: int = 500) -> list[PublishOutcome]:
        """Sign locally and publish; re-publishing the same entries is idempotent."""
        return self.publish_envelopes([self.sign(e) for e in entries], batch_size)

    # -- consuming --------------------------------------------------------------------------

    def _load_verifier(self) -> EntryVerifier:
        verifier = EntryVerifier(self.operator_key, KeyDirectory())
        if self.store is not None:
            for raw in self.store.key_event_records():
                verifier.verify(raw)
            verifier.last_index = self.store.cursor - 1
        return verifier

    def _prime_directory(self, verifier: EntryVerifier, until: int) -> None:
        """Verify the key events before ``until`` when starting mid-ledger."""
        with translate_errors():
            reply = self._stub.GetKeyDirectory(xpb.GetKeyDirectoryRequest(until_index=until), timeout=60)
        for raw in reply.records:
            v = verifier.verify(raw)
            if self.store is not None:
                self.store.add_key_event(v.index, v.record)
        verifier.last_index = until - 1

    def _pages(self, start: int, follow: bool, view: LogView) -> Iterator[xpb.SubscribeResponse]:
        """Subscribe pages whose checkpoint extends ``view`` and whose records it includes.

        A fork, a rollback or a bad proof raises a SecurityError and ends delivery.
        """
        trusted = view.trusted.size if view.trusted is not None else 0
        request = xpb.SubscribeRequest(from_index=start, stop_at_head=not follow, trusted_size=trusted)
        with translate_errors():
            for page in self._stub.Subscribe(request):
                c = page.consistency
                view.advance(page.checkpoint, c.old_size, list(c.hashes))
                if page.records:
                    indices = [_claimed_index(raw, fallback=-1) for raw in page.records]
                    view.check_batch_inclusion(
                        list(page.records), indices, page.proof.tree_size, list(page.proof.hashes)
                    )
                yield page

    def subscribe(
        self,
        from_index: int = 0,
        follow: bool = True,
        on_untrusted: Callable[[UntrustedEntry], None] | None = None,
        view: LogView | None = None,
    ) -> Iterator[VerifiedEntry]:
        """Yield every visible entry from ``from_index``, each verified end to end.

        Entries that fail verification are reported to ``on_untrusted`` (default:
        logged) and skipped; the stream goes on. ``view`` is the log view to check
        checkpoints against (default: the state file's); pass one built from a
        checkpoint note you kept to resume with the same trust, and read
        ``view.trusted`` afterwards to keep the newest.
        """
        verifier = EntryVerifier(self.operator_key, KeyDirectory())
        if from_index > 0:
            self._prime_directory(verifier, from_index)
        for page in self._pages(from_index, follow, view if view is not None else self._load_log_view()):
            for result in verifier.verify_many(list(page.records), self._verify_pool):
                if isinstance(result, UntrustedEntry):
                    (on_untrusted or (lambda e: log.warning("untrusted entry skipped: %s", e)))(result)
                else:
                    yield result

    def sync(self, follow: bool = False, stop: Callable[[], bool] | None = None) -> SyncReport:
        """Verify the stream from the stored cursor into the bank and queue.

        Each page is one transaction: entries applied, queue items written and the
        cursor advanced commit together.
        """
        if self.store is None:
            raise InvalidValue("sync needs a state file (MemberClient(state=...))")
        report = SyncReport(next_index=self.store.cursor)
        if report.next_index > 0 and self._verifier.directory.last_index < 0:
            self._prime_directory(self._verifier, report.next_index)
        for page in self._pages(report.next_index, follow, self.log_view):
            try:
                with self.store.transaction():
                    checked = self._verifier.verify_many(list(page.records), self._verify_pool)
                    for raw, result in zip(page.records, checked, strict=True):
                        self._ingest(raw, result, report)
                    report.expired += self._sweep_expired(report)
                    self.store.set_cursor(page.next_index)
                    self.store.set_meta("trusted_checkpoint", page.checkpoint)
            except BaseException:
                # memory follows the rolled-back store
                self._verifier = self._load_verifier()
                self.log_view = self._load_log_view()
                raise
            report.next_index, report.head = page.next_index, page.head
            if stop is not None and stop():
                break
        with self.store.transaction():
            report.expired += self._sweep_expired(report)
        try:
            report.opinions_published += self.flush_feedback()
        except TrustwireError as exc:
            log.warning("feedback opinions not published yet (will retry on the next sync): %s", exc.message)
        return report

    def _sweep_expired(self, report: SyncReport | None = None) -> int:
        """Withdraw the open queue items of signals whose ``valid_until`` has passed."""
        _, bank, queue = self._local()
        expired = bank.sweep_expired()
        for s in expired:
            n = queue.withdraw(s.publisher, s.signal_id, "expired")
            if report is not None:
                report.withdrawn += n
        return len(expired)

    def sweep_expired(self) -> int:
        """Run the expiry sweep now (sync runs it on every page); returns signals expired."""
        store, _, _ = self._local()
        with store.transaction():
            return self._sweep_expired()

    def start_expiry_timer(self, interval_s: float = 60.0) -> threading.Event:
        """Sweep expired signals every ``interval_s`` in a daemon thread, for members
        that match without syncing often. Set the returned event to stop it."""
        stop = threading.Event()

        def run() -> None:
            while not stop.wait(interval_s):
                try:
                    self.sweep_expired()
                except Exception:  # noqa: BLE001 - a timer must survive a bad tick
                    log.exception("expiry sweep failed")

        threading.Thread(target=run, name="trustwire-expiry", daemon=True).start()
        return stop

    def rebuild_bank(self) -> SyncReport:
        """Forget the bank (signals, opinions, key events, quarantine) and rebuild it by
        verifying the ledger from index 0. The queue and the outbox are kept: their
        items are re-matched idempotently, and withdrawn again if their signals are
        gone. The trusted checkpoint is kept too, so the log cannot roll back."""
        store, bank, _ = self._local()
        with store.transaction() as c:
            bank.clear()
            c.execute("DELETE FROM key_events")
            c.execute("DELETE FROM quarantine")
            store.set_cursor(0)
        self._verifier = self._load_verifier()
        return self.sync()

    def _ingest(self, raw: bytes, v: VerifiedEntry | UntrustedEntry, report: SyncReport) -> None:
        store, bank, queue = self._local()
        if isinstance(v, UntrustedEntry):
            exc = v
            # the index the record claims: the verifier's position is wrong after records
            # hidden from this member, and repeats for consecutive bad records
            index = _claimed_index(raw, fallback=self._verifier.last_index + 1)
            store.quarantine(index, str(exc), raw, self._clock_ms())
            report.quarantined += 1
            report.quarantine_reasons.append(str(exc))
            log.warning("quarantined: %s", exc)
            return
        report.verified += 1
        e = v.entry
        if isinstance(e, pb.KeyEvent):
            store.add_key_event(v.index, v.record)
            report.key_events += 1
            if e.WhichOneof("event") == "key_revoked" and e.key_revoked.compromised:
                self._quarantine_compromised(KeyId(e.key_revoked.keyid), v.index, report)
        elif isinstance(e, pb.Signal):
            report.signals += 1
            if bank.add_signal(e, v.index, v.keyid, v.accepted_at_ms):
                report.queued += self._rematch(e)
        elif isinstance(e, pb.Retraction):
            report.retractions += 1
            bank.retract(e.signal.member_id, e.signal.signal_id, v.index)
            reason = pb.RetractionReason.Name(e.reason).removeprefix("RETRACTION_REASON_").lower()
            report.withdrawn += queue.withdraw(e.signal.member_id, e.signal.signal_id, f"retracted: {reason}")
        elif isinstance(e, pb.Opinion):
            report.opinions += 1
            bank.add_opinion(e, v.index, v.keyid, v.accepted_at_ms)

    def _quarantine_compromised(self, keyid: KeyId, revoked_at_index: int, report: SyncReport) -> None:
        """Retroactively quarantine what a stolen key signed before its revocation reached us."""
        store, bank, queue = self._local()
        key = self._verifier.directory.keys[keyid]
        for index, publisher, signal_id in bank.drop_tainted(key):
            reason = (
                f"entry {index}: compromised-key: signed by key {keyid[:16]}… after its compromise "
                f"(revoked at entry {revoked_at_index})"
            )
            store.quarantine(index, reason, b"", self._clock_ms())
            queue.withdraw(publisher, signal_id, "signal signed by a compromised key")
            report.quarantined += 1
            report.quarantine_reasons.append(reason)
            log.warning("retroactively quarantined: %s", reason)

    def _rematch(self, s: pb.Signal) -> int:
        """Match a newly banked signal against the member's already-hashed content."""
        store, bank, _ = self._local()
        conn = store.conn
        hits: list[tuple[str, int]] = []
        if s.type in ("md5", "video_md5"):
            hits = [(r[0], 0) for r in conn.execute("SELECT ref FROM content WHERE md5 = ?", (s.value,))]
        elif s.type == "sha256":
            hits = [(r[0], 0) for r in conn.execute("SELECT ref FROM content WHERE sha256 = ?", (s.value,))]
        elif s.type == "pdq":
            refs, codes = self._content_pdqs()
            if refs:
                rows, dist = brute_force(codes, pdq_words(s.value), bank.pdq_threshold)
                hits = [(refs[int(r)], int(d)) for r, d in zip(rows, dist, strict=True)]
        elif s.type != "account":
            return 0
        if not hits and s.type != "account":
            return 0  # the common case: nothing of ours matches; skip reading the signal back
        banked = bank.get(s.member_id, s.signal_id)
        if banked is None or not banked.live_at(self._clock_ms()):
            return 0
        if s.type == "account":
            hits = [(account_ref(i), 0) for i in self._lookup_account(banked)]
        return sum(self._route(Match(content_ref=ref, signal=banked, distance=d)) for ref, d in hits)

    def _content_pdqs(self) -> tuple[list[str], Any]:
        """The member's own hashed images (quality >= MIN_PDQ_QUALITY) as packed PDQ
        words, cached until match_files hashes more: new PDQ signals are matched against
        them with one vectorized scan instead of a Python loop per upload."""
        if self._content_cache is None:
            store, _, _ = self._local()
            rows = store.conn.execute(
                "SELECT ref, pdq FROM content WHERE pdq IS NOT NULL AND pdq_quality >= ?", (MIN_PDQ_QUALITY,)
            ).fetchall()
            self._content_cache = ([r[0] for r in rows], pdq_words_many([r[1] for r in rows]))
        return self._content_cache

    # -- accounts -------------------------------------------------------------------------

    def _lookup_account(self, s: BankSignal) -> list[str]:
        """The member's own account ids for an account signal, through its hook.

        Never logs the indicator or the ids; a failing hook is logged by type only.
        """
        if self._account_lookup is None:
            return []
        try:
            indicator = AccountIndicator.parse(s.value, publisher=s.publisher, signal_id=s.signal_id)
            return sorted({str(i) for i in self._account_lookup(indicator)})
        except Exception as exc:  # noqa: BLE001 - member code; its message may hold an identifier
            log.warning(
                "account lookup hook failed for signal %s/%s (%s)", s.publisher, s.signal_id, type(exc).__name__
            )
            return []

    def rematch_accounts(self) -> int:
        """Run the account hook over every live account signal already in the bank (after
        adding users to the directory, for instance); returns new queue items."""
        store, bank, _ = self._local()
        now = self._clock_ms()
        added = 0
        rows = store.conn.execute("SELECT publisher, signal_id FROM signals WHERE type = 'account'").fetchall()
        for publisher, signal_id in rows:
            s = bank.get(publisher, signal_id)
            if s is None or not s.live_at(now):
                continue
            with store.transaction():
                added += sum(self._route(Match(content_ref=account_ref(i), signal=s)) for i in self._lookup_account(s))
        self._flush_feedback_quietly()
        return added

    def match_accounts(self, internal_id: str, indicators: Iterable[str]) -> list[tuple[Match, Decision]]:
        """Match one of the member's own accounts by its indicator values (computed with
        :func:`clients.accounts.account_value`); matches are queued as
        ``account:<internal_id>``."""
        store, bank, _ = self._local()
        pairs: list[tuple[Match, Decision]] = []
        with store.transaction():
            for value in indicators:
                for m in bank.match_value("account", value, account_ref(internal_id)):
                    decision = self.policy.decide(self.facts(m))
                    self._route(m)
                    pairs.append((m, decision))
        self._flush_feedback_quietly()
        return pairs

    # -- matching -------------------------------------------------------------------------

    def facts(self, match: Match) -> MatchFacts:
        s: BankSignal = match.signal
        counts = self.bank.opinion_counts(s.publisher, s.signal_id) if self.bank else {}
        return MatchFacts(
            disputed=counts.get(pb.VERDICT_DISPUTED, 0),
            seen=counts.get(pb.VERDICT_SEEN, 0),
            type=s.type,
            labels=frozenset(s.labels),
            confidence=s.confidence,
            severity=s.severity,
            publisher=s.publisher,
            groups=frozenset(s.groups),
            true_positive=counts.get(pb.VERDICT_TRUE_POSITIVE, 0),
            false_positive=counts.get(pb.VERDICT_FALSE_POSITIVE, 0),
            distance=match.distance,
        )

    def _route(self, match: Match) -> int:
        """Apply the policy to one match; 1 if a new queue item was written."""
        _, _, queue = self._local()
        decision = self.policy.decide(self.facts(match))
        added = queue.enqueue(match, decision)
        if added and decision.action is Action.AUTO_ACTION and self._on_auto_action is not None:
            self._on_auto_action(match, decision)
        fb = self.policy.feedback
        s = match.signal
        if fb.publish_seen_on_match and self.outbox is not None and (fb.on_own_signals or s.publisher != self.member_id):
            self.outbox.want(s.publisher, s.signal_id, "seen")
        return int(added)

    # -- review and feedback ----------------------------------------------------------------

    def decide(
        self, item_id: int, reviewer: str, decision: State | str, reason: str = "", publish: bool | None = None
    ) -> QueueItem:
        """Record a reviewer's decision on a claimed queue item and, when the policy's
        ``[feedback] publish_on_decision`` is on (or ``publish=True``), publish the
        verdict as a signed opinion: actioned → true_positive, dismissed →
        false_positive. The decision and the opinion to send commit together; the
        opinion is sent now and retried on every sync until the exchange has it."""
        store, _, queue = self._local()
        state = State(decision)
        fb = self.policy.feedback
        with store.transaction():
            item = queue.decide(item_id, reviewer, state, reason)
            verdict = VERDICT_FOR_DECISION.get(state)
            wanted = fb.publish_on_decision if publish is None else publish
            own = item.publisher == self.member_id
            if verdict and wanted and self.outbox is not None and (fb.on_own_signals or not own):
                self.outbox.want(item.publisher, item.signal_id, verdict, item_id=item.id)
        self._flush_feedback_quietly()
        return item

    def _flush_feedback_quietly(self) -> int:
        try:
            return self.flush_feedback()
        except TrustwireError as exc:
            log.warning("feedback opinions not published yet (will retry on the next sync): %s", exc.message)
            return 0

    def flush_feedback(self) -> int:
        """Sign and publish the opinions waiting in the outbox; returns how many the
        exchange accepted. Transport errors raise (the rows stay pending)."""
        if self.outbox is None:
            return 0
        sent = 0
        while True:
            rows = self.outbox.pending()
            if not rows:
                return sent
            envelopes = []
            for r in rows:
                env = r.envelope
                if env is None:
                    env = self.sign(self.opinion(r.publisher, r.signal_id, r.verdict))
                    self.outbox.set_envelope(r.publisher, r.signal_id, env)
                envelopes.append(env)
            outcomes = self.publish_envelopes(envelopes)
            for r, o in zip(rows, outcomes, strict=True):
                if isinstance(o, Receipt):
                    self.outbox.mark_sent(r.publisher, r.signal_id, o.index)
                    sent += 1
                else:
                    self.outbox.mark_rejected(r.publisher, r.signal_id, f"{o.reason}: {o.message}")
                    log.warning("opinion on %s/%s rejected: %s", r.publisher, r.signal_id, o.reason)

    def match_files(self, paths: Iterable[str | Path], progress: Callable[[Path], None] | None = None) -> list[FileMatches]:
        """Hash files (directories recursively), match them, enqueue per policy."""
        if self.store is None or self.bank is None:
            raise InvalidValue("matching needs a state file (MemberClient(state=...))")
        results = []
        for path in iter_files(paths):
            h = hash_file(path)
            self._content_cache = None
            with self.store.transaction() as c:
                c.execute(
                    "INSERT OR REPLACE INTO content VALUES (?, ?, ?, ?, ?, ?)",
                    (h.path, h.md5, h.sha256, h.pdq, h.pdq_quality, self._clock_ms()),
                )
                pairs = []
                for m in self.bank.match_media(h):
                    decision = self.policy.decide(self.facts(m))
                    self._route(m)
                    pairs.append((m, decision))
            results.append(FileMatches(h, pairs))
            if progress is not None:
                progress(path)
        self._flush_feedback_quietly()
        return results


def _claimed_index(raw: bytes, fallback: int) -> int:
    """The ledger index an unverified record claims, for quarantine bookkeeping only."""
    try:
        return int(ledger_pb2.LedgerRecord.FromString(raw).index)  # no canonical check: bookkeeping only
    except DecodeError:
        return fallback
