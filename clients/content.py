"""The member's own hashed media: one row per file, one row per (file, hash type).

Columns are not per type: a new signal type with a media hasher needs no schema
change. State files written before this layout had a ``content`` table with fixed
``md5``/``sha256``/``pdq`` columns; :meth:`ContentStore.migrate` moves them over once.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from clients.store import MemberStore
from exchange.core.signals import ContentHash

__all__ = ["ContentStore", "SCHEMA"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS media (ref TEXT PRIMARY KEY, hashed_at_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS media_hashes (
    ref TEXT NOT NULL,
    type TEXT NOT NULL,
    value TEXT NOT NULL,
    quality INTEGER,
    PRIMARY KEY (ref, type)
);
CREATE INDEX IF NOT EXISTS media_hashes_value ON media_hashes(type, value);
"""


_VALUES_PER_QUERY = 500  # hash values per batched look-up


class ContentStore:
    """Hashes of the member's files, in the member's state file."""

    def __init__(self, store: MemberStore) -> None:
        self._store = store
        store.conn.executescript(SCHEMA)
        self.migrate(store.conn)

    @staticmethod
    def migrate(conn: sqlite3.Connection) -> None:
        """Move rows of the old fixed-column ``content`` table into media/media_hashes."""
        if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'content'").fetchone() is None:
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("INSERT OR IGNORE INTO media SELECT ref, hashed_at_ms FROM content")
            conn.execute("INSERT OR IGNORE INTO media_hashes SELECT ref, 'md5', md5, NULL FROM content")
            conn.execute("INSERT OR IGNORE INTO media_hashes SELECT ref, 'sha256', sha256, NULL FROM content")
            conn.execute(
                "INSERT OR IGNORE INTO media_hashes SELECT ref, 'pdq', pdq, pdq_quality FROM content WHERE pdq IS NOT NULL"
            )
            conn.execute("DROP TABLE content")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def put(self, ref: str, hashes: Iterable[ContentHash], now_ms: int) -> None:
        """Record (or replace) the hashes of one file."""
        with self._store.transaction() as c:
            c.execute("INSERT OR REPLACE INTO media VALUES (?, ?)", (ref, now_ms))
            c.execute("DELETE FROM media_hashes WHERE ref = ?", (ref,))
            c.executemany(
                "INSERT INTO media_hashes VALUES (?, ?, ?, ?)", [(ref, h.type, h.value, h.quality) for h in hashes]
            )

    def put_many(self, rows: Iterable[tuple[str, Iterable[ContentHash]]], now_ms: int) -> None:
        """Record many files in one transaction (batched statements: a million files in seconds)."""
        batch = [(ref, list(hashes)) for ref, hashes in rows]
        with self._store.transaction() as c:
            c.executemany("INSERT OR REPLACE INTO media VALUES (?, ?)", [(ref, now_ms) for ref, _ in batch])
            c.executemany("DELETE FROM media_hashes WHERE ref = ?", [(ref,) for ref, _ in batch])
            c.executemany(
                "INSERT OR REPLACE INTO media_hashes VALUES (?, ?, ?, ?)",
                [(ref, h.type, h.value, h.quality) for ref, hashes in batch for h in hashes],
            )

    def refs_with(self, type_name: str, value: str) -> list[str]:
        """Files with this exact hash."""
        return self.refs_with_many(type_name, [value]).get(value, [])

    def refs_with_many(self, type_name: str, values: list[str]) -> dict[str, list[str]]:
        """Files with each of these exact hashes (one query per few hundred values):
        value → refs, in the order they were stored; values no file has are left out."""
        found: dict[str, list[str]] = {}
        for i in range(0, len(values), _VALUES_PER_QUERY):
            chunk = values[i : i + _VALUES_PER_QUERY]
            for value, ref in self._store.conn.execute(
                f"SELECT value, ref FROM media_hashes WHERE type = ? AND value IN ({','.join('?' * len(chunk))})"
                " ORDER BY rowid",
                [type_name, *chunk],
            ):
                found.setdefault(str(value), []).append(str(ref))
        return found

    def all_of(self, type_name: str, min_quality: int = 0) -> list[tuple[str, str]]:
        """(ref, value) of every stored hash of this type with at least ``min_quality``
        (hashes without a quality always qualify)."""
        rows = self._store.conn.execute(
            "SELECT ref, value FROM media_hashes WHERE type = ? AND (quality IS NULL OR quality >= ?)",
            (type_name, min_quality),
        )
        return [(str(r[0]), str(r[1])) for r in rows]
