"""The compiled inner loops of :mod:`clients.pdq_index` (numba): probe, postings, distance.

One call scans one segment for a whole batch of queries: for each query and substring,
every directory slot within the substring's radius, every posting in it, the 256-bit
distance of that row (four ``popcnt``), and a hit when it is within the threshold.
No Python object is touched, so the calls release the GIL (``nogil``) and run at the
speed of the ~9k random memory reads a query costs at 10M hashes.

Postings are packed row numbers of ``width`` bytes (3 while a segment spans fewer
than 2**24 rows, else 4), little-endian, relative to the segment's first row.

A row within the threshold can be reached through several substrings; it is reported
once, through the first substring whose radius it is within (checked only for hits, so
it costs nothing on the common path). Segments cover disjoint rows, so a batch's hits
need no de-duplication afterwards.

Compiled code is cached (``cache=True``) next to this file, or in numba's per-user
cache directory (``~/.cache/numba``) when the package directory is read-only; when
neither is writable (a read-only install run by a user without a home) the cache goes
to a private per-user directory under the temp dir, and if that cannot be had safely,
compiled code is not cached, rather than the import failing. ``NUMBA_CACHE_DIR``
overrides all of these.
"""

# Compiled (nopython) code: numba types it, not mypy; intrinsics are called with their
# typing context filled in by numba.
# mypy: disable-error-code="call-arg,no-untyped-call,return-value"

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from typing import Any

import numba
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic
from numba.misc.appdirs import AppDirs

__all__ = ["scan_segment", "scan_rows"]

_U64 = np.uint64
_AHEAD = 16  # prefetch distance, in loop iterations


def _writable(directory: Path) -> bool:
    """True if compiled code can be cached in ``directory`` (numba's own test: create it,
    write a temporary file in it)."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=directory).close()
    except OSError:
        return False
    return True


def _private_dir(directory: Path) -> bool:
    """``directory`` exists (created 0700 if need be), is ours and no one else can write
    it: the cache is unpickled when loaded, so a directory another user prepared in the
    shared temp dir must not be used."""
    try:
        directory.mkdir(mode=0o700, exist_ok=True)
        st = directory.lstat()
    except OSError:
        return False
    getuid = getattr(os, "getuid", None)
    return (stat.S_ISDIR(st.st_mode) and (getuid is None or st.st_uid == getuid())
            and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and _writable(directory))


def cache_enabled() -> bool:
    """Where numba caches this module's compiled code: next to it, else the per-user cache
    directory, else a private directory under the temp dir (set as numba's cache dir);
    False if none is usable (the kernels are then compiled on each first use)."""
    config: Any = numba.config
    if config.CACHE_DIR:
        return True
    if _writable(Path(__file__).parent / "__pycache__"):
        return True
    if _writable(Path(AppDirs(appname="numba", appauthor=False).user_cache_dir)):
        return True
    uid = getattr(os, "getuid", lambda: "user")()
    fallback = Path(tempfile.gettempdir()) / f"trustwire-numba-{uid}"
    if _private_dir(fallback):
        config.CACHE_DIR = str(fallback)
        return True
    return False


_CACHE = cache_enabled()


@intrinsic
def _popcount(typingctx, x):  # type: ignore[no-untyped-def]
    """LLVM's ctpop on a uint64: one ``popcnt`` instruction."""
    sig = types.uint64(types.uint64)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        return builder.ctpop(args[0])

    return sig, codegen


@intrinsic
def _prefetch(typingctx, arr, idx):  # type: ignore[no-untyped-def]
    """Hint the CPU to start loading ``arr[idx]`` into cache (LLVM's prefetch: no fault, no result)."""
    sig = types.void(arr, idx)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        arrty = signature.args[0]
        ary = context.make_array(arrty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, arrty, ary, [args[1]], wraparound=False)
        i8p, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]), "llvm.prefetch.p0"
        )
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(3), i32(1)])  # read, keep, data cache
        return context.get_dummy_value()

    return sig, codegen


@njit(inline="always")
def _window(w0: int, w1: int, w2: int, w3: int, start: int, b: int) -> int:
    """Bits [start, start + b) of a hash (most significant first) as an integer."""
    w = start >> 6
    off = start & 63
    a = w0 if w == 0 else (w1 if w == 1 else (w2 if w == 2 else w3))
    mask = (_U64(1) << _U64(b)) - _U64(1)
    if off + b <= 64:
        v = a >> _U64(64 - off - b)
    else:
        nxt = w1 if w == 0 else (w2 if w == 1 else w3)
        spill = off + b - 64
        v = (a << _U64(spill)) | (nxt >> _U64(64 - spill))
    return np.int64(v & mask)


@njit(inline="always")
def _distance(codes, row, q0, q1, q2, q3):  # type: ignore[no-untyped-def]
    return np.int64(
        _popcount(codes[row, 0] ^ q0)
        + _popcount(codes[row, 1] ^ q1)
        + _popcount(codes[row, 2] ^ q2)
        + _popcount(codes[row, 3] ^ q3)
    )


@njit(inline="always")
def _emit(out_row, out_q, out_d, found, row, qi, d):  # type: ignore[no-untyped-def]
    """Record a hit if the buffers have room; the count goes on regardless (the caller
    grows the buffers and scans again when it ends past their size)."""
    if found < out_row.shape[0]:
        out_row[found] = row
        out_q[found] = qi
        out_d[found] = d
    return found + 1


@njit(cache=_CACHE, nogil=True)
def scan_segment(  # type: ignore[no-untyped-def]
    dir_hi, dir_lo, shift, direct0, n, postings, width, lo, m, b, radii, counts, flips,
    keys, starts, ends, cand, cand_sub, codes, queries, threshold, out_row, out_q, out_d, found,
):
    """Hits of ``queries`` in one segment appended to ``out_*`` from position ``found``;
    returns the new count (past ``len(out_row)`` when the buffers were too small: the
    caller grows them and calls again).

    ``radii[j]`` is substring j's probe radius (-1: not probed), ``flips[:counts[j]]``
    its flip masks. Slot ``g`` (``2**b + 1`` per substring) starts at posting position
    ``dir_hi[g >> shift] + dir_lo[g]``; table j's positions are [j * n, (j + 1) * n).
    ``direct0``: table 0's positions are the rows themselves (minus ``lo``) and the
    postings start with table 1.

    ``keys`` (``m``), ``starts``, ``ends`` (``sum(counts)``), ``cand`` and ``cand_sub``
    are the caller's scratch, reused from call to call (one set per thread): allocating
    them here cost a single lookup more than the scan of its rows. Candidates beyond
    ``len(cand)`` get a temporary larger buffer.

    Each query runs in three tight loops (directory slots, then postings, then
    distances) rather than one nested loop: the reads of each loop are independent of
    one another, so the CPU keeps many cache misses in flight instead of one chain.
    """
    slots_per_table = (1 << b) + 1
    skip = n if direct0 else 0  # positions below skip are rows, not postings
    probes = 0
    for j in range(m):
        probes += counts[j]
    flat = codes.reshape(codes.size)
    for qi in range(queries.shape[0]):
        q0, q1, q2, q3 = queries[qi, 0], queries[qi, 1], queries[qi, 2], queries[qi, 3]
        for j in range(m):
            keys[j] = _window(q0, q1, q2, q3, j * b, b)
        p = 0  # 1. the directory slot of every probe (prefetched as they are computed)
        for j in range(m):
            table = j * slots_per_table
            key = keys[j]
            for f in range(counts[j]):
                slot = table + (key ^ flips[f])
                starts[p] = slot
                _prefetch(dir_lo, slot)
                _prefetch(dir_hi, slot >> shift)
                p += 1
        for p in range(probes):
            slot = starts[p]
            starts[p] = np.int64(dir_hi[slot >> shift]) + np.int64(dir_lo[slot])
            ends[p] = np.int64(dir_hi[(slot + 1) >> shift]) + np.int64(dir_lo[slot + 1])
        for p in range(min(_AHEAD, probes)):
            if starts[p] >= skip:
                _prefetch(postings, (starts[p] - skip) * width)
        total = 0
        for p in range(probes):
            total += ends[p] - starts[p]
        if total > cand.shape[0]:
            cand = np.empty(2 * total, dtype=np.int64)
            cand_sub = np.empty(2 * total, dtype=np.int64)
        c = 0  # 2. the row of every posting they reach
        p = 0
        for j in range(m):
            direct = direct0 and j == 0
            for f in range(counts[j]):
                if p + _AHEAD < probes and starts[p + _AHEAD] >= skip:
                    _prefetch(postings, (starts[p + _AHEAD] - skip) * width)
                if direct:
                    for i in range(starts[p], ends[p]):
                        cand[c] = lo + i
                        cand_sub[c] = 0
                        c += 1
                else:
                    for i in range(starts[p], ends[p]):
                        at = (i - skip) * width
                        rel = (np.int64(postings[at]) | (np.int64(postings[at + 1]) << 8)
                               | (np.int64(postings[at + 2]) << 16))
                        if width == 4:
                            rel |= np.int64(postings[at + 3]) << 24
                        cand[c] = lo + rel
                        cand_sub[c] = j
                        c += 1
                p += 1
        for c in range(min(_AHEAD, total)):
            _prefetch(flat, cand[c] * 4)
        for c in range(total):  # 3. the distance of every candidate
            if c + _AHEAD < total:
                _prefetch(flat, cand[c + _AHEAD] * 4)
            row = cand[c]
            d = _distance(codes, row, q0, q1, q2, q3)
            if d > threshold:
                continue
            c0, c1, c2, c3 = codes[row, 0], codes[row, 1], codes[row, 2], codes[row, 3]
            first = True
            for jj in range(cand_sub[c]):  # reached through an earlier substring already?
                if radii[jj] >= 0 and _popcount(_U64(_window(c0, c1, c2, c3, jj * b, b) ^ keys[jj])) <= radii[jj]:
                    first = False
                    break
            if first:
                found = _emit(out_row, out_q, out_d, found, row, qi, d)
    return found


@njit(cache=_CACHE, nogil=True)
def scan_rows(lo, hi, codes, queries, threshold, out_row, out_q, out_d, found):  # type: ignore[no-untyped-def]
    """Brute force over rows [lo, hi) (the unindexed tail, or a threshold no probe plan
    covers); same output convention as :func:`scan_segment`."""
    for qi in range(queries.shape[0]):
        q0, q1, q2, q3 = queries[qi, 0], queries[qi, 1], queries[qi, 2], queries[qi, 3]
        for row in range(lo, hi):
            d = _distance(codes, row, q0, q1, q2, q3)
            if d <= threshold:
                found = _emit(out_row, out_q, out_d, found, row, qi, d)
    return found
