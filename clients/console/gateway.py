"""The console's only door to the member's state: the SDK, on one worker thread.

Every read and write goes through :class:`clients.member.MemberClient` and its
queue and bank (no SQL here). One thread owns the client, so page loads, decisions
and the background sync never interleave inside the SDK. The view values below are
what the templates render.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TypeVar

from clients.bank import BankSignal
from clients.feedback import feedback_report
from clients.member import MemberClient, SyncReport
from clients.queue import QueueEvent, QueueFilter, QueueItem, QueuePage, State
from exchange.core.errors import TrustwireError
from exchange.pb.trustwire.v1 import entries_pb2 as pb

__all__ = ["Gateway", "ItemView", "MatchView", "Health"]

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class MatchView:
    """One match of an item's content, with the provenance a reviewer weighs."""

    item: QueueItem
    signal: BankSignal | None
    severity: str
    opinions: dict[str, str]
    verified_by: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ItemView:
    item: QueueItem
    matches: tuple[MatchView, ...]
    history: tuple[QueueEvent, ...]
    opinion_sent: dict[str, object] | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Health:
    by_type: dict[str, int]
    bank: dict[str, int]
    next_index: int
    head: int | None
    synced_at_ms: int | None
    sync_error: str | None
    checkpoint: str | None

    @property
    def lag(self) -> int | None:
        return None if self.head is None else max(0, self.head - self.next_index)


def _severity(value: int) -> str:
    try:
        return pb.Severity.Name(pb.Severity.ValueType(value)).removeprefix("SEVERITY_").lower()
    except ValueError:
        return str(value)


class Gateway:
    """Runs SDK calls for the web app on the one thread that owns the client."""

    def __init__(self, client: MemberClient) -> None:
        if client.queue is None or client.bank is None:
            raise TrustwireError("the console needs a member state file (state=...)")
        self.client = client
        if client.store is None:
            raise TrustwireError("the console needs a member state file (state=...)")
        self._queue, self._bank, self._store = client.queue, client.bank, client.store
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tw-console-sdk")
        self._last_sync: SyncReport | None = None
        self._synced_at_ms: int | None = None
        self._sync_error: str | None = None
        self._stop = threading.Event()

    async def call(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, lambda: fn(*args))

    def close(self) -> None:
        self._stop.set()
        self._pool.shutdown(wait=True)

    # -- background sync ---------------------------------------------------------------

    def sync_now(self) -> SyncReport | None:
        """Verify new entries into the bank and queue (and retry pending opinions)."""
        try:
            report = self.client.sync()
        except TrustwireError as exc:
            self._sync_error = exc.message
            log.warning("console sync failed: %s", exc.message)
            return None
        self._last_sync, self._synced_at_ms, self._sync_error = report, int(time.time() * 1000), None
        return report

    def start_sync(self, interval_s: float) -> None:
        """Sync every ``interval_s`` seconds on the SDK thread until close()."""

        def loop() -> None:
            while not self._stop.is_set():
                try:
                    self._pool.submit(self.sync_now).result()
                except RuntimeError:  # the pool shut down
                    return
                except Exception as exc:  # noqa: BLE001 - the loop must outlive one bad sync
                    self._sync_error = type(exc).__name__
                    log.exception("console sync failed")
                self._stop.wait(interval_s)

        threading.Thread(target=loop, name="tw-console-sync", daemon=True).start()

    # -- views (run on the SDK thread through call()) ----------------------------------

    def queue_page(self, where: QueueFilter, offset: int, limit: int) -> tuple[QueuePage, dict[str, list[str]]]:
        q = self._queue
        return q.page(where, offset, limit), q.facets()

    def _checkpoint_name(self) -> tuple[int, str] | None:
        cp = self.client.log_view.trusted  # every banked entry below its size is proven in it
        if cp is None:
            return None
        root = base64.b64encode(cp.root).decode()
        return cp.size, f"{cp.checkpoint.origin} size {cp.size} root {root[:16]}…"

    def item_view(self, item_id: int) -> ItemView:
        q, bank, outbox = self._queue, self._bank, self.client.outbox
        item = q.get(item_id)
        cp = self._checkpoint_name()
        matches = []
        own = [item]
        if item.evidence:  # every signal this item matched, each with its own labels
            own = []
            for e in item.evidence:
                banked = bank.get(e.publisher, e.signal_id)
                own.append(replace(item, publisher=e.publisher, signal_id=e.signal_id, signal_index=e.signal_index,
                                   type=e.type, distance=e.distance,
                                   labels=tuple(banked.labels) if banked else item.labels))
        for m in own + [other for other in q.for_content(item.content_ref) if other.id != item.id]:
            s = bank.get(m.publisher, m.signal_id)
            verified = cp[1] if cp is not None and m.signal_index < cp[0] else None
            matches.append(
                MatchView(
                    item=m, signal=s, severity=_severity(s.severity) if s else "?",
                    opinions=bank.opinions(m.publisher, m.signal_id), verified_by=verified,
                )
            )
        sent = outbox.get(item.publisher, item.signal_id) if outbox is not None else None
        opinion: dict[str, object] | None = (
            None if sent is None or sent.item_id != item.id
            else {"verdict": sent.verdict, "state": sent.state.value, "index": sent.ledger_index, "error": sent.error}
        )
        return ItemView(item=item, matches=tuple(matches), history=tuple(q.history(item_id)), opinion_sent=opinion)

    def claim(self, item_id: int, reviewer: str) -> QueueItem:
        return self._queue.claim(item_id, reviewer)

    def release(self, item_id: int, reviewer: str, force: bool) -> QueueItem:
        return self._queue.release(item_id, reviewer, force=force)

    def decide(self, item_id: int, reviewer: str, decision: State, reason: str) -> QueueItem:
        return self.client.decide(item_id, reviewer, decision, reason)

    def events(self, reviewer: str | None, offset: int, limit: int) -> list[QueueEvent]:
        return self._queue.events(reviewer, offset, limit)

    def feedback(self) -> dict[str, object]:
        return feedback_report(self._bank, self.client.member_id)

    def opinions_published(self) -> list[dict[str, object]]:
        """The opinions this member's decisions produced, newest first."""
        outbox = self.client.outbox
        rows = outbox.rows() if outbox is not None else []
        return [
            {"publisher": r.publisher, "signal_id": r.signal_id, "verdict": r.verdict, "item_id": r.item_id,
             "state": r.state.value, "index": r.ledger_index, "error": r.error}
            for r in sorted(rows, key=lambda r: r.updated_at_ms, reverse=True)
        ]

    def health(self) -> Health:
        bank = self._bank
        cp = self._checkpoint_name()
        return Health(
            by_type=bank.counts_by_type(), bank=bank.stats(), next_index=self._store.cursor,
            head=self._last_sync.head if self._last_sync is not None else None,
            synced_at_ms=self._synced_at_ms, sync_error=self._sync_error,
            checkpoint=cp[1] if cp else None,
        )
