"""The match service's in-memory view of the bank: every lookup is answered from memory.

SQLite (the member's state file, written by :meth:`clients.member.MemberClient.sync`)
stays the durable copy; this view is loaded from it at start and kept in step through
:meth:`clients.bank.Bank.on_change`. Signals are stored as rows of numpy columns
(:mod:`clients.matchsvc.columns`: ~150 bytes a signal; the answer's ``BankSignal`` is
built only for a hit). Matching follows each signal type's plug-in: ``EXACT`` types
through a digest map of ``(type, value)`` → rows and the type's ``lookups()``,
``SUBSTRING`` types by a scan, ``HAMMING`` types in one
:class:`clients.pdq_index.PdqIndex` keyed by row (hits filtered by type), ``SCAN``
types by their own ``distance`` over the type's live signals, except types made of
frames (vpdq, which have ``frames()``): those are matched frame by frame in a second
PdqIndex over every signal's frames, with python-threatexchange's thresholds
(:mod:`exchange.core.signals.vpdq`). One lock serializes updates; updates take it for
at most 256 signals at a time. Lookups take it only to read the rows: the PDQ and frame
indexes are searched without it (each reads its own snapshot) and their answers checked
against the rows under it.

Lookups never fold or compact the PDQ index (``auto_fold=False``: new hashes wait in
a brute-forced tail). :meth:`MatchIndex.maintain`, run by the service's maintenance
thread, rebuilds it from a snapshot *outside* the lock while lookups and updates go
on against the old one (updates are journaled and replayed), then swaps it in: only
the snapshot copy and the swap hold the lock. A rebuild briefly needs a second copy
of the index in memory. The digest maps' recent additions are merged the same way
(:meth:`MatchIndex.merge_maps`).
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from clients.bank import DEFAULT_PDQ_THRESHOLD, VERDICTS, Bank, BankSignal, SignalColumns
from clients.matchsvc.columns import DigestMap, SignalRows, digest, digests
from clients.pdq_index import PdqIndex, pdq_words_many
from exchange.core.signals import Matcher, SignalType, signal_type
from exchange.core.signals.vpdq import COMPARED_MATCH_PERCENT, FRAME_DISTANCE, QUERY_MATCH_PERCENT, frames_of

__all__ = ["Hit", "MatchIndex"]

log = logging.getLogger(__name__)

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
        self._rows = SignalRows()
        self._by_key = DigestMap()  # digest(publisher, signal_id) → row
        self._by_value = DigestMap()  # digest(type, value) → rows, EXACT types
        self._opinions: dict[int, Mapping[str, int]] = {}
        self._text: dict[int, str] = {}
        self._counts: dict[str, int] = {}
        # each type's plug-in, and whether it is exact with its value as its only lookup key
        self._kinds: dict[str, tuple[SignalType, bool]] = {}
        self._pdq = PdqIndex(threshold=pdq_threshold, auto_fold=False)
        self._journal: list[tuple[int, str | None]] | None = None  # PDQ changes during a rebuild
        self._generation = 0  # bumped by clear(): a rebuild begun before it is dropped
        self._frames = PdqIndex(threshold=FRAME_DISTANCE)
        self._frame_owner: dict[int, int] = {}
        self._frames_of: dict[int, list[int]] = {}
        self._next_frame = 1
        self.pdq_from_saved = False
        """Whether the last load used the bank's saved PDQ index."""

    # -- updates -------------------------------------------------------------------------

    def _row_of(self, key: tuple[str, str]) -> int | None:
        for r in self._by_key.get(digest(*key)):
            if self._rows.is_key(r, *key):
                return r
        return None

    def _unlink(self, row: int) -> None:
        type_name = self._rows.type_of(row)
        self._opinions.pop(row, None)
        self._counts[type_name] -= 1
        kind = _shape(type_name)
        if kind is Matcher.HAMMING:
            self._pdq.remove(row)
            if self._journal is not None:
                self._journal.append((row, None))
        elif kind in (Matcher.SUBSTRING, Matcher.SCAN):
            self._text.pop(row, None)
        elif kind is _FRAMES:
            fids = self._frames_of.pop(row, [])
            self._frames.remove_many(fids)
            for f in fids:
                self._frame_owner.pop(f, None)
        self._rows.free(row)  # its map entries go stale: readers verify, merges drop them

    @staticmethod
    def _matchable(s: BankSignal) -> bool:
        return (_shape(s.type) is not Matcher.NONE and s.quality_flag is None
                and signal_type(s.type).quality_flag(s.value) is None)

    def _link(self, s: BankSignal, opinions: Mapping[int, int]) -> None:
        key = (s.publisher, s.signal_id)
        old = self._row_of(key)
        if old is not None:
            self._unlink(old)
        if not self._matchable(s):
            return
        shape = _shape(s.type)
        key_digest = digest(*key)
        value_digest = digest(s.type, s.value) if shape is Matcher.EXACT else 0
        row = self._rows.add(s, key_digest, value_digest)
        self._by_key.add(key_digest, row)
        if shape is Matcher.EXACT:
            self._by_value.add(value_digest, row)
        self._index_value(row, s.value, shape)
        self._counts[s.type] = self._counts.get(s.type, 0) + 1
        if opinions:
            self._opinions[row] = _opinion_names(opinions)

    def _index_value(self, row: int, value: str, shape: str) -> None:
        """Index a new row's value by its matcher (PDQ, text, frames; exact: the map)."""
        if shape is Matcher.HAMMING:
            self._pdq.add(row, value)
            if self._journal is not None:
                self._journal.append((row, value))
        elif shape in (Matcher.SUBSTRING, Matcher.SCAN):
            self._text[row] = value
        elif shape is _FRAMES:
            frames = frames_of(value)
            fids = list(range(self._next_frame, self._next_frame + len(frames)))
            self._next_frame += len(frames)
            self._frames.add_many(fids, frames)
            self._frames_of[row] = fids
            self._frame_owner.update(dict.fromkeys(fids, row))

    def load(self, signals: Iterable[BankSignal], opinions: Mapping[tuple[str, str], Mapping[int, int]]) -> int:
        """Add many signals (at start, into an empty view, as :meth:`load_columns`);
        returns how many are matchable."""
        live = [s for s in signals if s.retracted_index is None]
        if self._rows.end:
            with self._lock:
                for s in live:
                    self._link(s, opinions.get((s.publisher, s.signal_id), {}))
                return len(self._rows)
        return self.load_columns([SignalColumns.of(live[i : i + 50_000], i + 1) for i in range(0, len(live), 50_000)],
                                 opinions)

    def load_bank(self, bank: Bank) -> int:
        """Load a bank into this empty view (the service's start-up): one column scan, the
        bank's saved PDQ index if current (else built, then saved for the next start)."""
        watermark = bank.index_watermark()
        n = self.load_columns(bank.scan_columns(), bank.all_opinion_counts(), saved_pdq=bank.saved_index(),
                              keep_pdq=lambda built: bank.save_index_copy(built, watermark))
        _release_freed_memory()
        return n

    def load_columns(self, batches: Iterable[SignalColumns], opinions: Mapping[tuple[str, str], Mapping[int, int]],
                     saved_pdq: PdqIndex | None = None, keep_pdq: Callable[[PdqIndex], object] | None = None) -> int:
        """:meth:`load` from a bank's column scan (:meth:`clients.bank.Bank.scan_columns`),
        into an empty view: numpy a batch, Python only once per distinct string (and per
        value of types with a value-dependent ``quality_flag``); returns how many are matchable.

        ``saved_pdq``: the bank's saved PDQ index (ids: rowids), current by the bank's
        rule; used only if its ids are exactly the loaded PDQ rowids (else built from the
        values). A built index is handed to ``keep_pdq`` (ids: rowids) to be saved.
        Either way its ids are then renamed to this view's rows."""
        with self._lock:
            if self._rows.end:
                raise RuntimeError("load_columns needs an empty view")
            by_key: list[tuple[np.ndarray, np.ndarray]] = []
            by_value: list[tuple[np.ndarray, np.ndarray]] = []
            pdq: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]] = []
            for c in batches:
                self._load_batch(c, by_key, by_value, pdq, words=saved_pdq is None)
            self._rows.trim()
            for target, parts in ((self._by_key, by_key), (self._by_value, by_value)):
                if parts:
                    target.add_arrays(np.concatenate([k for k, _ in parts]), np.concatenate([r for _, r in parts]))
            for key, got in opinions.items():
                row = self._row_of(key)
                if row is not None and got:
                    self._opinions[row] = _opinion_names(got)
            self._pdq = self._pdq_of(pdq, saved_pdq, keep_pdq)
            return len(self._rows)

    def _pdq_of(self, parts: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]], saved: PdqIndex | None,
                keep: Callable[[PdqIndex], object] | None) -> PdqIndex:
        """The loaded view's PDQ index (ids: rows): the saved one if it holds exactly the
        loaded rowids, else built from the words gathered while loading."""
        rowids = np.concatenate([p[0] for p in parts]) if parts else np.empty(0, np.int64)
        rows = np.concatenate([p[1] for p in parts]) if parts else np.empty(0, np.int64)
        self.pdq_from_saved = False
        index: PdqIndex | None = None
        if saved is not None:
            try:
                saved.relabel(rowids, rows)
                index, self.pdq_from_saved = saved, True
            except ValueError:
                log.warning("the saved PDQ index does not hold the loaded signals; building it")
        if index is None:
            if saved is not None:  # gather the words now: the scan skipped them
                return self._pdq_of([(ids, rows, self._words_of(rows)) for ids, rows, _ in parts], None, keep)
            index = PdqIndex(threshold=self.pdq_threshold, auto_fold=False)
            if parts:
                index.add_many(rowids, np.concatenate([p[2] for p in parts if p[2] is not None]))
            index.fold(force=True)
            if keep is not None:
                keep(index)
            index.relabel(rowids, rows)
        index.threshold, index.auto_fold = self.pdq_threshold, False
        return index

    def _words_of(self, rows: np.ndarray) -> np.ndarray:
        return pdq_words_many([self._rows.values.get(int(r)) for r in rows])

    def _load_batch(self, c: SignalColumns, by_key: list[tuple[np.ndarray, np.ndarray]],
                    by_value: list[tuple[np.ndarray, np.ndarray]],
                    pdq: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]], words: bool) -> None:
        n = len(c)
        names = sorted(set(c.type))
        code = {t: i for i, t in enumerate(names)}
        shapes = [_shape(t) for t in names]
        types = np.fromiter(map(code.__getitem__, c.type), np.int16, n)
        matchable = np.array([sh is not Matcher.NONE for sh in shapes], bool)
        keep = matchable[types] & np.array([f is None for f in c.quality_flag], bool)
        for t in names:  # types whose quality depends on the value (PDQ: degenerate hashes)
            kind = signal_type(t)
            if type(kind).quality_flag is not SignalType.quality_flag:
                for i in np.flatnonzero(keep & (types == code[t])).tolist():
                    if kind.quality_flag(c.value[i]) is not None:
                        keep[i] = False
        at = np.flatnonzero(keep)
        if not len(at):
            return
        kept = at.tolist()
        kept_types = types[at]
        exact = np.array([sh is Matcher.EXACT for sh in shapes], bool)[kept_types]
        hamming = np.array([sh is Matcher.HAMMING for sh in shapes], bool)[kept_types]
        key_digests = digests([c.publisher[i] for i in kept], [c.signal_id[i] for i in kept])
        value_digests = np.zeros(len(kept), np.uint64)
        exact_at = at[exact].tolist()
        value_digests[exact] = digests([c.type[i] for i in exact_at], [c.value[i] for i in exact_at])
        start = self._rows.add_columns(c, keep, key_digests, value_digests)
        rows = np.arange(start, start + len(kept), dtype=np.int64)
        by_key.append((key_digests, rows))
        by_value.append((value_digests[exact], rows[exact]))
        for j in np.flatnonzero(~(hamming | exact)).tolist():
            self._index_value(start + j, c.value[kept[j]], shapes[int(kept_types[j])])
        if hamming.any():
            pdq_at = at[hamming].tolist()
            pdq.append((np.asarray(c.rowid, np.int64)[at[hamming]], rows[hamming],
                        pdq_words_many([c.value[i] for i in pdq_at]) if words else None))
        for t, count in zip(names, np.bincount(kept_types, minlength=len(names)).tolist(), strict=True):
            if count:
                self._counts[t] = self._counts.get(t, 0) + count

    def _valid_keys(self, keys: np.ndarray, rows: np.ndarray) -> np.ndarray:
        c = self._rows.cols
        return np.asarray(c["alive"][rows] & (c["key_digest"][rows] == keys), bool)

    def _valid_values(self, keys: np.ndarray, rows: np.ndarray) -> np.ndarray:
        c = self._rows.cols
        return np.asarray(c["alive"][rows] & (c["value_digest"][rows] == keys), bool)

    def put(self, s: BankSignal | None, key: tuple[str, str], opinions: Mapping[int, int]) -> None:
        """The bank's current state of one signal (``None``: gone, e.g. compromised key)."""
        self.put_many([(key, s, opinions)])

    def put_many(self, items: Iterable[tuple[tuple[str, str], BankSignal | None, Mapping[int, int]]]) -> None:
        """:meth:`put` for many signals, the lock taken for at most 256 at a time (so a
        large page never holds lookups up for long)."""
        now = self._clock_ms()
        todo = list(items)
        for i in range(0, len(todo), 256):
            with self._lock:
                for key, s, opinions in todo[i : i + 256]:
                    if s is None or s.retracted_index is not None or _expired(s, now):
                        row = self._row_of(key)
                        if row is not None:
                            self._unlink(row)
                    else:
                        self._link(s, opinions)

    def clear(self) -> None:
        with self._lock:
            self._rows = SignalRows()
            self._by_key = DigestMap()
            self._by_value = DigestMap()
            self._opinions.clear()
            self._text.clear()
            self._counts.clear()
            self._pdq = PdqIndex(threshold=self.pdq_threshold, auto_fold=False)
            self._journal = None
            self._generation += 1
            self._frames = PdqIndex(threshold=FRAME_DISTANCE)
            self._frame_owner.clear()
            self._frames_of.clear()

    def merge_maps(self, min_pending: int = 50_000) -> bool:
        """Merge the digest maps' recent additions into their sorted arrays when there
        are enough of them: the O(n) part runs outside the lock; True if it did."""
        with self._lock:
            maps = [(m, v) for m, v in ((self._by_key, self._valid_keys), (self._by_value, self._valid_values))
                    if m.pending() > max(min_pending, len(self._rows) // 64)]
            generation = self._generation
            for m, _ in maps:
                m.freeze()
        built = [(m, m.build(v)) for m, v in maps]
        with self._lock:
            for m, arrays in built:
                if generation == self._generation:
                    m.install(arrays)
        return bool(maps)

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
        merged = self.merge_maps()
        if not self.needs_rebuild():
            return merged
        self.finish_rebuild(self.build(self.begin_rebuild()))
        return True

    # -- lookups ---------------------------------------------------------------------------

    def _hits(self, found: Iterable[tuple[int, int]], now: int, type_name: str | None = None) -> list[Hit]:
        """Answers for the live rows among ``found`` (caller holds the lock)."""
        rows = self._rows
        out = []
        for row, distance in found:
            if rows.live_at(row, now) and (type_name is None or rows.type_of(row) == type_name):
                out.append(Hit(signal=rows.signal(row), distance=distance,
                               opinions=self._opinions.get(row, NO_OPINIONS)))
        return out

    def _still_near(self, found: Iterable[tuple[int, int]], query: str, type_name: str) -> list[tuple[int, int]]:
        """The PDQ index's answers whose row still holds, under the lock, a hash of
        ``type_name`` at the distance found (caller holds the lock): the search ran
        without it, so a row may have been removed, or freed and reused by another
        signal, in between — that row must not answer with the old hash's distance."""
        rows, q = self._rows, int(query, 16)
        return [(r, d) for r, d in found
                if rows.alive(r) and rows.type_of(r) == type_name and (int(rows.values.get(r), 16) ^ q).bit_count() == d]

    def _exact_rows(self, type_name: str, value: str) -> list[int]:
        """Rows holding exactly (type, value), verified (map entries may be stale)."""
        type_id = self._rows.types.find(type_name)
        if type_id < 0:
            return []
        return [r for r in self._by_value.get(digest(type_name, value)) if self._rows.is_value(r, type_id, value)]

    def lookup(self, type_name: str, value: str) -> list[Hit]:
        """Live signals matching an already-normalized value, nearest first (exact
        types through the type's ``lookups()``: a URL also matches its host's domains)."""
        known = self._kinds.get(type_name)
        if known is None:
            k = signal_type(type_name)
            known = self._kinds[type_name] = (k, k.matcher is Matcher.EXACT and type(k).lookups is SignalType.lookups)
        kind, single = known
        if single:  # md5, sha256, …: a miss, the common case, is a hash and a bisect
            with self._lock:
                if not self._by_value.get(digest(type_name, value)):
                    return []
        now = self._clock_ms()
        if kind.matcher is Matcher.HAMMING:  # searched outside the lock: the PDQ index reads its own snapshot
            near = self._pdq.search(value, self.pdq_threshold)
            with self._lock:
                hits = self._hits(self._still_near(near, value, type_name), now, type_name)
            return sorted(hits, key=lambda h: (h.distance, h.signal.index))
        if _shape(type_name) is _FRAMES:  # the frames are searched outside the lock too
            query = frames_of(value)
            per_frame = self._frames.search_many(query, FRAME_DISTANCE) if query else []
            with self._lock:
                return self._video(len(query), per_frame, now)
        with self._lock:
            if kind.matcher is Matcher.EXACT:
                keys = [(type_name, value)] if single else kind.lookups(value)
                found = dict.fromkeys(r for key in keys for r in self._exact_rows(*key))  # deduplicated, in order
                if not found:
                    return []
                return sorted(self._hits([(r, 0) for r in found], now), key=lambda h: h.signal.index)
            only: str | None = None
            if kind.matcher in (Matcher.SUBSTRING, Matcher.SCAN):
                scored = ((i, kind.distance(v, value)) for i, v in self._text.items()
                          if self._rows.type_of(i) == type_name)
                hamming, only = [(i, d) for i, d in scored if d is not None], type_name
            else:
                hamming = []
            hits = self._hits(hamming, now, only)
        return sorted(hits, key=lambda h: (h.distance, h.signal.index))

    def lookup_many(self, type_name: str, values: list[str]) -> list[list[Hit]]:
        """:meth:`lookup` for many normalized values of one type; ``HAMMING`` types in
        one batched index search (far cheaper than one search per value)."""
        if signal_type(type_name).matcher is not Matcher.HAMMING or len(values) < 2:
            return [self.lookup(type_name, v) for v in values]
        now = self._clock_ms()
        found = self._pdq.search_many(values, self.pdq_threshold)  # outside the lock, as in lookup
        with self._lock:
            hits = [self._hits(self._still_near(f, v, type_name), now, type_name) for f, v in zip(found, values)]
        return [sorted(h, key=lambda h: (h.distance, h.signal.index)) for h in hits]

    def _video(self, frames: int, found: list[list[tuple[int, int]]], now: int) -> list[Hit]:
        """Frame-by-frame vPDQ matching of a query of ``frames`` frames, from the frame
        index's answers for each (caller holds the lock): a signal matches when >= 80% of
        the query's frames are within 31 bits of one of its frames. The search ran without
        the lock; frame ids are never reused, so a frame still owned is the frame found."""
        query_hits: dict[int, int] = {}
        signal_frames: dict[int, set[int]] = {}
        best: dict[int, int] = {}
        for near in found:
            owners: set[int] = set()
            for fid, d in near:
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
            q_pct = n * 100 / frames
            c_pct = len(signal_frames[owner]) * 100 / len(self._frames_of[owner])
            if not self._rows.live_at(owner, now) or q_pct < QUERY_MATCH_PERCENT or c_pct < COMPARED_MATCH_PERCENT:
                continue
            out.append(Hit(signal=self._rows.signal(owner), distance=best[owner],
                           opinions=self._opinions.get(owner, NO_OPINIONS),
                           video=(q_pct, c_pct)))
        return sorted(out, key=lambda h: (-(h.video or (0.0, 0.0))[0], h.distance, h.signal.index))

    def sizes(self) -> dict[str, int]:
        """Matchable signals by type (for metrics)."""
        with self._lock:
            return dict(self._counts)

    def memory(self) -> dict[str, int]:
        """Bytes held by the view's arrays, by part (for metrics and benchmarks)."""
        with self._lock:
            return {"columns": self._rows.nbytes(),
                    "maps": self._by_key.nbytes() + self._by_value.nbytes(), "pdq": self._pdq.nbytes}

    def __len__(self) -> int:
        return len(self._rows)


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


def _release_freed_memory() -> None:
    """Hand the heap the load freed back to the system (glibc keeps it otherwise: at 1M
    signals about 160 MiB of resident memory); elsewhere nothing."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _opinion_names(opinions: Mapping[int, int]) -> Mapping[str, int]:
    return {VERDICTS.get(v, str(v)): n for v, n in sorted(opinions.items())}


def _expired(s: BankSignal, now: int) -> bool:
    return s.valid_until_ms is not None and now >= s.valid_until_ms
