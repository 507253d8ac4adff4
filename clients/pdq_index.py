"""Exact PDQ near-duplicate search at 10M hashes: multi-index hashing over numpy arrays,
scanned by a compiled kernel (:mod:`clients.pdq_kernel`).

A PDQ hash is 256 bits; two images are near-duplicates when the Hamming distance of
their hashes is at most a threshold (31 by default). :class:`PdqIndex` answers "every
hash within ``t`` bits of this one" **exactly** (recall 1.0, checked against brute
force in ``tests/unit/test_pdq_index.py`` and ``bench/bench_pdq.py``), in well under
a millisecond at 1M hashes and about a millisecond at 10M, in under 1 GB.

Why exact: multi-index hashing and the pigeonhole principle
-----------------------------------------------------------
Cut the hash into ``m`` disjoint substrings of ``b`` bits (``m*b <= 256``; bits left
over are simply not indexed). If ``d(x, q) <= t`` then the substring distances
``d_j`` add up to at most ``t``. Probe substring ``j`` with every key within radius
``r_j`` of the query's substring (all flips of up to ``r_j`` bits). If every
substring missed, each ``d_j >= r_j + 1`` and ``d >= sum(r_j + 1)``; so whenever

    sum_j (r_j + 1) >= t + 1                                   (*)

some substring is within its radius and ``x`` is among the candidates: no false
negatives. Candidates are then checked with the full 256-bit distance: no false
positives. Hence the classic remark: 8 substrings of 32 bits guarantee exact recall at
radius <= 31 only if every substring is probed with up to 3 flipped bits
(8 * (3 + 1) = 32 >= 32); probing them exactly (``nflip = 0``) guarantees recall only
up to distance 7, and 1 flip only up to 15. 32-bit substrings with 3 flips cost
8 * 5,489 = 43,912 probes per query, and faiss's ``IndexBinaryMultiHash`` stores every
substring table as an ``unordered_map`` of vectors (about 100 B per hash per table):
about 8 GB at 10M. That is why this index keeps the idea and not that data structure.

Layout
------
- ``codes``: ``(n, 4) uint64``, the hash as four 64-bit words, most significant first.
  32 B per hash, the floor for exact verification.
- ``ids``: ``uint32`` per row, the caller's id (the bank uses SQLite rowids); the
  dense reverse map ``row_of[id]`` makes removal O(1); ``died``: ``uint32`` per row, the
  sequence number of the change that removed or replaced the row (0 while alive: the
  array is allocated zeroed and only dead rows are written, so it costs resident
  memory only in pages where rows died).
- **Segments**: each a CSR table per substring, with a directory of ``2**b + 1``
  posting positions per substring and posting lists of row numbers packed to 3 bytes
  (relative to the segment's first row; 4 bytes for a segment spanning 2**24 rows or
  more). A segment of ``n`` rows picks ``b`` near ``log2(n)`` (16..23, ``MAX_B``) and
  ``m = min(16, 256 // b)``; for t = 31 a 10M segment uses b = 23, m = 11 (253 bits),
  radii 2 on 10 substrings and 1 on one (10 * 3 + 2 = 32): 2,794 probes and ~3.3k
  candidates per query. b = 22 (what indexes saved before chose; they still load and
  answer exactly) has the same radii, 2,563 probes but ~6.1k candidates, and half the
  directory (47 MiB instead of 91): 23 bits trade 44 MiB for about 1.3x the lookups;
  b = 21, m = 12: 1,944 probes but ~9.3k candidates, and one more table of postings.
  3 B per hash per substring.
- **Directories in two levels** (``_Directory``): a block's first position (``uint32``)
  every ``2**shift`` slots and each slot's offset from it in one byte (or two), the
  smallest form that fits; at 10M about 1.03 B a slot instead of 4 (91 MiB for
  23-bit tables where flat ``uint32`` ones would take 352 MiB).
- **Table 0 without postings** (``direct0``): a compaction, and a fold that rebuilds
  every row, numbers the rows in the order of their substring-0 keys, so table 0's
  directory gives row numbers directly: no postings for it (29 MiB at 10M), and its
  candidates' hashes are read in sequence.
- At 10M (measured, ``bench/bench_pdq.py``): codes 305 MiB + postings 286 + directories
  91 + ids and reverse map 76 (+ ``died``, 38, only in pages where rows died) = 758 MiB
  of arrays with no removals; resident about 940 MiB with numba (~95 MiB) and its
  compiled kernels (~50 MiB).
- **Incremental updates**: adds append to a small *tail* that is searched by brute
  force; when the tail passes ``tail_limit`` rows it becomes a new segment, and a
  segment is merged into the one before it when it grows past an eighth of its size
  (a log-structured merge: about log8(n / tail_limit) segments, each row rebuilt a
  handful of times, no add ever rebuilds the whole index unless it completes a
  geometric level). Removals only update the reverse map; dead rows are filtered at
  verification and dropped when their segment is merged, or by a full compaction once
  a quarter of the rows are dead. Folding is lazy (due at the next search), so a bulk
  load builds once.
- **Maintenance off the lookup path**: a fold or compaction is planned under the
  index's lock in O(1), built outside it (lookups and updates go on against the
  current layout) and swapped in under the lock (a compaction carries every row's
  current state over to the renumbered rows). A lookup sees the layout before or after,
  never waits on a build. A search that finds a fold due starts it in a background
  thread (``auto_fold``) and brute-forces the tail meanwhile; :meth:`PdqIndex.fold`
  and :meth:`PdqIndex.compact` run one inline for their caller, still without
  holding the lock while they build.
- **Persistence** (:meth:`save` / :meth:`load`): plain ``.npy`` files and a JSON
  manifest written to a temporary directory and renamed into place; never pickle.
  Format /3 (two-level directories, ``direct0``); /2 (flat ``uint32`` directories) and
  /1 (also ``uint32`` postings) are converted on load.

Queries
-------
:meth:`PdqIndex.search_many` (:meth:`search` is a batch of one) calls the kernel once
per segment for the whole batch: per query, the directory slot of every probe, then
the rows of every posting they reach, then the 256-bit distance of each (four
``popcnt``), each step a tight loop of independent reads with software prefetch, so
the CPU keeps many cache misses in flight. A row reached through several substrings is
reported once (through the first whose radius it is within). The kernel releases the
GIL and a lookup takes no lock: every update publishes an immutable ``_Layout`` (rows,
segments, a sequence number) by one attribute swap, a lookup reads it once and answers
exactly for it (a removal marks its rows ``died[row] = seq`` in place, above the ``seq``
of every layout published before it), so lookups run in parallel with each other, with
updates and with maintenance (``tests/unit/test_pdq_index.py`` checks every answer of
concurrent lookups against brute force over the layout it read). At 10M
the cost is the ~9k random memory reads per query (2,794 directory slots, as many
posting runs, ~3.3k candidates' 32-byte hashes, less table 0's, read in sequence).
The kernels' scratch and the hit buffers are allocated once per thread (``_Scratch``,
thread-local: concurrent lookups never share one), so a single lookup costs about a
batched one (the call itself is ~10 us).

Memory: exactness at t = 31 needs about a dozen substring tables at 10M (11 at b = 23),
each a posting per hash (3 B, the least that numbers 10M rows) on top of the 32 B hash
itself: 62 B a hash, 590 MiB at 10M before any id map, numba or Python. 640 MiB
resident is therefore out of reach of an exact multi-index over uncompressed hashes
with a JIT in the process; fewer tables mean probe counts that explode with the radius
(8 tables of 32 bits: 43,912 probes per query).

Queries whose plan would exceed ``MAX_PROBES`` (thresholds far above PDQ's useful
range) fall back to an exact brute-force scan.
"""

from __future__ import annotations

import contextlib
import importlib
import itertools
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import ModuleType

import numpy as np
import numpy.typing as npt


__all__ = [
    "PdqIndex",
    "DEFAULT_THRESHOLD",
    "pdq_words",
    "pdq_words_many",
    "words_hex",
    "is_degenerate",
    "brute_force",
]

DEFAULT_THRESHOLD = 31
BITS = 256
MAX_PROBES = 200_000
_FEW = 64  # hits per batch below which the final filter and sort run in Python
FORMAT = "trustwire-pdq-index/3"  # /3: two-level directories, table 0 in row order
_FORMATS = (FORMAT, "trustwire-pdq-index/2", "trustwire-pdq-index/1")  # what load reads (/2: flat uint32
# directories; /1: also uint32 postings)
_U64 = np.uint64
Words = npt.NDArray[np.uint64]


def pdq_words(pdq_hex: str) -> Words:
    """The (4,) uint64 words of a 64-hex-character PDQ hash, most significant first."""
    raw = bytes.fromhex(pdq_hex)
    if len(raw) != 32:
        raise ValueError("a PDQ hash is 64 hex characters")
    return np.frombuffer(raw, dtype=">u8").astype(np.uint64)


def pdq_words_many(hexes: Sequence[str]) -> Words:
    """(n, 4) uint64 words of many hashes (fast path: one join and one decode)."""
    if not hexes:
        return np.zeros((0, 4), dtype=np.uint64)
    raw = bytes.fromhex("".join(hexes))
    if len(raw) != 32 * len(hexes):
        raise ValueError("a PDQ hash is 64 hex characters")
    return np.frombuffer(raw, dtype=">u8").astype(np.uint64).reshape(len(hexes), 4)


def words_hex(words: Words) -> str:
    return words.astype(">u8").tobytes().hex()


def is_degenerate(words: Words, margin: int = 48) -> bool:
    """True for a hash no PDQ hasher produces from a real image.

    PDQ sets a bit when a DCT coefficient exceeds the median, so real hashes have
    about 128 bits set. A hash with fewer than ``128 - margin`` or more than
    ``128 + margin`` set bits (all zeros from a blank image, for instance) would sit
    close to every other degenerate hash and match noise.
    """
    ones = int(np.bitwise_count(words).sum())
    return abs(ones - BITS // 2) > margin


_ROW = np.dtype([("w0", np.uint64), ("w1", np.uint64), ("w2", np.uint64), ("w3", np.uint64)])
"""One hash as a 32-byte record: gathering records (``np.take``) reads one cache line per
row, several times faster than fancy-indexing the rows of an (n, 4) array."""


def _records(words: Words) -> npt.NDArray[np.void]:
    """A C-contiguous (n, 4) uint64 array seen as (n,) records (no copy)."""
    return np.ascontiguousarray(words).view(_ROW).reshape(-1)


def _distances(rows: npt.NDArray[np.void], query: npt.NDArray[np.void] | Words) -> npt.NDArray[np.uint16]:
    """Hamming distance of each record to the query (one record, or one per row).

    Word by word with a scalar (or aligned) operand: broadcasting an (n, 4) array
    against a (4,) query runs numpy's slow short-inner-loop path."""
    if query.dtype == _ROW:
        words = [query[f] for f in ("w0", "w1", "w2", "w3")]  # type: ignore[call-overload]
    else:
        words = [query[i] for i in range(4)]
    d = np.bitwise_count(rows["w0"] ^ words[0])
    d += np.bitwise_count(rows["w1"] ^ words[1])
    d += np.bitwise_count(rows["w2"] ^ words[2])  # uint8 holds up to 192; 256 needs the wider sum below
    out: npt.NDArray[np.uint16] = d.astype(np.uint16)
    out += np.bitwise_count(rows["w3"] ^ words[3])
    return out


def brute_force(codes: Words, query: Words, threshold: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int32]]:
    """(row, distance) of every row of ``codes`` within ``threshold`` of ``query``: the reference."""
    d = _distances(_records(codes), np.asarray(query, dtype=np.uint64).reshape(4))
    rows = np.flatnonzero(d <= threshold)
    return rows.astype(np.int64), d[rows].astype(np.int32)


# -- substring plans -----------------------------------------------------------------------


MAX_B = 23
"""The widest substring: at 10M, 23-bit tables halve the candidates of 22-bit ones for
twice the directory (see the module docstring)."""


def _shape_for(n: int) -> tuple[int, int]:
    """(m, b) for a segment of n rows: b near log2(n), clipped to 16..MAX_B."""
    b = min(MAX_B, max(16, int(np.log2(max(n, 1))) + 1))
    return min(16, BITS // b), b


def _window(words: Words, start: int, b: int) -> npt.NDArray[np.uint32]:
    """Bits [start, start + b) (most significant first) of each row, as integers."""
    w, off = divmod(start, 64)
    mask = _U64((1 << b) - 1)
    if off + b <= 64:
        v = (words[:, w] >> _U64(64 - off - b)) & mask
    else:
        spill = off + b - 64
        v = ((words[:, w] << _U64(spill)) | (words[:, w + 1] >> _U64(64 - spill))) & mask
    return v.astype(np.uint32)


@lru_cache(maxsize=64)
def _flips(b: int, r: int) -> npt.NDArray[np.uint32]:
    """Every b-bit mask with at most r bits set (0 first)."""
    out = [0]
    for k in range(1, r + 1):
        for combo in itertools.combinations(range(b), k):
            out.append(sum(1 << i for i in combo))
    return np.array(out, dtype=np.uint32)


def radii(m: int, threshold: int) -> list[int]:
    """Per-substring probe radii r_j with sum(r_j + 1) = threshold + 1 (condition (*));
    -1 means the substring is not probed."""
    q, rem = divmod(threshold + 1, m)
    return [q if j < rem else q - 1 for j in range(m)]


@dataclass(frozen=True, slots=True)
class _Plan:
    """What the kernel needs to probe a segment shape at a threshold."""

    radii: npt.NDArray[np.int64]  # per substring (-1: not probed)
    counts: npt.NDArray[np.int64]  # per substring: its flip masks are flips[:count]
    flips: npt.NDArray[np.int64]  # every mask up to the largest radius, fewest bits first
    probes: int  # sum(counts)


@lru_cache(maxsize=256)
def _plan(m: int, b: int, threshold: int) -> _Plan | None:
    rs = radii(m, threshold)
    if max(rs) > b:
        return None
    counts = [len(_flips(b, r)) if r >= 0 else 0 for r in rs]
    if sum(counts) > MAX_PROBES:
        return None
    return _Plan(
        np.array(rs, dtype=np.int64), np.array(counts, dtype=np.int64), _flips(b, max(rs)).astype(np.int64),
        sum(counts),
    )


@dataclass(frozen=True, slots=True)
class _Directory:
    """A CSR directory (the monotone posting positions of every slot, ``2**b + 1`` per
    substring) in two levels: ``hi[g >> shift] + lo[g]`` is slot ``g``'s position, ``lo``
    is uint8 or uint16 relative to its block's first slot. At 10M (b = 23, ~1.2 postings
    a slot) blocks of 128 slots fit uint8: 1.03 B a slot instead of 4."""

    hi: npt.NDArray[np.integer]
    lo: npt.NDArray[np.integer]
    shift: int

    @classmethod
    def encode(cls, offsets: npt.NDArray[np.integer]) -> _Directory:
        """The smallest two-level form of ``offsets`` (monotone non-decreasing)."""
        flat = np.asarray(offsets, dtype=np.int64)
        hi_dtype = np.dtype(np.uint32 if len(flat) == 0 or int(flat[-1]) < 2**32 else np.int64)
        choices = []
        for lo_dtype in (np.dtype(np.uint8), np.dtype(np.uint16)):
            for shift in range(12, -1, -1):  # the largest block whose span fits lo_dtype
                step = 1 << shift
                lasts = np.append(flat[step - 1 :: step], flat[-1:]) if len(flat) else flat
                span = lasts[: len(flat[::step])] - flat[::step]
                if not len(span) or int(span.max()) < 1 << (8 * lo_dtype.itemsize):
                    size = len(flat) * lo_dtype.itemsize + (-(-len(flat) // step) + 1) * hi_dtype.itemsize
                    choices.append((size, shift, lo_dtype))
                    break
        _, shift, lo_dtype = min(choices, key=lambda c: c[0])  # shift 0 always fits
        firsts = flat[:: 1 << shift]
        rel = flat - np.repeat(firsts, 1 << shift)[: len(flat)]
        return cls(np.append(firsts, 0).astype(hi_dtype), rel.astype(lo_dtype), shift)

    def decode(self) -> npt.NDArray[np.int64]:
        """The flat positions again (tests, and saving in an older format)."""
        firsts = self.hi[:-1].astype(np.int64)
        return np.repeat(firsts, 1 << self.shift)[: len(self.lo)] + self.lo

    @property
    def nbytes(self) -> int:
        return int(self.hi.nbytes + self.lo.nbytes)


class _Segment:
    """A CSR table per substring over a fixed set of rows.

    ``direct0``: the rows are numbered in the order of their substring-0 keys (what a
    compaction builds), so table 0's directory gives row numbers themselves and it keeps
    no postings; its candidates' hashes are read in sequence."""

    __slots__ = ("m", "b", "n", "lo", "hi", "width", "directory", "postings", "direct0")

    def __init__(
        self,
        m: int,
        b: int,
        n: int,
        lo: int,
        hi: int,
        directory: _Directory,
        postings: npt.NDArray[np.uint8],
        width: int,
        direct0: bool = False,
    ) -> None:
        self.m, self.b, self.n = m, b, n
        self.lo, self.hi = lo, hi  # the row range this segment covers (rows it indexes are alive ones in it)
        self.directory = directory  # m * (2**b + 1) positions: table j's run at [j * n, (j + 1) * n)
        self.postings = postings  # packed row numbers (minus lo) of `width` bytes, substring-major
        self.width = width
        self.direct0 = direct0  # table 0's positions are rows (minus lo): no postings for it

    @staticmethod
    def width_for(lo: int, hi: int) -> int:
        """Bytes per posting: 3 while the segment spans fewer than 2**24 rows."""
        return 3 if hi - lo <= 1 << 24 else 4

    @property
    def tables_posted(self) -> int:
        return self.m - int(self.direct0)

    @classmethod
    def build(
        cls, codes: Words, rows: npt.NDArray[np.uint32], lo: int, hi: int, direct0: bool = False
    ) -> _Segment:
        """``direct0``: ``rows`` are exactly [lo, hi), in ascending substring-0 key order."""
        n = len(rows)
        m, b = _shape_for(n)
        width = cls.width_for(lo, hi)
        slots = (1 << b) + 1
        offsets = np.empty(m * slots, dtype=np.int64)
        skip = n if direct0 else 0
        postings = np.zeros((m * n - skip) * width + 1, dtype=np.uint8)  # +1: the kernel's 3-byte reads stay inside
        sub_codes = codes[rows] if not _is_prefix(rows, len(codes)) else codes[: len(rows)]
        rel = (rows - np.uint32(lo)).astype("<u4")
        for j in range(m):
            keys = _window(sub_codes, j * b, b)
            if j == 0 and direct0:
                if n and not (np.all(np.diff(keys.astype(np.int64)) >= 0) and hi - lo == n):
                    raise ValueError("direct0: rows are not [lo, hi) in substring-0 order")
            else:
                order = np.argsort(keys, kind="stable")
                at = (j * n - skip) * width
                postings[at : at + n * width] = pack_postings(rel[order], width)[:-1]
                del order
            counts = np.bincount(keys, minlength=1 << b)
            o = offsets[j * slots : (j + 1) * slots]
            o[0] = j * n
            np.cumsum(counts, out=o[1:])
            o[1:] += j * n
            del keys, counts
        return cls(m, b, n, lo, hi, _Directory.encode(offsets), postings, width, direct0)

    def scan(self, codes: Words, queries: Words, threshold: int, out: _Scratch) -> bool:
        """Add the queries' hits in this segment to ``out``; False when no probe plan
        covers the threshold (the caller brute-forces the segment's rows)."""
        plan = _plan(self.m, self.b, threshold)
        if plan is None:
            return False
        d = self.directory
        out.fit(plan.probes)
        args = (d.hi, d.lo, d.shift, self.direct0, self.n, self.postings, self.width, self.lo,
                self.m, self.b, plan.radii, plan.counts, plan.flips,
                out.keys, out.starts, out.ends, out.cand, out.cand_sub)
        out.run(_kernel().scan_segment, args, codes, queries, threshold)
        return True

    @property
    def nbytes(self) -> int:
        return int(self.directory.nbytes + self.postings.nbytes)


class _Scratch:
    """One thread's buffers for the kernels, reused by each of its lookups (lookups run
    concurrently without a lock, so a buffer is never shared between threads): the
    growable (row, query, distance) hits a batch's kernel calls append to, and the
    scan's own scratch (query keys, probe runs, candidates)."""

    __slots__ = ("row", "q", "d", "n", "keys", "starts", "ends", "cand", "cand_sub")

    def __init__(self) -> None:
        self.row = np.empty(1024, dtype=np.int64)
        self.q = np.empty(1024, dtype=np.int64)
        self.d = np.empty(1024, dtype=np.int64)
        self.n = 0
        self.keys = np.empty(16, dtype=np.int64)  # m <= 16
        self.starts = self.ends = self.cand = self.cand_sub = np.empty(0, dtype=np.int64)

    def fit(self, probes: int) -> None:
        """Room for a plan of ``probes`` probes (and 16 candidates a probe, which the
        kernel exceeds only with a temporary buffer)."""
        if len(self.starts) < probes:
            self.starts = np.empty(probes, dtype=np.int64)
            self.ends = np.empty(probes, dtype=np.int64)
            self.cand = np.empty(16 * probes, dtype=np.int64)
            self.cand_sub = np.empty(16 * probes, dtype=np.int64)

    def run(self, kernel: Callable[..., int], args: tuple[object, ...], codes: Words, queries: Words, t: int) -> None:
        while True:
            found = int(kernel(*args, codes, queries, t, self.row, self.q, self.d, self.n))
            if found <= len(self.row):
                self.n = found
                return
            grown = max(found, 2 * len(self.row))
            for name in ("row", "q", "d"):
                buf = np.empty(grown, dtype=np.int64)
                buf[: self.n] = getattr(self, name)[: self.n]
                setattr(self, name, buf)


def pack_postings(rel: np.ndarray, width: int) -> np.ndarray:
    """Row numbers (relative to a segment's first row) as ``width``-byte little-endian
    records in one flat uint8 array (plus 1 byte of padding: no read past the end)."""
    out = np.zeros(len(rel) * width + 1, dtype=np.uint8)
    packed = out[: len(rel) * width].reshape(-1, width)
    le = np.ascontiguousarray(rel, dtype="<u4").view(np.uint8).reshape(-1, 4)
    packed[:] = le[:, :width]
    return out


def unpack_postings(packed: npt.NDArray[np.uint8], width: int) -> npt.NDArray[np.uint32]:
    """The row numbers of ``width``-byte records (the inverse of :func:`pack_postings`,
    without its padding byte)."""
    raw = packed[: len(packed) // width * width].reshape(-1, width)
    rel = np.zeros(len(raw), dtype=np.uint32)
    for k in range(width):
        rel |= raw[:, k].astype(np.uint32) << np.uint32(8 * k)
    return rel


def _kernel() -> ModuleType:
    """:mod:`clients.pdq_kernel`, imported on the first lookup: importing numba costs about
    a second and ~95 MiB, which CLI commands that never search should not pay."""
    return importlib.import_module("clients.pdq_kernel")


def _is_prefix(rows: npt.NDArray[np.uint32], n: int) -> bool:
    return len(rows) <= n and len(rows) > 0 and int(rows[0]) == 0 and int(rows[-1]) == len(rows) - 1


_ALIVE = np.uint32(0)
"""``died[row]`` of a live row; a dead row holds the sequence number (from 1) of the
change that removed or replaced it. Zero for the living keeps ``died`` out of resident
memory until rows die: it is allocated zeroed (pages the kernel maps on first write) and
only dead rows are ever written, by removals and when states are carried over
(:func:`_carry_dead`), 38 MiB at 10M for an index with no removals."""


def _carry_dead(dst: npt.NDArray[np.uint32], at: int, src: npt.NDArray[np.uint32]) -> None:
    """``dst[at : at + len(src)] = src`` where ``dst`` is zeroed, writing the dead rows only."""
    dead = np.flatnonzero(src)
    dst[at + dead] = src[dead]


@dataclass(frozen=True, slots=True)
class _Layout:
    """One consistent state of the index, published whole by every change (one attribute
    assignment, atomic for readers); a lookup reads it once and never takes the lock.

    It stays true while updates go on: rows below ``n`` are never rewritten in place
    (adds append past ``n``, maintenance builds new arrays), and the one in-place write,
    ``died[row] = seq`` for a removal, always stores a sequence number above ``seq``. A row
    is alive in this layout iff ``row < n`` and ``died[row]`` is 0 (alive now) or above
    ``seq``."""

    codes: Words
    ids: npt.NDArray[np.uint32]
    died: npt.NDArray[np.uint32]
    n: int
    indexed: int  # rows [0, indexed) are in segments; the rest is the tail
    segments: tuple[_Segment, ...]
    seq: int

    def alive(self, rows: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
        died = self.died[rows]
        alive: npt.NDArray[np.bool_] = (died == _ALIVE) | (died > self.seq)
        return alive


@dataclass(frozen=True, slots=True)
class _Job:
    """A maintenance planned under the lock: rows below ``n`` of ``codes``/``ids``."""

    compact: bool
    generation: int
    k: int  # fold: segments [k, end) and the tail become one segment
    lo: int
    n: int
    codes: Words
    ids: npt.NDArray[np.uint32]
    died: npt.NDArray[np.uint32]


@dataclass(frozen=True, slots=True)
class _Built:
    job: _Job
    segments: list[_Segment]
    codes: Words | None  # compaction: the live rows, renumbered from 0
    ids: npt.NDArray[np.uint32] | None
    rows: npt.NDArray[np.uint32] | None = None  # compaction: the old row of each kept row


_LOCAL = threading.local()


def _scratch() -> _Scratch:
    """This thread's buffers (created on its first lookup)."""
    try:
        hits: _Scratch = _LOCAL.scratch
    except AttributeError:
        hits = _LOCAL.scratch = _Scratch()
    hits.n = 0
    return hits


def _search(layout: _Layout, qs: Words, t: int) -> list[list[tuple[int, int]]]:
    """Every live row of ``layout`` within ``t`` of each query: (id, distance), nearest first."""
    k = len(qs)
    codes = layout.codes
    hits = _scratch()
    scan_rows = _kernel().scan_rows
    for s in layout.segments:
        if not s.scan(codes, qs, t, hits):
            hits.run(scan_rows, (s.lo, s.hi), codes, qs, t)  # no probe plan covers t
    if layout.indexed < layout.n:
        hits.run(scan_rows, (layout.indexed, layout.n), codes, qs, t)
    out: list[list[tuple[int, int]]] = [[] for _ in range(k)]
    if hits.n == 0:
        return out
    rows, qno, dist = hits.row[: hits.n], hits.q[: hits.n], hits.d[: hits.n]
    if hits.n <= _FEW:
        return _collect_few(layout, out, rows.tolist(), qno.tolist(), dist.tolist())
    alive = layout.alive(rows)
    rows, qno, dist = rows[alive], qno[alive], dist[alive]
    ids = layout.ids[rows].astype(np.int64)
    order = np.lexsort((ids, dist, qno))
    for i, q_i, d_i in zip(ids[order].tolist(), qno[order].tolist(), dist[order].tolist(), strict=True):
        out[q_i].append((i, d_i))
    return out


def _collect_few(
    layout: _Layout, out: list[list[tuple[int, int]]], rows: list[int], qno: list[int], dist: list[int]
) -> list[list[tuple[int, int]]]:
    """The last step of :func:`_search` for a handful of hits, in Python (cheaper than a
    few numpy calls): drop dead rows, order by (distance, id)."""
    ids, died, seq = layout.ids, layout.died, layout.seq
    for r, q, d in zip(rows, qno, dist, strict=True):
        gone = int(died[r])
        if gone == 0 or gone > seq:
            out[q].append((int(ids[r]), d))
    for found in out:
        found.sort(key=lambda h: (h[1], h[0]))
    return out


def _brute_force_layout(layout: _Layout, q: Words, t: int) -> list[tuple[int, int]]:
    """:func:`brute_force` over the live rows of a layout, as (id, distance), nearest first."""
    rows, d = brute_force(layout.codes[: layout.n], q, t)
    alive = layout.alive(rows)
    rows, d = rows[alive], d[alive]
    ids = layout.ids[rows]
    order = np.lexsort((ids, d))
    return [(int(ids[i]), int(d[i])) for i in order]


class PdqIndex:
    """Exact Hamming-radius search over PDQ hashes with incremental adds and removes.

    Ids are the caller's non-negative integers below 2**31, ideally dense (SQLite
    rowids): the reverse map costs 4 B per possible id. Adding an id that is already
    present replaces its hash (a new version of a signal).

    Thread safety: updates and the short ends of maintenance serialize on a lock;
    lookups take none (they search the :class:`_Layout` published last), so any number
    of lookups run at once, in the compiled kernel without the GIL, during updates and
    maintenance alike.
    """

    def __init__(
        self, threshold: int = DEFAULT_THRESHOLD, tail_limit: int = 4096, merge_ratio: int = 8, auto_fold: bool = True
    ) -> None:
        """``auto_fold=False``: searches never fold or compact (they brute-force the tail);
        the owner folds or rebuilds when it chooses, e.g. off the lookup path."""
        if not 0 <= threshold <= BITS:
            raise ValueError("threshold is 0..256 bits")
        self.threshold = threshold
        self.auto_fold = auto_fold
        self.tail_limit = tail_limit
        self.merge_ratio = merge_ratio
        self._codes: Words = np.zeros((0, 4), dtype=np.uint64)
        self._ids: npt.NDArray[np.uint32] = np.zeros(0, dtype=np.uint32)
        self._died: npt.NDArray[np.uint32] = np.zeros(0, dtype=np.uint32)
        self._n = 0  # rows used in _codes/_ids/_died
        self._row_of: npt.NDArray[np.int32] = np.full(0, -1, dtype=np.int32)
        self._segments: tuple[_Segment, ...] = ()
        self._indexed = 0  # rows [0, _indexed) are in segments; the rest is the tail
        self._live = 0
        self._seq = 0  # changes so far: what died[] records
        self._lock = threading.RLock()  # updates and the short ends of maintenance (never lookups)
        self._generation = 0  # bumped by every structural change: a maintenance begun before is dropped
        self._background: threading.Thread | None = None
        self._background_lock = threading.Lock()
        self._layout = self._publish()

    def _publish(self) -> _Layout:
        """Make the state so far what lookups see (caller holds the lock, or is __init__)."""
        self._layout = _Layout(
            self._codes, self._ids, self._died, self._n, self._indexed, self._segments, self._seq
        )
        return self._layout

    def _next_seq(self) -> np.uint32:
        """The sequence number of a change that kills rows (caller holds the lock)."""
        self._seq += 1
        if self._seq >= 2**32:
            raise OverflowError("PdqIndex: 2**32 changes without a compaction")  # pragma: no cover
        return np.uint32(self._seq)

    # -- size ------------------------------------------------------------------------------

    def __len__(self) -> int:
        """Live hashes."""
        return self._live

    def __contains__(self, id_: int) -> bool:
        row_of = self._row_of
        return 0 <= id_ < len(row_of) and row_of[id_] >= 0

    @property
    def rows(self) -> int:
        """Rows stored, dead ones included (until the next compaction)."""
        return self._n

    def stats(self) -> dict[str, int]:
        with self._lock:
            return self._stats()

    def _stats(self) -> dict[str, int]:
        return {
            "live": self._live,
            "rows": self._n,
            "dead": self._n - self._live,
            "segments": len(self._segments),
            "tail": self._n - self._indexed,
            "bytes": self.nbytes,
        }

    @property
    def nbytes(self) -> int:
        """Bytes held by the arrays (what the index costs in memory)."""
        n = self._n
        return int(
            n * (32 + 4 + 4) + self._row_of.nbytes + sum(s.nbytes for s in self._segments)
        )

    # -- updates ---------------------------------------------------------------------------

    def _reserve(self, extra: int) -> None:
        need = self._n + extra
        if need <= len(self._codes):
            return
        cap = max(need, len(self._codes) + max(len(self._codes) // 8, 1024))
        codes = np.empty((cap, 4), dtype=np.uint64)
        codes[: self._n] = self._codes[: self._n]
        ids = np.empty(cap, dtype=np.uint32)
        ids[: self._n] = self._ids[: self._n]
        died = np.zeros(cap, dtype=np.uint32)
        _carry_dead(died, 0, self._died[: self._n])
        self._codes, self._ids, self._died = codes, ids, died

    def _reserve_ids(self, max_id: int) -> None:
        if max_id < len(self._row_of):
            return
        if max_id >= 2**31:
            raise ValueError("ids must be below 2**31")
        cap = max(max_id + 1, len(self._row_of) + len(self._row_of) // 4 + 1024)
        row_of = np.full(cap, -1, dtype=np.int32)
        row_of[: len(self._row_of)] = self._row_of
        self._row_of = row_of

    def add(self, id_: int, pdq: str | Words) -> None:
        self.add_many([id_], pdq_words(pdq)[None, :] if isinstance(pdq, str) else np.asarray(pdq).reshape(1, 4))

    def add_many(self, ids: Iterable[int] | npt.NDArray[np.integer], codes: Words | Sequence[str]) -> None:
        """Add (or replace) hashes; ``codes`` are (n, 4) words or hex strings."""
        id_arr = np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids, dtype=np.int64)
        words = pdq_words_many(codes) if not isinstance(codes, np.ndarray) else codes.astype(np.uint64, copy=False)
        if words.shape != (len(id_arr), 4):
            raise ValueError("one (4,) uint64 code per id")
        if len(id_arr) == 0:
            return
        if int(id_arr.min()) < 0:
            raise ValueError("ids must be non-negative")
        # within one batch the last occurrence of an id wins
        _, last = np.unique(id_arr[::-1], return_index=True)
        keep = np.sort(len(id_arr) - 1 - last)
        id_arr, words = id_arr[keep], words[keep]
        with self._lock:
            self._append(id_arr, words)
            self._publish()

    def _append(self, id_arr: npt.NDArray[np.int64], words: Words) -> None:
        self._reserve_ids(int(id_arr.max()))
        self._reserve(len(id_arr))
        previous = self._row_of[id_arr]
        replaced = previous[previous >= 0]
        if len(replaced):
            self._died[replaced] = self._next_seq()
        self._live -= len(replaced)
        start = self._n
        self._codes[start : start + len(id_arr)] = words
        self._ids[start : start + len(id_arr)] = id_arr
        # died[start:] is already 0 (alive): rows past n are never written
        self._row_of[id_arr] = np.arange(start, start + len(id_arr), dtype=np.int32)
        self._n += len(id_arr)
        self._live += len(id_arr)

    def remove(self, id_: int) -> bool:
        return self.remove_many([id_]) == 1

    def remove_many(self, ids: Iterable[int]) -> int:
        id_arr = np.asarray(list(ids), dtype=np.int64)
        with self._lock:
            id_arr = np.unique(id_arr[(id_arr >= 0) & (id_arr < len(self._row_of))])
            rows = self._row_of[id_arr]
            present = id_arr[rows >= 0]
            if len(present) == 0:
                return 0
            self._died[rows[rows >= 0]] = self._next_seq()
            self._row_of[present] = -1
            self._live -= len(present)
            self._publish()
            return len(present)

    # -- maintenance -----------------------------------------------------------------------
    #
    # Folding and compaction run in three steps: ``_begin`` (under the lock, O(1): a plan
    # and references to the rows so far, which never change in place), ``_build`` (the
    # O(n) part, outside the lock: lookups and updates go on against the current index)
    # and ``_finish`` (under the lock: swap the result in and publish it). A lookup
    # therefore sees the index either before or after a maintenance, never waits on it.
    # While a build runs, rows below the snapshot only go from alive to dead, so a row the
    # build reads as alive and that dies meanwhile stays in the new segments as a dead row
    # (a fold: filtered at verification) or is marked dead at the swap (a compaction,
    # which carries every row's current state over to the renumbered rows).

    @staticmethod
    def _alive_rows(lo: int, hi: int, died: npt.NDArray[np.uint32]) -> npt.NDArray[np.uint32]:
        """Rows in [lo, hi) alive now (by ``died``)."""
        out: npt.NDArray[np.uint32] = (np.flatnonzero(died[lo:hi] == _ALIVE) + lo).astype(np.uint32)
        return out

    def _due(self, force: bool = False) -> bool | None:
        """True if a compaction is due, False if a fold is, None if neither."""
        tail = self._n - self._indexed
        if self._n - self._live > max(self._live // 4, self.tail_limit):
            return True
        if tail == 0 or (tail < self.tail_limit and not force):
            return None
        return False

    def _plan_fold(self, force: bool) -> _Job | None:
        """What folding needs now, if anything (caller holds the lock)."""
        due = self._due(force)
        if due is None:
            return None
        if due:
            return self._begin(compact=True)
        tail = self._n - self._indexed
        sizes = [s.n for s in self._segments] + [tail]
        k = len(sizes) - 1  # merge segments [k, end) into one
        while k > 0 and sizes[k] * self.merge_ratio > sizes[k - 1]:
            sizes[k - 1] += sizes[k]
            k -= 1
        if k == 0:  # rebuilding every row: compact, which also numbers rows for table 0
            return self._begin(compact=True)
        lo = self._segments[k].lo if k < len(self._segments) else self._indexed
        return _Job(False, self._generation, k, lo, self._n, self._codes, self._ids, self._died)

    def _begin(self, compact: bool) -> _Job:
        return _Job(compact, self._generation, 0, 0, self._n, self._codes, self._ids, self._died)

    def _build(self, job: _Job) -> _Built:
        """The slow part of a maintenance; reads only rows below ``job.n``."""
        rows = self._alive_rows(job.lo, job.n, job.died)
        if not job.compact:
            return _Built(job, [_Segment.build(job.codes, rows, job.lo, job.n)] if len(rows) else [], None, None)
        _, b = _shape_for(len(rows))  # renumbered in substring-0 order: table 0 needs no postings
        rows = rows[np.argsort(_window(job.codes[rows, :1], 0, b), kind="stable")]
        codes = np.empty((len(rows) + max(len(rows) // 8, 1024), 4), dtype=np.uint64)
        codes[: len(rows)] = job.codes[rows]
        ids = np.empty(len(codes), dtype=np.uint32)
        ids[: len(rows)] = job.ids[rows]
        seg = [_Segment.build(codes, np.arange(len(rows), dtype=np.uint32), 0, len(rows), direct0=True)
               ] if len(rows) else []
        return _Built(job, seg, codes, ids, rows)

    def _finish(self, built: _Built) -> bool:
        """Swap a build in and publish it (caller holds the lock); False if the index
        changed shape meanwhile."""
        job = built.job
        if job.generation != self._generation:
            return False
        self._generation += 1
        if not job.compact:
            self._segments = (*self._segments[: job.k], *built.segments)
            self._indexed = job.n
            self._publish()
            return True
        assert built.codes is not None and built.ids is not None and built.rows is not None
        base, extra = len(built.rows), self._n - job.n
        codes, ids = built.codes, built.ids
        if base + extra > len(codes):
            codes = np.resize(codes, (base + extra + 1024, 4))
            ids = np.resize(ids, base + extra + 1024)
        codes[base : base + extra] = self._codes[job.n : self._n]  # rows added meanwhile: the new tail
        ids[base : base + extra] = self._ids[job.n : self._n]
        died = np.zeros(len(codes), dtype=np.uint32)  # every row's state now, carried over
        _carry_dead(died, 0, self._died[built.rows])
        _carry_dead(died, base, self._died[job.n : self._n])
        alive = np.flatnonzero(died[: base + extra] == _ALIVE)
        row_of = np.full(len(self._row_of), -1, dtype=np.int32)
        row_of[ids[alive].astype(np.int64)] = alive.astype(np.int32)
        self._codes, self._ids, self._died, self._row_of = codes, ids, died, row_of
        self._n, self._segments, self._indexed = base + extra, tuple(built.segments), base
        self._publish()
        return True

    def _run(self, job: _Job | None) -> bool:
        if job is None:
            return False
        built = self._build(job)
        with self._lock:
            return self._finish(built)

    def fold(self, force: bool = False) -> None:
        """Index the tail (if over ``tail_limit``, or ``force``) and merge small segments,
        or compact when a quarter of the rows are dead; returns when done.

        Segments cover contiguous row ranges, so merging the last segments rebuilds the
        live rows of their ranges; dead rows stay in ``codes`` until :meth:`compact`.
        """
        with self._lock:
            job = self._plan_fold(force)
        self._run(job)

    def compact(self) -> None:
        """Drop dead rows and rebuild one segment over everything live (O(n)); returns when done."""
        with self._lock:
            job = self._begin(compact=True)
        if not self._run(job):  # another maintenance swapped first: do it again on its result
            self.compact()

    def maintain(self) -> bool:
        """:meth:`fold` if it is due; True if it swapped a new layout in."""
        with self._lock:
            job = self._plan_fold(False)
        return self._run(job)

    def _fold_in_background(self) -> None:
        """Start :meth:`maintain` in a thread unless one runs."""
        with self._background_lock:
            if self._background is not None and self._background.is_alive():
                return
            self._background = threading.Thread(target=self.maintain, name="pdq-index-fold", daemon=True)
            self._background.start()

    def wait_maintenance(self, timeout: float | None = None) -> bool:
        """Wait for a background fold or compaction to end; True if none runs."""
        t = self._background
        if t is not None:
            t.join(timeout)
        return t is None or not t.is_alive()

    # -- queries ---------------------------------------------------------------------------

    def search(self, pdq: str | Words, threshold: int | None = None) -> list[tuple[int, int]]:
        """(id, distance) of every live hash within ``threshold`` (default: the index's),
        nearest first; ties by id."""
        q = pdq_words(pdq) if isinstance(pdq, str) else np.asarray(pdq, dtype=np.uint64).reshape(1, 4)
        return self.search_many(q.reshape(1, 4), threshold)[0]

    def search_many(
        self, queries: Words | Sequence[str], threshold: int | None = None
    ) -> list[list[tuple[int, int]]]:
        """:meth:`search` for many hashes in one vectorized pass (a batch costs far less
        than its queries one by one). Takes no lock: answers exactly for the layout
        published last when it starts."""
        t = self.threshold if threshold is None else threshold
        if not 0 <= t <= BITS:
            raise ValueError("threshold is 0..256 bits")
        qs = pdq_words_many(queries) if not isinstance(queries, np.ndarray) else queries.astype(np.uint64, copy=False)
        qs = np.ascontiguousarray(qs.reshape(-1, 4))
        if len(qs) == 0:
            return []
        layout = self._layout
        if self.auto_fold and self._due() is not None:
            self._fold_in_background()
        return _search(layout, qs, t)

    def brute_force_search(self, pdq: str | Words, threshold: int | None = None) -> list[tuple[int, int]]:
        """The same answer by scanning every row (the reference for tests and benchmarks)."""
        t = self.threshold if threshold is None else threshold
        q = pdq_words(pdq) if isinstance(pdq, str) else np.asarray(pdq, dtype=np.uint64).reshape(4)
        return _brute_force_layout(self._layout, q, t)

    def live(self) -> tuple[npt.NDArray[np.uint32], Words]:
        """Copies of the (ids, codes) of every live hash: a snapshot to rebuild from."""
        with self._lock:
            rows = self._alive_rows(0, self._n, self._died)
            return self._ids[rows].copy(), self._codes[rows].copy()

    def relabel(self, old_ids: npt.NDArray[np.integer], new_ids: npt.NDArray[np.integer]) -> None:
        """Rename every live hash ``old_ids[i]`` to ``new_ids[i]`` (the postings hold rows,
        not ids). ValueError unless the live ids are exactly ``old_ids``."""
        old, new = np.asarray(old_ids, np.int64), np.asarray(new_ids, np.int64)
        with self._lock:
            here = self._ids[: self._n].astype(np.int64)
            if (len(old) != self._live or len(new) != len(old) or self._live != self._n
                    or not np.array_equal(np.sort(here), np.sort(old))):
                raise ValueError("relabel: the ids given are not the index's live ids")
            order = np.argsort(old)
            renamed = new[order][np.searchsorted(old[order], here)] if len(here) else here
            ids = self._ids.copy()  # a new array: lookups under way keep the old names
            ids[: self._n] = renamed
            self._ids = ids
            self._row_of = np.full(0, -1, dtype=np.int32)
            if len(renamed):
                self._reserve_ids(int(renamed.max()))
                self._row_of[renamed] = np.arange(self._n, dtype=np.int32)
            self._generation += 1
            self._publish()

    def get(self, id_: int) -> str | None:
        """The hex hash stored for ``id_``, if live."""
        with self._lock:
            if id_ not in self:
                return None
            return words_hex(self._codes[int(self._row_of[id_])])

    # -- persistence -----------------------------------------------------------------------

    def save(self, directory: str | Path, watermark: str = "") -> None:
        """Write the index (compacted) to ``directory`` atomically: ``.npy`` files and a
        JSON manifest; ``watermark`` tells a loader which bank state it reflects."""
        for attempt in range(3):  # compacted, off the lookup path; under the lock if updates keep racing it
            with self._lock if attempt == 2 else contextlib.nullcontext():
                self.compact()
            with self._lock:  # rows below n of a compacted layout are never rewritten in place
                if self._indexed == self._n == self._live:
                    codes, ids, n, segments = self._codes, self._ids, self._n, list(self._segments)
                    threshold = self.threshold
                    break
        target = Path(directory)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".pdq-index-", dir=target.parent))
        try:
            np.save(tmp / "codes.npy", codes[:n])
            np.save(tmp / "ids.npy", ids[:n])
            segs = []
            for i, s in enumerate(segments):
                np.save(tmp / f"seg{i}.dirhi.npy", s.directory.hi)
                np.save(tmp / f"seg{i}.dirlo.npy", s.directory.lo)
                np.save(tmp / f"seg{i}.postings.npy", s.postings)
                segs.append({"m": s.m, "b": s.b, "n": s.n, "width": s.width, "shift": s.directory.shift,
                             "direct0": s.direct0})
            manifest = {
                "format": FORMAT,
                "threshold": threshold,
                "rows": n,
                "segments": segs,
                "watermark": watermark,
            }
            (tmp / "manifest.json").write_text(json.dumps(manifest, sort_keys=True))
            for f in tmp.iterdir():
                with f.open("rb") as fh:
                    os.fsync(fh.fileno())
            old = target.with_name(target.name + ".old")
            if target.exists():
                if old.exists():
                    shutil.rmtree(old)
                target.rename(old)
            tmp.rename(target)
            if old.exists():
                shutil.rmtree(old)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    @staticmethod
    def watermark_of(directory: str | Path) -> str | None:
        """The watermark a saved index was written with (None if there is none)."""
        try:
            manifest = json.loads((Path(directory) / "manifest.json").read_text())
        except (OSError, ValueError):
            return None
        if manifest.get("format") not in _FORMATS:
            return None
        return str(manifest.get("watermark", ""))

    @classmethod
    def load(cls, directory: str | Path, threshold: int | None = None) -> PdqIndex:
        d = Path(directory)
        manifest = json.loads((d / "manifest.json").read_text())
        if manifest.get("format") not in _FORMATS:
            raise ValueError(f"{d} is not a {FORMAT} index")
        index = cls(threshold=int(manifest["threshold"]) if threshold is None else threshold)
        codes = np.load(d / "codes.npy", allow_pickle=False)
        ids = np.load(d / "ids.npy", allow_pickle=False)
        if codes.dtype != np.uint64 or codes.ndim != 2 or codes.shape[1] != 4 or ids.shape != (len(codes),):
            raise ValueError(f"{d}: malformed index arrays")
        index._codes, index._ids, index._n = codes, ids.astype(np.uint32, copy=False), len(codes)
        index._died = np.zeros(len(codes), dtype=np.uint32)
        if len(ids):
            index._reserve_ids(int(ids.max()))
            index._row_of[ids.astype(np.int64)] = np.arange(len(ids), dtype=np.int32)
        covered = 0
        segments: list[_Segment] = []
        for i, seg in enumerate(manifest["segments"]):
            s = _load_segment(d, i, seg, covered)
            if s is None or (s.direct0 and not _sorted_by_key0(codes[covered : covered + s.n], s.b)):
                raise ValueError(f"{d}: malformed segment {i}")
            segments.append(s)
            covered += s.n
        if covered != len(codes) or int(manifest["rows"]) != len(codes):
            raise ValueError(f"{d}: segments do not cover the rows")
        index._segments, index._indexed = tuple(segments), covered
        index._live = len(codes)
        index._publish()
        return index


def _load_segment(d: Path, i: int, seg: dict[str, object], covered: int) -> _Segment | None:
    """Segment ``i`` of a saved index (any format in ``_FORMATS``), or None if malformed."""
    n, m, b = int(seg["n"]), int(seg["m"]), int(seg["b"])  # type: ignore[call-overload]
    postings = np.load(d / f"seg{i}.postings.npy", allow_pickle=False)
    if (d / f"seg{i}.offsets.npy").exists():  # formats /1 and /2: one flat directory
        offsets = np.load(d / f"seg{i}.offsets.npy", allow_pickle=False)
        if (len(offsets) != m * ((1 << b) + 1) or offsets.dtype not in (np.uint32, np.int64)
                or (n and (int(offsets.min()) < 0 or int(offsets.max()) > m * n
                           or bool(np.any(np.diff(offsets.astype(np.int64)) < 0))))):
            return None
        directory = _Directory.encode(offsets)
    else:
        hi = np.load(d / f"seg{i}.dirhi.npy", allow_pickle=False)
        lo = np.load(d / f"seg{i}.dirlo.npy", allow_pickle=False)
        shift = int(seg.get("shift", -1))  # type: ignore[call-overload]
        if (lo.dtype not in (np.uint8, np.uint16) or hi.dtype not in (np.uint32, np.int64)
                or not 0 <= shift <= 12 or len(lo) != m * ((1 << b) + 1)
                or len(hi) != -(-len(lo) // (1 << shift)) + 1):
            return None
        directory = _Directory(hi, lo, shift)
        flat = directory.decode()
        if n and (int(flat.min()) < 0 or int(flat.max()) > m * n or bool(np.any(np.diff(flat) < 0))):
            return None
    if postings.dtype == np.uint32 and len(postings) == m * n:  # format /1: global row numbers
        width = _Segment.width_for(covered, covered + n)
        postings = pack_postings(postings - np.uint32(covered), width)
    else:
        width = int(seg.get("width", 0))  # type: ignore[call-overload]
    direct0 = bool(seg.get("direct0", False))
    if width not in (3, 4) or postings.dtype != np.uint8 or len(postings) != (m * n - n * direct0) * width + 1:
        return None
    if not _postings_below(postings, width, n):  # the kernel reads the row each posting names, unchecked
        return None
    return _Segment(m, b, n, covered, covered + n, directory, postings, width, direct0)


def _postings_below(postings: npt.NDArray[np.uint8], width: int, n: int) -> bool:
    """Every packed posting names a row of its segment (``< n``), read in chunks of 4M."""
    count = (len(postings) - 1) // width
    step = 1 << 22
    for start in range(0, count, step):
        if int(unpack_postings(postings[start * width : min(count, start + step) * width], width).max()) >= n:
            return False
    return True


def _sorted_by_key0(codes: Words, b: int) -> bool:
    keys = _window(codes[:, :1], 0, b).astype(np.int64)
    return bool(np.all(np.diff(keys) >= 0))
