"""The ledger seam and its embedded engine, a single SQLite file.

A ledger assigns contiguous indices (0, 1, 2, …) to admitted entries, stores each
record's bytes once, and keeps the small indexes admission needs: envelope digest
→ receipt (idempotent publish) and signal → audience (visibility of retractions and
opinions). An append is one transaction: the batch is all in or all out, and a
receipt exists only after the commit.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from exchange.core.errors import LedgerCorrupt, Unavailable
from exchange.core.records import Receipt, encode_record, leaf_hash

__all__ = ["Ledger", "Pending", "Receipt", "SignalState", "SqliteLedger", "Stored", "PUBLIC"]

log = logging.getLogger(__name__)

PUBLIC = "*"
"""Audience of key events: every principal."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Pending:
    """An admitted entry waiting for its index."""

    envelope: bytes
    digest: bytes
    kind: str
    publisher: str
    audience: tuple[str, ...] | None  # group ids; None = PUBLIC
    signal_id: str | None = None  # set for signals; the (publisher, signal_id) it creates/updates
    # for signals: everyone who saw any version (the audience of later retractions/opinions)
    signal_audience: tuple[str, ...] | None = None
    retracts: tuple[str, str] | None = None  # (publisher, signal_id) for retractions


@dataclass(frozen=True, slots=True, kw_only=True)
class Stored:
    """A ledger record with the metadata readers filter on."""

    index: int
    record: bytes
    kind: str
    publisher: str
    audience: tuple[str, ...] | None

    def visible_to(self, principal: str, groups: frozenset[str]) -> bool:
        if self.audience is None or self.publisher == principal:
            return True
        return any(g in groups for g in self.audience)


@dataclass(frozen=True, slots=True, kw_only=True)
class SignalState:
    publisher: str
    signal_id: str
    audience: tuple[str, ...]
    last_index: int
    retracted: bool


class Ledger(Protocol):
    """What the exchange needs from a stream engine."""

    def head(self) -> int:
        """Number of records (the next index)."""

    def append(self, batch: Sequence[Pending]) -> list[Receipt]:
        """Durably append in order; entries whose digest is known get their original receipt."""

    def read(self, start: int, limit: int) -> list[Stored]:
        """Records with index >= start, ascending, at most ``limit``."""

    def receipt_for(self, digest: bytes) -> Receipt | None: ...

    def signal(self, publisher: str, signal_id: str) -> SignalState | None: ...

    def key_event_records(self, until: int) -> list[bytes]: ...

    def wait_for(self, index: int, timeout: float) -> int:
        """Block until head() > index or the timeout passes; return head()."""

    def close(self) -> None: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    idx INTEGER PRIMARY KEY,
    record BLOB NOT NULL,
    digest BLOB NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    publisher TEXT NOT NULL,
    audience TEXT,
    accepted_at_ms INTEGER NOT NULL,
    leaf_hash BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS signals (
    publisher TEXT NOT NULL,
    signal_id TEXT NOT NULL,
    audience TEXT NOT NULL,
    last_index INTEGER NOT NULL,
    retracted INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (publisher, signal_id)
);
CREATE INDEX IF NOT EXISTS records_keyevents ON records(kind) WHERE kind = 'keyevent';
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
SCHEMA_VERSION = "1"
_SEP = "\x1f"


def _pack(groups: tuple[str, ...] | None) -> str | None:
    return None if groups is None else _SEP.join(groups)


def _unpack(text: str | None) -> tuple[str, ...] | None:
    return None if text is None else tuple(text.split(_SEP))


class SqliteLedger:
    """The embedded engine: one SQLite file in WAL mode, one transaction per batch."""

    def __init__(self, path: str | Path, clock_ms: Callable[[], int] | None = None) -> None:
        self.path = Path(path)
        self._clock_ms = clock_ms or (lambda: int(time.time() * 1000))
        self._write_lock = threading.Lock()
        self._grown = threading.Condition()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._conn = self._connect()
        with self._conn:
            self._conn.executescript(_SCHEMA)
            self._conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
        self._head, self._last_ms = self._check_contiguous()

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA busy_timeout=5000")
        except sqlite3.DatabaseError as exc:
            raise LedgerCorrupt(f"cannot open the ledger at {self.path}: {exc}") from exc
        return conn

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._write_lock:
                self._readers.append(conn)
        return conn

    def _check_contiguous(self) -> tuple[int, int]:
        try:
            count, lo, hi, last_ms = self._conn.execute(
                "SELECT COUNT(*), MIN(idx), MAX(idx), MAX(accepted_at_ms) FROM records"
            ).fetchone()
        except sqlite3.DatabaseError as exc:
            raise LedgerCorrupt(f"ledger {self.path} is unreadable: {exc}") from exc
        if count and (lo != 0 or hi != count - 1):
            raise LedgerCorrupt(f"ledger {self.path} is not contiguous: {count} records span {lo}..{hi}")
        return count, last_ms or 0

    def head(self) -> int:
        return self._head

    def append(self, batch: Sequence[Pending]) -> list[Receipt]:
        if not batch:
            return []
        with self._write_lock:
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
                receipts, head, now = self._append_locked(conn, batch)
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                log.error("ledger append failed, batch rolled back: %s", exc)
                raise Unavailable(f"the ledger could not commit the batch ({exc.__class__.__name__}); retry") from exc
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            self._head, self._last_ms = head, now
        with self._grown:
            self._grown.notify_all()
        return receipts

    def _append_locked(
        self, conn: sqlite3.Connection, batch: Sequence[Pending]
    ) -> tuple[list[Receipt], int, int]:
        now = max(self._clock_ms(), self._last_ms)
        head = self._head
        receipts: list[Receipt] = []
        for p in batch:
            known = self._receipt(conn, p.digest)
            if known is not None:
                receipts.append(known)
                continue
            record = encode_record(head, now, p.envelope)
            lh = leaf_hash(record)
            conn.execute(
                "INSERT INTO records VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (head, record, p.digest, p.kind, p.publisher, _pack(p.audience), now, lh),
            )
            if p.signal_id is not None:
                conn.execute(
                    "INSERT INTO signals VALUES (?, ?, ?, ?, 0) ON CONFLICT (publisher, signal_id) DO UPDATE"
                    " SET audience = excluded.audience, last_index = excluded.last_index, retracted = 0",
                    (p.publisher, p.signal_id, _pack(p.signal_audience or p.audience), head),
                )
            if p.retracts is not None:
                conn.execute(
                    "UPDATE signals SET retracted = 1 WHERE publisher = ? AND signal_id = ?", p.retracts
                )
            receipts.append(Receipt(index=head, accepted_at_ms=now, leaf_hash=lh))
            head += 1
        return receipts, head, now

    @staticmethod
    def _receipt(conn: sqlite3.Connection, digest: bytes) -> Receipt | None:
        row = conn.execute("SELECT idx, accepted_at_ms, leaf_hash FROM records WHERE digest = ?", (digest,)).fetchone()
        return None if row is None else Receipt(index=row[0], accepted_at_ms=row[1], leaf_hash=row[2])

    def receipt_for(self, digest: bytes) -> Receipt | None:
        return self._receipt(self._reader(), digest)

    def read(self, start: int, limit: int) -> list[Stored]:
        rows = self._reader().execute(
            "SELECT idx, record, kind, publisher, audience FROM records WHERE idx >= ? ORDER BY idx LIMIT ?",
            (start, limit),
        ).fetchall()
        return [
            Stored(index=i, record=r, kind=k, publisher=p, audience=_unpack(a)) for i, r, k, p, a in rows
        ]

    def signal(self, publisher: str, signal_id: str) -> SignalState | None:
        row = self._reader().execute(
            "SELECT audience, last_index, retracted FROM signals WHERE publisher = ? AND signal_id = ?",
            (publisher, signal_id),
        ).fetchone()
        if row is None:
            return None
        return SignalState(
            publisher=publisher,
            signal_id=signal_id,
            audience=_unpack(row[0]) or (),
            last_index=row[1],
            retracted=bool(row[2]),
        )

    def key_event_records(self, until: int) -> list[bytes]:
        rows = self._reader().execute(
            "SELECT record FROM records WHERE kind = 'keyevent' AND idx < ? ORDER BY idx", (until,)
        ).fetchall()
        return [r[0] for r in rows]

    def wait_for(self, index: int, timeout: float) -> int:
        with self._grown:
            self._grown.wait_for(lambda: self._head > index, timeout=timeout)
        return self._head

    def close(self) -> None:
        """Close every connection and fold the WAL back into the main file."""
        with self._write_lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._conn.close()
