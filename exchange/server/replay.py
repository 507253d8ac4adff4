"""Replay protection shared by the replicas of an exchange and kept across restarts.

Accepted ``(principal, nonce)`` pairs go into a small SQLite file (WAL, one row per
accepted call) that every replica of the exchange opens; a pair is refused while it
is younger than twice the call window, which covers every timestamp the window still
admits. Rows older than that are pruned as calls arrive.

When the file cannot be written (disk full, locked past the busy timeout) the guard
still refuses every pair the file holds and keeps the new pair in memory, so the
exchange goes on serving reads; protection across replicas for those calls is then
only as good as this process's memory, and a warning says so.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

from exchange.core.errors import ReplayedCall

__all__ = ["SqliteReplayGuard"]

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS call_nonces (principal TEXT NOT NULL, nonce TEXT NOT NULL,"
    " seen_ms INTEGER NOT NULL, PRIMARY KEY (principal, nonce)) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS call_nonces_seen ON call_nonces (seen_ms)",
)
PRUNE_EVERY = 256
log = logging.getLogger(__name__)


class SqliteReplayGuard:
    """A :class:`exchange.core.callauth.ReplayGuard` in a file replicas share."""

    def __init__(self, path: Path, window_ms: int) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._window_ms = window_ms
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=5.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        for statement in _SCHEMA:
            self._db.execute(statement)
        self._lock = threading.Lock()
        self._since_prune = 0
        self._unwritten: dict[tuple[str, str], int] = {}  # pairs accepted while the file could not be written

    def remember(self, principal: str, nonce: str, timestamp_ms: int, now_ms: int) -> None:
        horizon = now_ms - 2 * self._window_ms
        with self._lock:
            try:
                self._db.execute(
                    "INSERT INTO call_nonces (principal, nonce, seen_ms) VALUES (?, ?, ?)"
                    " ON CONFLICT (principal, nonce) DO UPDATE SET seen_ms = excluded.seen_ms"
                    " WHERE call_nonces.seen_ms < ?",
                    (principal, nonce, now_ms, horizon),
                )
                changed = self._db.execute("SELECT changes()").fetchone()[0]
                self._since_prune += 1
                if self._since_prune >= PRUNE_EVERY:
                    self._since_prune = 0
                    self._db.execute("DELETE FROM call_nonces WHERE seen_ms < ?", (horizon,))
            except sqlite3.OperationalError as exc:
                log.warning("replay guard %s cannot be written (%s); remembering this call in memory", self.path, exc)
                row = self._db.execute(
                    "SELECT seen_ms FROM call_nonces WHERE principal = ? AND nonce = ?", (principal, nonce)
                ).fetchone()
                changed = (row is None or row[0] < horizon) and not self._seen_unwritten(principal, nonce, horizon)
                if changed:
                    self._unwritten[(principal, nonce)] = now_ms
            else:
                if changed and self._unwritten:  # accepted while the file was full: still a replay
                    changed = not self._seen_unwritten(principal, nonce, horizon)
        if not changed:
            raise ReplayedCall("call was replayed: this nonce was already used on this exchange")

    def _seen_unwritten(self, principal: str, nonce: str, horizon: int) -> bool:
        for key in [k for k, at in self._unwritten.items() if at < horizon]:
            del self._unwritten[key]
        return (principal, nonce) in self._unwritten

    def close(self) -> None:
        with self._lock:
            self._db.close()
