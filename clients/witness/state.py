"""The witness's memory: the latest checkpoint it cosigned per origin, and the
conflicts it refused, in one SQLite file (one ``BEGIN IMMEDIATE`` transaction per
request)."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final


BUSY_TIMEOUT_S: Final = 30.0
"""How long a request waits for another one's transaction to finish."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CosignedCheckpoint:
    """The latest checkpoint the witness cosigned for one origin."""

    origin: str
    size: int
    root: bytes
    note: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Conflict:
    """A refused checkpoint, validly signed by the log, that contradicts the record."""

    origin: str
    kind: str
    """``same-size-fork`` (409) or ``inconsistent`` (422)."""
    old_size: int
    proof: tuple[bytes, ...]
    cosigned_note: str | None
    """The note the witness had cosigned (``None`` if it never cosigned one)."""
    refused_note: str
    recorded_at: int


_SCHEMA: Final = (
    "CREATE TABLE IF NOT EXISTS checkpoints (origin TEXT PRIMARY KEY, size INTEGER NOT NULL,"
    " root BLOB NOT NULL, note TEXT NOT NULL, updated_at INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS conflicts (id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " origin TEXT NOT NULL, kind TEXT NOT NULL, old_size INTEGER NOT NULL, proof BLOB NOT NULL,"
    " cosigned_note TEXT, refused_note TEXT NOT NULL, recorded_at INTEGER NOT NULL)",
)


class WitnessState:
    """Per-origin latest cosigned checkpoint, and the conflicts seen, in SQLite.

    Every transaction opens its own connection, so the object may be shared
    by threads and the file even by processes; :meth:`transaction` takes the
    write lock up front (``BEGIN IMMEDIATE``).
    """

    def __init__(self, path: Path | str, busy_timeout: float = BUSY_TIMEOUT_S) -> None:
        self.path = Path(path)
        self._busy_timeout = busy_timeout
        with contextlib.closing(self._connect()) as db:
            db.execute("PRAGMA journal_mode=WAL")
            for statement in _SCHEMA:
                db.execute(statement)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=self._busy_timeout, isolation_level=None)
        db.execute("PRAGMA synchronous=FULL")
        return db

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: committed on success, rolled back on an exception."""
        with contextlib.closing(self._connect()) as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    @staticmethod
    def read_latest(db: sqlite3.Connection, origin: str) -> CosignedCheckpoint | None:
        """The record for ``origin`` as seen by ``db`` (inside a transaction)."""
        row = db.execute(
            "SELECT size, root, note FROM checkpoints WHERE origin = ?", (origin,)
        ).fetchone()
        if row is None:
            return None
        return CosignedCheckpoint(origin=origin, size=row[0], root=row[1], note=row[2])

    @staticmethod
    def write_latest(db: sqlite3.Connection, record: CosignedCheckpoint, now: int) -> None:
        """Replace the record for ``record.origin`` (inside a transaction)."""
        db.execute(
            "INSERT INTO checkpoints (origin, size, root, note, updated_at) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (origin) DO UPDATE SET size = excluded.size, root = excluded.root,"
            " note = excluded.note, updated_at = excluded.updated_at",
            (record.origin, record.size, record.root, record.note, now),
        )

    @staticmethod
    def write_conflict(db: sqlite3.Connection, conflict: Conflict) -> None:
        """Keep the evidence of a refused checkpoint (inside a transaction)."""
        db.execute(
            "INSERT INTO conflicts (origin, kind, old_size, proof, cosigned_note, refused_note,"
            " recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                conflict.origin,
                conflict.kind,
                conflict.old_size,
                b"".join(conflict.proof),
                conflict.cosigned_note,
                conflict.refused_note,
                conflict.recorded_at,
            ),
        )

    def latest(self, origin: str) -> CosignedCheckpoint | None:
        """The latest checkpoint cosigned for ``origin``, if any."""
        with contextlib.closing(self._connect()) as db:
            return self.read_latest(db, origin)

    def conflicts(self, origin: str | None = None) -> list[Conflict]:
        """Recorded conflicts, oldest first, optionally for one origin."""
        query = (
            "SELECT origin, kind, old_size, proof, cosigned_note, refused_note, recorded_at"
            " FROM conflicts"
        )
        args: tuple[str, ...] = ()
        if origin is not None:
            query += " WHERE origin = ?"
            args = (origin,)
        with contextlib.closing(self._connect()) as db:
            rows = db.execute(query + " ORDER BY id", args).fetchall()
        return [_conflict_from_row(row) for row in rows]


def _conflict_from_row(row: Sequence[Any]) -> Conflict:
    proof_blob: bytes = row[3]
    proof = tuple(proof_blob[i : i + 32] for i in range(0, len(proof_blob), 32))
    return Conflict(
        origin=row[0],
        kind=row[1],
        old_size=row[2],
        proof=proof,
        cosigned_note=row[4],
        refused_note=row[5],
        recorded_at=row[6],
    )
