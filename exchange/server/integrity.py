"""Start-up verification of the ledger against its tree and signed roots, at the cost
of what changed since the last run, not of what exists.

The *verified watermark* is the last signed checkpoint ``(size, root)`` whose tree
nodes and ledger records were checked against each other. It lives in the tree's
seal (``verified.json`` in the audit directory, see :mod:`exchange.server.seal`),
and is advanced while the log runs (after the tree files are fsynced) and at a
clean stop. A start then checks:

* the ledger file: untouched since a clean close (sealed) → its two ends; after a
  crash → its two ends now and everything in the background; otherwise (changed
  while stopped, restored, never sealed) → every page and every index, before serving;
* the tree: when both the ledger and the tree are sealed, or the last run crashed,
  only the frontier at the watermark (it must hash to the signed root there) and the
  records beyond it are re-hashed; otherwise every record is, as before.

A full pass stays available: ``trustwire serve --full-verify`` (a start that trusts
no seal), and the background pass that follows a crash, which reports through
metrics (``trustwire_engine_verification_*``) and ``ops status``.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from exchange.core import merkle
from exchange.core.errors import LedgerCorrupt, TrustwireError
from exchange.core.records import leaf_hash
from exchange.server.ledger import Cancel, Integrity, Ledger
from exchange.server.metrics import EngineSample
from exchange.server.seal import Seal, SealState
from exchange.server.tree import TreeStore

__all__ = ["FullVerification", "Signed", "VerificationState", "Watermark", "check_range", "forget_seals", "frontier_at"]

log = logging.getLogger(__name__)

READ_CHUNK = 4096
SEAL_NAME = "verified.json"
ADVANCE_EVERY_S = 10.0  # how often a running log persists a newer watermark (an fsync of the tree)


@dataclass(frozen=True, slots=True, kw_only=True)
class Signed:
    """A signed tree head: what the checkpoint store holds."""

    size: int
    root: bytes


def check_range(
    ledger: Ledger,
    tree: TreeStore,
    frontier: merkle.TreeFrontier,
    stop: int,
    signed: Signed | None,
    progress: Callable[[int], None] = lambda n: None,
) -> int | None:
    """Re-hash ledger records ``[frontier.size, stop)`` and compare them with the tree.

    Raises :class:`LedgerCorrupt` when the records do not hash to ``signed`` (at its
    size), or when an index is missing. Returns the first leaf at which the tree
    store disagrees (it is then to be rebuilt from there), or None.
    """
    cursor = frontier.size
    broken: int | None = None
    while cursor < stop:
        try:
            rows = ledger.read(cursor, min(READ_CHUNK, stop - cursor))
        except sqlite3.DatabaseError as exc:
            raise LedgerCorrupt(f"the ledger is unreadable at entry {cursor} ({exc}); restore it from a backup") from exc
        if not rows:
            raise LedgerCorrupt(f"the ledger has no record at index {cursor}")
        chunk_start = cursor
        nodes: dict[int, list[bytes]] = {}
        first: dict[int, int] = {}
        for row in rows:
            if row.index != cursor:
                raise LedgerCorrupt(f"the ledger has no record at index {cursor}")
            for node in frontier.append(leaf_hash(row.record)):
                if cursor < tree.size:
                    first.setdefault(node.level, node.index)
                    nodes.setdefault(node.level, []).append(node.hash)
            cursor += 1
            if signed is not None and cursor == signed.size and frontier.root() != signed.root:
                raise LedgerCorrupt(
                    f"the ledger's first {signed.size} entries do not hash to the root the log signed: the"
                    " ledger is corrupt or was rewritten; restore it from a backup"
                )
        if broken is None and not all(tree.holds(level, first[level], b"".join(h)) for level, h in nodes.items()):
            broken = chunk_start
        progress(cursor)
    return broken


class Watermark:
    """The tree's seal: the verified watermark, and whether the tree files are as sealed."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / SEAL_NAME
        self._tree_dir = directory / "tree"
        self._seal = Seal.load(self.path)
        self._unchanged = self._seal.unchanged(self._files())  # before the tree store touches its files
        self._last_advance = 0.0

    def _files(self) -> dict[str, Path]:
        if not self._tree_dir.is_dir():
            return {}
        return {p.name: p for p in sorted(self._tree_dir.glob("level-*.bin"))}

    def trusted(self, ledger: Ledger) -> Signed | None:
        """The watermark a start may build on, or None (then everything is checked)."""
        integrity = getattr(ledger, "integrity", Integrity.CHECKED)
        if integrity is Integrity.CHECKED or self._seal.state is SealState.MISSING:
            return None
        if self._seal.state is SealState.CLOSED and not self._unchanged:
            return None  # the tree files changed while the log was stopped
        try:
            return Signed(size=int(self._seal.extra["size"]), root=bytes.fromhex(str(self._seal.extra["root"])))
        except (KeyError, ValueError, TypeError):
            return None

    @property
    def full_pending(self) -> bool:
        """The last run stopped before its background full verification finished."""
        return bool(self._seal.extra.get("full_pending"))

    def opened(self, at: Signed | None) -> None:
        """The log runs: a crash from now on leaves an open seal naming ``at``."""
        self._write(SealState.OPEN, at)

    def advance(self, tree: TreeStore, at: Signed) -> None:
        """Persist a newer watermark (at most every ADVANCE_EVERY_S): fsync the tree first."""
        now = time.monotonic()
        if now - self._last_advance < ADVANCE_EVERY_S:
            return
        self._last_advance = now
        tree.sync()
        self._write(SealState.OPEN, at)

    def closed(self, at: Signed | None, verification: VerificationState) -> None:
        """A clean stop, after the tree files are synced and closed. A full verification
        that failed leaves no watermark (the next start checks everything, before
        serving); one that did not finish is run again by the next start."""
        if verification is VerificationState.FAILED:
            self.path.unlink(missing_ok=True)
            return
        self._write(SealState.CLOSED, at, full_pending=verification is not VerificationState.OK
                    and verification is not VerificationState.NOT_NEEDED)

    def _write(self, state: SealState, at: Signed | None, full_pending: bool = False) -> None:
        extra: dict[str, object] = {} if at is None else {"size": at.size, "root": at.root.hex()}
        if full_pending:
            extra["full_pending"] = True
        try:
            Seal.write(self.path, state, self._files(), extra)
        except OSError as exc:  # a full disk: the next start checks more, nothing is lost
            log.warning("could not persist the verified watermark: %s", exc)


def forget_seals(ledger_path: Path, audit_directory: Path) -> None:
    """Make the next start verify everything (``trustwire serve --full-verify``)."""
    for path in (Path(str(ledger_path) + ".seal"), audit_directory / SEAL_NAME):
        path.unlink(missing_ok=True)


class VerificationState(StrEnum):
    NOT_NEEDED = "not-needed"  # the start verified what it had to; no full pass pending
    RUNNING = "running"
    INTERRUPTED = "interrupted"  # the log stopped first: the next start runs it again
    OK = "ok"
    FAILED = "failed"


class _Cancelled(Exception):
    pass


class FullVerification:
    """The full pass in the background: every page, every index, every record re-hashed
    against the tree and the signed roots. Read-only; reports, never repairs."""

    def __init__(self, ledger: Ledger, tree: TreeStore) -> None:
        self._ledger = ledger
        self._tree = tree
        self.state = VerificationState.NOT_NEEDED
        self.checked = 0
        self.total = 0
        self.message = ""
        self._thread: threading.Thread | None = None
        self._cancel = Cancel()

    def start(self, stop: int, signed: Signed | None) -> None:
        self.state, self.total, self.checked = VerificationState.RUNNING, stop, 0
        self._thread = threading.Thread(target=self._run, args=(stop, signed), name="full-verification", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Interrupt a running pass (the log is stopping) and wait for it."""
        self._cancel.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self, stop: int, signed: Signed | None) -> None:
        try:
            structure = getattr(self._ledger, "verify_structure", None)
            if structure is not None:
                try:
                    structure(self._cancel)
                except LedgerCorrupt:
                    if self._cancel.is_set():
                        raise _Cancelled from None
                    raise

            def progress(n: int) -> None:
                self.checked = n
                if self._cancel.is_set():
                    raise _Cancelled

            broken = check_range(self._ledger, self._tree, merkle.TreeFrontier(), stop, signed, progress)
            if broken is not None:
                raise LedgerCorrupt(f"the tree store disagrees with the ledger from entry {broken}")
        except _Cancelled:
            self.state = VerificationState.INTERRUPTED
            return
        except TrustwireError as exc:
            self.state, self.message = VerificationState.FAILED, exc.message
            log.critical("full verification failed: %s", exc.message)
            return
        except Exception as exc:  # noqa: BLE001 - reported, the log keeps serving what it verified at start
            self.state, self.message = VerificationState.FAILED, f"{type(exc).__name__}: {exc}"
            log.critical("full verification failed: %s", self.message)
            return
        self.state = VerificationState.OK
        log.info("full verification of %d entries passed", stop)

    def engine_metrics(self) -> Iterable[EngineSample]:
        yield EngineSample(
            name="verification_state", value=1.0, help="Full ledger verification: 1 for the current state",
            labels={"state": self.state.value},
        )
        yield EngineSample(name="verification_checked_entries", value=float(self.checked),
                           help="Entries the full verification has re-hashed")
        yield EngineSample(name="verification_total_entries", value=float(self.total),
                           help="Entries the full verification covers")


def frontier_at(tree: TreeStore, at: Signed) -> merkle.TreeFrontier | None:
    """The tree's frontier at the watermark if it hashes to the signed root there (O(log n))."""
    if at.size > tree.size:
        return None
    try:
        frontier = merkle.TreeFrontier.from_store(at.size, tree.get_node)
    except (LedgerCorrupt, merkle.ProofError, OSError):
        return None
    root = frontier.root() if at.size else merkle.EMPTY_ROOT
    return frontier if root == at.root else None

