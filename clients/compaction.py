"""Member-state compaction: the one place of the rule of what a member may forget (issue 20).

A member's state grows with the ledger: retracted and expired signals keep their full
bodies, every superseded version is kept (``bank_history``) so a compromise can be
undone, and quarantined records are kept for inspection. :func:`compact` removes what
the member no longer needs, so the state grows with live signals:

- quarantined raw records older than ``quarantine_days`` are deleted;
- expired signals become tombstones (labels, confidence and severity cleared). What a
  tombstone keeps is what the STIX/TAXII export and the change feed need: publisher,
  signal id, version index, type, value, groups, TLP, validity, timestamps, keys and the
  retraction — an expiry is not signed by anyone, so no compromise brings the body back;
- with ``drop_history`` only (the operator's explicit choice): retracted signals become
  tombstones too and every superseded version is forgotten. A retraction, or a newer
  version, signed by a key later declared compromised can then no longer be undone into
  the full earlier body: the compromise still withdraws what the key signed after the
  compromise point, but an undone retraction brings back a tombstone (same value, no
  labels) and an undone overwrite brings back nothing.

Then the file is vacuumed (a saved PDQ index is rebuilt from SQLite on next load).
Compaction is idempotent, and refuses (:class:`StateBusy`) while another connection
holds a lock on the state file. It is an offline step: stop the member's sync loop and
match service first (their in-memory indexes name rows by rowid, which VACUUM may renumber).
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from clients.bank import outdate_saved_index
from exchange.core.errors import NotFound, StateBusy

__all__ = ["CompactionReport", "compact", "state_bytes"]

DAY_MS = 86_400_000
# a tombstone: the body fields no export or undo needs are cleared
_TOMBSTONE = "labels = '[]', confidence = 0, severity = 0"
_NOT_TOMBSTONE = "(labels != '[]' OR confidence != 0 OR severity != 0)"


@dataclass(frozen=True, slots=True, kw_only=True)
class CompactionReport:
    bytes_before: int
    bytes_after: int
    signals: int  # rows in the bank (live signals and tombstones)
    tombstoned_expired: int
    tombstoned_retracted: int
    versions_dropped: int  # superseded signal and opinion versions forgotten (drop_history)
    quarantine_dropped: int

    @property
    def bytes_per_signal_before(self) -> float:
        return self.bytes_before / max(self.signals, 1)

    @property
    def bytes_per_signal_after(self) -> float:
        return self.bytes_after / max(self.signals, 1)


def state_bytes(path: Path) -> int:
    """Bytes the state file takes on disk, with its WAL."""
    return sum(p.stat().st_size for p in (path, path.with_name(path.name + "-wal")) if p.exists())


def _has_table(c: sqlite3.Connection, name: str) -> bool:
    return c.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone() is not None


def compact(
    path: Path, *, quarantine_days: int = 30, drop_history: bool = False, now_ms: int | None = None
) -> CompactionReport:
    """Compact the member state at ``path`` (see the module's rule); vacuum; report sizes."""
    if not path.is_file():
        raise NotFound(f"no member state at {path}")
    now = int(time.time() * 1000) if now_ms is None else now_ms
    before = state_bytes(path)
    conn = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        try:
            conn.execute("PRAGMA busy_timeout=0")
            conn.execute("BEGIN EXCLUSIVE")
        except sqlite3.OperationalError as exc:
            raise StateBusy(f"the member state {path.name} is in use by another process ({exc}); retry later") from exc
        try:
            expired = conn.execute(
                f"UPDATE signals SET {_TOMBSTONE} WHERE retracted_idx IS NULL AND valid_until_ms IS NOT NULL"
                f" AND valid_until_ms <= ? AND {_NOT_TOMBSTONE}", (now,)).rowcount
            retracted = versions = 0
            if drop_history:
                retracted = conn.execute(
                    f"UPDATE signals SET {_TOMBSTONE} WHERE retracted_idx IS NOT NULL AND {_NOT_TOMBSTONE}").rowcount
                for table in ("signal_versions", "opinion_versions"):
                    if _has_table(conn, table):
                        versions += conn.execute(f"DELETE FROM {table}").rowcount
            quarantine = conn.execute("DELETE FROM quarantine WHERE at_ms < ?",
                                      (now - quarantine_days * DAY_MS,)).rowcount
            signals = int(conn.execute("SELECT COUNT(*) FROM signals").fetchone()[0])
            outdate_saved_index(conn)  # VACUUM may renumber rowids, the PDQ index's ids: rebuilt on next load
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        try:
            conn.execute("VACUUM")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.OperationalError as exc:
            raise StateBusy(f"compacted, but the member state {path.name} could not be vacuumed while in use"
                            f" ({exc}); run again later") from exc
    finally:
        conn.close()
    return CompactionReport(bytes_before=before, bytes_after=state_bytes(path), signals=signals,
                            tombstoned_expired=expired, tombstoned_retracted=retracted, versions_dropped=versions,
                            quarantine_dropped=quarantine)
