"""The member's local state: one SQLite file holding the cursor, the verified key
events, the bank, the member's own hashed content (``clients.content``) and the
moderation queue.

Keeping them in one file lets a sync commit "entries applied + queue items written +
cursor advanced" in a single transaction: after a crash the member resumes from a
cursor that matches its bank and queue exactly (delivery is at least once, and
applying an entry twice is a no-op).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["KEY_NO", "LIVE", "MemberStore", "migrate"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS key_ids (n INTEGER PRIMARY KEY, keyid TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS key_events (idx INTEGER PRIMARY KEY, record BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS signals (
    publisher TEXT NOT NULL,
    signal_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    type TEXT NOT NULL,
    value TEXT NOT NULL,
    labels TEXT NOT NULL,
    confidence INTEGER NOT NULL,
    severity INTEGER NOT NULL,
    groups TEXT NOT NULL,
    tlp INTEGER NOT NULL,
    valid_from_ms INTEGER,
    valid_until_ms INTEGER,
    created_at_ms INTEGER NOT NULL,
    retracted_idx INTEGER,
    key_no INTEGER NOT NULL DEFAULT 0,
    accepted_at_ms INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (publisher, signal_id)
);
CREATE TABLE IF NOT EXISTS opinions (
    publisher TEXT NOT NULL,
    signal_id TEXT NOT NULL,
    author TEXT NOT NULL,
    verdict INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    key_no INTEGER NOT NULL DEFAULT 0,
    accepted_at_ms INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (publisher, signal_id, author)
);
CREATE TABLE IF NOT EXISTS queue (
    id INTEGER PRIMARY KEY,
    content_ref TEXT NOT NULL,
    publisher TEXT NOT NULL,
    signal_id TEXT NOT NULL,
    signal_idx INTEGER NOT NULL,
    type TEXT NOT NULL,
    distance INTEGER NOT NULL,
    priority INTEGER NOT NULL,
    rule TEXT NOT NULL,
    labels TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    reviewer TEXT,
    reason TEXT,
    UNIQUE (content_ref, publisher, signal_id)
);
CREATE INDEX IF NOT EXISTS queue_state ON queue(state, priority);
CREATE INDEX IF NOT EXISTS queue_signal ON queue(publisher, signal_id);
CREATE TABLE IF NOT EXISTS queue_events (
    item_id INTEGER NOT NULL,
    at_ms INTEGER NOT NULL,
    state TEXT NOT NULL,
    reviewer TEXT,
    reason TEXT
);
CREATE INDEX IF NOT EXISTS queue_events_item ON queue_events(item_id);
CREATE TABLE IF NOT EXISTS queue_evidence (
    item_id INTEGER NOT NULL,
    publisher TEXT NOT NULL,
    signal_id TEXT NOT NULL,
    signal_idx INTEGER NOT NULL,
    type TEXT NOT NULL,
    distance INTEGER NOT NULL,
    withdrawn INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (item_id, publisher, signal_id)
);
CREATE INDEX IF NOT EXISTS queue_evidence_signal ON queue_evidence(publisher, signal_id);
CREATE TABLE IF NOT EXISTS outbox (
    publisher TEXT NOT NULL,
    signal_id TEXT NOT NULL,
    verdict TEXT NOT NULL,
    item_id INTEGER,
    state TEXT NOT NULL,
    envelope BLOB,
    ledger_index INTEGER,
    error TEXT,
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    PRIMARY KEY (publisher, signal_id)
);
CREATE TABLE IF NOT EXISTS quarantine (
    idx INTEGER PRIMARY KEY,
    reason TEXT NOT NULL,
    record BLOB NOT NULL,
    at_ms INTEGER NOT NULL
);
"""


# Columns added after the first release, applied to older state files on open.
_ADDED_COLUMNS: dict[str, list[tuple[str, str]]] = {
    "signals": [("quality_flag", "TEXT"), ("swept_at_ms", "INTEGER"), ("retracted_at_ms", "INTEGER"),
                ("retracted_key_no", "INTEGER")],
    "queue": [("claimed_at_ms", "INTEGER"), ("decided_at_ms", "INTEGER")],
}


KEY_NO = "(SELECT n FROM key_ids WHERE keyid = ?)"  # a hex key id's number, in a WHERE clause
SCHEMA_VERSION = 2  # PRAGMA user_version of a migrated file (0: written before issue 20)
# the live-signal conditions of the partial indexes: a query must repeat them to use one
LIVE = "retracted_idx IS NULL AND swept_at_ms IS NULL"
# tables whose signing key is stored as a small integer (``key_ids.n``): (table, old column, new column)
_KEY_COLUMNS = (("signals", "keyid", "key_no"), ("signals", "retracted_keyid", "retracted_key_no"),
                ("opinions", "keyid", "key_no"), ("signal_versions", "keyid", "key_no"),
                ("signal_versions", "retracted_keyid", "retracted_key_no"), ("opinion_versions", "keyid", "key_no"))
_OLD_INDEXES = ("signals_keyid", "signals_value", "signals_expiry", "signal_versions_keyid", "opinion_versions_keyid")


def _columns(c: sqlite3.Connection, table: str) -> set[str]:
    return {r[1] for r in c.execute(f"PRAGMA table_info({table})")}


def _keys_to_numbers(c: sqlite3.Connection) -> None:
    """Replace each hex key id column of an older file by a ``key_ids`` number (issue 20:
    64 characters per row and per index entry become one or two bytes)."""
    for table, old, new in _KEY_COLUMNS:
        have = _columns(c, table)
        if old not in have:
            continue
        c.execute(f"INSERT OR IGNORE INTO key_ids (keyid) SELECT DISTINCT {old} FROM {table} WHERE {old} IS NOT NULL")
        if new not in have:
            default = " NOT NULL DEFAULT 0" if new == "key_no" else ""
            c.execute(f"ALTER TABLE {table} ADD COLUMN {new} INTEGER{default}")
        c.execute(f"UPDATE {table} SET {new} = (SELECT n FROM key_ids WHERE key_ids.keyid = {table}.{old})"
                  f" WHERE {old} IS NOT NULL")
        for index in _OLD_INDEXES:
            c.execute(f"DROP INDEX IF EXISTS {index}")
        c.execute(f"ALTER TABLE {table} DROP COLUMN {old}")


def migrate(c: sqlite3.Connection) -> None:
    """Bring a state file written by older code to this schema, in one transaction: added
    columns, key ids as numbers, match indexes holding live signals only (issue 20)."""
    if int(c.execute("PRAGMA user_version").fetchone()[0]) >= SCHEMA_VERSION:
        return  # the common case: no write lock taken on open
    if c.in_transaction:
        raise RuntimeError("migrate runs in its own transaction")
    c.execute("BEGIN IMMEDIATE")
    try:
        for table, columns in _ADDED_COLUMNS.items():
            have = _columns(c, table)
            for name, decl in columns:
                if name not in have:
                    c.execute(f"ALTER TABLE {table} ADD COLUMN {name} {decl}")
        c.execute("INSERT OR IGNORE INTO key_ids VALUES (0, '')")  # no key known (entries banked before key ids)
        _keys_to_numbers(c)
        for index in _OLD_INDEXES:
            c.execute(f"DROP INDEX IF EXISTS {index}")
        # retracted and swept (expired) signals never match: they leave the match indexes
        c.execute(f"CREATE INDEX IF NOT EXISTS signals_live_value ON signals(type, value) WHERE {LIVE}")
        c.execute("CREATE INDEX IF NOT EXISTS signals_live_expiry ON signals(valid_until_ms)"
                  f" WHERE valid_until_ms IS NOT NULL AND {LIVE}")
        c.execute("CREATE INDEX IF NOT EXISTS signals_key ON signals(key_no)")  # compromise undo: every row
        c.execute("CREATE INDEX IF NOT EXISTS opinions_author ON opinions(author)")
        c.execute("CREATE INDEX IF NOT EXISTS opinions_idx ON opinions(idx)")
        c.execute(  # the bank's change feed (Bank.changes), in ledger order
            "CREATE INDEX IF NOT EXISTS signals_position ON signals(MAX(idx, COALESCE(retracted_idx, -1)))"
        )
        c.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        c.execute("COMMIT")
    except BaseException:
        c.execute("ROLLBACK")
        raise


CACHE_KIB = 64 * 1024  # SQLite page cache of the state file (the default is 2 MiB)
WAL_PAGES = 16384  # pages in the WAL before it is folded back (the default is 1000)


class MemberStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.execute("PRAGMA busy_timeout=5000")
        # a catch-up inserts at random places of the value and signal-id indexes: keep
        # their pages cached, and fold the WAL back less often (each page copied once
        # per many pages of sync, not once per page), so sync does not slow as the bank fills
        self.conn.execute(f"PRAGMA cache_size={-CACHE_KIB}")
        self.conn.execute(f"PRAGMA wal_autocheckpoint={WAL_PAGES}")
        self.conn.executescript(_SCHEMA)
        self._migrate()
        self._lock = threading.RLock()
        self._after_commit: list[Callable[[], None]] = []
        self._on_rollback: list[Callable[[], None]] = []

    def _migrate(self) -> None:
        """Bring a state file written by older code to this schema (:func:`migrate`)."""
        migrate(self.conn)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic unit of work (re-entrant: nested calls join the outer one)."""
        with self._lock:
            if self.conn.in_transaction:
                yield self.conn
                return
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                undo, self._on_rollback, self._after_commit = self._on_rollback, [], []
                for fn in undo:
                    fn()
                raise
            self.conn.execute("COMMIT")
            done, self._after_commit, self._on_rollback = self._after_commit, [], []
            for fn in done:
                fn()

    def after_commit(self, fn: Callable[[], None], on_rollback: Callable[[], None] | None = None) -> None:
        """Run ``fn`` once the current transaction commits (now, outside one); run
        ``on_rollback`` instead if it rolls back. Keeps in-memory state (the PDQ index)
        in step with what the file holds."""
        with self._lock:
            if not self.conn.in_transaction:
                fn()
                return
            self._after_commit.append(fn)
            if on_rollback is not None:
                self._on_rollback.append(on_rollback)

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction() as c:
            c.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, value))

    @property
    def cursor(self) -> int:
        return int(self.get_meta("cursor", "0") or 0)

    def set_cursor(self, next_index: int) -> None:
        self.set_meta("cursor", str(next_index))

    def key_event_records(self) -> list[bytes]:
        return [r[0] for r in self.conn.execute("SELECT record FROM key_events ORDER BY idx")]

    def add_key_event(self, index: int, record: bytes) -> None:
        with self.transaction() as c:
            c.execute("INSERT OR IGNORE INTO key_events VALUES (?, ?)", (index, record))

    def quarantine(self, index: int, reason: str, record: bytes, now_ms: int) -> None:
        with self.transaction() as c:
            c.execute("INSERT OR REPLACE INTO quarantine VALUES (?, ?, ?, ?)", (index, reason, record, now_ms))

    def forget_verified(self) -> None:
        """Forget the verified key events and the quarantine, and rewind the cursor to 0
        (before a rebuild from the ledger)."""
        with self.transaction() as c:
            c.execute("DELETE FROM key_events")
            c.execute("DELETE FROM quarantine")
            self.set_cursor(0)

    def quarantined(self) -> list[tuple[int, str]]:
        return [(r[0], r[1]) for r in self.conn.execute("SELECT idx, reason FROM quarantine ORDER BY idx")]

    def close(self) -> None:
        self.conn.close()
