"""The member's bank of verified signals: exact lookups and Hamming near-duplicates.

The bank lives in the member's SQLite state file. It applies new versions (the
highest ledger index wins; a new version keeps the signal's row), retractions, expiry
(``valid_until``; :meth:`Bank.sweep_expired` finds what just expired so queue items
can be withdrawn) and retroactive quarantine of what a compromised key signed. Only
*live* signals match.

Matching dispatches on the signal type (``exchange.core.signals``), never on a name:

- ``Matcher.EXACT`` types are answered by the ``(type, value)`` SQLite index, for each
  key of the type's ``lookups`` (a ``domain`` also matches every sub-domain of it and
  the hosts of URLs).
- ``Matcher.SUBSTRING`` types (``text``) match as substrings of the normalized text;
  ``Matcher.SCAN`` types by their own ``distance`` against each live signal of the type.
- ``Matcher.HAMMING`` types (``pdq``) live in a :class:`clients.pdq_index.PdqIndex`
  keyed by the signal's SQLite rowid: exact Hamming-radius search (default threshold
  31), updated incrementally after each commit, saved next to the state file
  (``<state>.pdq/``, ``.npy`` files) and reloaded on start when it reflects the
  bank's current state; otherwise rebuilt from SQLite (about 1 s per million hashes).
  Values the type flags (``quality_flag``: degenerate PDQ hashes, far from the ~128
  set bits every real PDQ hash has) are kept and flagged but not indexed: they would
  match noise. ``stats()`` counts them.

Deleting the state file's bank tables and syncing from index 0 rebuilds the bank
from the ledger (:meth:`clients.member.MemberClient.rebuild_bank`).
"""

from __future__ import annotations

import functools
import json
import logging
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clients import bank_history
from clients.media import MediaHashes
from clients.pdq_index import PdqIndex, pdq_words_many
from clients.store import KEY_NO, LIVE, MemberStore
from exchange.core.entries import timestamp_to_ms
from exchange.core.keydir import KeyInfo
from exchange.core.signals import Matcher, registered, signal_type
from exchange.core.signals.pdq import DEGENERATE_PDQ
from exchange.pb.trustwire.v1 import entries_pb2 as pb

__all__ = ["Bank", "BankOpinion", "BankSignal", "Match", "DEFAULT_PDQ_THRESHOLD", "NO_TIME_MS", "SignalColumns", "VERDICTS",
           "outdate_saved_index"]

log = logging.getLogger(__name__)

DEFAULT_PDQ_THRESHOLD = 31
# A saved index smaller than this is not worth writing: rebuilding it takes < 0.1 s.
PERSIST_MIN_HASHES = 50_000
VERDICTS: dict[int, str] = {
    pb.VERDICT_SEEN: "seen",
    pb.VERDICT_TRUE_POSITIVE: "true_positive",
    pb.VERDICT_FALSE_POSITIVE: "false_positive",
    pb.VERDICT_DISPUTED: "disputed",
}
# the ledger index of a signal's last change (its version or its retraction), and when
_POSITION = "MAX(idx, COALESCE(retracted_idx, -1))"
_CHANGED_AT = "CASE WHEN retracted_idx IS NULL THEN accepted_at_ms ELSE COALESCE(retracted_at_ms, accepted_at_ms) END"
_IN_GROUP = "EXISTS (SELECT 1 FROM json_each(groups) WHERE json_each.value = ?)"
_COLUMNS = (
    "publisher, signal_id, idx, type, value, labels, confidence, severity, groups, tlp,"
    " valid_from_ms, valid_until_ms, created_at_ms, retracted_idx, accepted_at_ms, quality_flag, retracted_at_ms,"
    " (SELECT keyid FROM key_ids WHERE n = signals.key_no)"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class BankSignal:
    publisher: str
    signal_id: str
    index: int
    type: str
    value: str
    labels: tuple[str, ...]
    confidence: int
    severity: int
    groups: tuple[str, ...]
    tlp: int
    valid_from_ms: int | None
    valid_until_ms: int | None
    created_at_ms: int
    retracted_index: int | None
    accepted_at_ms: int = 0
    quality_flag: str | None = None
    retracted_at_ms: int | None = None
    keyid: str = ""  # the publisher's signing key (hex SHA-256 of the public key)

    @property
    def position(self) -> int:
        """Ledger index of the last change to this signal (its version or its retraction)."""
        return self.index if self.retracted_index is None else max(self.index, self.retracted_index)

    @property
    def changed_at_ms(self) -> int:
        """When the exchange accepted the last change (retraction time if retracted and known)."""
        if self.retracted_index is None:
            return self.accepted_at_ms
        return self.retracted_at_ms or self.accepted_at_ms

    def live_at(self, now_ms: int) -> bool:
        if self.retracted_index is not None:
            return False
        if self.valid_until_ms is not None and now_ms >= self.valid_until_ms:
            return False
        return self.valid_from_ms is None or now_ms >= self.valid_from_ms


@dataclass(frozen=True, slots=True, kw_only=True)
class BankOpinion:
    """A member's latest verified opinion on a banked signal."""

    publisher: str
    signal_id: str
    author: str
    verdict: str
    index: int
    accepted_at_ms: int

    @property
    def position(self) -> int:
        return self.index


NO_TIME_MS = -(2**63)
"""A missing ``valid_from_ms``/``valid_until_ms`` in :class:`SignalColumns`."""
_SCAN_COLUMNS = (  # Bank.scan_columns: missing times as NO_TIME_MS, key numbers resolved once a scan
    "publisher, signal_id, idx, type, value, labels, confidence, severity, groups, tlp,"
    f" IFNULL(valid_from_ms, {NO_TIME_MS}), IFNULL(valid_until_ms, {NO_TIME_MS}),"
    " created_at_ms, IFNULL(accepted_at_ms, 0), quality_flag, IFNULL(key_no, 0)"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class SignalColumns:
    """A batch of banked signals as columns (``labels_json``/``groups_json``: the stored
    JSON arrays, decoded once per distinct value by the reader)."""

    rowid: tuple[int, ...]
    publisher: tuple[str, ...]
    signal_id: tuple[str, ...]
    index: tuple[int, ...]
    type: tuple[str, ...]
    value: tuple[str, ...]
    labels_json: tuple[str, ...]
    confidence: tuple[int, ...]
    severity: tuple[int, ...]
    groups_json: tuple[str, ...]
    tlp: tuple[int, ...]
    valid_from_ms: tuple[int, ...]
    valid_until_ms: tuple[int, ...]
    created_at_ms: tuple[int, ...]
    accepted_at_ms: tuple[int, ...]
    quality_flag: tuple[str | None, ...]
    keyid: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.rowid)

    @classmethod
    def of(cls, signals: Sequence[BankSignal], first_rowid: int = 1) -> SignalColumns:
        """Signals already read, as columns (rowids made up: consecutive from ``first_rowid``)."""
        return cls(rowid=tuple(range(first_rowid, first_rowid + len(signals))), publisher=tuple(s.publisher for s in signals),
                   signal_id=tuple(s.signal_id for s in signals), index=tuple(s.index for s in signals),
                   type=tuple(s.type for s in signals), value=tuple(s.value for s in signals),
                   labels_json=tuple(json.dumps(list(s.labels)) for s in signals),
                   confidence=tuple(s.confidence for s in signals), severity=tuple(s.severity for s in signals),
                   groups_json=tuple(json.dumps(list(s.groups)) for s in signals),
                   tlp=tuple(s.tlp for s in signals),
                   valid_from_ms=tuple(NO_TIME_MS if s.valid_from_ms is None else s.valid_from_ms for s in signals),
                   valid_until_ms=tuple(NO_TIME_MS if s.valid_until_ms is None else s.valid_until_ms
                                        for s in signals),
                   created_at_ms=tuple(s.created_at_ms for s in signals),
                   accepted_at_ms=tuple(s.accepted_at_ms for s in signals),
                   quality_flag=tuple(s.quality_flag for s in signals), keyid=tuple(s.keyid for s in signals))


@dataclass(frozen=True, slots=True, kw_only=True)
class Match:
    """A piece of the member's content that matched a signal, with provenance."""

    content_ref: str
    signal: BankSignal
    distance: int = 0


def _row(r: tuple[object, ...]) -> BankSignal:
    return BankSignal(
        publisher=str(r[0]),
        signal_id=str(r[1]),
        index=int(r[2]),  # type: ignore[call-overload]
        type=str(r[3]),
        value=str(r[4]),
        labels=tuple(json.loads(str(r[5]))),
        confidence=int(r[6]),  # type: ignore[call-overload]
        severity=int(r[7]),  # type: ignore[call-overload]
        groups=tuple(json.loads(str(r[8]))),
        tlp=int(r[9]),  # type: ignore[call-overload]
        valid_from_ms=r[10],  # type: ignore[arg-type]
        valid_until_ms=r[11],  # type: ignore[arg-type]
        created_at_ms=int(r[12]),  # type: ignore[call-overload]
        retracted_index=r[13],  # type: ignore[arg-type]
        accepted_at_ms=int(r[14] or 0),  # type: ignore[call-overload]
        quality_flag=None if r[15] is None else str(r[15]),
        retracted_at_ms=None if r[16] is None else int(r[16]),  # type: ignore[call-overload]
        keyid=str(r[17] or ""),
    )


def outdate_saved_index(c: sqlite3.Connection) -> None:
    """Count a change to the PDQ index's rows (its saved copy's watermark), in ``c``'s
    transaction: a saved index older than the count is rebuilt from SQLite on load."""
    c.execute(
        "INSERT INTO meta VALUES ('pdq_changes', '1') ON CONFLICT(key) DO UPDATE SET"
        " value = CAST(CAST(value AS INTEGER) + 1 AS TEXT)"
    )


def _hamming(type_name: str) -> bool:
    """True for a type whose signals live in the Hamming index."""
    return signal_type(type_name).matcher is Matcher.HAMMING


def _hamming_types() -> list[str]:
    return [k.name for k in registered() if k.matcher is Matcher.HAMMING]


_KEYS_PER_QUERY = 400  # (publisher, signal_id) pairs per batched look-up


def _by_keys(
    c: sqlite3.Connection, table: str, columns: str, keys: Sequence[tuple[str, str]], tail: str = ""
) -> Iterator[tuple[Any, ...]]:
    """Rows of ``table`` (keyed by ``publisher, signal_id``) for ``keys``, each found
    through the primary key: the keys are a VALUES list joined as the outer loop. (For
    ``(publisher, signal_id) IN (VALUES ...)`` SQLite scans the whole table, so every
    page of a catch-up cost more as the bank filled.) ``columns`` and ``tail`` name the
    table's columns qualified by the table's name."""
    unique = list(dict.fromkeys(keys))
    for i in range(0, len(unique), _KEYS_PER_QUERY):
        chunk = unique[i : i + _KEYS_PER_QUERY]
        pairs = ",".join("(?,?)" for _ in chunk)
        yield from c.execute(
            f"WITH wanted(p, s) AS (VALUES {pairs}) SELECT {columns} FROM wanted CROSS JOIN {table}"
            f" ON {table}.publisher = wanted.p AND {table}.signal_id = wanted.s{tail}",
            [x for k in chunk for x in k],
        )

_UPSERT_SIGNAL = (
    "INSERT INTO signals (publisher, signal_id, idx, type, value, labels, confidence, severity, groups,"
    " tlp, valid_from_ms, valid_until_ms, created_at_ms, retracted_idx, key_no, accepted_at_ms,"
    " quality_flag, swept_at_ms) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,NULL,?,?,?,NULL)"
    " ON CONFLICT (publisher, signal_id) DO UPDATE SET idx = excluded.idx, type = excluded.type,"
    " value = excluded.value, labels = excluded.labels, confidence = excluded.confidence,"
    " severity = excluded.severity, groups = excluded.groups, tlp = excluded.tlp,"
    " valid_from_ms = excluded.valid_from_ms, valid_until_ms = excluded.valid_until_ms,"
    " created_at_ms = excluded.created_at_ms, retracted_idx = NULL, retracted_at_ms = NULL,"
    " key_no = excluded.key_no,"
    " accepted_at_ms = excluded.accepted_at_ms, quality_flag = excluded.quality_flag,"
    " swept_at_ms = NULL"
)


@functools.lru_cache(maxsize=4096)
def _json_list(items: tuple[str, ...]) -> str:
    """A JSON array of strings (labels and groups repeat: encoded once each)."""
    return json.dumps(list(items))


@functools.lru_cache(maxsize=4096)
def _labels_json(labels: tuple[str, ...]) -> str:
    """The JSON array of a signal's labels, sorted (label sets repeat: encoded once each)."""
    return json.dumps(sorted(labels))


@functools.lru_cache(maxsize=4096)
def _sharing_columns(sharing_bytes: bytes) -> tuple[str, int]:
    """(groups as a JSON array, TLP) of a serialized :class:`pb.Sharing` (sharings repeat:
    read once each; its bytes are one C call, a tuple of its groups three times that)."""
    sharing = pb.Sharing.FromString(sharing_bytes)
    return _json_list(tuple(sharing.groups)), sharing.tlp


def _signal_values(s: pb.Signal, index: int, key_no: int, accepted_at_ms: int, flag: object) -> tuple[object, ...]:
    """The bound values of :data:`_UPSERT_SIGNAL` for one signal version (timestamps
    converted inline: this runs once per banked entry)."""
    created, labels = s.created_at, s.labels
    groups_json, tlp = _sharing_columns(s.sharing.SerializeToString())
    start = s.valid_from if s.HasField("valid_from") else None
    until = s.valid_until if s.HasField("valid_until") else None
    return (
        s.member_id,
        s.signal_id,
        index,
        s.type,
        s.value,
        _labels_json(tuple(labels) if labels else ()),
        s.confidence,
        s.severity,
        groups_json,
        tlp,
        None if start is None else start.seconds * 1000 + start.nanos // 1_000_000,
        None if until is None else until.seconds * 1000 + until.nanos // 1_000_000,
        created.seconds * 1000 + created.nanos // 1_000_000,
        key_no,
        accepted_at_ms,
        flag,
    )


class Bank:
    def __init__(
        self,
        store: MemberStore,
        pdq_threshold: int = DEFAULT_PDQ_THRESHOLD,
        clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
        index_dir: Path | None = None,
    ) -> None:
        self._store = store
        bank_history.create(store.conn)
        self.pdq_threshold = pdq_threshold
        self._clock_ms = clock_ms
        self._index_dir = index_dir if index_dir is not None else store.path.with_name(store.path.name + ".pdq")
        self._pdq: PdqIndex | None = None
        self._pdq_dirty = False
        self._listeners: list[Callable[[list[tuple[str, str]] | None], None]] = []
        self._pending: list[tuple[str, str]] = []
        self._pending_all = False
        self._notify_scheduled = False
        self._key_no: dict[str, int] = {"": 0}  # key_ids numbers already read or written

    # -- change notifications (for in-memory views such as the match service) ----------

    def on_change(self, listener: Callable[[list[tuple[str, str]] | None], None]) -> None:
        """Call ``listener`` once after each commit that changed signals or opinions, with
        the ``(publisher, signal_id)`` keys it touched, deduplicated (``None``: everything,
        after :meth:`clear`). It runs on the committing thread; read the new state back
        with :meth:`get_many` and :meth:`opinion_counts_many`."""
        self._listeners.append(listener)

    def _changed(self, keys: list[tuple[str, str]] | None) -> None:
        """Collect changed keys; one notification per transaction, after it commits."""
        if not self._listeners or (keys is not None and not keys):
            return
        if keys is None:
            self._pending_all = True
        else:
            self._pending.extend(keys)
        if not self._notify_scheduled:
            self._notify_scheduled = True
            self._store.after_commit(self._notify, on_rollback=self._forget_pending)

    def _forget_pending(self) -> None:
        self._pending, self._pending_all, self._notify_scheduled = [], False, False

    def _notify(self) -> None:
        keys = None if self._pending_all else list(dict.fromkeys(self._pending))
        self._forget_pending()
        for listener in self._listeners:
            listener(keys)

    @classmethod
    def reader(cls, state: str | Path) -> Bank:
        """A bank on its own connection to a member's state file, for a service that reads
        while the member's client syncs (SQLite WAL: readers see committed pages only)."""
        return cls(MemberStore(state))

    # -- the PDQ index -----------------------------------------------------------------

    def _changes(self) -> int:
        return int(self._store.get_meta("pdq_changes", "0") or 0)

    def _bump(self) -> None:
        """Count a PDQ change in the same transaction (the saved index's watermark)."""
        outdate_saved_index(self._store.conn)

    def _index_update(self, add: Iterable[tuple[int, str]] = (), remove: Iterable[int] = ()) -> None:
        """Apply index changes once the transaction that made them commits."""
        adds, removes = list(add), list(remove)
        if not adds and not removes:
            return
        self._bump()

        def apply() -> None:
            if self._pdq is None:
                return  # built lazily from SQLite, which already has the change
            if removes:
                self._pdq.remove_many(removes)
            if adds:
                self._pdq.add_many([i for i, _ in adds], [v for _, v in adds])
            self._pdq_dirty = True

        self._store.after_commit(apply, on_rollback=self.reset_index)

    def reset_index(self) -> None:
        """Forget the in-memory index; the next search loads or rebuilds it."""
        self._pdq = None
        self._pdq_dirty = False

    def pdq_index(self) -> PdqIndex:
        """The live PDQ index: loaded from disk if current, else rebuilt from SQLite."""
        if self._pdq is not None:
            return self._pdq
        self._pdq = self.saved_index() or self.rebuild_index()
        return self._pdq

    def index_watermark(self) -> str:
        """The PDQ change count a saved index must carry to be current."""
        return str(self._changes())

    def saved_index(self) -> PdqIndex | None:
        """The saved PDQ index (ids: signal rowids) if it reflects the bank now, else None:
        one bumped by :func:`outdate_saved_index` since it was saved is never used."""
        if PdqIndex.watermark_of(self._index_dir) != self.index_watermark():
            return None
        try:
            index = PdqIndex.load(self._index_dir, threshold=self.pdq_threshold)
        except (OSError, ValueError) as exc:
            log.warning("saved PDQ index unusable, rebuilding: %s", exc)
            return None
        log.info("loaded the PDQ index (%d hashes) from %s", len(index), self._index_dir)
        return index

    def save_index_copy(self, index: PdqIndex, watermark: str) -> bool:
        """Save ``index`` (built elsewhere from this bank, ids = signal rowids, as of
        ``watermark``) as the bank's saved index, unless the bank changed since."""
        with self._store.transaction():
            if watermark != self.index_watermark():
                return False
            index.save(self._index_dir, watermark=watermark)
        return True

    def rebuild_index(self) -> PdqIndex:
        """Build the index from every indexable PDQ signal in SQLite (retracted, swept
        and degenerate ones excluded)."""
        started = time.monotonic()
        index = PdqIndex(threshold=self.pdq_threshold)
        types = _hamming_types()
        cur = self._store.conn.execute(
            f"SELECT rowid, value FROM signals WHERE type IN ({','.join('?' * len(types))}) AND retracted_idx IS NULL"
            " AND swept_at_ms IS NULL AND quality_flag IS NULL",
            types,
        )
        while True:
            rows = cur.fetchmany(500_000)
            if not rows:
                break
            index.add_many([r[0] for r in rows], pdq_words_many([r[1] for r in rows]))
        index.fold(force=True)
        self._pdq, self._pdq_dirty = index, len(index) >= PERSIST_MIN_HASHES
        log.info("rebuilt the PDQ index: %d hashes in %.2fs", len(index), time.monotonic() - started)
        return index

    def save_index(self, force: bool = False) -> bool:
        """Write the index next to the state file if it changed (and is worth keeping)."""
        if self._pdq is None or not (self._pdq_dirty or force):
            return False
        if len(self._pdq) < PERSIST_MIN_HASHES and not force:
            return False
        with self._store.transaction():  # the watermark and the arrays must agree
            self._pdq.save(self._index_dir, watermark=str(self._changes()))
        self._pdq_dirty = False
        return True

    # -- applying verified entries ---------------------------------------------------

    def add_signal(self, s: pb.Signal, index: int, keyid: str = "", accepted_at_ms: int = 0) -> bool:
        """Store a signal version; False if a newer version is already banked."""
        return self.add_signals([(s, index, keyid, accepted_at_ms)])[0]

    def add_signals(self, versions: Sequence[tuple[pb.Signal, int, str, int]]) -> list[bool]:
        """Store signal versions ``(signal, index, keyid, accepted_at_ms)`` of distinct
        signals with batched SQL; per version, False if a newer one is already banked.
        Ends as :meth:`add_signal` one by one would (distinct keys: order cannot matter)."""
        if not versions:
            return []
        keys = [(s.member_id, s.signal_id) for s, *_ in versions]
        if len(set(keys)) != len(keys):
            raise ValueError("add_signals takes distinct signals; apply a later version in a later call")
        with self._store.transaction() as c:
            banked = self._banked_rows(c, keys)
            taken = [row is None or row[0] < v[1] for v, row in zip(versions, (banked.get(k) for k in keys))]
            fresh = [(v, k) for v, k, ok in zip(versions, keys, taken, strict=True) if ok]
            if not fresh:
                return taken
            bank_history.keep_signals(c, [k for _, k in fresh if k in banked])
            kinds = {t: signal_type(t) for t in {v[0].type for v, _ in fresh}}  # once per type, not per row
            flags = [kinds[s.type].quality_flag(s.value) for (s, *_), _ in fresh]
            numbers = self._key_numbers(c, [v[2] for v, _ in fresh])
            c.executemany(_UPSERT_SIGNAL, [_signal_values(s, i, numbers[k], at, flag)
                                           for ((s, i, k, at), _), flag in zip(fresh, flags)])
            # an upsert keeps the rowid, which is the PDQ index's id for this signal
            hamming = {t for t, kind in kinds.items() if kind.matcher is Matcher.HAMMING}
            indexed = [(k, s.value) for ((s, *_), k), flag in zip(fresh, flags) if s.type in hamming and flag is None]
            new_ids = self._banked_rows(c, [k for k, _ in indexed if k not in banked])
            rowid = {k: r[1] for k, r in (*banked.items(), *new_ids.items())}
            self._index_update(
                add=[(rowid[k], value) for k, value in indexed],
                remove=[banked[k][1] for k in set(k for _, k in fresh) - set(k for k, _ in indexed)
                        if k in banked and _hamming(banked[k][2])],
            )
            self._changed([k for _, k in fresh])
        return taken

    def _key_numbers(self, c: sqlite3.Connection, keyids: Iterable[str]) -> dict[str, int]:
        """The ``key_ids`` number of each hex key id (new ones numbered), in ``c``'s transaction."""
        want = [k for k in dict.fromkeys(keyids) if k not in self._key_no]  # numbered in ledger order
        if want:
            c.executemany("INSERT OR IGNORE INTO key_ids (keyid) VALUES (?)", [(k,) for k in want])
            for k in want:
                self._key_no[k] = int(c.execute("SELECT n FROM key_ids WHERE keyid = ?", (k,)).fetchone()[0])
            self._store.after_commit(lambda: None, on_rollback=self._key_no.clear)  # a number may not exist
        return self._key_no

    @staticmethod
    def _banked_rows(c: sqlite3.Connection, keys: list[tuple[str, str]]) -> dict[tuple[str, str], tuple[int, int, str]]:
        """(idx, rowid, type) of the banked signals among ``keys``."""
        found: dict[tuple[str, str], tuple[int, int, str]] = {}
        for publisher, signal_id, idx, rowid, type_ in _by_keys(
            c, "signals", "signals.publisher, signals.signal_id, idx, signals.rowid, type", keys
        ):
            found[(publisher, signal_id)] = (idx, rowid, type_)
        return found

    def retract(
        self, publisher: str, signal_id: str, index: int, accepted_at_ms: int | None = None, keyid: str = ""
    ) -> bool:
        with self._store.transaction() as c:
            bank_history.keep_retraction(c, publisher, signal_id, index)  # a retracted version retracted again
            row = c.execute(
                "UPDATE signals SET retracted_idx = ?, retracted_at_ms = ?, retracted_key_no = ?"
                " WHERE publisher = ? AND signal_id = ? AND idx < ? RETURNING rowid, type",
                (index, accepted_at_ms, self._key_numbers(c, [keyid])[keyid] if keyid else None, publisher,
                 signal_id, index),
            ).fetchone()
            if row is not None and _hamming(row[1]):
                self._index_update(remove=[row[0]])
            if row is not None:
                self._changed([(publisher, signal_id)])
        return row is not None

    def add_opinion(self, o: pb.Opinion, index: int, keyid: str = "", accepted_at_ms: int = 0) -> None:
        with self._store.transaction() as c:
            bank_history.keep_opinion(c, o.signal.member_id, o.signal.signal_id, o.member_id, index)
            c.execute(
                "INSERT INTO opinions VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (publisher, signal_id, author)"
                " DO UPDATE SET verdict = excluded.verdict, idx = excluded.idx, key_no = excluded.key_no,"
                " accepted_at_ms = excluded.accepted_at_ms WHERE excluded.idx > opinions.idx",
                (o.signal.member_id, o.signal.signal_id, o.member_id, o.verdict, index,
                 self._key_numbers(c, [keyid])[keyid], accepted_at_ms),
            )
            self._changed([(o.signal.member_id, o.signal.signal_id)])

    def restore_tainted_retractions(self, key: KeyInfo) -> list[tuple[int, str, str]]:
        """Undo the retractions ``key`` signed after it was compromised: the retracted
        signal comes back. Return (retraction index, publisher, signal_id) of each."""
        restored: list[tuple[int, str, str]] = []
        added: list[tuple[int, str]] = []
        with self._store.transaction() as c:
            for rowid, idx, at, publisher, signal_id, type_, value, version in c.execute(
                "SELECT rowid, retracted_idx, retracted_at_ms, publisher, signal_id, type, value, idx FROM signals"
                f" WHERE retracted_key_no = {KEY_NO}", (key.keyid,),
            ).fetchall():
                if idx is not None and key.tainted(idx, at or 0):
                    c.execute("UPDATE signals SET retracted_idx = NULL, retracted_at_ms = NULL, retracted_key_no = NULL"
                              " WHERE rowid = ?", (rowid,))
                    if bank_history.restore_retraction(c, key, publisher, signal_id, version, idx):
                        continue  # an earlier, untainted retraction of the version stands
                    restored.append((idx, publisher, signal_id))
                    if _hamming(type_):
                        added.append((rowid, value))
            self._index_update(add=added)
            self._changed([(p, sid) for _, p, sid in restored])
        return restored

    def drop_tainted(self, key: KeyInfo) -> tuple[list[tuple[int, str, str]], list[tuple[str, str]]]:
        """Undo what ``key`` signed after it was compromised: its signal versions are
        dropped and the latest untainted version of each comes back (``bank_history``),
        its opinions likewise. Return (index, publisher, signal_id) of each dropped version
        and (publisher, signal_id) of each signal restored to an earlier version."""
        dropped: list[tuple[int, str, str]] = []
        restored: list[tuple[str, str]] = []
        touched: list[tuple[str, str]] = []
        with self._store.transaction() as c:
            bank_history.forget_tainted(c, key)
            removed: list[int] = []
            added: list[tuple[int, str]] = []
            for rowid, idx, at, publisher, signal_id, type_ in c.execute(
                f"SELECT rowid, idx, accepted_at_ms, publisher, signal_id, type FROM signals WHERE key_no = {KEY_NO}",
                (key.keyid,),
            ).fetchall():
                if key.tainted(idx, at):
                    c.execute("DELETE FROM signals WHERE publisher = ? AND signal_id = ?", (publisher, signal_id))
                    dropped.append((idx, publisher, signal_id))
                    if _hamming(type_):
                        removed.append(rowid)
                    back = bank_history.restore_signal(c, publisher, signal_id)
                    if back is not None:
                        restored.append((publisher, signal_id))
                        if _hamming(back[1]) and back[3] is None:
                            added.append((back[0], back[2]))
            for idx, at, publisher, signal_id, author in c.execute(
                f"SELECT idx, accepted_at_ms, publisher, signal_id, author FROM opinions WHERE key_no = {KEY_NO}",
                (key.keyid,),
            ).fetchall():
                if key.tainted(idx, at):
                    c.execute(
                        "DELETE FROM opinions WHERE publisher = ? AND signal_id = ? AND author = ?",
                        (publisher, signal_id, author),
                    )
                    bank_history.restore_opinion(c, publisher, signal_id, author)
                    touched.append((publisher, signal_id))
            self._index_update(add=added, remove=removed)
            self._changed([(p, sid) for _, p, sid in dropped] + touched)
        return dropped, restored

    def sweep_expired(self, now_ms: int | None = None) -> list[BankSignal]:
        """Mark signals whose ``valid_until`` has passed since the last sweep; return them
        (the caller withdraws their open queue items). Idempotent."""
        now = self._clock_ms() if now_ms is None else now_ms
        with self._store.transaction() as c:
            rows = c.execute(
                f"SELECT rowid, {_COLUMNS} FROM signals WHERE valid_until_ms IS NOT NULL AND valid_until_ms <= ?"
                " AND swept_at_ms IS NULL AND retracted_idx IS NULL",
                (now,),
            ).fetchall()
            if not rows:
                return []
            c.executemany("UPDATE signals SET swept_at_ms = ? WHERE rowid = ?", [(now, r[0]) for r in rows])
            self._index_update(remove=[r[0] for r in rows if _hamming(r[4])])
            self._changed([(str(r[1]), str(r[2])) for r in rows])
        return [_row(r[1:]) for r in rows]

    def clear(self) -> None:
        """Forget every signal and opinion (before a rebuild from the ledger)."""
        with self._store.transaction() as c:
            c.execute("DELETE FROM signals")
            c.execute("DELETE FROM opinions")
            bank_history.clear(c)
            self._bump()
            self._store.after_commit(self.reset_index, on_rollback=self.reset_index)
            self._changed(None)

    # -- queries ---------------------------------------------------------------------

    def get(self, publisher: str, signal_id: str) -> BankSignal | None:
        r = self._store.conn.execute(
            f"SELECT {_COLUMNS} FROM signals WHERE publisher = ? AND signal_id = ?", (publisher, signal_id)
        ).fetchone()
        return None if r is None else _row(r)

    def _by_rowids(self, rowids: list[int]) -> dict[int, BankSignal]:
        out: dict[int, BankSignal] = {}
        for i in range(0, len(rowids), 500):
            chunk = rowids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            for r in self._store.conn.execute(f"SELECT rowid, {_COLUMNS} FROM signals WHERE rowid IN ({marks})", chunk):
                out[int(r[0])] = _row(r[1:])
        return out

    def get_many(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], BankSignal]:
        """The banked signals among ``keys`` (absent keys are missing from the result)."""
        out: dict[tuple[str, str], BankSignal] = {}
        for r in _by_keys(self._store.conn, "signals", _COLUMNS, keys):
            s = _row(r)
            out[(s.publisher, s.signal_id)] = s
        return out

    def opinion_counts_many(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], dict[int, int]]:
        """:meth:`opinion_counts` of many signals (those without opinions are missing)."""
        out: dict[tuple[str, str], dict[int, int]] = {}
        for publisher, signal_id, verdict, n in _by_keys(
            self._store.conn, "opinions", "opinions.publisher, opinions.signal_id, verdict, COUNT(*)", keys,
            " GROUP BY opinions.publisher, opinions.signal_id, verdict",
        ):
            out.setdefault((str(publisher), str(signal_id)), {})[int(verdict)] = int(n)
        return out

    def _banked_pages(self, columns: str, batch: int) -> Iterator[list[tuple[object, ...]]]:
        """Pages of ``rowid, columns`` of every banked, unretracted signal, in rowid order."""
        last = 0
        while True:
            rows = self._store.conn.execute(
                f"SELECT rowid, {columns} FROM signals WHERE rowid > ? AND retracted_idx IS NULL"
                " AND swept_at_ms IS NULL ORDER BY rowid LIMIT ?",
                (last, batch),
            ).fetchall()
            if not rows:
                return
            last = int(rows[-1][0])
            yield rows

    def iter_signals(self, batch: int = 50_000) -> Iterator[BankSignal]:
        """Every banked, unretracted signal (live or not: check :meth:`BankSignal.live_at`)."""
        for rows in self._banked_pages(_COLUMNS, batch):
            yield from (_row(r[1:]) for r in rows)

    def scan_columns(self, batch: int = 200_000) -> Iterator[SignalColumns]:
        """Every banked, unretracted signal (as :meth:`iter_signals`), a batch of raw
        columns at a time, in rowid order: one indexed range scan a batch and no
        per-row objects, for an in-memory view loading millions of signals."""
        keyids = {int(n): str(k) for n, k in self._store.conn.execute("SELECT n, keyid FROM key_ids")}
        for rows in self._banked_pages(_SCAN_COLUMNS, batch):
            cols = list(zip(*rows, strict=True))
            yield SignalColumns(rowid=cols[0], publisher=cols[1], signal_id=cols[2], index=cols[3], type=cols[4],
                                value=cols[5], labels_json=cols[6], confidence=cols[7], severity=cols[8],
                                groups_json=cols[9], tlp=cols[10], valid_from_ms=cols[11], valid_until_ms=cols[12],
                                created_at_ms=cols[13], accepted_at_ms=cols[14], quality_flag=cols[15],
                                keyid=tuple(keyids.get(n, "") for n in cols[16]))

    def all_opinion_counts(self) -> dict[tuple[str, str], dict[int, int]]:
        """{(publisher, signal_id): {verdict: members}} for every signal with opinions."""
        out: dict[tuple[str, str], dict[int, int]] = {}
        for publisher, signal_id, verdict, n in self._store.conn.execute(
            "SELECT publisher, signal_id, verdict, COUNT(*) FROM opinions GROUP BY publisher, signal_id, verdict"
        ):
            out.setdefault((str(publisher), str(signal_id)), {})[int(verdict)] = int(n)
        return out

    def opinion_counts(self, publisher: str, signal_id: str) -> dict[int, int]:
        rows = self._store.conn.execute(
            "SELECT verdict, COUNT(*) FROM opinions WHERE publisher = ? AND signal_id = ? GROUP BY verdict",
            (publisher, signal_id),
        )
        return {int(v): int(n) for v, n in rows}

    def opinions(self, publisher: str, signal_id: str) -> dict[str, str]:
        """{author: verdict name} of the latest opinion of each member on this signal."""
        rows = self._store.conn.execute(
            "SELECT author, verdict FROM opinions WHERE publisher = ? AND signal_id = ? ORDER BY author",
            (publisher, signal_id),
        )
        return {str(a): VERDICTS.get(int(v), str(v)) for a, v in rows}

    def feedback(self, publisher: str) -> list[dict[str, object]]:
        """What other members said about ``publisher``'s signals: one entry per signal
        with opinions, counts per verdict and the verdict of each member."""
        out: dict[str, dict[str, object]] = {}
        for signal_id, author, verdict, idx, at in self._store.conn.execute(
            "SELECT signal_id, author, verdict, idx, accepted_at_ms FROM opinions WHERE publisher = ?"
            " ORDER BY signal_id, author",
            (publisher,),
        ):
            entry = out.setdefault(
                str(signal_id),
                {"signal_id": str(signal_id), "counts": {}, "by_member": {}, "last_index": -1, "last_at_ms": 0},
            )
            name = VERDICTS.get(int(verdict), str(verdict))
            counts: dict[str, int] = entry["counts"]  # type: ignore[assignment]
            counts[name] = counts.get(name, 0) + 1
            entry["by_member"][str(author)] = name  # type: ignore[index]
            if int(idx) > int(entry["last_index"]):  # type: ignore[call-overload]
                entry["last_index"], entry["last_at_ms"] = int(idx), int(at)
        for signal_id, entry in out.items():
            s = self.get(publisher, signal_id)
            entry["type"] = s.type if s else None
            entry["labels"] = list(s.labels) if s else []
            entry["live"] = bool(s and s.live_at(self._clock_ms()))
        return sorted(out.values(), key=lambda e: str(e["signal_id"]))

    def signals_of_type(self, type_name: str, live_only: bool = False) -> list[BankSignal]:
        """Every banked signal of one type, live or not (``live_only``: neither retracted nor
        swept as expired, read from the live-value index; check :meth:`BankSignal.live_at`)."""
        live = f" AND {LIVE}" if live_only else ""
        rows = self._store.conn.execute(f"SELECT {_COLUMNS} FROM signals WHERE type = ?{live}", (type_name,))
        return [_row(r) for r in rows]

    def groups(self) -> list[str]:
        """Every sharing group a banked signal is shared with."""
        rows = self._store.conn.execute("SELECT DISTINCT j.value FROM signals, json_each(signals.groups) AS j")
        return sorted(str(r[0]) for r in rows)

    def members(self, group: str | None = None) -> dict[str, int]:
        """Every member with a banked signal or an opinion on one (in ``group``, if given),
        with the earliest acceptance time of those entries."""
        where, args = (f"WHERE {_IN_GROUP}", (group,)) if group is not None else ("", ())
        owhere = where.replace("groups", "s.groups")
        rows = self._store.conn.execute(
            f"SELECT who, MIN(t) FROM (SELECT publisher AS who, accepted_at_ms AS t FROM signals {where}"
            " UNION ALL SELECT o.author, o.accepted_at_ms FROM opinions o JOIN signals s"
            f" ON s.publisher = o.publisher AND s.signal_id = o.signal_id {owhere}) GROUP BY who ORDER BY who",
            (*args, *args),
        )
        return {str(p): int(t or 0) for p, t in rows}

    def changes(
        self, *, after: int = -1, limit: int = 1000, group: str | None = None, changed_after_ms: int | None = None
    ) -> list[BankSignal | BankOpinion]:
        """Signals (latest version, or retracted) and opinions on banked signals, ordered by the
        ledger index of their last change, after ``after``: a resumable feed of the bank."""
        conds, args = [f"{_POSITION} > ?"], [after]
        if group is not None:
            conds.append(_IN_GROUP)
            args.append(group)  # type: ignore[arg-type]
        if changed_after_ms is not None:
            conds.append(f"{_CHANGED_AT} > ?")
            args.append(changed_after_ms)
        c = self._store.conn
        sigs = c.execute(
            f"SELECT {_COLUMNS} FROM signals WHERE {' AND '.join(conds)} ORDER BY {_POSITION} LIMIT ?", (*args, limit)
        ).fetchall()
        oconds = ["o.idx > ?"] + [x.replace("groups", "s.groups") for x in conds[1:] if x.startswith("EXISTS")]
        if changed_after_ms is not None:
            oconds.append("o.accepted_at_ms > ?")
        ops = c.execute(
            "SELECT o.publisher, o.signal_id, o.author, o.verdict, o.idx, o.accepted_at_ms FROM opinions o"
            " JOIN signals s ON s.publisher = o.publisher AND s.signal_id = o.signal_id"
            f" WHERE {' AND '.join(oconds)} ORDER BY o.idx LIMIT ?",
            (*args, limit),
        ).fetchall()
        merged: list[BankSignal | BankOpinion] = [_row(r) for r in sigs]
        merged += [
            BankOpinion(publisher=str(p), signal_id=str(i), author=str(a), verdict=VERDICTS.get(int(v), str(v)),
                        index=int(x), accepted_at_ms=int(t or 0))
            for p, i, a, v, x, t in ops
        ]
        return sorted(merged, key=lambda e: e.position)[:limit]

    def lookup(self, type_name: str, value: str) -> list[BankSignal]:
        """Live signals of an exact-match type with this (normalized) value."""
        now = self._clock_ms()
        rows = self._store.conn.execute(
            f"SELECT {_COLUMNS} FROM signals WHERE type = ? AND value = ? AND {LIVE}", (type_name, value)
        ).fetchall()
        return [s for s in map(_row, rows) if s.live_at(now)]

    def search_pdq(
        self, pdq: str, threshold: int | None = None, type_name: str | None = None
    ) -> list[tuple[BankSignal, int]]:
        """Live signals of a Hamming type (``type_name``, default any) within
        ``threshold`` Hamming distance, nearest first."""
        hits = self.pdq_index().search(pdq, self.pdq_threshold if threshold is None else threshold)
        if not hits:
            return []
        now = self._clock_ms()
        by_id = self._by_rowids([i for i, _ in hits])
        out = [
            (by_id[i], d)
            for i, d in hits
            if i in by_id and by_id[i].live_at(now) and (by_id[i].type == type_name if type_name else _hamming(by_id[i].type))
        ]
        return sorted(out, key=lambda t: (t[1], t[0].index))

    def match_media(self, h: MediaHashes) -> list[Match]:
        """Every live signal this file matches: exact hashes first, then near ones
        (Hamming or the type's own distance; only hashes that reach their type's
        ``min_quality``)."""
        found: dict[tuple[str, str], Match] = {}
        kinds = [(signal_type(c.type), c) for c in h.hashes]
        for kind, c in sorted(kinds, key=lambda kc: kc[0].matcher is not Matcher.EXACT):
            if c.quality is not None and c.quality < kind.min_quality:
                continue
            for m in self._match(kind.name, c.value, h.path):
                if kind.matcher is not Matcher.EXACT:
                    found.setdefault((m.signal.publisher, m.signal.signal_id), m)
                else:
                    found[(m.signal.publisher, m.signal.signal_id)] = m
        return sorted(found.values(), key=lambda m: (m.distance, m.signal.index))

    def match_value(self, type_name: str, raw: str, content_ref: str) -> list[Match]:
        """Match one piece of the member's own content, dispatching on its type's matcher
        (a ``domain`` or ``url`` also matches domain signals for its host and every
        parent domain, through the type's ``lookups``)."""
        return self._match(type_name, signal_type(type_name).normalize(raw), content_ref)

    def _match(self, type_name: str, value: str, content_ref: str) -> list[Match]:
        kind = signal_type(type_name)
        if kind.matcher in (Matcher.SUBSTRING, Matcher.SCAN):
            now = self._clock_ms()
            scored = [(s, kind.distance(s.value, value)) for s in self.signals_of_type(type_name, True)
                      if s.live_at(now)]
            return [Match(content_ref=content_ref, signal=s, distance=d) for s, d in scored if d is not None]
        if kind.matcher is Matcher.HAMMING:
            found = self.search_pdq(value, type_name=type_name)
            return [Match(content_ref=content_ref, signal=s, distance=d) for s, d in found]
        hits: dict[tuple[str, str], BankSignal] = {}  # exact: every key the type's lookups name
        for key_type, key in kind.lookups(value):
            for s in self.lookup(key_type, key):
                hits.setdefault((s.publisher, s.signal_id), s)
        return [Match(content_ref=content_ref, signal=s) for s in hits.values()]

    def stats(self) -> dict[str, int]:
        now = self._clock_ms()
        c = self._store.conn
        total = c.execute("SELECT COUNT(*) FROM signals").fetchone()[0]
        retracted = c.execute("SELECT COUNT(*) FROM signals WHERE retracted_idx IS NOT NULL").fetchone()[0]
        expired = c.execute(
            "SELECT COUNT(*) FROM signals WHERE valid_until_ms IS NOT NULL AND valid_until_ms <= ?", (now,)
        ).fetchone()[0]
        live = c.execute(
            "SELECT COUNT(*) FROM signals WHERE retracted_idx IS NULL AND (valid_until_ms IS NULL OR valid_until_ms > ?)"
            " AND (valid_from_ms IS NULL OR valid_from_ms <= ?)",
            (now, now),
        ).fetchone()[0]
        degenerate = c.execute("SELECT COUNT(*) FROM signals WHERE quality_flag = ?", (DEGENERATE_PDQ,)).fetchone()[0]
        return {
            "signals": int(total),
            "live": int(live),
            "retracted": int(retracted),
            "expired": int(expired),
            "pdq_degenerate": int(degenerate),
        }

    def counts_by_type(self) -> dict[str, int]:
        return {
            str(t): int(n)
            for t, n in self._store.conn.execute(
                "SELECT type, COUNT(*) FROM signals WHERE retracted_idx IS NULL GROUP BY type ORDER BY type"
            )
        }

    def rowid_of(self, publisher: str, signal_id: str) -> int | None:
        r = self._store.conn.execute(
            "SELECT rowid FROM signals WHERE publisher = ? AND signal_id = ?", (publisher, signal_id)
        ).fetchone()
        return None if r is None else int(r[0])
