"""The match service's in-memory view of the bank: every lookup is answered from memory.

SQLite (the member's state file, written by :meth:`clients.member.MemberClient.sync`)
stays the durable copy; this view is loaded from it at start and kept in step through
:meth:`clients.bank.Bank.on_change`. Matching follows each signal type's plug-in:
``EXACT`` types through a dict keyed by ``(type, value)`` and the type's
``lookups()``, ``SUBSTRING`` types by a scan, ``HAMMING`` types in one
:class:`clients.pdq_index.PdqIndex` keyed by this view's own dense ids (hits filtered
by type), ``SCAN`` types by their own ``distance`` over the type's live signals,
except types made of frames (vpdq, which have ``frames()``): those are matched frame
by frame in a second PdqIndex over every signal's frames, with python-threatexchange's
thresholds (:mod:`exchange.core.signals.vpdq`). One lock serializes updates and lookups.

Lookups never fold or compact the PDQ index (``auto_fold=False``: new hashes wait in
a brute-forced tail). :meth:`MatchIndex.maintain`, run by the service's maintenance
thread, rebuilds it from a snapshot *outside* the lock while lookups and updates go
on against the old one (updates are journaled and replayed), then swaps it in: only
the snapshot copy and the swap hold the lock. A rebuild briefly needs a second copy
of the index in memory.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from clients.bank import DEFAULT_PDQ_THRESHOLD, VERDICTS, BankSignal
from clients.pdq_index import PdqIndex
from exchange.core.signals import Matcher, SignalType, signal_type
from exchange.core.signals.vpdq import COMPARED_MATCH_PERCENT, FRAME_DISTANCE, QUERY_MATCH_PERCENT, frames_of

__all__ = ["Hit", "MatchIndex"]

NO_OPINIONS: Mapping[str, int] = {}


@dataclass(frozen=True, slots=True, kw_only=True)
class Hit:
    """A live signal a looked-up value matched."""

    signal: BankSignal
    distance: int
    opinions: Mapping[str, int]
    video: tuple[float, float] | None = None
    """Frame-matched types (vpdq): (% of the query's frames matched, % of the signal's)."""


class MatchIndex:
    def __init__(
        self, pdq_threshold: int = DEFAULT_PDQ_THRESHOLD, clock_ms: Callable[[], int] = lambda: int(time.time() * 1000)
    ) -> None:
        self.pdq_threshold = pdq_threshold
        self._clock_ms = clock_ms
        self._lock = threading.Lock()
        self._next_id = 1
        self._ids: dict[tuple[str, str], int] = {}
        self._signals: dict[int, BankSignal] = {}
        self._opinions: dict[int, Mapping[str, int]] = {}
        self._exact: dict[tuple[str, str], tuple[int, ...]] = {}
        self._text: dict[int, str] = {}
        self._counts: dict[str, int] = {}
        self._single_key: dict[str, bool] = {}  # exact types whose value is their only lookup key
        self._pdq = PdqIndex(threshold=pdq_threshold, auto_fold=False)
        self._journal: list[tuple[int, str | None]] | None = None  # PDQ changes during a rebuild
        self._generation = 0  # bumped by clear(): a rebuild begun before it is dropped
        self._frames = PdqIndex(threshold=FRAME_DISTANCE)
        self._frame_owner: dict[int, int] = {}
        self._frames_of: dict[int, list[int]] = {}
        self._next_frame = 1

    # -- updates -------------------------------------------------------------------------

    def _unlink(self, id_: int) -> None:
        old = self._signals.pop(id_, None)
        self._opinions.pop(id_, None)
        if old is None:
            return
        self._counts[old.type] -= 1
        kind = _shape(old.type)
        if kind is Matcher.HAMMING:
            self._pdq.remove(id_)
            if self._journal is not None:
                self._journal.append((id_, None))
        elif kind in (Matcher.SUBSTRING, Matcher.SCAN):
            self._text.pop(id_, None)
        elif kind is _FRAMES:
            fids = self._frames_of.pop(id_, [])
            self._frames.remove_many(fids)
            for f in fids:
                self._frame_owner.pop(f, None)
        elif kind is Matcher.EXACT:
            rest = tuple(i for i in self._exact.get((old.type, old.value), ()) if i != id_)
            if rest:
                self._exact[(old.type, old.value)] = rest
            else:
                self._exact.pop((old.type, old.value), None)

    def _link(self, s: BankSignal, opinions: Mapping[int, int], batch: list[tuple[int, str]] | None = None) -> None:
        key = (s.publisher, s.signal_id)
        id_ = self._ids.get(key)
        if id_ is None:
            id_ = self._next_id
            self._next_id += 1
            self._ids[key] = id_
        else:
            self._unlink(id_)
        kind = signal_type(s.type)
        shape = _shape(s.type)
        if shape is Matcher.NONE or s.quality_flag is not None or kind.quality_flag(s.value) is not None:
            return
        if shape is Matcher.HAMMING:
            if batch is None:
                self._pdq.add(id_, s.value)
                if self._journal is not None:
                    self._journal.append((id_, s.value))
            else:
                batch.append((id_, s.value))
        elif shape in (Matcher.SUBSTRING, Matcher.SCAN):
            self._text[id_] = s.value
        elif shape is _FRAMES:
            frames = frames_of(s.value)
            fids = list(range(self._next_frame, self._next_frame + len(frames)))
            self._next_frame += len(frames)
            self._frames.add_many(fids, frames)
            self._frames_of[id_] = fids
            self._frame_owner.update(dict.fromkeys(fids, id_))
        else:
            self._exact[(s.type, s.value)] = self._exact.get((s.type, s.value), ()) + (id_,)
        self._signals[id_] = s
        self._counts[s.type] = self._counts.get(s.type, 0) + 1
        if opinions:
            self._opinions[id_] = {VERDICTS.get(v, str(v)): n for v, n in sorted(opinions.items())}

    def load(self, signals: Iterable[BankSignal], opinions: Mapping[tuple[str, str], Mapping[int, int]]) -> int:
        """Add many signals (at start); returns how many are matchable."""
        with self._lock:
            batch: list[tuple[int, str]] = []
            for s in signals:
                if s.retracted_index is None:
                    self._link(s, opinions.get((s.publisher, s.signal_id), {}), batch)
                if len(batch) >= 100_000:
                    self._pdq.add_many([i for i, _ in batch], [v for _, v in batch])
                    batch.clear()
            self._pdq.add_many([i for i, _ in batch], [v for _, v in batch])
            self._pdq.fold(force=True)
            return len(self._signals)

    def put(self, s: BankSignal | None, key: tuple[str, str], opinions: Mapping[int, int]) -> None:
        """The bank's current state of one signal (``None``: gone, e.g. compromised key)."""
        self.put_many([(key, s, opinions)])

    def put_many(self, items: Iterable[tuple[tuple[str, str], BankSignal | None, Mapping[int, int]]]) -> None:
        """:meth:`put` for many signals under one acquisition of the lock."""
        now = self._clock_ms()
        with self._lock:
            for key, s, opinions in items:
                if s is None or s.retracted_index is not None or _expired(s, now):
                    id_ = self._ids.pop(key, None)
                    if id_ is not None:
                        self._unlink(id_)
                else:
                    self._link(s, opinions)

    def clear(self) -> None:
        with self._lock:
            self._ids.clear()
            self._signals.clear()
            self._opinions.clear()
            self._exact.clear()
            self._text.clear()
            self._counts.clear()
            self._pdq = PdqIndex(threshold=self.pdq_threshold, auto_fold=False)
            self._journal = None
            self._generation += 1
            self._frames = PdqIndex(threshold=FRAME_DISTANCE)
            self._frame_owner.clear()
            self._frames_of.clear()

    # -- maintenance (never on the lookup path) ------------------------------------------------

    def needs_rebuild(self, min_tail: int = 50_000) -> bool:
        """True when the PDQ tail or its dead rows have grown enough to rebuild."""
        with self._lock:
            st = self._pdq.stats()
            return self._journal is None and (
                st["tail"] > max(min_tail, st["live"] // 100) or st["dead"] > max(min_tail, st["live"] // 4)
            )

    def begin_rebuild(self) -> _Snapshot:
        """Snapshot the live PDQ hashes (under the lock) and start journaling changes."""
        with self._lock:
            if self._journal is not None:
                raise RuntimeError("a rebuild is already running")
            self._journal = []
            ids, codes = self._pdq.live()
            return _Snapshot(generation=self._generation, ids=ids, codes=codes)

    def build(self, snapshot: _Snapshot) -> tuple[int, PdqIndex]:
        """Build the new index from a snapshot: the slow part, outside the lock."""
        fresh = PdqIndex(threshold=self.pdq_threshold, auto_fold=False)
        fresh.add_many(snapshot.ids, snapshot.codes)
        fresh.fold(force=True)
        return snapshot.generation, fresh

    def finish_rebuild(self, built: tuple[int, PdqIndex]) -> int:
        """Replay what changed since the snapshot and swap the new index in; returns
        how many changes were replayed (-1: dropped, the view was cleared meanwhile)."""
        generation, fresh = built
        with self._lock:
            if generation != self._generation:
                return -1
            journal, self._journal = self._journal or [], None
            for id_, value in journal:
                if value is None:
                    fresh.remove(id_)
                else:
                    fresh.add(id_, value)
            self._pdq = fresh
            return len(journal)

    def maintain(self) -> bool:
        """Rebuild the PDQ index off the lookup path if it needs it; True if it did."""
        if not self.needs_rebuild():
            return False
        self.finish_rebuild(self.build(self.begin_rebuild()))
        return True

    # -- lookups ---------------------------------------------------------------------------

    def _hits(self, ids: Iterable[tuple[int, int]], now: int, type_name: str | None = None) -> list[Hit]:
        out = []
        for id_, distance in ids:
            s = self._signals.get(id_)
            if s is not None and s.live_at(now) and (type_name is None or s.type == type_name):
                out.append(Hit(signal=s, distance=distance, opinions=self._opinions.get(id_, NO_OPINIONS)))
        return out

    def lookup(self, type_name: str, value: str) -> list[Hit]:
        """Live signals matching an already-normalized value, nearest first (exact
        types through the type's ``lookups()``: a URL also matches its host's domains).

        Exact lookups take no lock: they read dicts whose entries updates replace whole
        (atomic under the GIL), and a miss, the common case, costs a dict probe."""
        single = self._single_key.get(type_name)
        if single is None:
            k = signal_type(type_name)
            single = self._single_key[type_name] = k.matcher is Matcher.EXACT and type(k).lookups is SignalType.lookups
        if single:  # md5, sha256, …: the value is the only key
            ids = self._exact.get((type_name, value))
            if not ids:
                return []
            return sorted(self._hits([(i, 0) for i in ids], self._clock_ms()), key=lambda h: h.signal.index)
        kind = signal_type(type_name)
        if kind.matcher is Matcher.EXACT:
            keys = kind.lookups(value)
            if len(keys) == 1:
                ids = self._exact.get(keys[0])
                if not ids:
                    return []
                return sorted(self._hits([(i, 0) for i in ids], self._clock_ms()), key=lambda h: h.signal.index)
            found = list({i: 0 for key in keys for i in self._exact.get(key, ())}.items())
            return sorted(self._hits(found, self._clock_ms()), key=lambda h: h.signal.index)
        now = self._clock_ms()
        with self._lock:
            only: str | None = None
            if kind.matcher is Matcher.HAMMING:
                found, only = self._pdq.search(value, self.pdq_threshold), type_name
            elif _shape(type_name) is _FRAMES:
                return self._video(frames_of(value), now)
            elif kind.matcher in (Matcher.SUBSTRING, Matcher.SCAN):
                scored = ((i, kind.distance(v, value)) for i, v in self._text.items()
                          if self._signals[i].type == type_name)
                found, only = [(i, d) for i, d in scored if d is not None], type_name
            else:
                found = []
            hits = self._hits(found, now, only)
        return sorted(hits, key=lambda h: (h.distance, h.signal.index))

    def lookup_many(self, type_name: str, values: list[str]) -> list[list[Hit]]:
        """:meth:`lookup` for many normalized values of one type; ``HAMMING`` types in
        one batched index search (far cheaper than one search per value)."""
        if signal_type(type_name).matcher is not Matcher.HAMMING or len(values) < 2:
            return [self.lookup(type_name, v) for v in values]
        now = self._clock_ms()
        with self._lock:
            found = self._pdq.search_many(values, self.pdq_threshold)
            hits = [self._hits(f, now, type_name) for f in found]
        return [sorted(h, key=lambda h: (h.distance, h.signal.index)) for h in hits]

    def _video(self, query: list[str], now: int) -> list[Hit]:
        """Frame-by-frame vPDQ matching (caller holds the lock): a signal matches when
        >= 80% of the query's frames are within 31 bits of one of its frames."""
        query_hits: dict[int, int] = {}
        signal_frames: dict[int, set[int]] = {}
        best: dict[int, int] = {}
        for frame in query:
            owners: set[int] = set()
            for fid, d in self._frames.search(frame, FRAME_DISTANCE):
                owner = self._frame_owner.get(fid)
                if owner is None:
                    continue
                owners.add(owner)
                signal_frames.setdefault(owner, set()).add(fid)
                best[owner] = min(d, best.get(owner, d))
            for owner in owners:
                query_hits[owner] = query_hits.get(owner, 0) + 1
        out = []
        for owner, n in query_hits.items():
            q_pct = n * 100 / len(query)
            c_pct = len(signal_frames[owner]) * 100 / len(self._frames_of[owner])
            s = self._signals.get(owner)
            if s is None or not s.live_at(now) or q_pct < QUERY_MATCH_PERCENT or c_pct < COMPARED_MATCH_PERCENT:
                continue
            out.append(Hit(signal=s, distance=best[owner], opinions=self._opinions.get(owner, NO_OPINIONS),
                           video=(q_pct, c_pct)))
        return sorted(out, key=lambda h: (-(h.video or (0.0, 0.0))[0], h.distance, h.signal.index))

    def sizes(self) -> dict[str, int]:
        """Matchable signals by type (for metrics)."""
        with self._lock:
            return dict(self._counts)

    def __len__(self) -> int:
        return len(self._signals)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Snapshot:
    generation: int
    ids: Any
    codes: Any


_FRAMES = "frames"  # a SCAN type made of frames (it has frames()): matched over the frame index


def _shape(type_name: str) -> str:
    """How this view stores a type: its matcher, or _FRAMES for frame-list types."""
    kind = signal_type(type_name)
    if kind.matcher is Matcher.SCAN and callable(getattr(kind, "frames", None)):
        return _FRAMES
    return kind.matcher


def _expired(s: BankSignal, now: int) -> bool:
    return s.valid_until_ms is not None and now >= s.valid_until_ms
