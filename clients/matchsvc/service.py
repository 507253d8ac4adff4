"""The match service core: follow the exchange, keep the in-memory view, answer lookups.

    service = MatchService(client, MatchSettings(suppress_false_positives=3))
    service.start()                      # load the bank, follow the exchange in a thread
    result = service.lookup("md5", value)
    service.stop()

A follower thread runs :meth:`clients.member.MemberClient.sync` in follow mode (full
verification, the bank and the queue in the state file) and keeps a
:class:`~clients.matchsvc.index.MatchIndex` in step through the bank's change hook.
The service is *ready* while it follows the exchange, heard from it within
``stale_after_s`` and is at most ``ready_max_lag`` entries behind the newest checkpoint
it verified; lookups are refused (:class:`~exchange.core.errors.NotReady`) otherwise.
HTTP and gRPC front ends (:mod:`clients.matchsvc.http_api`,
:mod:`clients.matchsvc.grpc_api`) only decode, call this and encode.
"""

from __future__ import annotations

import gc
import hashlib
import logging
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from clients.bank import Bank
from clients.matchsvc.allowlist import AllowEntry, AllowList
from clients.matchsvc.index import Hit, MatchIndex
from clients.matchsvc.metrics import MatchMetrics
from clients.member import MemberClient
from clients.policy import Decision, MatchFacts
from exchange.core.errors import BatchTooLarge, InvalidValue, NotReady, TrustwireError
from exchange.core.signals import Content, ContentHash, Matcher, normalize, registered, signal_type

__all__ = ["sniff_suffix", "LookupResult", "MatchService", "MatchSettings", "Readiness", "Scored", "hash_content"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class MatchSettings:
    suppress_false_positives: int = 0
    """Withhold matches of signals that at least this many members marked false_positive (0: off)."""
    ready_max_lag: int = 1000
    """Entries the service may trail the newest verified checkpoint by and still be ready."""
    stale_after_s: float = 15.0
    """Not ready when the exchange has sent nothing (not even a heartbeat) for this long."""
    max_batch: int = 1000
    max_content_bytes: int = 32 << 20


@dataclass(frozen=True, slots=True, kw_only=True)
class Readiness:
    ready: bool
    cursor: int
    head: int
    reason: str

    @property
    def lag(self) -> int:
        return max(0, self.head - self.cursor)


@dataclass(frozen=True, slots=True, kw_only=True)
class Scored:
    """A match with the member's policy decision (and why it was withheld, if it was)."""

    hit: Hit
    decision: Decision
    suppressed_by: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class LookupResult:
    type: str
    value: str
    matches: tuple[Scored, ...]
    suppressed: tuple[Scored, ...]


_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\x89PNG", ".png"), (0, b"\xff\xd8\xff", ".jpg"), (0, b"GIF8", ".gif"), (0, b"BM", ".bmp"),
    (0, b"II*\x00", ".tif"), (0, b"MM\x00*", ".tif"), (8, b"WEBP", ".webp"), (8, b"AVI ", ".avi"),
    (4, b"ftyp", ".mp4"), (0, b"\x1aE\xdf\xa3", ".mkv"), (0, b"FLV", ".flv"), (0, b"\x00\x00\x01\xba", ".mpg"),
)


def sniff_suffix(data: bytes) -> str:
    """A file suffix for common image and video containers, from their magic bytes ("" if unknown)."""
    for offset, magic, suffix in _MAGIC:
        if data[offset : offset + len(magic)] == magic:
            return suffix
    return ""


def _suffix(data: bytes, filename: str | None) -> str:
    return Path(filename).suffix.lower() if filename else sniff_suffix(data)


def hash_content(data: bytes, filename: str | None = None) -> tuple[ContentHash, ...]:
    """Hash uploaded bytes with every registered type that hashes that kind of file
    (MD5 and SHA-256 of anything, PDQ of images, video MD5 and vPDQ of videos). The
    kind comes from ``filename``'s suffix, else from the bytes' magic number."""
    hint = Path("upload" + _suffix(data, filename))
    kinds = [k for k in registered() if k.hashes_media(hint)]
    out: list[ContentHash] = []
    decoders = [k for k in kinds if k.digest is None]
    for k in kinds:
        if k.digest is not None:
            out.append(ContentHash(k.name, hashlib.new(k.digest, data, usedforsecurity=False).hexdigest()))
    if decoders:
        with tempfile.TemporaryDirectory(prefix="tw-match-") as tmp:
            path = Path(tmp) / hint.name
            path.write_bytes(data)
            for k in decoders:
                try:
                    h = k.hash_media(path)
                except Exception:  # noqa: BLE001 - a decoder that chokes on bad bytes: no hash
                    log.info("the %s hasher could not decode an upload", k.name)
                    h = None
                if h is not None:
                    out.append(h)
    return tuple(out)


class MatchService:
    def __init__(
        self,
        client: MemberClient,
        settings: MatchSettings = MatchSettings(),
        allow_list: AllowList | None = None,
        metrics: MatchMetrics | None = None,
    ) -> None:
        if client.bank is None or client.store is None:
            raise InvalidValue("the match service needs a member state file")
        self.client = client
        self.bank: Bank = client.bank
        self.settings = settings
        self.metrics = metrics or MatchMetrics()
        self.index = MatchIndex(pdq_threshold=self.bank.pdq_threshold)
        self.allow = allow_list
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._cursor = client.store.cursor
        self._head = -1
        self._last_heard = 0.0
        self._connected = False
        self._last_error = "not started"

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Load the bank into memory, then follow the exchange in a daemon thread."""
        started = time.monotonic()
        n = self.index.load_bank(self.bank)
        gc.freeze()  # millions of long-lived objects: keep them out of every garbage collection
        log.info("loaded %d matchable signals in %.2fs (PDQ index %s)", n, time.monotonic() - started,
                 "saved" if self.index.pdq_from_saved else "built")
        self.bank.on_change(self._on_bank_change)
        self._update_gauges()
        self._thread = threading.Thread(target=self._follow, name="trustwire-match-follow", daemon=True)
        self._thread.start()
        threading.Thread(target=self._maintain, name="trustwire-match-maintain", daemon=True).start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop following (after the current page or heartbeat) and close the client."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.client.close()
        if self.allow is not None:
            self.allow.close()

    def _follow(self) -> None:
        backoff = 0.2
        while not self._stop.is_set():
            try:
                self._last_error = "connecting to the exchange"
                self.client.sync(follow=True, stop=self._on_page)
                backoff = 0.2
            except TrustwireError as exc:
                self._connected = False
                self._last_error = f"following the exchange failed: {exc.message}"
                log.warning("%s; retrying in %.1fs", self._last_error, backoff)
            except Exception:  # noqa: BLE001 - the follower must survive and report, not die silently
                self._connected = False
                self._last_error = "following the exchange failed (see the log)"
                log.exception("follower failed; retrying in %.1fs", backoff)
            self._stop.wait(backoff)
            backoff = min(backoff * 2, 5.0)

    def _maintain(self) -> None:
        """Rebuild the PDQ index off the lookup path when it needs it (checked every second)."""
        while not self._stop.wait(1.0):
            try:
                if self.index.maintain():
                    log.info("rebuilt the in-memory PDQ index (%d signals in memory)", len(self.index))
            except Exception:  # noqa: BLE001 - maintenance must not die; lookups still work
                log.exception("PDQ index maintenance failed")

    def _on_page(self) -> bool:
        """After each verified page (follower thread): record progress."""
        store = self.client.store
        assert store is not None  # checked in __init__  # noqa: S101
        trusted = self.client.log_view.trusted
        self._cursor = store.cursor
        self._head = trusted.size if trusted is not None else 0
        self._last_heard = time.monotonic()
        self._connected = True
        if self.allow is not None:
            self.allow.refresh()
        self._update_gauges()
        return self._stop.is_set()

    def _on_bank_change(self, keys: list[tuple[str, str]] | None) -> None:
        """The bank committed changes (follower thread): refresh those signals in memory."""
        if keys is None:
            self.index.clear()
            self.index.load_bank(self.bank)
            return
        found = self.bank.get_many(keys)
        opinions = self.bank.opinion_counts_many(keys)
        self.index.put_many((key, found.get(key), opinions.get(key, {})) for key in keys)

    def _update_gauges(self) -> None:
        m = self.metrics
        for type_name, n in self.index.sizes().items():
            m.index_size.labels(type_name).set(n)
        if self.allow is not None:
            m.allow_list_size.set(len(self.allow))
        r = self.readiness()
        m.cursor.set(r.cursor)
        m.head.set(max(r.head, 0))
        m.lag.set(r.lag)
        m.ready.set(int(r.ready))

    # -- readiness ---------------------------------------------------------------------------

    def readiness(self) -> Readiness:
        cursor, head = self._cursor, self._head
        if head < 0 or not self._connected:
            return Readiness(ready=False, cursor=cursor, head=max(head, 0), reason=self._last_error)
        silent = time.monotonic() - self._last_heard
        if silent > self.settings.stale_after_s:
            return Readiness(ready=False, cursor=cursor, head=head,
                             reason=f"nothing heard from the exchange for {silent:.0f}s")
        if head - cursor > self.settings.ready_max_lag:
            return Readiness(ready=False, cursor=cursor, head=head,
                             reason=f"{head - cursor} entries behind the exchange's head")
        return Readiness(ready=True, cursor=cursor, head=head, reason="caught up")

    def require_ready(self) -> None:
        r = self.readiness()
        if not r.ready:
            self.metrics.refused.labels(NotReady.reason).inc()
            raise NotReady(f"the match service is not ready: {r.reason}")

    # -- lookups -----------------------------------------------------------------------------

    def lookup(self, type_name: str, raw: str) -> LookupResult:
        """Every live signal a value of ``type_name`` matches, with decisions; raises
        InvalidValue for a type that is not matchable or a value that does not parse."""
        self.require_ready()
        return self._lookup(type_name, raw)

    @staticmethod
    def _normalized(type_name: str, raw: str) -> str:
        if signal_type(type_name).matcher is Matcher.NONE:
            raise InvalidValue(f"signal type {type_name!r} is not matchable")
        return normalize(type_name, raw)

    def _lookup(self, type_name: str, raw: str) -> LookupResult:
        value = self._normalized(type_name, raw)
        started = time.perf_counter()
        return self._result(type_name, value, self.index.lookup(type_name, value), started)

    def _result(self, type_name: str, value: str, hits: list[Hit], started: float) -> LookupResult:
        allowed: AllowEntry | None = None
        if hits and self.allow is not None:
            allowed = self.allow.hit(type_name, value)
        matches: list[Scored] = []
        suppressed: list[Scored] = []
        for h in hits:
            scored = self._score(h, allowed)
            (matches if scored.suppressed_by is None else suppressed).append(scored)
        self.metrics.latency.labels(type_name).observe(time.perf_counter() - started)
        self.metrics.lookups.labels(type_name, "match" if matches else "miss").inc()
        return LookupResult(type=type_name, value=value, matches=tuple(matches), suppressed=tuple(suppressed))

    def _score(self, h: Hit, allowed: AllowEntry | None) -> Scored:
        s = h.signal
        facts = MatchFacts.of(s, h.opinions, h.distance)
        decision = self.client.policy.decide(facts)
        reason = None
        kind = ""
        threshold = self.settings.suppress_false_positives
        if allowed is not None:
            reason, kind = f"allow-list: {allowed.reason}", "allow_list"
        elif threshold and facts.false_positive >= threshold:
            reason = f"false-positive opinions: {facts.false_positive} members (suppressing at {threshold})"
            kind = "false_positive"
        if reason is not None:
            self.metrics.suppressed.labels(kind).inc()
            # the signal's coordinates and the reason only: never the looked-up value
            log.info("suppressed a %s match of signal %s/%s (index %d): %s",
                     s.type, s.publisher, s.signal_id, s.index, reason)
        return Scored(hit=h, decision=decision, suppressed_by=reason)

    def lookup_batch(self, queries: Sequence[tuple[str, str]]) -> list[LookupResult]:
        if len(queries) > self.settings.max_batch:
            raise BatchTooLarge(f"a batch holds at most {self.settings.max_batch} lookups")
        self.require_ready()
        values = [self._normalized(t, v) for t, v in queries]  # all valid, or nothing is looked up
        by_type: dict[str, list[int]] = {}
        for i, (t, _) in enumerate(queries):
            by_type.setdefault(t, []).append(i)
        results: list[LookupResult | None] = [None] * len(queries)
        for t, positions in by_type.items():
            started = time.perf_counter()
            found = self.index.lookup_many(t, [values[i] for i in positions])
            for i, hits in zip(positions, found, strict=True):
                results[i] = self._result(t, values[i], hits, started)
        return [r for r in results if r is not None]

    def lookup_each(self, type_name: str, raws: Sequence[str]) -> list[LookupResult | TrustwireError]:
        """Independent lookups of one type (requests that arrived together), their index
        search done in one batch: each gets its answer or its own error."""
        out: list[LookupResult | TrustwireError] = []
        valid: list[tuple[int, str]] = []
        for raw in raws:
            try:
                self.require_ready()
                valid.append((len(out), self._normalized(type_name, raw)))
                out.append(TrustwireError("not looked up"))  # replaced below
            except TrustwireError as err:
                out.append(err)
        started = time.perf_counter()
        found = self.index.lookup_many(type_name, [v for _, v in valid])
        for (i, value), hits in zip(valid, found, strict=True):
            out[i] = self._result(type_name, value, hits, started)
        return out

    def lookup_content(
        self, data: bytes, filename: str | None = None
    ) -> tuple[tuple[ContentHash, ...], list[LookupResult]]:
        """Hash uploaded bytes and look each hash up for every signal type compared with
        that kind of hash (an MD5 for md5 and video_md5 signals); hashes under their
        type's minimum quality (PDQ: 50) are returned but not matched."""
        if len(data) > self.settings.max_content_bytes:
            raise BatchTooLarge(f"content is limited to {self.settings.max_content_bytes} bytes")
        self.require_ready()
        hashes = hash_content(data, filename)
        computed = {h.type for h in hashes}  # a type is looked up only if it hashed this kind of file
        results = []
        for h in hashes:
            if h.quality is not None and h.quality < signal_type(h.type).min_quality:
                continue
            for kind in registered():
                if kind.content is Content.MEDIA and kind.content_type() == h.type and kind.name in computed:
                    results.append(self._lookup(kind.name, h.value))
        return hashes, results
