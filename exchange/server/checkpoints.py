"""The audit log: keeps the Merkle tree level with the ledger and signs checkpoints.

A background thread waits for the ledger to grow, appends the new records' leaf
hashes to the :class:`TreeStore`, and signs a C2SP tlog-checkpoint (as a C2SP
signed note) with the log key: at most one per interval (a second by default),
whatever the batch sizes, so the checkpoint history grows with time, not with
traffic. Every signed checkpoint is kept (``checkpoints.db``), so auditors can
recompute each root.

When witnesses are configured they are off the critical path: the log signs,
stores and serves each checkpoint at once; one thread per witness then sends it the
latest checkpoint (C2SP tlog-witness, with a total deadline per request) and
attaches the cosignature lines to the stored note when they arrive. Start-up never
waits for a witness, and a dead or dripping one only shows in
:meth:`CheckpointLog.witness_states` (metrics, ``ops status``).
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
from exchange.core.keydir_commitment import commit
from exchange.server.integrity import FullVerification, Signed, Watermark, check_range, frontier_at
from exchange.server.ledger import Integrity, Ledger
from exchange.server.tree import TreeStore

__all__ = ["CheckpointLog", "LogCheckpoint", "Cosigner", "WitnessState"]

log = logging.getLogger(__name__)

READ_CHUNK = 4096
SIGN_INTERVAL_MS = 1000  # at most one signed checkpoint per second, whatever the batch sizes
SQLITE_MAX_INT = 2**63 - 1


@dataclass(frozen=True, slots=True, kw_only=True)
class LogCheckpoint:
    size: int
    root: bytes
    note: str
    signed_at_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class WitnessState:
    """How one witness is doing, for metrics and ``ops status``."""

    name: str
    cosigned_size: int = 0  # the largest checkpoint it cosigned for this log
    last_success_ms: int = 0
    last_error: str = ""
    failures: int = 0  # consecutive failed requests

    @property
    def up(self) -> bool:
        return self.failures == 0 and self.last_success_ms > 0


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
        interval_ms: int = SIGN_INTERVAL_MS,
    ) -> None:
        self._ledger = ledger
        self._watermark = Watermark(directory)  # reads the tree files' identities before the store opens them
        self.tree = TreeStore(directory / "tree")
        self._signer = signer
        self.origin = origin
        self._clock_ms = clock_ms
        self._cosigners = cosigners
        db_path = directory / "checkpoints.db"
        try:
            self._db = sqlite3.connect(db_path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            # No fsync per checkpoint (it was one more disk sync between a commit and the
            # followers seeing it): a process crash loses no committed row in WAL mode, and
            # what only a power loss can lose stays recomputable byte for byte (the ledger,
            # synced before any receipt, fixes the root; the note and Ed25519 are deterministic).
            self._db.execute("PRAGMA synchronous=NORMAL")
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
        self._woken_for: object = ledger.directory  # the key directory listeners last heard of
        self._witness_threads: list[threading.Thread] = []
        self._witnesses = [
            WitnessState(name=getattr(getattr(c, "verifier", None), "name", f"witness-{i}"))
            for i, c in enumerate(cosigners)
        ]
        self._interval_ms = interval_ms
        self._signed_mono = float("-inf")  # when the last checkpoint was signed, on the cadence's clock
        if self._latest is not None:  # the interval holds across restarts too
            self._signed_mono = time.monotonic() - max(0, clock_ms() - self._latest.signed_at_ms) / 1000
        self.verification = FullVerification(ledger, self.tree)
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
        """Check the ledger, the tree and the signed checkpoints against each other.

        The ledger must hash to the root the log signed, else it was corrupted or
        rewritten and is not served; the tree store (a pure function of the ledger)
        must hold exactly the recomputed nodes, else it is rebuilt from the ledger.
        Only what lies beyond the verified watermark is re-hashed when the files are
        known to be as the log left them (see :mod:`exchange.server.integrity`).
        """
        head = self._ledger.head()
        latest = self._latest
        if latest is not None and latest.size > head:
            raise LedgerCorrupt(
                f"the ledger has {head} entries but checkpoint {latest.size} was signed: entries were lost"
            )
        signed = None if latest is None else Signed(size=latest.size, root=latest.root)
        trusted = self._watermark.trusted(self._ledger)
        frontier = None
        if trusted is not None and trusted.size <= head and self._signed_root(trusted.size) == trusted.root:
            frontier = frontier_at(self.tree, trusted)
        self.rehashed_at_start = head - (0 if frontier is None else frontier.size)
        if frontier is None:
            broken = check_range(self._ledger, self.tree, merkle.TreeFrontier(), head, signed)
            if broken is not None or self.tree.size > head:
                log.warning("tree store disagrees with the ledger; rebuilding it from the ledger")
                self.tree.reset()
        else:
            beyond = signed if signed is not None and signed.size > frontier.size else None
            broken = check_range(self._ledger, self.tree, frontier, head, beyond)
            if broken is not None or self.tree.size > head:
                log.warning("tree store disagrees with the ledger beyond entry %d; rebuilding from there", broken or head)
                self.tree.truncate(head if broken is None else broken)
            if getattr(self._ledger, "integrity", None) is Integrity.CRASHED or self._watermark.full_pending:
                self.verification.start(frontier.size, trusted)
        self._watermark.opened(signed)

    def _signed_root(self, size: int) -> bytes | None:
        row = self._db.execute("SELECT root FROM checkpoints WHERE size = ?", (size,)).fetchone()
        return None if row is None else bytes(row[0])

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
            while self.tree.size < head:  # the leaf hashes the append stored with each record
                wanted = min(READ_CHUNK, head - self.tree.size)
                hashes = self._ledger.leaf_hashes(self.tree.size, wanted)
                if len(hashes) != wanted:
                    raise LedgerCorrupt(f"ledger lacks records between {self.tree.size} and {self.tree.size + wanted}")
                self.tree.append(hashes)
            if self._latest is not None and self._latest.size == self.tree.size and start == head:
                return False
            signed_now = self._due()
            if signed_now:
                signed = self._sign(self.tree.size)
                self._watermark.advance(self.tree, Signed(size=signed.size, root=signed.root))
            directory = self._ledger.directory
            wake = signed_now or directory is not self._woken_for
            self._woken_for = directory
        if wake:  # growth alone shows followers nothing until it is signed
            with self._changed:
                self._changed.notify_all()
            for listener in self._listeners:
                listener()
        return True

    def add_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` (from the checkpointer thread) after each new checkpoint, and
        when the key directory changed (streams re-authorize at once), not on growth alone."""
        self._listeners.append(listener)

    def _due(self) -> bool:
        """The cadence, decided here only: sign the grown tree once per interval."""
        latest = self._latest
        if latest is None or self.tree.size == 0:
            return True
        return latest.size < self.tree.size and time.monotonic() - self._signed_mono >= self._interval_ms / 1000

    def _wait_s(self) -> float:
        """How long the checkpointer may sleep: until the pending signature is due."""
        latest = self._latest
        if latest is None or latest.size >= self.tree.size:
            return 0.5
        return min(0.5, max(0.0, self._signed_mono + self._interval_ms / 1000 - time.monotonic()))

    def _sign(self, size: int) -> LogCheckpoint:
        """Sign with the log key only and publish at once; witnesses cosign later."""
        root = self.tree.root(size)
        keydir = commit(self._ledger.key_event_records(size)).line()
        body = notes.Checkpoint(self.origin, size, root, (keydir,)).to_text()
        note = notes.sign_note(body, [self._signer])
        now = self._clock_ms()
        self._db.execute("INSERT OR REPLACE INTO checkpoints VALUES (?, ?, ?, ?)", (size, root, note, now))
        self._latest = LogCheckpoint(size=size, root=root, note=note, signed_at_ms=now)
        self._signed_mono = time.monotonic()
        return self._latest

    # -- witnesses ----------------------------------------------------------------------------

    def witness_states(self) -> list[WitnessState]:
        return list(self._witnesses)

    def _attach(self, size: int, lines: list[str]) -> None:
        """Add cosignature lines to the stored checkpoint of ``size`` (and the latest, if it is)."""
        with self._lock:
            if self._stop.is_set():
                return
            row = self._db.execute("SELECT note FROM checkpoints WHERE size = ?", (size,)).fetchone()
            if row is None:
                return
            parsed = [notes.Signature.parse_line(line) for line in lines]
            note = notes.append_signatures(row[0], parsed)
            self._db.execute("UPDATE checkpoints SET note = ? WHERE size = ?", (note, size))
            latest = self._latest
            if latest is not None and latest.size == size:
                self._latest = LogCheckpoint(size=size, root=latest.root, note=note, signed_at_ms=latest.signed_at_ms)

    def _witness_loop(self, position: int, cosigner: Cosigner) -> None:
        """Send the latest checkpoint to one witness whenever there is a newer one."""
        done = -1
        while not self._stop.is_set():
            with self._changed:
                self._changed.wait_for(
                    lambda: self._stop.is_set() or (self._latest is not None and self._latest.size != done), 1.0
                )
            latest = self._latest
            if self._stop.is_set() or latest is None or latest.size == done:
                continue
            state = self._witnesses[position]
            try:
                got = cosigner.cosign(latest.note, latest.size, lambda old: self.tree.consistency_proof(old, latest.size))
                self._attach(latest.size, got)
                self._witnesses[position] = WitnessState(
                    name=state.name, cosigned_size=latest.size, last_success_ms=self._clock_ms()
                )
                done = latest.size
            except Exception as exc:  # a witness being down must not stop the log
                log.warning("witness %s did not cosign checkpoint %d: %s", state.name, latest.size, exc)
                self._witnesses[position] = WitnessState(
                    name=state.name, cosigned_size=state.cosigned_size, last_success_ms=state.last_success_ms,
                    last_error=str(exc)[:200], failures=state.failures + 1,
                )
                self._stop.wait(min(30.0, 0.5 * 2 ** min(state.failures, 6)))  # back off, then retry the latest

    def wait_for(self, size: int, timeout: float) -> LogCheckpoint | None:
        """Block until a checkpoint covers ``size`` entries (or the timeout)."""
        with self._changed:
            self._changed.wait_for(lambda: self._latest is not None and self._latest.size >= size, timeout)
        return self._latest

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._ledger.wait_for(self.tree.size, timeout=self._wait_s())
                self.catch_up()
            except Exception:  # keep the log alive; the next round retries
                log.exception("checkpointing failed")
                self._stop.wait(1.0)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="checkpointer", daemon=True)
        self._thread.start()
        for position, cosigner in enumerate(self._cosigners):
            thread = threading.Thread(
                target=self._witness_loop, args=(position, cosigner), name=f"witness-{position}", daemon=True
            )
            thread.start()
            self._witness_threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        with self._changed:
            self._changed.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for thread in self._witness_threads:
            thread.join(timeout=0.5)  # a request in flight ends at its deadline; it holds nothing we close
        self.verification.stop()
        self.tree.close()
        latest = self._latest
        at = None if latest is None else Signed(size=latest.size, root=latest.root)
        self._watermark.closed(at, self.verification.state)
        self._db.close()
