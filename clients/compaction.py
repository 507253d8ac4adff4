"""Member-state compaction: the one place of the rule of what a member may forget (issue 20).

A member's state grows with the ledger: retracted and expired signals keep their full
bodies, every superseded version is kept (``bank_history``) so a compromise can be
undone, decided and withdrawn queue items, sent opinions and quarantined records are
kept. The schema already keeps retracted and expired rows out of the match indexes and
stores key ids as numbers (``clients.store.migrate``); :func:`compact` removes what the
member no longer needs, so the state grows with live signals:

- quarantined raw records older than ``quarantine_days`` are deleted;
- expired signals become tombstones (labels, confidence and severity cleared). What a
  tombstone keeps is what the STIX/TAXII export and the change feed need: publisher,
  signal id, version index, type, value, groups, TLP, validity, timestamps, keys and the
  retraction — an expiry is not signed by anyone, so no compromise brings the body back;
- queue items withdrawn (their signal retracted, expired or compromised) before any
  reviewer touched them, last changed more than ``closed_days`` ago, are deleted with
  their events and evidence (a match that comes back opens a new item, as a withdrawn
  one would be reopened); every item a reviewer claimed or decided keeps its events —
  the reviewer history the console shows; open items are never touched;
- opinions sent more than ``closed_days`` ago drop their signed envelope (the row, and
  so the verdict that stops a repeated ``seen``, stays); unsent ones are never touched;
- compromise history, by the operator's policy ``history_days`` (default: keep all).
  PROTOCOL.md §8 puts no bound on how far back a compromise may be declared (a retired
  key can still be revoked as compromised, and ``compromised_since_index`` only ever
  moves earlier), so no pruning of history is safe without that choice. With
  ``history_days = N``: a superseded version whose successor was accepted more than N
  days ago is forgotten, and a signal retracted more than N days ago becomes a
  tombstone. The consequence: a compromise declared more than N days after a thief's
  version or retraction was accepted still withdraws what the key signed, but brings
  back nothing (an overwritten signal) or a tombstone (same value, no labels: a
  retracted one) instead of the earlier body; ``member rebuild-bank`` restores the full
  rule. ``drop_history`` is ``history_days = 0``;
- tombstones, by the operator's policy ``tombstone_days`` (default: keep all): a
  retracted or expired signal (tombstone or not) whose retraction or expiry is more
  than N days old is deleted, with the opinions and kept versions of that signal. Only then
  does the state stop growing with the ledger (bytes per live signal flat, whatever the
  history: ``bench/bench_compaction.py --growth``). The consequence: the STIX/TAXII
  export and the change feed no longer show those revocations (a consumer that has not
  polled for N days misses them: set N above the longest polling gap), and a compromise
  can no longer undo such a retraction.

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
from clients.store import migrate
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
    versions_dropped: int  # superseded signal and opinion versions forgotten (history_days)
    quarantine_dropped: int
    tombstones_dropped: int = 0  # tombstones deleted (tombstone_days)
    queue_dropped: int = 0  # withdrawn queue items no reviewer touched
    envelopes_dropped: int = 0  # signed envelopes of opinions sent long ago

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


# a superseded version's successor: the next kept version, else the banked row
_SUCCESSOR_AT = {
    "signal_versions": (
        "COALESCE((SELECT n.accepted_at_ms FROM signal_versions n WHERE n.publisher = h.publisher"
        " AND n.signal_id = h.signal_id AND n.idx > h.idx ORDER BY n.idx LIMIT 1),"
        " (SELECT s.accepted_at_ms FROM signals s WHERE s.publisher = h.publisher AND s.signal_id = h.signal_id"
        " AND s.idx > h.idx))"),
    "opinion_versions": (
        "COALESCE((SELECT n.accepted_at_ms FROM opinion_versions n WHERE n.publisher = h.publisher"
        " AND n.signal_id = h.signal_id AND n.author = h.author AND n.idx > h.idx ORDER BY n.idx LIMIT 1),"
        " (SELECT o.accepted_at_ms FROM opinions o WHERE o.publisher = h.publisher AND o.signal_id = h.signal_id"
        " AND o.author = h.author AND o.idx > h.idx))"),
}
# withdrawn before any reviewer claimed or decided it
_UNTOUCHED_WITHDRAWN = (
    "state = 'withdrawn' AND updated_at_ms < ? AND reviewer IS NULL"
    " AND NOT EXISTS (SELECT 1 FROM queue_events e WHERE e.item_id = queue.id AND e.reviewer IS NOT NULL)"
)


def _forget_history(conn: sqlite3.Connection, cutoff_ms: int) -> tuple[int, int]:
    """Tombstone signals retracted before ``cutoff_ms`` and forget versions superseded before
    it; return (tombstoned, versions dropped)."""
    retracted = conn.execute(
        f"UPDATE signals SET {_TOMBSTONE} WHERE retracted_idx IS NOT NULL"
        f" AND COALESCE(retracted_at_ms, accepted_at_ms) <= ? AND {_NOT_TOMBSTONE}", (cutoff_ms,)).rowcount
    versions = 0
    for table, successor_at in _SUCCESSOR_AT.items():
        if _has_table(conn, table):
            versions += conn.execute(f"DELETE FROM {table} WHERE rowid IN (SELECT h.rowid FROM {table} h"
                                     f" WHERE {successor_at} <= ?)", (cutoff_ms,)).rowcount
    if _has_table(conn, "retraction_versions"):
        versions += conn.execute(
            "DELETE FROM retraction_versions WHERE rowid IN (SELECT h.rowid FROM retraction_versions h"
            " JOIN signals s ON s.publisher = h.publisher AND s.signal_id = h.signal_id"
            " WHERE COALESCE(s.retracted_at_ms, s.accepted_at_ms) <= ?)", (cutoff_ms,)).rowcount
    return retracted, versions


# a retracted or expired signal, by when it was retracted, else when it expired
_REVOKED_BY = ("CASE WHEN retracted_idx IS NOT NULL THEN COALESCE(retracted_at_ms, accepted_at_ms)"
               " ELSE valid_until_ms END <= ?")


def _forget_tombstones(conn: sqlite3.Connection, cutoff_ms: int) -> int:
    """Delete the signals retracted or expired before ``cutoff_ms``, their opinions and kept versions."""
    keys = conn.execute(f"SELECT publisher, signal_id FROM signals WHERE {_REVOKED_BY}", (cutoff_ms,)).fetchall()
    for table in ("opinions", "signal_versions", "opinion_versions", "retraction_versions", "signals"):
        if _has_table(conn, table):
            conn.executemany(f"DELETE FROM {table} WHERE publisher = ? AND signal_id = ?", keys)
    return len(keys)


def _forget_closed(conn: sqlite3.Connection, cutoff_ms: int) -> tuple[int, int]:
    """Delete withdrawn queue items no reviewer touched, and drop the envelopes of opinions
    sent, both before ``cutoff_ms``; return (items, envelopes)."""
    ids = [r[0] for r in conn.execute(f"SELECT id FROM queue WHERE {_UNTOUCHED_WITHDRAWN}", (cutoff_ms,))]
    for table, column in (("queue_events", "item_id"), ("queue_evidence", "item_id"), ("queue", "id")):
        conn.executemany(f"DELETE FROM {table} WHERE {column} = ?", [(i,) for i in ids])
    envelopes = conn.execute("UPDATE outbox SET envelope = NULL WHERE state = 'sent' AND envelope IS NOT NULL"
                             " AND updated_at_ms < ?", (cutoff_ms,)).rowcount
    return len(ids), envelopes


def compact(
    path: Path, *, quarantine_days: int = 30, drop_history: bool = False, history_days: int | None = None,
    closed_days: int = 90, tombstone_days: int | None = None, now_ms: int | None = None
) -> CompactionReport:
    """Compact the member state at ``path`` (see the module's rule); vacuum; report sizes."""
    if not path.is_file():
        raise NotFound(f"no member state at {path}")
    now = int(time.time() * 1000) if now_ms is None else now_ms
    if drop_history:
        history_days = 0
    before = state_bytes(path)
    conn = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        try:
            conn.execute("PRAGMA busy_timeout=0")
            migrate(conn)  # a file written by older code: key numbers, live-only match indexes
            conn.execute("BEGIN EXCLUSIVE")
        except sqlite3.OperationalError as exc:
            raise StateBusy(f"the member state {path.name} is in use by another process ({exc}); retry later") from exc
        try:
            expired = conn.execute(
                f"UPDATE signals SET {_TOMBSTONE} WHERE retracted_idx IS NULL AND valid_until_ms IS NOT NULL"
                f" AND valid_until_ms <= ? AND {_NOT_TOMBSTONE}", (now,)).rowcount
            retracted = versions = 0
            if history_days is not None:
                retracted, versions = _forget_history(conn, now - history_days * DAY_MS)
            tombstones = 0 if tombstone_days is None else _forget_tombstones(conn, now - tombstone_days * DAY_MS)
            queue, envelopes = _forget_closed(conn, now - closed_days * DAY_MS)
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
                            quarantine_dropped=quarantine, tombstones_dropped=tombstones, queue_dropped=queue, envelopes_dropped=envelopes)
