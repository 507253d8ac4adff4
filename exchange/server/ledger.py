"""The ledger seam and its embedded engine, a single SQLite file.

A ledger orders admitted envelopes: it assigns contiguous indices (0, 1, 2, …),
stores each record's bytes once, and derives (see :mod:`exchange.server.projection`)
the state readers and admission need: visibility of each record, signals and who
saw them, the key directory, and envelope digest → receipt (idempotent publish).
An append is one transaction: the batch is all in or all out, and a receipt exists
only after the commit.

:class:`SqliteLedger` is the embedded engine, and also the local materialized view
that every replica of the Kafka engine keeps (``apply_records``).
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from exchange.core.acceptance import check_stamped, check_stamped_key
from exchange.core.entries import Entry, EntryKind
from exchange.core.errors import LedgerCorrupt, MalformedRecord, ResourceExhausted, TrustwireError, Unavailable
from exchange.core.keydir import KeyDirectory
from exchange.core.record_layout import accepted_at_field, record as record_bytes
from exchange.core.records import Receipt, Record, leaf_hash
from exchange.pb.trustwire.v1 import entries_pb2 as pb
from exchange.server.figures import EngineSample
from exchange.server.projection import Meta, decode, project
from exchange.server.seal import Seal, SealState

__all__ = [
    "DecodedRecord", "Integrity", "Ledger", "Outcome", "PUBLIC", "SignalState", "SqliteLedger", "Stored", "Submission",
]

log = logging.getLogger(__name__)

PUBLIC = "*"
"""Audience of key events: every principal."""

Outcome = Receipt | TrustwireError


class Cancel:
    """A stop request that long checks listen to: a flag, plus hooks that abort work in
    flight. SQLite calls a progress handler only between steps, and ``PRAGMA quick_check``
    is one step (minutes at 10M entries), so a running check is interrupted through its
    connection instead."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._hooks: list[Callable[[], None]] = []

    def is_set(self) -> bool:
        return self._event.is_set()

    def set(self) -> None:
        with self._lock:
            self._event.set()
            hooks = list(self._hooks)
        for hook in hooks:
            hook()

    @contextmanager
    def hook(self, abort: Callable[[], None]) -> Iterator[None]:
        """Call ``abort`` if the stop is requested while the block runs."""
        with self._lock:
            self._hooks.append(abort)
        try:
            yield
        finally:
            with self._lock:
                self._hooks.remove(abort)


class Integrity(StrEnum):
    """What a start knew about the ledger file, hence what it checked."""

    SEALED = "sealed"  # closed cleanly and untouched since: cheap checks only
    CRASHED = "crashed"  # the last run did not stop: cheap checks now, a full check in the background
    CHECKED = "checked"  # changed while stopped, or never sealed: fully checked before serving


@dataclass(frozen=True, slots=True, kw_only=True)
class Submission:
    """An admitted envelope waiting for its index."""

    envelope: bytes
    digest: bytes  # SHA-256 of the envelope bytes: the idempotency key
    decoded: tuple[EntryKind, Entry] | None = field(default=None, compare=False)  # spares a decode
    keyid: str | None = field(default=None, compare=False)  # the signing key, known to admission: spares another


@dataclass(frozen=True, slots=True, kw_only=True)
class Stored:
    """A ledger record with the metadata readers filter on."""

    index: int
    record: bytes
    kind: str
    publisher: str
    audience: tuple[str, ...] | None

    def visible_to(self, principal: str, groups: frozenset[str]) -> bool:
        if self.audience is None or self.publisher == principal:
            return True
        return any(g in groups for g in self.audience)


@dataclass(frozen=True, slots=True, kw_only=True)
class SignalState:
    publisher: str
    signal_id: str
    audience: tuple[str, ...]  # everyone who saw any version
    last_index: int
    retracted: bool


class DecodedRecord(Protocol):
    """A ledger record already decoded and checked canonical (``Record``, or the Kafka
    rule's lighter tuple): what ``apply_records`` stores without decoding it again."""

    @property
    def index(self) -> int: ...
    @property
    def accepted_at_ms(self) -> int: ...
    @property
    def envelope(self) -> bytes: ...
    @property
    def raw(self) -> bytes: ...


class Ledger(Protocol):
    """What the exchange needs from a stream engine."""

    @property
    def directory(self) -> KeyDirectory:
        """The key directory as of the head (replace-on-write: safe to read)."""

    def head(self) -> int:
        """Number of records (the next index)."""

    def append(self, batch: Sequence[Submission]) -> list[Outcome]:
        """Durably append in order. Known digests get their original receipt; key
        events that contradict the directory at their position get an error. Several
        threads may append at once (several batches in flight); the engine decides
        their order, and each batch stays contiguous."""

    def read(self, start: int, limit: int) -> list[Stored]:
        """Records with index >= start, ascending, at most ``limit``."""

    def receipt_for(self, digest: bytes) -> Receipt | None: ...

    def leaf_hashes(self, start: int, limit: int) -> list[bytes]:
        """The stored leaf hashes of records ``start`` … ``start + limit - 1`` (fewer at the head)."""

    def receipts_for(self, digests: Sequence[bytes]) -> dict[bytes, Receipt]:
        """The receipts of those ``digests`` already in the ledger (one lookup per batch)."""

    def signal(self, publisher: str, signal_id: str) -> SignalState | None: ...

    def signals(self, refs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], SignalState]:
        """The known signals among ``refs`` ((publisher, signal_id)), in one lookup per publisher."""

    def key_event_records(self, until: int) -> list[bytes]: ...

    def wait_for(self, index: int, timeout: float) -> int:
        """Block until head() > index or the timeout passes; return head()."""

    def close(self) -> None: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    idx INTEGER PRIMARY KEY,
    record BLOB NOT NULL,
    digest BLOB NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    publisher TEXT NOT NULL,
    audience TEXT,
    accepted_at_ms INTEGER NOT NULL,
    leaf_hash BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS signals (
    publisher TEXT NOT NULL,
    signal_id TEXT NOT NULL,
    audience TEXT NOT NULL,
    last_index INTEGER NOT NULL,
    retracted INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (publisher, signal_id)
);
CREATE INDEX IF NOT EXISTS records_keyevents ON records(kind) WHERE kind = 'keyevent';
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
SCHEMA_VERSION = "1"
_SEP = "\x1f"


_LOOKUP_CHUNK = 500  # digests per IN (...) lookup, under SQLite's variable limit

_Body = Callable[[sqlite3.Connection, "_Writer"], "list[Outcome] | list[None]"]


class _Job:
    """One caller's body waiting in the group-commit queue, then its result."""

    __slots__ = ("body", "done", "error", "outcomes")

    def __init__(self, body: _Body) -> None:
        self.body = body
        self.done = False
        self.error: BaseException | None = None
        self.outcomes: list[Outcome] | list[None] = []


def _finish(group: list[_Job], error: BaseException | None = None) -> None:
    for job in group:
        job.error = error
        job.done = True


def _pack(groups: tuple[str, ...] | None) -> str | None:
    return None if groups is None else _SEP.join(groups)


def _unpack(text: str | None) -> tuple[str, ...] | None:
    return None if text is None else tuple(g for g in text.split(_SEP) if g)


class SqliteLedger:
    """The embedded engine: one SQLite file in WAL mode, one transaction per batch."""

    def __init__(self, path: str | Path, clock_ms: Callable[[], int] | None = None) -> None:
        self.path = Path(path)
        self._clock_ms = clock_ms or (lambda: int(time.time() * 1000))
        self._write_lock = threading.Lock()
        self._queued = threading.Condition()  # the group-commit queue and its leader
        self._queue: list[_Job] = []
        self._committing = False
        self.groups_committed = 0  # write transactions committed, and the batches they carried
        self.batches_committed = 0
        self._grown = threading.Condition()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        seal = Seal.load(self._seal_path)
        if seal.unchanged(self._sealed_files()):
            self.integrity = Integrity.SEALED
        elif seal.state is SealState.OPEN:
            self.integrity = Integrity.CRASHED
        else:
            self.integrity = Integrity.CHECKED
        self._conn = self._connect()
        try:
            with self._conn:
                self._conn.executescript(_SCHEMA)
                self._conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
        except sqlite3.DatabaseError as exc:
            raise LedgerCorrupt(f"ledger {self.path} is unreadable: {exc}") from exc
        if self.integrity is Integrity.CHECKED:
            self._quick_check()
            self._head, self._last_ms = self._check_contiguous()
        else:
            self._head, self._last_ms = self._check_ends()
        try:
            self._directory = self._replay_directory()
        except (sqlite3.DatabaseError, MalformedRecord) as exc:
            raise LedgerCorrupt(f"ledger {self.path} is corrupt: its key events do not read back ({exc})") from exc
        Seal.write(self._seal_path, SealState.OPEN, self._sealed_files())

    @property
    def _seal_path(self) -> Path:
        return Path(str(self.path) + ".seal")

    def _sealed_files(self) -> dict[str, Path]:
        return {"ledger": self.path, "wal": Path(str(self.path) + "-wal")}

    # -- connections ----------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA busy_timeout=5000")
        except sqlite3.DatabaseError as exc:
            raise LedgerCorrupt(f"cannot open the ledger at {self.path}: {exc}") from exc
        return conn

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._readers_lock:  # not the write lock: a reader never waits for a commit
                self._readers.append(conn)
        return conn

    def _quick_check(self, conn: sqlite3.Connection | None = None) -> None:
        """SQLite's own structural check of every page (b-trees, free list, record formats)."""
        try:
            problems = [" ".join(str(row[0]).split()) for row in (conn or self._conn).execute("PRAGMA quick_check(3)")]
        except sqlite3.DatabaseError as exc:
            problems = [str(exc)]
        if problems != ["ok"]:
            raise LedgerCorrupt(
                f"ledger {self.path} is corrupt ({'; '.join(problems)[:300]}); restore it from a backup"
            )

    def verify_structure(self, cancel: Cancel | None = None) -> None:
        """The full structural check a start skips when the file is sealed: every page,
        and every index from 0 to the head present (raises :class:`LedgerCorrupt`).
        ``cancel`` set stops it at once, even inside ``quick_check`` (then it raises as well)."""
        cancel = cancel or Cancel()
        conn = self._connect()
        conn.set_progress_handler(lambda: 1 if cancel.is_set() else 0, 100_000)
        try:
            with cancel.hook(conn.interrupt):
                self._quick_check(conn)
                count, _ = self._check_contiguous(conn)
        finally:
            conn.close()
        if count < self._head:
            raise LedgerCorrupt(f"ledger {self.path} lost entries: {count} records, head {self._head}")

    def _check_ends(self) -> tuple[int, int]:
        """Cheap checks of a file known to be as it was written: the first and last
        index (the primary key's two ends) span a contiguous range."""
        try:
            lo = self._conn.execute("SELECT idx FROM records ORDER BY idx LIMIT 1").fetchone()
            hi = self._conn.execute("SELECT idx, accepted_at_ms FROM records ORDER BY idx DESC LIMIT 1").fetchone()
        except sqlite3.DatabaseError as exc:
            raise LedgerCorrupt(f"ledger {self.path} is unreadable: {exc}") from exc
        if hi is None:
            return 0, 0
        if lo[0] != 0:
            raise LedgerCorrupt(f"ledger {self.path} is not contiguous: records span {lo[0]}..{hi[0]}")
        return hi[0] + 1, hi[1]

    def _check_contiguous(self, conn: sqlite3.Connection | None = None) -> tuple[int, int]:
        try:
            count, lo, hi, last_ms = (conn or self._conn).execute(
                "SELECT COUNT(*), MIN(idx), MAX(idx), MAX(accepted_at_ms) FROM records"
            ).fetchone()
        except sqlite3.DatabaseError as exc:
            raise LedgerCorrupt(f"ledger {self.path} is unreadable: {exc}") from exc
        if count and (lo != 0 or hi != count - 1):
            raise LedgerCorrupt(f"ledger {self.path} is not contiguous: {count} records span {lo}..{hi}")
        return count, last_ms or 0

    def _replay_directory(self) -> KeyDirectory:
        directory = KeyDirectory()
        for raw in self.key_event_records(self._head):
            record = Record.decode(raw)
            event = project(record.envelope, lambda p, s: None).event
            if event is not None:
                directory.apply(event, record.index)
        return directory

    # -- writes ---------------------------------------------------------------------------

    @property
    def directory(self) -> KeyDirectory:
        return self._directory

    def head(self) -> int:
        return self._head

    def append(self, batch: Sequence[Submission]) -> list[Outcome]:
        if not batch:
            return []
        return self._write(lambda conn, w: w.submit_all(batch))

    def apply_records(self, records: Sequence[bytes | DecodedRecord]) -> None:
        """Store records already ordered elsewhere (a Kafka replica's view), as one batch
        in one transaction. Each must carry the next index; a record below the head
        (delivered again) is skipped. ``Record`` values spare decoding them again."""
        if records:
            self._write(lambda conn, w: w.replay_all(records))

    def _write(self, body: _Body) -> list[Outcome]:
        """Run ``body`` in a write transaction, grouped with the bodies other threads
        submitted meanwhile (group commit: one transaction, one WAL sync, for the group).
        The caller gets its outcomes only once the group committed."""
        job = _Job(body)
        with self._queued:
            self._queue.append(job)
            while not job.done and self._committing:
                self._queued.wait()
            if not job.done:  # this thread leads the next group
                self._committing = True
                group, self._queue = self._queue, []
        if not job.done:
            try:
                self._commit_group(group)
            finally:
                with self._queued:
                    self._committing = False
                    self._queued.notify_all()
        if job.error is not None:
            raise job.error
        return [o for o in job.outcomes if o is not None]

    def _commit_group(self, group: list[_Job]) -> None:
        with self._write_lock:
            conn = self._conn
            writer = _Writer(self, conn, self._head, max(self._clock_ms(), self._last_ms))
            try:
                conn.execute("BEGIN IMMEDIATE")
                results = [job.body(conn, writer) for job in group]
                writer.flush()
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                log.error("ledger append failed, %d batch(es) rolled back: %s", len(group), exc)
                error: BaseException
                if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
                    error = ResourceExhausted(
                        "the exchange's disk is full: nothing in this batch was stored; retry once the operator"
                        " frees space"
                    )
                else:
                    error = Unavailable(f"the ledger could not commit the batch ({exc.__class__.__name__}); retry")
                error.__cause__ = exc
                _finish(group, error=error)
                return
            except BaseException as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                _finish(group, error=exc)
                return
            self._head, self._last_ms = writer.head, max(self._last_ms, writer.last_ms)
            if writer.directory is not None:
                self._directory = writer.directory
            self.groups_committed += 1
            self.batches_committed += len(group)
        for job, outcomes in zip(group, results, strict=True):
            job.outcomes = outcomes
        _finish(group)
        with self._grown:
            self._grown.notify_all()

    def engine_metrics(self) -> Iterable[EngineSample]:
        """Group commit's figures (``trustwire_engine_ledger_*``): write transactions
        committed, and the batches they carried (their ratio: batches per WAL sync)."""
        yield EngineSample(name="ledger_groups_committed_total", value=self.groups_committed, kind="counter")
        yield EngineSample(name="ledger_batches_committed_total", value=self.batches_committed, kind="counter")

    # -- reads ----------------------------------------------------------------------------

    @staticmethod
    def _receipt(conn: sqlite3.Connection, digest: bytes) -> Receipt | None:
        row = conn.execute("SELECT idx, accepted_at_ms, leaf_hash FROM records WHERE digest = ?", (digest,)).fetchone()
        return None if row is None else Receipt(index=row[0], accepted_at_ms=row[1], leaf_hash=row[2])

    def receipt_for(self, digest: bytes) -> Receipt | None:
        return self._receipt(self._reader(), digest)

    @staticmethod
    def _receipts(conn: sqlite3.Connection, digests: Sequence[bytes]) -> dict[bytes, Receipt]:
        found: dict[bytes, Receipt] = {}
        for i in range(0, len(digests), _LOOKUP_CHUNK):
            chunk = digests[i : i + _LOOKUP_CHUNK]
            rows = conn.execute(
                "SELECT digest, idx, accepted_at_ms, leaf_hash FROM records WHERE digest IN"
                f" ({','.join('?' * len(chunk))})",
                chunk,
            )
            for digest, idx, at_ms, lh in rows:
                found[digest] = Receipt(index=idx, accepted_at_ms=at_ms, leaf_hash=lh)
        return found

    def receipts_for(self, digests: Sequence[bytes]) -> dict[bytes, Receipt]:
        return self._receipts(self._reader(), digests)

    def leaf_hashes(self, start: int, limit: int) -> list[bytes]:
        rows = self._reader().execute(
            "SELECT leaf_hash FROM records WHERE idx >= ? AND idx < ? ORDER BY idx", (start, start + limit)
        ).fetchall()
        return [r[0] for r in rows]

    def read(self, start: int, limit: int) -> list[Stored]:
        rows = self._reader().execute(
            "SELECT idx, record, kind, publisher, audience FROM records WHERE idx >= ? ORDER BY idx LIMIT ?",
            (start, limit),
        ).fetchall()
        return [Stored(index=i, record=r, kind=k, publisher=p, audience=_unpack(a)) for i, r, k, p, a in rows]

    @staticmethod
    def _signal(conn: sqlite3.Connection, publisher: str, signal_id: str) -> SignalState | None:
        row = conn.execute(
            "SELECT audience, last_index, retracted FROM signals WHERE publisher = ? AND signal_id = ?",
            (publisher, signal_id),
        ).fetchone()
        if row is None:
            return None
        return SignalState(
            publisher=publisher,
            signal_id=signal_id,
            audience=_unpack(row[0]) or (),
            last_index=row[1],
            retracted=bool(row[2]),
        )

    def signal(self, publisher: str, signal_id: str) -> SignalState | None:
        return self._signal(self._reader(), publisher, signal_id)

    def signals(self, refs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], SignalState]:
        return {(state.publisher, state.signal_id): state for state in _select_signals(self._reader(), refs)}

    def key_event_records(self, until: int) -> list[bytes]:
        rows = self._reader().execute(
            "SELECT record FROM records WHERE kind = 'keyevent' AND idx < ? ORDER BY idx", (until,)
        ).fetchall()
        return [r[0] for r in rows]

    def wait_for(self, index: int, timeout: float) -> int:
        with self._grown:
            self._grown.wait_for(lambda: self._head > index, timeout=timeout)
        return self._head

    def close(self) -> None:
        """Close every connection and fold the WAL back into the main file."""
        with self._write_lock, self._readers_lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._conn.close()
            Seal.write(self._seal_path, SealState.CLOSED, self._sealed_files())


_INSERT_RECORD = "INSERT INTO records VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
_UPSERT_SIGNAL = (
    "INSERT INTO signals VALUES (?, ?, ?, ?, 0) ON CONFLICT (publisher, signal_id) DO UPDATE"
    " SET audience = excluded.audience, last_index = excluded.last_index, retracted = 0"
)
_RETRACT_SIGNAL = "UPDATE signals SET retracted = 1 WHERE publisher = ? AND signal_id = ?"


def _select_signals(conn: sqlite3.Connection, refs: Iterable[tuple[str, str]]) -> Iterator[SignalState]:
    """The stored signals among ``refs``: one lookup per publisher (and chunk), on the primary key."""
    by_publisher: dict[str, list[str]] = {}
    for publisher, signal_id in set(refs):
        by_publisher.setdefault(publisher, []).append(signal_id)
    for publisher, ids in by_publisher.items():
        for i in range(0, len(ids), _LOOKUP_CHUNK):
            chunk = ids[i : i + _LOOKUP_CHUNK]
            rows = conn.execute(
                "SELECT signal_id, audience, last_index, retracted FROM signals WHERE publisher = ? AND signal_id"
                f" IN ({','.join('?' * len(chunk))})",
                [publisher, *chunk],
            )
            for signal_id, audience, last_index, retracted in rows:
                yield SignalState(publisher=publisher, signal_id=signal_id, audience=_unpack(audience) or (),
                                  last_index=last_index, retracted=bool(retracted))


def _signal_ref(decoded: tuple[EntryKind, Entry] | None) -> tuple[str, str] | None:
    """(publisher, signal_id) of the signal a decoded entry names, if any."""
    if decoded is None:
        return None
    entry = decoded[1]
    if isinstance(entry, pb.Signal):
        return entry.member_id, entry.signal_id
    if isinstance(entry, pb.Retraction | pb.Opinion):
        return entry.signal.member_id, entry.signal.signal_id
    return None


class _Writer:
    """One write transaction: assigns indices and stores records with their projection.

    Rows are buffered and written with one ``executemany`` for all records and one per
    run of the same signal statement, in order (:meth:`flush`, before the commit); what
    the transaction itself reads back (known digests, signal audiences) is answered
    from the buffer first."""

    def __init__(self, ledger: SqliteLedger, conn: sqlite3.Connection, head: int, now_ms: int) -> None:
        self._ledger = ledger
        self._conn = conn
        self.head = head
        self.last_ms = now_ms
        self._now = now_ms
        self._at_field = accepted_at_field(now_ms)  # every record of the transaction shares it
        self.directory: KeyDirectory | None = None  # staged copy, once a key event is written
        self._batch: dict[bytes, Receipt] = {}  # receipts of this transaction and known ones looked up
        self._audiences: dict[tuple[str, str], tuple[str, ...] | None] = {}  # looked up or written here
        self._records: list[tuple[object, ...]] = []
        self._rows: list[tuple[str, tuple[object, ...]]] = []  # signal statements, in order

    def _seen_by(self, publisher: str, signal_id: str) -> tuple[str, ...] | None:
        key = (publisher, signal_id)
        if key not in self._audiences:
            state = SqliteLedger._signal(self._conn, publisher, signal_id)
            self._audiences[key] = state.audience if state else None
        return self._audiences[key]

    def submit_all(self, batch: Sequence[Submission]) -> list[Outcome]:
        """Known digests get their receipt, the others an index; digests and the signals
        the batch names are looked up once for the batch."""
        self._batch.update(SqliteLedger._receipts(self._conn, [s.digest for s in batch if s.digest not in self._batch]))
        self._look_up_signals({ref for s in batch if (ref := _signal_ref(s.decoded)) is not None} - self._audiences.keys())
        return [self._submit(s) for s in batch]

    def _look_up_signals(self, refs: set[tuple[str, str]]) -> None:
        """Audiences of ``refs`` (absent: None), per publisher, on the primary key."""
        self._audiences.update(dict.fromkeys(refs))
        for state in _select_signals(self._conn, refs):
            self._audiences[(state.publisher, state.signal_id)] = state.audience

    def _submit(self, s: Submission) -> Outcome:
        known = self._batch.get(s.digest)
        if known is not None:
            return known
        meta = project(s.envelope, self._seen_by, s.decoded)
        if meta.event is not None:
            staged = (self.directory or self._ledger.directory).clone()
            try:
                staged.apply(meta.event, self.head)
            except TrustwireError as exc:
                return exc
            self.directory = staged
        else:
            try:
                directory = self.directory or self._ledger.directory
                if s.keyid is not None:
                    check_stamped_key(s.keyid, directory, self.head, self._now)
                else:
                    check_stamped(s.envelope, directory, self.head, self._now)
            except TrustwireError as exc:
                return exc
        record = record_bytes(self.head, self._at_field, s.envelope)
        receipt = self._store(record, s.digest, self._now, meta)
        self._batch[s.digest] = receipt
        return receipt

    def replay_all(self, records: Sequence[bytes | DecodedRecord]) -> list[None]:
        """Store records ordered elsewhere, in order: each decoded once (``Record`` values
        not at all), the signals they name looked up once for the batch, and the key
        directory staged once per transaction."""
        todo: list[DecodedRecord] = []
        expect = self.head
        for item in records:
            record = Record.decode(item) if isinstance(item, bytes) else item
            if record.index < expect:
                continue  # already applied (at-least-once delivery)
            if record.index != expect:
                raise LedgerCorrupt(f"replica view expected entry {expect}, got {record.index}")
            todo.append(record)
            expect += 1
        entries = [decode(r.envelope) for r in todo]
        self._look_up_signals({ref for d in entries if (ref := _signal_ref(d)) is not None} - self._audiences.keys())
        for record, decoded in zip(todo, entries, strict=True):
            meta = project(record.envelope, self._seen_by, decoded)
            if meta.event is not None:
                if self.directory is None:
                    self.directory = self._ledger.directory.clone()
                self.directory.apply(meta.event, self.head)  # a failure aborts the transaction
            self._store(record.raw, hashlib.sha256(record.envelope).digest(), record.accepted_at_ms, meta)
            self.last_ms = max(self.last_ms, record.accepted_at_ms)
        return []

    def _store(self, record: bytes, digest: bytes, accepted_at_ms: int, meta: Meta) -> Receipt:
        lh = leaf_hash(record)
        rows = self._rows
        self._records.append(
            (self.head, record, digest, meta.kind, meta.publisher, _pack(meta.audience), accepted_at_ms, lh)
        )
        if meta.signal_id is not None:
            rows.append((_UPSERT_SIGNAL, (meta.publisher, meta.signal_id, _pack(meta.signal_audience), self.head)))
            self._audiences[(meta.publisher, meta.signal_id)] = meta.signal_audience or ()
        if meta.retracts is not None and meta.kind == EntryKind.RETRACTION.value:
            rows.append((_RETRACT_SIGNAL, meta.retracts))
        receipt = Receipt(index=self.head, accepted_at_ms=accepted_at_ms, leaf_hash=lh)
        self.head += 1
        return receipt

    def flush(self) -> None:
        """Write the buffered rows: every record in one executemany (distinct keys, so
        their order is free), then the signal statements in order, one executemany per
        run of one statement (an upsert and a retraction of one signal must not swap)."""
        if self._records:
            self._conn.executemany(_INSERT_RECORD, self._records)
            self._records.clear()
        for sql, run in itertools.groupby(self._rows, key=lambda row: row[0]):
            self._conn.executemany(sql, [params for _, params in run])
        self._rows.clear()
