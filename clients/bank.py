"""The member's bank of verified signals: exact lookups and PDQ near-duplicates.

The bank applies new versions (highest ledger index wins), retractions and expiry
(``valid_until``): only *live* signals match. PDQ search here is a brute-force
Hamming scan over a packed numpy array, rebuilt when the bank changes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from clients.media import MIN_PDQ_QUALITY, MediaHashes
from clients.store import MemberStore
from exchange.core.entries import timestamp_to_ms
from exchange.core.keydir import KeyInfo
from exchange.core.signals import Matcher, signal_type
from exchange.pb.trustwire.v1 import entries_pb2 as pb

__all__ = ["Bank", "BankSignal", "Match", "DEFAULT_PDQ_THRESHOLD"]

DEFAULT_PDQ_THRESHOLD = 31
_COLUMNS = (
    "publisher, signal_id, idx, type, value, labels, confidence, severity, groups, tlp,"
    " valid_from_ms, valid_until_ms, created_at_ms, retracted_idx"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class BankSignal:
    publisher: str
    signal_id: str
    index: int
    type: str
    value: str
    labels: tuple[str, ...]
    confidence: int
    severity: int
    groups: tuple[str, ...]
    tlp: int
    valid_from_ms: int | None
    valid_until_ms: int | None
    created_at_ms: int
    retracted_index: int | None

    def live_at(self, now_ms: int) -> bool:
        if self.retracted_index is not None:
            return False
        if self.valid_until_ms is not None and now_ms >= self.valid_until_ms:
            return False
        return self.valid_from_ms is None or now_ms >= self.valid_from_ms


@dataclass(frozen=True, slots=True, kw_only=True)
class Match:
    """A piece of the member's content that matched a signal, with provenance."""

    content_ref: str
    signal: BankSignal
    distance: int = 0


def _row(r: tuple[object, ...]) -> BankSignal:
    return BankSignal(
        publisher=str(r[0]),
        signal_id=str(r[1]),
        index=int(r[2]),  # type: ignore[call-overload]
        type=str(r[3]),
        value=str(r[4]),
        labels=tuple(json.loads(str(r[5]))),
        confidence=int(r[6]),  # type: ignore[call-overload]
        severity=int(r[7]),  # type: ignore[call-overload]
        groups=tuple(json.loads(str(r[8]))),
        tlp=int(r[9]),  # type: ignore[call-overload]
        valid_from_ms=r[10],  # type: ignore[arg-type]
        valid_until_ms=r[11],  # type: ignore[arg-type]
        created_at_ms=int(r[12]),  # type: ignore[call-overload]
        retracted_index=r[13],  # type: ignore[arg-type]
    )


class Bank:
    def __init__(
        self,
        store: MemberStore,
        pdq_threshold: int = DEFAULT_PDQ_THRESHOLD,
        clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self._store = store
        self.pdq_threshold = pdq_threshold
        self._clock_ms = clock_ms
        self._pdq_cache: tuple[np.ndarray, list[tuple[str, str]]] | None = None

    # -- applying verified entries ---------------------------------------------------

    def add_signal(self, s: pb.Signal, index: int, keyid: str = "", accepted_at_ms: int = 0) -> bool:
        """Store a signal version; False if a newer version is already banked."""
        with self._store.transaction() as c:
            row = c.execute(
                "SELECT idx FROM signals WHERE publisher = ? AND signal_id = ?", (s.member_id, s.signal_id)
            ).fetchone()
            if row is not None and row[0] >= index:
                return False
            c.execute(
                f"INSERT OR REPLACE INTO signals ({_COLUMNS}, keyid, accepted_at_ms)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,NULL,?,?)",
                (
                    s.member_id,
                    s.signal_id,
                    index,
                    s.type,
                    s.value,
                    json.dumps(sorted(s.labels)),
                    s.confidence,
                    s.severity,
                    json.dumps(list(s.sharing.groups)),
                    s.sharing.tlp,
                    timestamp_to_ms(s.valid_from) if s.HasField("valid_from") else None,
                    timestamp_to_ms(s.valid_until) if s.HasField("valid_until") else None,
                    timestamp_to_ms(s.created_at),
                    keyid,
                    accepted_at_ms,
                ),
            )
        self._pdq_cache = None
        return True

    def retract(self, publisher: str, signal_id: str, index: int) -> bool:
        with self._store.transaction() as c:
            cur = c.execute(
                "UPDATE signals SET retracted_idx = ? WHERE publisher = ? AND signal_id = ? AND idx < ?",
                (index, publisher, signal_id, index),
            )
        self._pdq_cache = None
        return cur.rowcount > 0

    def add_opinion(self, o: pb.Opinion, index: int, keyid: str = "", accepted_at_ms: int = 0) -> None:
        with self._store.transaction() as c:
            c.execute(
                "INSERT INTO opinions VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (publisher, signal_id, author)"
                " DO UPDATE SET verdict = excluded.verdict, idx = excluded.idx, keyid = excluded.keyid,"
                " accepted_at_ms = excluded.accepted_at_ms WHERE excluded.idx > opinions.idx",
                (o.signal.member_id, o.signal.signal_id, o.member_id, o.verdict, index, keyid, accepted_at_ms),
            )

    def drop_tainted(self, key: KeyInfo) -> list[tuple[int, str, str]]:
        """Remove what ``key`` signed after it was compromised; return (index, publisher, signal_id)
        of each dropped signal (opinions are dropped too, and not returned)."""
        dropped: list[tuple[int, str, str]] = []
        with self._store.transaction() as c:
            for idx, at, publisher, signal_id in c.execute(
                "SELECT idx, accepted_at_ms, publisher, signal_id FROM signals WHERE keyid = ?", (key.keyid,)
            ).fetchall():
                if key.tainted(idx, at):
                    c.execute("DELETE FROM signals WHERE publisher = ? AND signal_id = ?", (publisher, signal_id))
                    dropped.append((idx, publisher, signal_id))
            for idx, at, publisher, signal_id, author in c.execute(
                "SELECT idx, accepted_at_ms, publisher, signal_id, author FROM opinions WHERE keyid = ?", (key.keyid,)
            ).fetchall():
                if key.tainted(idx, at):
                    c.execute(
                        "DELETE FROM opinions WHERE publisher = ? AND signal_id = ? AND author = ?",
                        (publisher, signal_id, author),
                    )
        self._pdq_cache = None
        return dropped

    # -- queries ---------------------------------------------------------------------

    def get(self, publisher: str, signal_id: str) -> BankSignal | None:
        r = self._store.conn.execute(
            f"SELECT {_COLUMNS} FROM signals WHERE publisher = ? AND signal_id = ?", (publisher, signal_id)
        ).fetchone()
        return None if r is None else _row(r)

    def opinion_counts(self, publisher: str, signal_id: str) -> dict[int, int]:
        rows = self._store.conn.execute(
            "SELECT verdict, COUNT(*) FROM opinions WHERE publisher = ? AND signal_id = ? GROUP BY verdict",
            (publisher, signal_id),
        )
        return {int(v): int(n) for v, n in rows}

    def lookup(self, type_name: str, value: str) -> list[BankSignal]:
        """Live signals of an exact-match type with this (normalized) value."""
        now = self._clock_ms()
        rows = self._store.conn.execute(
            f"SELECT {_COLUMNS} FROM signals WHERE type = ? AND value = ?", (type_name, value)
        ).fetchall()
        return [s for s in map(_row, rows) if s.live_at(now)]

    def _pdq_index(self) -> tuple[np.ndarray, list[tuple[str, str]]]:
        if self._pdq_cache is None:
            rows = self._store.conn.execute(
                "SELECT publisher, signal_id, value FROM signals WHERE type = 'pdq' AND retracted_idx IS NULL"
            ).fetchall()
            packed = np.array(
                [np.frombuffer(bytes.fromhex(v), dtype=">u8") for _, _, v in rows], dtype=np.uint64
            ).reshape(len(rows), 4)
            self._pdq_cache = (packed, [(p, s) for p, s, _ in rows])
        return self._pdq_cache

    def search_pdq(self, pdq: str, threshold: int | None = None) -> list[tuple[BankSignal, int]]:
        """Live PDQ signals within ``threshold`` Hamming distance, nearest first."""
        limit = self.pdq_threshold if threshold is None else threshold
        packed, keys = self._pdq_index()
        if not keys:
            return []
        query = np.frombuffer(bytes.fromhex(pdq), dtype=">u8").astype(np.uint64)
        distances = np.bitwise_count(packed ^ query).sum(axis=1)
        now = self._clock_ms()
        out = []
        for i in np.flatnonzero(distances <= limit):
            s = self.get(*keys[i])
            if s is not None and s.live_at(now):
                out.append((s, int(distances[i])))
        return sorted(out, key=lambda t: (t[1], t[0].index))

    def match_media(self, h: MediaHashes) -> list[Match]:
        """Every live signal this file matches: exact digests, then PDQ neighbours."""
        found: dict[tuple[str, str], Match] = {}
        digests = [("md5", h.md5), ("sha256", h.sha256)] + ([("video_md5", h.md5)] if h.is_video else [])
        for type_name, value in digests:
            for s in self.lookup(type_name, value):
                found[(s.publisher, s.signal_id)] = Match(content_ref=h.path, signal=s, distance=0)
        if h.pdq is not None and (h.pdq_quality or 0) >= MIN_PDQ_QUALITY:
            for s, d in self.search_pdq(h.pdq):
                found.setdefault((s.publisher, s.signal_id), Match(content_ref=h.path, signal=s, distance=d))
        return sorted(found.values(), key=lambda m: (m.distance, m.signal.index))

    def match_value(self, type_name: str, raw: str, content_ref: str) -> list[Match]:
        """Match one piece of the member's own content of a non-media type."""
        kind = signal_type(type_name)
        value = kind.normalize(raw)
        if kind.matcher is Matcher.SUBSTRING:
            now = self._clock_ms()
            rows = self._store.conn.execute(f"SELECT {_COLUMNS} FROM signals WHERE type = ?", (type_name,))
            hits = [s for s in map(_row, rows) if s.live_at(now) and s.value in value]
        else:
            hits = self.lookup(type_name, value)
        return [Match(content_ref=content_ref, signal=s) for s in hits]

    def stats(self) -> dict[str, int]:
        now = self._clock_ms()
        rows = self._store.conn.execute(f"SELECT {_COLUMNS} FROM signals").fetchall()
        signals = list(map(_row, rows))
        return {
            "signals": len(signals),
            "live": sum(s.live_at(now) for s in signals),
            "retracted": sum(s.retracted_index is not None for s in signals),
            "expired": sum(s.valid_until_ms is not None and s.valid_until_ms <= now for s in signals),
        }
