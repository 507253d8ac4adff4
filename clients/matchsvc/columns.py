"""The match index's column store: about 180 bytes of arrays a signal (before its PDQ index).

A banked signal becomes one *row* of numpy columns (ledger index, times, confidence…);
strings repeated across signals (type, publisher, key id, label and group tuples) are
interned as small ints; the signal id and value sit in 32-byte slots, hex packed to
bytes (an MD5 takes 16 bytes, a PDQ hash 32), longer ones in a side dict. A
:class:`~clients.bank.BankSignal` is built only for an answer (:meth:`SignalRows.signal`).
Freed rows are reused. :class:`DigestMap` maps a 64-bit digest of a key to rows: a
sorted numpy pair (16 bytes an entry) plus a dict of recent additions merged in by
the maintenance thread; its entries may be stale, so readers verify each row.

Not thread-safe: the owner (:class:`clients.matchsvc.index.MatchIndex`) holds its lock
for every call except :meth:`DigestMap.build`.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Callable, Hashable, Sequence
from typing import Generic, TypeVar

import numpy as np

from clients.bank import NO_TIME_MS, BankSignal, SignalColumns

__all__ = ["DigestMap", "Interner", "SignalRows", "digest", "digests"]

NO_MS = NO_TIME_MS  # a missing time (valid_from/valid_until)
SLOT = 32  # bytes of a string slot; longer strings go to the side dict
_COLUMNS: dict[str, type] = {  # one packed numpy record a row: a row reads in one call
    "index": np.int64, "type": np.int16, "publisher": np.int32, "labels": np.int32, "groups": np.int32,
    "keyid": np.int32, "confidence": np.int16, "severity": np.int32, "tlp": np.int8,
    "valid_from": np.int64, "valid_until": np.int64, "created_at": np.int64, "accepted_at": np.int64,
    "key_digest": np.uint64, "value_digest": np.uint64, "alive": np.bool_,
}
ROW = np.dtype(list(_COLUMNS.items()))
_ALIVE, _TYPE, _FROM, _UNTIL = (list(_COLUMNS).index(n) for n in ("alive", "type", "valid_from", "valid_until"))
K = TypeVar("K", bound=Hashable)
MASK64 = (1 << 64) - 1


def digest(a: str, b: str) -> int:
    """A 64-bit digest of a pair of strings (a map key; rows are verified on use): Python's
    keyed, per-process string hash (cached on the strings), so never persisted."""
    return hash((a, b)) & MASK64


def digests(a: Sequence[str], b: Sequence[str]) -> np.ndarray:
    """:func:`digest` of many pairs, as a uint64 array (a negative hash viewed as uint64
    is the hash masked to 64 bits)."""
    return np.fromiter(map(hash, zip(a, b, strict=True)), np.int64, len(a)).view(np.uint64)


class Interner(Generic[K]):
    """Values repeated across rows, stored once: value ↔ small int."""

    def __init__(self) -> None:
        self._ids: dict[K, int] = {}
        self.values: list[K] = []

    def id(self, value: K) -> int:
        i = self._ids.get(value)
        if i is None:
            i = self._ids[value] = len(self.values)
            self.values.append(value)
        return i

    def find(self, value: K) -> int:
        """The value's id, -1 if never seen."""
        return self._ids.get(value, -1)


class _Strings:
    """One string per row in a fixed 32-byte slot (lower-case hex packed to bytes)."""

    def __init__(self, capacity: int) -> None:
        self.data = np.zeros((capacity, SLOT), np.uint8)
        self.meta = np.zeros(capacity, np.int8)  # byte length; negative: hex-packed; 127: in `long`
        self.long: dict[int, str] = {}

    @staticmethod
    def encode(s: str) -> tuple[bytes, int] | None:
        if len(s) <= 2 * SLOT and len(s) % 2 == 0:
            try:
                raw = bytes.fromhex(s)
            except ValueError:
                raw = None
            if raw is not None and raw.hex() == s:
                return raw, -len(raw) if raw else 0
        raw = s.encode()
        return (raw, len(raw)) if len(raw) <= SLOT else None

    def grow(self, capacity: int) -> None:
        """Resize to ``capacity`` rows (at least the rows in use)."""
        keep = min(capacity, len(self.meta))
        data = np.zeros((capacity, SLOT), np.uint8)
        data[:keep] = self.data[:keep]
        meta = np.zeros(capacity, np.int8)
        meta[:keep] = self.meta[:keep]
        self.data, self.meta = data, meta

    def set(self, row: int, s: str) -> None:
        self.long.pop(row, None)
        enc = self.encode(s)
        if enc is None:
            self.long[row] = s
            self.meta[row] = 127
            return
        raw, m = enc
        self.data[row, : len(raw)] = np.frombuffer(raw, np.uint8)
        self.meta[row] = m

    def set_many(self, start: int, strings: Sequence[str]) -> None:
        """Fill new rows from ``start``; lower-case hex strings are packed a width at a
        time (one join, one ``fromhex``), anything else row by row."""
        n = len(strings)
        widths = np.fromiter(map(len, strings), np.int64, n)
        for width in np.unique(widths).tolist():
            at = np.flatnonzero(widths == width)
            whole = len(at) == n  # one width (the usual case: a column of one hash type)
            part = list(strings) if whole else [strings[i] for i in at.tolist()]
            if 0 < width <= 2 * SLOT and width % 2 == 0:
                joined = "".join(part)
                try:
                    raw = bytes.fromhex(joined)
                except ValueError:
                    raw = b""
                if len(raw) * 2 == len(joined) and raw.hex() == joined:
                    rows = slice(start, start + n) if whole else start + at
                    self.data[rows, : width // 2] = np.frombuffer(raw, np.uint8).reshape(len(at), width // 2)
                    self.meta[rows] = -(width // 2)
                    continue
            for i, s in zip(at.tolist(), part, strict=True):
                self.set(start + i, s)

    def get(self, row: int) -> str:
        m = int(self.meta[row])
        if m == 127:
            return self.long[row]
        if m < 0:
            return self.data[row, :-m].tobytes().hex()
        return self.data[row, :m].tobytes().decode()

    def free(self, row: int) -> None:
        self.long.pop(row, None)


class SignalRows:
    """Live signals as rows of columns; see the module docstring."""

    def __init__(self, capacity: int = 1024) -> None:
        self.cols = np.zeros(capacity, ROW)  # cols["index"] etc. are column views
        self.signal_ids = _Strings(capacity)
        self.values = _Strings(capacity)
        self.types: Interner[str] = Interner()
        self.publishers: Interner[str] = Interner()
        self.keyids: Interner[str] = Interner()
        self.tuples: Interner[tuple[str, ...]] = Interner()  # labels and groups
        self._end = 0  # rows ever used
        self._free: list[int] = []
        self.live = 0

    def __len__(self) -> int:
        return self.live

    @property
    def end(self) -> int:
        return self._end

    def _reserve(self, n: int) -> None:
        if self._end + n > len(self.cols):
            self._resize(max(len(self.cols) * 5 // 4, self._end + n, 1024))  # 25% headroom: 10M rows are 1.5 GB

    def _resize(self, capacity: int) -> None:
        grown = np.zeros(capacity, ROW)
        grown[: self._end] = self.cols[: self._end]
        self.cols = grown
        self.signal_ids.grow(capacity)
        self.values.grow(capacity)

    def trim(self) -> None:
        """Drop the spare capacity (after loading: the next add grows it by a quarter)."""
        if len(self.cols) > self._end + 1024:
            self._resize(self._end + 1024)

    def _fields(self, s: BankSignal, key_digest: int, value_digest: int) -> tuple[int, ...]:
        return (s.index, self.types.id(s.type), self.publishers.id(s.publisher), self.tuples.id(s.labels),
                self.tuples.id(s.groups), self.keyids.id(s.keyid), s.confidence, s.severity, s.tlp,
                NO_MS if s.valid_from_ms is None else s.valid_from_ms,
                NO_MS if s.valid_until_ms is None else s.valid_until_ms,
                s.created_at_ms, s.accepted_at_ms, key_digest, value_digest, True)

    def add(self, s: BankSignal, key_digest: int, value_digest: int) -> int:
        """Store one live signal (in a freed row if any); returns its row."""
        if self._free:
            row = self._free.pop()
        else:
            self._reserve(1)
            row = self._end
            self._end += 1
        self.cols[row] = self._fields(s, key_digest, value_digest)
        self.signal_ids.set(row, s.signal_id)
        self.values.set(row, s.value)
        self.live += 1
        return row

    def add_many(self, signals: Sequence[BankSignal], key_digests: Sequence[int], value_digests: Sequence[int]) -> int:
        """Store signals in new consecutive rows (loading); returns the first row."""
        start = self._end
        self._reserve(len(signals))
        fields = [self._fields(s, k, v) for s, k, v in zip(signals, key_digests, value_digests, strict=True)]
        self.cols[start : start + len(signals)] = np.array(fields, dtype=ROW)
        self.signal_ids.set_many(start, [s.signal_id for s in signals])
        self.values.set_many(start, [s.value for s in signals])
        self._end += len(signals)
        self.live += len(signals)
        return start

    def add_columns(self, c: SignalColumns, keep: np.ndarray, key_digests: np.ndarray,
                    value_digests: np.ndarray) -> int:
        """Store the ``keep`` rows of a scanned batch in new consecutive rows (loading:
        no per-signal objects; strings interned once per distinct value); returns the
        first row. ``key_digests``/``value_digests`` are for the kept rows."""
        at = np.flatnonzero(keep)
        n, start = len(at), self._end
        self._reserve(n)
        block = np.zeros(n, ROW)
        numbers: tuple[tuple[str, Sequence[int]], ...] = (
            ("index", c.index), ("confidence", c.confidence), ("severity", c.severity), ("tlp", c.tlp),
            ("valid_from", c.valid_from_ms), ("valid_until", c.valid_until_ms), ("created_at", c.created_at_ms),
            ("accepted_at", c.accepted_at_ms))
        for name, num in numbers:
            block[name] = np.asarray(num, np.int64)[at]
        for name, interner, col in (("type", self.types, c.type), ("publisher", self.publishers, c.publisher),
                                    ("keyid", self.keyids, c.keyid)):
            block[name] = _interned(col, lambda v, i=interner: i.id(v))[at]  # type: ignore[misc]
        for name, col in (("labels", c.labels_json), ("groups", c.groups_json)):
            block[name] = _interned(col, lambda v: self.tuples.id(tuple(json.loads(v))))[at]
        block["key_digest"], block["value_digest"], block["alive"] = key_digests, value_digests, True
        self.cols[start : start + n] = block
        kept = at.tolist()
        self.signal_ids.set_many(start, [c.signal_id[i] for i in kept])
        self.values.set_many(start, [c.value[i] for i in kept])
        self._end += n
        self.live += n
        return start

    def free(self, row: int) -> None:
        self.cols["alive"][row] = False
        self.signal_ids.free(row)
        self.values.free(row)
        self._free.append(row)
        self.live -= 1

    def alive(self, row: int) -> bool:
        return bool(self.cols["alive"][row])

    def type_of(self, row: int) -> str:
        return self.types.values[int(self.cols["type"][row])]

    def live_at(self, row: int, now_ms: int) -> bool:
        r = self.cols[row].item()
        if not r[_ALIVE]:
            return False
        until, start = r[_UNTIL], r[_FROM]
        return bool((until == NO_MS or now_ms < until) and (start == NO_MS or now_ms >= start))

    def is_key(self, row: int, publisher: str, signal_id: str) -> bool:
        return (self.alive(row) and self.publishers.values[int(self.cols["publisher"][row])] == publisher
                and self.signal_ids.get(row) == signal_id)

    def is_value(self, row: int, type_id: int, value: str) -> bool:
        r = self.cols[row].item()
        return bool(r[_ALIVE]) and r[_TYPE] == type_id and self.values.get(row) == value

    def signal(self, row: int) -> BankSignal:
        """The answer's copy of a live row (strings built here, not stored)."""
        (index, type_id, publisher, labels, groups, keyid, confidence, severity, tlp, valid_from, valid_until,
         created_at, accepted_at, _, _, _) = self.cols[row].item()
        return BankSignal(
            publisher=self.publishers.values[publisher], signal_id=self.signal_ids.get(row), index=index,
            type=self.types.values[type_id], value=self.values.get(row), labels=self.tuples.values[labels],
            confidence=confidence, severity=severity, groups=self.tuples.values[groups], tlp=tlp,
            valid_from_ms=None if valid_from == NO_MS else valid_from,
            valid_until_ms=None if valid_until == NO_MS else valid_until,
            created_at_ms=created_at, retracted_index=None, accepted_at_ms=accepted_at,
            keyid=self.keyids.values[keyid],
        )

    def nbytes(self) -> int:
        """Bytes held by the columns (not the interned strings nor the side dicts)."""
        return self.cols.nbytes + sum(s.data.nbytes + s.meta.nbytes for s in (self.signal_ids, self.values))


def _interned(col: Sequence[str], id_of: Callable[[str], int]) -> np.ndarray:
    """The interned id of each value of a column (``id_of`` called once per distinct value)."""
    ids = {v: id_of(v) for v in set(col)}
    return np.fromiter(map(ids.__getitem__, col), np.int32, len(col))


class DigestMap:
    """64-bit digest → rows, many rows a digest: sorted numpy arrays for the bulk, a
    dict for recent additions. Entries are never removed one by one: readers verify
    each row they get (it may be dead or reused); :meth:`build` drops stale entries."""

    def __init__(self) -> None:
        self._keys = np.empty(0, np.uint64)
        self._rows = np.empty(0, np.int64)
        self._views = (self._keys.data, self._rows.data)
        self._recent: dict[int, list[int]] = {}
        self._frozen: dict[int, list[int]] = {}  # recent additions being merged by build()

    def add(self, d: int, row: int) -> None:
        self._recent.setdefault(d, []).append(row)

    def get(self, d: int) -> list[int]:
        recent, frozen = self._recent.get(d), self._frozen.get(d) if self._frozen else None
        out = [*recent] if recent else []
        if frozen:
            out.extend(frozen)
        keys, rows = self._views  # memoryviews: bisect on them beats a numpy call per lookup
        i = bisect.bisect_left(keys, d)
        while i < len(keys) and keys[i] == d:  # a miss, the common case, ends here at once
            out.append(rows[i])
            i += 1
        return out

    def pending(self) -> int:
        return len(self._recent)

    def freeze(self) -> None:
        """Set the recent additions aside for :meth:`build` (under the owner's lock)."""
        if self._frozen:
            raise RuntimeError("a merge is already running")
        self._frozen, self._recent = self._recent, {}

    def build(self, valid: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """The bulk arrays with the frozen additions merged in and the entries ``valid``
        rejects dropped; reads only what no writer changes, so runs outside the lock."""
        n = sum(len(v) for v in self._frozen.values())
        fk = np.fromiter((k for k, rows in self._frozen.items() for _ in rows), np.uint64, n)
        fr = np.fromiter((r for rows in self._frozen.values() for r in rows), np.int64, n)
        order = np.argsort(fk, kind="stable")
        fk, fr = fk[order], fr[order]
        at = self._keys.searchsorted(fk)
        keys, rows = np.insert(self._keys, at, fk), np.insert(self._rows, at, fr)
        keep = valid(keys, rows) if len(keys) else np.empty(0, bool)
        return keys[keep], rows[keep]

    def install(self, built: tuple[np.ndarray, np.ndarray]) -> None:
        """Swap the built arrays in (under the owner's lock)."""
        self._keys, self._rows = built
        self._views = (self._keys.data, self._rows.data)
        self._frozen = {}

    def add_arrays(self, keys: np.ndarray, rows: np.ndarray) -> None:
        """Add many entries straight into the sorted arrays (loading: no per-entry objects)."""
        order = np.argsort(np.concatenate([self._keys, keys.astype(np.uint64)]), kind="stable")
        self._keys = np.concatenate([self._keys, keys.astype(np.uint64)])[order]
        self._rows = np.concatenate([self._rows, rows.astype(np.int64)])[order]
        self._views = (self._keys.data, self._rows.data)

    def merge(self, valid: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> None:
        """freeze + build + install in one go (when nothing else runs: loading)."""
        self.freeze()
        self.install(self.build(valid))

    def clear(self) -> None:
        self.__init__()  # type: ignore[misc]

    def nbytes(self) -> int:
        return self._keys.nbytes + self._rows.nbytes
