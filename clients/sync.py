"""Sync: the verified stream into the member's state file, a page at a time.

Each page is one transaction: entries verified and ingested (bank, queue,
quarantine), expired signals swept, the cursor advanced and the page's checkpoint
trusted, all commit together. After a failure the in-memory verifier and log view
are reloaded from the state file, so memory follows the rolled-back store.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator

from clients.bank import Bank
from clients.client import ExchangeClient
from clients.ingest import Ingester, SyncReport
from clients.store import MemberStore
from exchange.core.errors import SecurityError, TrustwireError, UntrustedEntry
from exchange.core.keydir import KeyDirectory
from exchange.core.keydir_commitment import commit, committed_in
from exchange.core.logview import LogView
from exchange.core.verify import EntryVerifier, Passes, VerifiedEntry
from exchange.pb.trustwire.v1 import entries_pb2 as pb
from exchange.pb.trustwire.v1 import exchange_pb2 as xpb

__all__ = ["Syncer", "SyncReport"]

log = logging.getLogger(__name__)

Keys = dict[str, tuple[str, bytes]]  # a key snapshot (EntryVerifier.key_snapshot)


class Syncer:
    def __init__(
        self,
        client: ExchangeClient,
        store: MemberStore,
        bank: Bank,
        ingester: Ingester,
        flush_feedback: Callable[[], int],
    ) -> None:
        self._client = client
        self._store = store
        self._bank = bank
        self._ingester = ingester
        self._flush_feedback = flush_feedback
        self.verifier = self.load_verifier()
        self.log_view = self.load_log_view()

    def load_verifier(self) -> EntryVerifier:
        """A verifier with the key events kept in the state file, at the stored cursor."""
        verifier = EntryVerifier(self._client.operator_key, KeyDirectory())
        for raw in self._store.key_event_records():
            verifier.verify(raw)
        verifier.last_index = self._store.cursor - 1
        return verifier

    def load_log_view(self) -> LogView:
        """The last checkpoint this member trusts (from its state file)."""
        return self._client.log_view(self._store.get_meta("trusted_checkpoint"))

    def sync(self, follow: bool = False, stop: Callable[[], bool] | None = None) -> SyncReport:
        """Verify the stream from the stored cursor into the bank and queue."""
        store = self._store
        report = SyncReport(next_index=store.cursor)
        if report.next_index > 0 and self.verifier.directory.last_index < 0:
            self._client.prime_directory(
                self.verifier, report.next_index, lambda v: store.add_key_event(v.index, v.record)
            )
        groups = self._client.current_groups()
        pool = self._client.verify_pool
        submit: Callable[[list[bytes], Keys], Passes | None] = \
            lambda raws, keys: self.verifier.submit(raws, pool, keys)
        pages = _Ahead(self._client.pages(report.next_index, follow, self.log_view), follow, submit,
                       self.verifier.key_snapshot())
        try:
            self._pages(pages, report, groups, stop)
        finally:
            pages.close()
        with store.transaction():
            report.expired += self._ingester.sweep_expired(report)
        try:
            report.opinions_published += self._flush_feedback()
        except TrustwireError as exc:
            log.warning("feedback opinions not published yet (will retry on the next sync): %s", exc.message)
        return report

    def _pages(
        self, pages: _Ahead, report: SyncReport, groups: frozenset[str], stop: Callable[[], bool] | None
    ) -> None:
        """Each page in one transaction; the pages read ahead are checked on the workers meanwhile."""
        store, pool = self._store, self._client.verify_pool
        for page, passed in pages:
            try:
                with store.transaction():
                    checked = self.verifier.verify_many(list(page.records), pool, passed=passed)
                    pages.keys_now(self.verifier.key_snapshot())  # pages read from now on: against these keys
                    # in ledger order: a retraction's signal may be earlier in the page
                    self._ingester.apply_page(zip(page.records, checked, strict=True), self.verifier, report,
                                              lambda v: self._for_recipient(v, groups))
                    report.expired += self._ingester.sweep_expired(report)
                    self._check_key_directory(page.next_index)
                    store.set_cursor(page.next_index)
                    store.set_meta("trusted_checkpoint", page.checkpoint)
            except BaseException:
                self.verifier = self.load_verifier()
                self.log_view = self.load_log_view()
                raise
            report.next_index, report.head = page.next_index, page.head
            if stop is not None and stop():
                self.log_view = self.load_log_view()  # pages read ahead are dropped
                break

    def _check_key_directory(self, cursor: int) -> None:
        """Once caught up with the page's checkpoint, the key events this member holds
        must be exactly those the checkpoint commits to: a withheld KeyRevoked (or any
        key event) shows up here as a SecurityError."""
        trusted = self.log_view.trusted
        if trusted is None or cursor != trusted.size:
            return
        signed = committed_in(trusted.checkpoint)
        mine = commit(self._store.key_event_records())
        if mine != signed:
            raise SecurityError(
                f"the checkpoint of size {trusted.size} commits to {signed.count} key events, this member"
                f" verified {mine.count} (or different ones): the exchange withheld or altered a key event"
            )

    def _for_recipient(self, v: VerifiedEntry | UntrustedEntry, groups: frozenset[str]) -> VerifiedEntry | UntrustedEntry:
        """The recipient's own right to receive (PROTOCOL.md §7, visibility): another
        member's signal must be shared into a group this member is in (now, or at the
        entry's index); another member's retraction or opinion must name a signal this
        member received (its audience includes this member). Otherwise the exchange
        leaked it (or is probing): quarantined, never banked."""
        if isinstance(v, UntrustedEntry) or isinstance(v.entry, pb.KeyEvent):
            return v
        me = self._client.member_id
        e = v.entry
        if e.member_id == me:
            return v
        if isinstance(e, pb.Signal):
            now = self.verifier.directory.groups_of(me)  # no union built per entry: this runs for every signal
            if any(g in groups or g in now for g in e.sharing.groups):
                return v
            why = f"a signal of {e.member_id} shared with {','.join(e.sharing.groups) or 'no group'}, none of which includes {me}"
        else:
            ref = e.signal
            if ref.member_id == me or self._bank.get(ref.member_id, ref.signal_id) is not None:
                return v
            if self._compromised(ref.member_id):
                return v  # its versions may have been dropped as tainted: nothing to bank either way
            kind = "a retraction" if isinstance(e, pb.Retraction) else "an opinion"
            why = f"{kind} of {e.member_id} about {ref.member_id}/{ref.signal_id}, a signal {me} never received"
        return UntrustedEntry(f"entry {v.index}: not-for-recipient: {why}", cause="not-for-recipient")

    def _compromised(self, member: str) -> bool:
        """Has any key of ``member`` been revoked as compromised?"""
        return any(k.member_id == member and k.compromised for k in self.verifier.directory.keys.values())

    def sweep_expired(self) -> int:
        """Run the expiry sweep now (sync runs it on every page); returns signals expired."""
        with self._store.transaction():
            return self._ingester.sweep_expired()

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
        with self._store.transaction():
            self._bank.clear()
            self._store.forget_verified()
        self.verifier = self.load_verifier()
        return self.sync()


_AHEAD = 2  # pages read and submitted to the workers beyond the one being applied (catching up)
_END = object()


class _Ahead:
    """Subscribe pages, each with its signature checks (:class:`Passes`) started as it is
    read (``submit``). Catching up (not following), a reader thread reads pages and
    submits them to the workers up to ``_AHEAD`` pages beyond the one being verified and
    applied, so the exchange prepares the next pages and the workers check them while
    this page is written (``submit`` takes the key snapshot :meth:`keys_now` last set:
    a record whose key a page in between adds goes back to the workers in order). An
    error reading ahead is raised when its turn comes, every page before it committed.
    Following, pages are read one at a time (the next may be far off). :meth:`close`
    stops the reader."""

    def __init__(
        self, pages: Iterator[xpb.SubscribeResponse], follow: bool,
        submit: Callable[[list[bytes], Keys], Passes | None], keys: Keys,
    ) -> None:
        self._pages = pages
        self._submit = submit
        self._keys = keys
        self._closed = threading.Event()
        self._queue: queue.Queue[object] | None = None
        if not follow:
            self._queue = queue.Queue(maxsize=_AHEAD)
            threading.Thread(target=self._read, name="trustwire-sync-read", daemon=True).start()

    def keys_now(self, keys: Keys) -> None:
        """The keys pages read from now on are checked against (the verifier's, as of the page verified last)."""
        self._keys = keys

    def __iter__(self) -> Iterator[tuple[xpb.SubscribeResponse, Passes | None]]:
        if self._queue is None:
            for page in self._pages:
                yield page, self._submit(list(page.records), self._keys)
            return
        while (item := self._queue.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]

    def _read(self) -> None:
        """The reader thread: pages in, each submitted to the workers as it arrives."""
        assert self._queue is not None
        try:
            for page in self._pages:
                if not self._put((page, self._submit(list(page.records), self._keys))):
                    return
            self._put(_END)
        except BaseException as exc:  # noqa: BLE001 - raised in the syncing thread, in its turn
            self._put(exc)

    def _put(self, item: object) -> bool:
        assert self._queue is not None
        while not self._closed.is_set():
            try:
                self._queue.put(item, timeout=0.1)  # bounded: re-checks close()
                return True
            except queue.Full:
                continue
        return False

    def close(self) -> None:
        self._closed.set()
