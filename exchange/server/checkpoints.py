"""The audit log: keeps the Merkle tree level with the ledger and signs checkpoints.

A background thread waits for the ledger to grow, appends the new records' leaf
hashes to the :class:`TreeStore`, and signs a C2SP tlog-checkpoint (as a C2SP
signed note) with the log key, so a checkpoint follows every batch. Every signed
checkpoint is kept (``checkpoints.db``), so auditors can recompute each root.

When witnesses are configured, each new checkpoint is sent to them
(C2SP tlog-witness) and their cosignature lines are attached to the stored note.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from exchange.core import merkle
from exchange.core import note as notes
from exchange.core.errors import LedgerCorrupt
from exchange.core.records import leaf_hash
from exchange.server.ledger import Ledger
from exchange.server.tree import TreeStore

__all__ = ["CheckpointLog", "LogCheckpoint", "Cosigner"]

log = logging.getLogger(__name__)

READ_CHUNK = 4096
SQLITE_MAX_INT = 2**63 - 1


@dataclass(frozen=True, slots=True, kw_only=True)
class LogCheckpoint:
    size: int
    root: bytes
    note: str
    signed_at_ms: int


class Cosigner(Protocol):
    """Something that cosigns checkpoints (a witness client)."""

    def cosign(self, note: str, size: int, consistency: Callable[[int], list[bytes]]) -> list[str]:
        """Return cosignature lines for ``note``; ``consistency(old)`` proves old → size."""


class CheckpointLog:
    def __init__(
        self,
        ledger: Ledger,
        directory: Path,
        signer: notes.NoteSigner,
        origin: str,
        clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
        cosigners: tuple[Cosigner, ...] = (),
    ) -> None:
        self._ledger = ledger
        self.tree = TreeStore(directory / "tree")
        self._signer = signer
        self.origin = origin
        self._clock_ms = clock_ms
        self._cosigners = cosigners
        db_path = directory / "checkpoints.db"
        try:
            self._db = sqlite3.connect(db_path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS checkpoints (size INTEGER PRIMARY KEY, root BLOB NOT NULL,"
                " note TEXT NOT NULL, signed_at_ms INTEGER NOT NULL)"
            )
            self._latest = self._load_latest()
        except (sqlite3.DatabaseError, notes.NoteError) as exc:
            raise LedgerCorrupt(
                f"the checkpoint store {db_path} is corrupt ({exc}); it holds the signed checkpoints: restore it"
                " from a backup, or move it aside to start a new checkpoint history"
            ) from exc
        self._lock = threading.Lock()
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._listeners: list[Callable[[], None]] = []
        self._check_tree()
        self.catch_up()

    @property
    def verifier_key(self) -> str:
        """The log's verifier key string (signed-note format), for clients and auditors."""
        return self._signer.verifier_key()

    # -- state --------------------------------------------------------------------------------

    def _load_latest(self) -> LogCheckpoint | None:
        row = self._db.execute(
            "SELECT size, root, note, signed_at_ms FROM checkpoints ORDER BY size DESC LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        latest = LogCheckpoint(size=row[0], root=row[1], note=row[2], signed_at_ms=row[3])
        body = notes.Checkpoint.parse(notes.parse_note(latest.note).text)
        if (body.size, body.root_hash) != (latest.size, latest.root):
            raise notes.NoteError(f"checkpoint {latest.size}: its note and its columns disagree")
        return latest

    def _check_tree(self) -> None:
        """Check the ledger, the tree and the last signed checkpoint against each other.

        One pass over the ledger recomputes the Merkle tree. The ledger must hash to the
        root the log signed, else it was corrupted or rewritten and is not served; the
        tree store (a pure function of the ledger) must hold exactly the recomputed
        nodes, else it is rebuilt from the ledger.
        """
        head = self._ledger.head()
        latest = self._latest
        if latest is not None and latest.size > head:
            raise LedgerCorrupt(
                f"the ledger has {head} entries but checkpoint {latest.size} was signed: entries were lost"
            )
        broken = self.tree.size > head
        frontier = merkle.TreeFrontier()
        cursor = 0
        while cursor < head:
            try:
                rows = self._ledger.read(cursor, min(READ_CHUNK, head - cursor))
            except sqlite3.DatabaseError as exc:
                raise LedgerCorrupt(f"the ledger is unreadable at entry {cursor} ({exc}); restore it from a backup") from exc
            nodes: dict[int, list[bytes]] = {}
            first: dict[int, int] = {}
            for row in rows:
                if row.index != cursor:
                    raise LedgerCorrupt(f"the ledger has no record at index {cursor}")
                for node in frontier.append(leaf_hash(row.record)):
                    if cursor < self.tree.size:
                        first.setdefault(node.level, node.index)
                        nodes.setdefault(node.level, []).append(node.hash)
                cursor += 1
                if latest is not None and cursor == latest.size and frontier.root() != latest.root:
                    raise LedgerCorrupt(
                        f"the ledger's first {latest.size} entries do not hash to the root the log signed: the"
                        " ledger is corrupt or was rewritten; restore it from a backup"
                    )
            if not rows:
                raise LedgerCorrupt(f"the ledger has no record at index {cursor}")
            if not broken:
                broken = not all(self.tree.holds(level, first[level], b"".join(h)) for level, h in nodes.items())
        if broken:
            log.warning("tree store disagrees with the ledger; rebuilding it from the ledger")
            self.tree.reset()

    def latest(self) -> LogCheckpoint | None:
        return self._latest

    def checkpoints(self, from_size: int, limit: int) -> list[LogCheckpoint]:
        rows = self._db.execute(
            "SELECT size, root, note, signed_at_ms FROM checkpoints WHERE size >= ? ORDER BY size LIMIT ?",
            (min(from_size, SQLITE_MAX_INT), limit),  # from_size is a uint64; SQLite integers are int64
        ).fetchall()
        return [LogCheckpoint(size=r[0], root=r[1], note=r[2], signed_at_ms=r[3]) for r in rows]

    # -- growth -------------------------------------------------------------------------------

    def catch_up(self) -> bool:
        """Append what the ledger has beyond the tree and sign a checkpoint; True if grown."""
        with self._lock:
            head = self._ledger.head()
            start = self.tree.size
            while self.tree.size < head:
                rows = self._ledger.read(self.tree.size, min(READ_CHUNK, head - self.tree.size))
                if not rows or rows[0].index != self.tree.size:
                    raise LedgerCorrupt(f"ledger has no record at index {self.tree.size}")
                self.tree.append([leaf_hash(r.record) for r in rows])
            if self._latest is not None and self._latest.size == self.tree.size and start == head:
                return False
            if self._latest is None or self._latest.size < self.tree.size or self.tree.size == 0:
                self._sign(self.tree.size)
        with self._changed:
            self._changed.notify_all()
        for listener in self._listeners:
            listener()
        return True

    def add_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` (from the checkpointer thread) after each new checkpoint."""
        self._listeners.append(listener)

    def _sign(self, size: int) -> None:
        root = self.tree.root(size)
        body = notes.Checkpoint(self.origin, size, root).to_text()
        note = notes.sign_note(body, [self._signer])
        note = self._cosign(size, note)
        now = self._clock_ms()
        self._db.execute("INSERT OR REPLACE INTO checkpoints VALUES (?, ?, ?, ?)", (size, root, note, now))
        self._latest = LogCheckpoint(size=size, root=root, note=note, signed_at_ms=now)

    def _cosign(self, size: int, note: str) -> str:
        lines: list[notes.Signature] = []
        for position, cosigner in enumerate(self._cosigners):
            try:
                got = cosigner.cosign(note, size, lambda old: self.tree.consistency_proof(old, size))
                lines.extend(notes.Signature.parse_line(line) for line in got)
            except Exception as exc:  # a witness being down must not stop the log
                log.warning("witness %d did not cosign checkpoint %d: %s", position, size, exc)
        return notes.append_signatures(note, lines) if lines else note

    def wait_for(self, size: int, timeout: float) -> LogCheckpoint | None:
        """Block until a checkpoint covers ``size`` entries (or the timeout)."""
        with self._changed:
            self._changed.wait_for(lambda: self._latest is not None and self._latest.size >= size, timeout)
        return self._latest

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._ledger.wait_for(self.tree.size, timeout=0.5)
                self.catch_up()
            except Exception:  # keep the log alive; the next round retries
                log.exception("checkpointing failed")
                self._stop.wait(1.0)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="checkpointer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.tree.close()
        self._db.close()
