"""The member SDK's front door: one object over the rooms of the SDK.

    client = MemberClient(target, member_id="northwind", signer=key, operator_key=op_pub, state="nw.db")
    client.publish([client.signal("pdq", pdq_hex, labels=["csam"], groups=["hash-sharing"])])
    client.sync()                                  # verify every entry, fill bank + queue
    matches = client.match_files(["upload.jpg"])   # hash, match, enqueue per policy

Each method delegates to the room that owns the work:

- :mod:`clients.client` — connect, publish, the verified stream (``subscribe``);
- :mod:`clients.builders` — signals, retractions, opinions;
- :mod:`clients.sync` — a page of the stream in one transaction, expiry, rebuilds;
- :mod:`clients.ingest` — one verified entry into the bank and the queue;
- :mod:`clients.matching` — the member's files and accounts, routed by policy
  (:mod:`clients.routing`);
- :mod:`clients.review` — decisions and the outbox of opinions.

The state (``state=...``) is one SQLite file: :mod:`clients.store`, :mod:`clients.bank`,
:mod:`clients.queue`, :mod:`clients.content` and :mod:`clients.feedback` own its SQL.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Unpack


from clients.accounts import AccountLookup
from clients.bank import Bank, Match
from clients.builders import EntryBuilder, SignalOptions
from clients.client import Connection, ExchangeClient
from clients.content import ContentStore
from clients.feedback import Outbox
from clients.ingest import Ingester, SyncReport
from clients.matching import ContentMatcher, FileMatches
from clients.policy import Decision, MatchFacts, Policy
from clients.queue import ModerationQueue, QueueItem, State
from clients.review import Review
from clients.routing import Router
from clients.store import MemberStore
from clients.sync import Syncer
from clients.transport import PublishOutcome
from exchange.core.entries import Entry
from exchange.core.errors import InvalidValue, UntrustedEntry
from exchange.core.logview import LogView, TrustedCheckpoint
from exchange.core.verify import VerifiedEntry
from exchange.pb.trustwire.v1 import entries_pb2 as pb

__all__ = ["MemberClient", "PublishOutcome", "SyncReport", "FileMatches"]

log = logging.getLogger(__name__)


class _Local:
    """The rooms that need a state file."""

    def __init__(self, syncer: Syncer, matcher: ContentMatcher) -> None:
        self.syncer = syncer
        self.matcher = matcher


class MemberClient:
    def __init__(
        self,
        target: str,
        *,
        state: str | Path | None = None,
        policy: Policy | None = None,
        on_auto_action: Callable[[Match, Decision], None] | None = None,
        clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
        account_lookup: AccountLookup | None = None,
        **connection: Unpack[Connection],
    ) -> None:
        """Connect as ``member_id`` (see :class:`clients.client.Connection`); with
        ``state`` (a SQLite file) the bank, queue and outbox live there."""
        member_id = connection["member_id"]
        self.member_id = member_id
        self.signer = connection["signer"]
        self.operator_key = connection["operator_key"]
        self._clock_ms = clock_ms
        self.exchange = ExchangeClient(target, **connection)
        self.builder = EntryBuilder(member_id, clock_ms)
        self.store = MemberStore(state) if state is not None else None
        self.bank = Bank(self.store, clock_ms=clock_ms) if self.store else None
        self.queue = ModerationQueue(self.store, clock_ms=clock_ms) if self.store else None
        self.outbox = Outbox(self.store, clock_ms=clock_ms) if self.store else None
        self.content = ContentStore(self.store) if self.store else None
        self.router = Router(member_id, policy or Policy(rules=()), self.bank, self.queue, self.outbox, on_auto_action)
        self.review = Review(self.exchange, self.builder, self.router, self.store, self.queue, self.outbox)
        self._local_rooms: _Local | None = None
        self._stateless_view: LogView | None = None
        if self.store and self.bank and self.queue and self.content:
            ingester = Ingester(
                self.store, self.bank, self.queue, self.content, self.router, clock_ms, account_lookup
            )
            syncer = Syncer(self.exchange, self.store, self.bank, ingester, self.review.flush)
            matcher = ContentMatcher(self.store, self.bank, self.content, self.router, ingester, clock_ms)
            self._local_rooms = _Local(syncer, matcher)
        else:
            self._stateless_view = self.exchange.log_view()

    def _local(self) -> _Local:
        if self._local_rooms is None:
            raise InvalidValue("this needs a state file (MemberClient(state=...))")
        return self._local_rooms

    @property
    def policy(self) -> Policy:
        return self.router.policy

    @policy.setter
    def policy(self, policy: Policy) -> None:
        self.router.policy = policy

    @property
    def log_view(self) -> LogView:
        """The log view sync checks checkpoints against (the state file's trusted one)."""
        if self._local_rooms is not None:
            return self._local_rooms.syncer.log_view
        assert self._stateless_view is not None
        return self._stateless_view

    def wait_for_checkpoint(self, index: int, timeout_s: float = 10.0) -> TrustedCheckpoint:
        """A verified checkpoint covering ledger ``index`` (e.g. a receipt's), once the log signs one.

        Advances the trusted checkpoint through a consistency proof and stores it;
        raises CheckpointPending after ``timeout_s``.
        """
        trusted = self.exchange.wait_for_checkpoint(self.log_view, index, timeout_s)
        if self.store is not None:
            self.store.set_meta("trusted_checkpoint", trusted.note)
        return trusted

    def _load_log_view(self) -> LogView:
        trusted = self.store.get_meta("trusted_checkpoint") if self.store is not None else None
        return self.exchange.log_view(trusted)

    def close(self) -> None:
        self.exchange.close()
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

    def groups(self) -> list[str]:
        """The sharing groups this member belongs to, per the key directory it verified."""
        return sorted(self._local().syncer.verifier.directory.groups_of(self.member_id))

    # -- building and publishing entries (clients.builders, clients.client) ----------------

    def signal(self, type: str, value: str, **options: Unpack[SignalOptions]) -> pb.Signal:
        """A Signal of this member with ``value`` normalized for its type (options:
        :class:`clients.builders.SignalOptions`; ``groups`` is required)."""
        return self.builder.signal(type, value, **options)

    def retraction(self, signal_id: str, reason: str = "error", created_at_ms: int | None = None) -> pb.Retraction:
        return self.builder.retraction(signal_id, reason, created_at_ms)

    def opinion(self, publisher: str, signal_id: str, verdict: str, created_at_ms: int | None = None) -> pb.Opinion:
        return self.builder.opinion(publisher, signal_id, verdict, created_at_ms)

    def sign(self, entry: Entry) -> bytes:
        return self.exchange.sign(entry)

    def publish_envelopes(self, envelopes: Sequence[bytes], batch_size: int = 500) -> list[PublishOutcome]:
        """Send already-signed envelopes in batches; one outcome per envelope, in order."""
        return self.exchange.publish_envelopes(envelopes, batch_size)

    def publish(self, entries: Iterable[Entry], batch_size: int = 500) -> list[PublishOutcome]:
        """Sign locally and publish; re-publishing the same entries is idempotent."""
        return self.exchange.publish(entries, batch_size)

    # -- consuming (clients.client, clients.sync) ------------------------------------------

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
        store = self.store
        keep = (lambda v: store.add_key_event(v.index, v.record)) if store is not None else None
        return self.exchange.subscribe(
            from_index, follow, on_untrusted, view if view is not None else self._load_log_view(), keep
        )

    def sync(self, follow: bool = False, stop: Callable[[], bool] | None = None) -> SyncReport:
        """Verify the stream from the stored cursor into the bank and queue.

        Each page is one transaction: entries applied, queue items written and the
        cursor advanced commit together.
        """
        if self._local_rooms is None:
            raise InvalidValue("sync needs a state file (MemberClient(state=...))")
        return self._local_rooms.syncer.sync(follow, stop)

    def sweep_expired(self) -> int:
        """Run the expiry sweep now (sync runs it on every page); returns signals expired."""
        return self._local().syncer.sweep_expired()

    def start_expiry_timer(self, interval_s: float = 60.0) -> threading.Event:
        """Sweep expired signals every ``interval_s`` in a daemon thread. Set the returned
        event to stop it."""
        return self._local().syncer.start_expiry_timer(interval_s)

    def rebuild_bank(self) -> SyncReport:
        """Forget the bank and rebuild it by verifying the ledger from index 0 (the queue,
        the outbox and the trusted checkpoint are kept)."""
        return self._local().syncer.rebuild_bank()

    # -- matching (clients.matching, clients.routing) --------------------------------------

    def facts(self, match: Match) -> MatchFacts:
        return self.router.facts(match)

    def match_files(
        self, paths: Iterable[str | Path], progress: Callable[[Path], None] | None = None
    ) -> list[FileMatches]:
        """Hash files (directories recursively), match them, enqueue per policy."""
        if self._local_rooms is None:
            raise InvalidValue("matching needs a state file (MemberClient(state=...))")
        results = self._local_rooms.matcher.match_files(paths, progress)
        self.review.flush_quietly()
        return results

    def match_accounts(self, internal_id: str, indicators: Iterable[str]) -> list[tuple[Match, Decision]]:
        """Match one of the member's own accounts by its indicator values (computed with
        :func:`clients.accounts.account_value`); matches are queued as
        ``account:<internal_id>``."""
        pairs = self._local().matcher.match_accounts(internal_id, indicators)
        self.review.flush_quietly()
        return pairs

    def rematch_accounts(self) -> int:
        """Run the account hook over every live account signal already in the bank (after
        adding users to the directory, for instance); returns new queue items."""
        added = self._local().matcher.rematch_accounts()
        self.review.flush_quietly()
        return added

    # -- review and feedback (clients.review) ----------------------------------------------

    def decide(
        self, item_id: int, reviewer: str, decision: State | str, reason: str = "", publish: bool | None = None
    ) -> QueueItem:
        """Record a reviewer's decision on a claimed queue item and, when the policy's
        ``[feedback] publish_on_decision`` is on (or ``publish=True``), publish the
        verdict as a signed opinion: actioned → true_positive, dismissed →
        false_positive. The decision and the opinion to send commit together; the
        opinion is sent now and retried on every sync until the exchange has it."""
        return self.review.decide(item_id, reviewer, decision, reason, publish)

    def flush_feedback(self) -> int:
        """Sign and publish the opinions waiting in the outbox; returns how many the
        exchange accepted. Transport errors raise (the rows stay pending)."""
        return self.review.flush()
