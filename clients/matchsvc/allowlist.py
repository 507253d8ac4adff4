"""The allow-list bank: the member's own known-benign hashes, which never match.

It lives in its own SQLite file beside the member's state file (``<state>.allow.db``),
so the CLI can edit it while the service runs: the service notices a change through
SQLite's ``data_version`` and reloads (at most once a second). Values are normalized
for their type; a PDQ entry suppresses every lookup within the service's PDQ
threshold of it, an exact entry lookups of that exact value.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from clients.pdq_index import PdqIndex
from exchange.core.errors import InvalidValue, NotFound
from exchange.core.signals import Matcher, normalize, signal_type

__all__ = ["AllowEntry", "AllowList", "allowlist_path"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS allow (
    type TEXT NOT NULL,
    value TEXT NOT NULL,
    reason TEXT NOT NULL,
    added_at_ms INTEGER NOT NULL,
    PRIMARY KEY (type, value)
);
"""
MAX_REASON = 500


def allowlist_path(state: Path) -> Path:
    return state.with_name(state.name + ".allow.db")


@dataclass(frozen=True, slots=True, kw_only=True)
class AllowEntry:
    type: str
    value: str
    reason: str
    added_at_ms: int


class AllowList:
    def __init__(
        self, path: Path, pdq_threshold: int, clock_ms: Callable[[], int] = lambda: int(time.time() * 1000)
    ) -> None:
        self.path = path
        self.pdq_threshold = pdq_threshold
        self._clock_ms = clock_ms
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA busy_timeout=5000")
        self._conn.executescript(_SCHEMA)
        self._lock = threading.Lock()
        self._version = -1
        self._checked_at = 0.0
        self._exact: dict[tuple[str, str], AllowEntry] = {}
        self._pdq_entries: list[AllowEntry] = []
        self._pdq = PdqIndex(threshold=pdq_threshold)
        self.refresh(force=True)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def refresh(self, force: bool = False) -> bool:
        """Reload if the file changed (checked at most once a second); True if reloaded."""
        now = time.monotonic()
        if not force and now - self._checked_at < 1.0:
            return False
        with self._lock:
            self._checked_at = now
            version = int(self._conn.execute("PRAGMA data_version").fetchone()[0])
            if version == self._version and not force:
                return False
            self._version = version
            entries = [AllowEntry(type=t, value=v, reason=r, added_at_ms=a) for t, v, r, a in self._conn.execute(
                "SELECT type, value, reason, added_at_ms FROM allow ORDER BY type, value"
            )]
            self._exact = {(e.type, e.value): e for e in entries if e.type != "pdq"}
            self._pdq_entries = [e for e in entries if e.type == "pdq"]
            index = PdqIndex(threshold=self.pdq_threshold)
            if self._pdq_entries:
                index.add_many(range(1, len(self._pdq_entries) + 1), [e.value for e in self._pdq_entries])
            self._pdq = index
        return True

    def add(self, type_name: str, raw: str, reason: str) -> AllowEntry:
        """Allow-list a value (normalized for its type); re-adding updates the reason."""
        kind = signal_type(type_name)
        if kind.matcher not in (Matcher.EXACT, Matcher.HAMMING):
            raise InvalidValue(f"type {type_name!r} cannot be allow-listed (exact and pdq types only)")
        if not reason.strip() or len(reason) > MAX_REASON:
            raise InvalidValue(f"an allow-list entry needs a reason of 1..{MAX_REASON} characters")
        entry = AllowEntry(type=type_name, value=normalize(type_name, raw), reason=reason.strip(),
                           added_at_ms=self._clock_ms())
        with self._lock:
            self._conn.execute(
                "INSERT INTO allow VALUES (?, ?, ?, ?) ON CONFLICT (type, value) DO UPDATE SET"
                " reason = excluded.reason, added_at_ms = excluded.added_at_ms",
                (entry.type, entry.value, entry.reason, entry.added_at_ms),
            )
        self.refresh(force=True)
        return entry

    def remove(self, type_name: str, raw: str) -> None:
        value = normalize(type_name, raw)
        with self._lock:
            gone = self._conn.execute("DELETE FROM allow WHERE type = ? AND value = ?", (type_name, value)).rowcount
        if not gone:
            raise NotFound(f"no allow-list entry for that {type_name} value")
        self.refresh(force=True)

    def entries(self) -> list[AllowEntry]:
        self.refresh(force=True)
        with self._lock:
            return sorted([*self._exact.values(), *self._pdq_entries], key=lambda e: (e.type, e.value))

    def hit(self, type_name: str, value: str) -> AllowEntry | None:
        """The allow-list entry covering a normalized value, if any."""
        self.refresh()
        with self._lock:
            if type_name == "pdq":
                found = self._pdq.search(value, self.pdq_threshold) if self._pdq_entries else []
                return self._pdq_entries[found[0][0] - 1] if found else None
            return self._exact.get((type_name, value))

    def __len__(self) -> int:
        return len(self._exact) + len(self._pdq_entries)
