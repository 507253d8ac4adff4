"""Superseded versions of banked signals and opinions, so a compromise can be undone.

The bank keeps one row per signal and per (signal, author) opinion. When a newer
version replaces a row, the row is copied here first (only superseded versions are
kept: a signal never overwritten costs nothing). When a key is revoked as compromised,
the bank drops what the key signed after the compromise point and brings back the
latest version left here that the key did not taint: what the thief rewrote is
rewritten back. The tables (``signal_versions``, ``opinion_versions``) copy the
columns of ``signals`` and ``opinions`` (:func:`create`); the other functions run
inside the bank's transaction.
"""

from __future__ import annotations

import sqlite3

from clients.store import KEY_NO
from exchange.core.keydir import KeyInfo

__all__ = [
    "clear", "create", "forget_tainted", "keep_opinion", "keep_retraction", "keep_signal", "keep_signals",
    "restore_opinion", "restore_retraction", "restore_signal",
]

_SIGNAL = (
    "publisher, signal_id, idx, type, value, labels, confidence, severity, groups, tlp, valid_from_ms,"
    " valid_until_ms, created_at_ms, retracted_idx, key_no, accepted_at_ms, quality_flag, retracted_at_ms,"
    " retracted_key_no"
)
_OPINION = "publisher, signal_id, author, verdict, idx, key_no, accepted_at_ms"


def create(c: sqlite3.Connection) -> None:
    """The history tables, shaped like the bank's own (created once, on open)."""
    for table, source, columns, key in (("signal_versions", "signals", _SIGNAL, "publisher, signal_id, idx"),
                                        ("opinion_versions", "opinions", _OPINION, "publisher, signal_id, author, idx")):
        c.execute(f"CREATE TABLE IF NOT EXISTS {table} AS SELECT {columns} FROM {source} WHERE 0")
        c.execute(f"CREATE UNIQUE INDEX IF NOT EXISTS {table}_key ON {table}({key})")
        c.execute(f"CREATE INDEX IF NOT EXISTS {table}_key_no ON {table}(key_no)")
    c.execute("CREATE TABLE IF NOT EXISTS retraction_versions (publisher TEXT NOT NULL, signal_id TEXT NOT NULL,"
              " retracted_idx INTEGER NOT NULL, retracted_at_ms INTEGER, retracted_key_no INTEGER,"
              " PRIMARY KEY (publisher, signal_id, retracted_idx))")


def keep_signal(c: sqlite3.Connection, publisher: str, signal_id: str) -> None:
    """Copy the banked version of a signal before a newer one replaces it."""
    c.execute(f"INSERT OR IGNORE INTO signal_versions ({_SIGNAL}) SELECT {_SIGNAL} FROM signals"
              " WHERE publisher = ? AND signal_id = ?", (publisher, signal_id))


def keep_signals(c: sqlite3.Connection, keys: list[tuple[str, str]]) -> None:
    """:func:`keep_signal` for many signals at once (a page's replaced versions)."""
    c.executemany(f"INSERT OR IGNORE INTO signal_versions ({_SIGNAL}) SELECT {_SIGNAL} FROM signals"
                  " WHERE publisher = ? AND signal_id = ?", keys)


def keep_opinion(c: sqlite3.Connection, publisher: str, signal_id: str, author: str, newer_index: int) -> None:
    """Copy an author's banked opinion before a newer one (at ``newer_index``) replaces it."""
    c.execute(f"INSERT OR IGNORE INTO opinion_versions ({_OPINION}) SELECT {_OPINION} FROM opinions"
              " WHERE publisher = ? AND signal_id = ? AND author = ? AND idx < ?",
              (publisher, signal_id, author, newer_index))


def keep_retraction(c: sqlite3.Connection, publisher: str, signal_id: str, index: int) -> None:
    """Copy the retraction of a banked version before a later retraction of it (at ``index``)
    replaces it: the ledger may hold both, and undoing a tainted later one brings the
    earlier one back."""
    c.execute("INSERT OR IGNORE INTO retraction_versions SELECT publisher, signal_id, retracted_idx, retracted_at_ms,"
              " retracted_key_no FROM signals WHERE publisher = ? AND signal_id = ? AND idx < ?"
              " AND retracted_idx < ?", (publisher, signal_id, index, index))


def restore_retraction(c: sqlite3.Connection, key: KeyInfo, publisher: str, signal_id: str, version_idx: int,
                       undone_idx: int) -> bool:
    """Put back the latest kept retraction of the banked version (at ``version_idx``) made
    before the tainted one just undone and not tainted by ``key``; True if one stands."""
    rows = c.execute("SELECT retracted_idx, retracted_at_ms, retracted_key_no, (SELECT keyid FROM key_ids"
                     " WHERE n = retracted_key_no) FROM retraction_versions WHERE publisher = ? AND signal_id = ?"
                     " AND retracted_idx > ? AND retracted_idx < ? ORDER BY retracted_idx DESC",
                     (publisher, signal_id, version_idx, undone_idx)).fetchall()
    for idx, at, key_no, keyid in rows:
        if keyid == key.keyid and key.tainted(idx, at or 0):
            continue
        c.execute("UPDATE signals SET retracted_idx = ?, retracted_at_ms = ?, retracted_key_no = ?"
                  " WHERE publisher = ? AND signal_id = ?", (idx, at, key_no, publisher, signal_id))
        return True
    return False


def forget_tainted(c: sqlite3.Connection, key: KeyInfo) -> None:
    """Drop the kept versions and retractions ``key`` signed after its compromise: never to be restored."""
    for table in ("signal_versions", "opinion_versions"):
        rows = c.execute(f"SELECT rowid, idx, accepted_at_ms FROM {table} WHERE key_no = {KEY_NO}", (key.keyid,)).fetchall()
        c.executemany(f"DELETE FROM {table} WHERE rowid = ?", [(r[0],) for r in rows if key.tainted(r[1], r[2])])
    rows = c.execute(f"SELECT rowid, retracted_idx, retracted_at_ms FROM retraction_versions"
                     f" WHERE retracted_key_no = {KEY_NO}", (key.keyid,)).fetchall()
    c.executemany("DELETE FROM retraction_versions WHERE rowid = ?",
                  [(r[0],) for r in rows if key.tainted(r[1], r[2] or 0)])


def restore_signal(c: sqlite3.Connection, publisher: str, signal_id: str) -> tuple[int, str, str, object] | None:
    """Move the latest kept version of a signal (whose banked row was just dropped) back
    into the bank; return its (rowid, type, value, quality_flag), or None if none is kept."""
    row = c.execute("SELECT rowid, idx FROM signal_versions WHERE publisher = ? AND signal_id = ?"
                    " ORDER BY idx DESC LIMIT 1", (publisher, signal_id)).fetchone()
    if row is None:
        return None
    back = c.execute(f"INSERT INTO signals ({_SIGNAL}) SELECT {_SIGNAL} FROM signal_versions WHERE rowid = ?"
                     " RETURNING rowid, type, value, quality_flag", (row[0],)).fetchone()
    c.execute("DELETE FROM signal_versions WHERE rowid = ?", (row[0],))
    return int(back[0]), str(back[1]), str(back[2]), back[3]


def restore_opinion(c: sqlite3.Connection, publisher: str, signal_id: str, author: str) -> bool:
    """Move an author's latest kept opinion of a signal back into the bank."""
    row = c.execute("SELECT rowid FROM opinion_versions WHERE publisher = ? AND signal_id = ? AND author = ?"
                    " ORDER BY idx DESC LIMIT 1", (publisher, signal_id, author)).fetchone()
    if row is None:
        return False
    c.execute(f"INSERT INTO opinions ({_OPINION}) SELECT {_OPINION} FROM opinion_versions WHERE rowid = ?", (row[0],))
    c.execute("DELETE FROM opinion_versions WHERE rowid = ?", (row[0],))
    return True


def clear(c: sqlite3.Connection) -> None:
    """Forget every kept version (before a rebuild from the ledger)."""
    c.execute("DELETE FROM signal_versions")
    c.execute("DELETE FROM opinion_versions")
    c.execute("DELETE FROM retraction_versions")
