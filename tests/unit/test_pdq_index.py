"""PdqIndex: exact recall against brute force at every distance, updates, persistence."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from clients import pdq_index
from clients.pdq_index import (
    PdqIndex,
    brute_force,
    is_degenerate,
    pdq_words,
    pdq_words_many,
    radii,
    words_hex,
)


def _codes(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 2**64, size=(n, 4), dtype=np.uint64)


def _flip(code: np.ndarray, d: int, rng: np.random.Generator) -> np.ndarray:
    out = code.copy()
    for bit in rng.choice(256, d, replace=False):
        out[bit // 64] ^= np.uint64(1) << np.uint64(63 - bit % 64)
    return out


def _two_segments(n: int, first: int, seed: int, tail_limit: int) -> tuple[np.ndarray, PdqIndex]:
    """``n`` random hashes (ids 0..n-1) in two segments: the first ``first`` compacted
    (table 0 in row order), the rest folded after them."""
    codes = _codes(n, seed)
    index = PdqIndex(tail_limit=tail_limit)
    index.add_many(np.arange(first), codes[:first])
    index.fold(force=True)
    index.add_many(np.arange(first, n), codes[first:])
    index.fold(force=True)
    assert len(index._segments) == 2
    return codes, index


def _distance(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.bitwise_count(a ^ b).sum())


def test_hex_round_trip_and_bit_order() -> None:
    h = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"
    w = pdq_words(h)
    assert words_hex(w) == h
    assert int(w[0]) >> 60 == 0xF  # the first hex digit is the most significant bits of word 0
    assert (pdq_words_many([h, h]) == w).all()
    with pytest.raises(ValueError):
        pdq_words("abc")


@pytest.mark.parametrize("threshold", [0, 1, 7, 15, 31, 32, 47])
def test_radii_satisfy_the_pigeonhole_condition(threshold: int) -> None:
    for m in (11, 12, 13, 16):
        rs = radii(m, threshold)
        assert sum(r + 1 for r in rs) == threshold + 1  # condition (*) in the module docstring


@pytest.mark.parametrize("compacted", [False, True], ids=["folded", "compacted"])
def test_recall_is_exact_at_every_distance_0_to_31_and_nothing_beyond(compacted: bool) -> None:
    rng = np.random.default_rng(1)
    codes = _codes(50_000, 2)
    index = PdqIndex()
    index.add_many(np.arange(45_000), codes[:45_000])
    index.fold(force=True)  # everything from row 0: numbered in substring-0 order, table 0 without postings
    index.add_many(np.arange(45_000, 50_000), codes[45_000:])
    index.fold(force=True)  # a second segment, with postings for every table
    assert [s.direct0 for s in index._segments] == [True, False]
    if compacted:
        index.compact()
        assert [s.direct0 for s in index._segments] == [True]
    for d in range(0, 41):
        for _ in range(6):
            target = int(rng.integers(0, len(codes)))
            q = _flip(codes[target], d, rng)
            got = index.search(q)
            rows, dist = brute_force(codes, q, 31)
            assert got == sorted(zip(rows.tolist(), dist.tolist()), key=lambda t: (t[1], t[0])), d
            assert all(dd <= 31 for _, dd in got)
            assert ((target, d) in got) == (d <= 31)


def test_a_10m_segment_uses_eleven_23_bit_substrings() -> None:
    """At 10M rows: 11 tables of 23 bits (253 of the 256 bits; radii 2 on ten, 1 on one,
    10 * 3 + 2 = 32 = t + 1), half the candidates of 22-bit tables."""
    m, b = pdq_index._shape_for(10_000_000)
    assert (m, b) == (11, 23) and m * b <= 256
    assert radii(m, 31) == [2] * 10 + [1]


@pytest.mark.parametrize("b", [22, 23])
def test_the_10m_table_shapes_are_exact_at_every_distance(
    b: int, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The shapes a 10M index uses (11 substrings of 22 bits, as saved by older builds,
    and of 23 bits), forced on a small index: every hash within 31 bits is found, through
    a table-0-direct segment and a posted one, at thresholds 31 and 32; saved, it loads
    with its shape whatever the builder's shape is now."""
    monkeypatch.setattr(pdq_index, "_shape_for", lambda n: (11, b))
    rng = np.random.default_rng(b)
    codes = _codes(5_600, b)
    index = PdqIndex()
    index.add_many(np.arange(5_000), codes[:5_000])
    index.fold(force=True)
    index.add_many(np.arange(5_000, 5_600), codes[5_000:])  # under an eighth: its own segment
    index.fold(force=True)
    assert [(s.m, s.b, s.direct0) for s in index._segments] == [(11, b, True), (11, b, False)]
    for d in range(0, 41):
        for _ in range(3):
            target = int(rng.integers(0, len(codes)))
            q = _flip(codes[target], d, rng)
            for t in (31, 32):
                rows, dist = brute_force(codes, q, t)
                assert index.search(q, threshold=t) == sorted(
                    zip(rows.tolist(), dist.tolist()), key=lambda h: (h[1], h[0])), (d, t)
                assert ((target, d) in index.search(q, threshold=t)) == (d <= t)
    index.save(tmp_path / "idx")
    monkeypatch.undo()
    loaded = PdqIndex.load(tmp_path / "idx")
    assert [(s.m, s.b) for s in loaded._segments] == [(11, b)]
    for d in (0, 16, 31, 32):
        q = _flip(codes[d], d, rng)
        assert loaded.search(q) == index.search(q) == loaded.brute_force_search(q)


def test_only_dead_rows_are_written_in_died(tmp_path: Path) -> None:
    """``died`` is allocated zeroed and a live row is 0, so the array costs resident memory
    only in pages where rows died (38 MiB at 10M otherwise): adds, folds, compactions and
    loads leave it untouched; a removal or a new version writes the rows it kills."""
    codes, index = _two_segments(9_000, 8_000, 55, tail_limit=1_000)
    assert not index._died.any()
    killed = sorted(int(index._row_of[i]) for i in (5, 7))
    index.remove(5)
    index.add(7, codes[8_500])  # a new version: id 7's row dies, a new row is added
    assert np.flatnonzero(index._died).tolist() == killed
    assert index.search(codes[5]) == [] and index.search(codes[8_500]) == [(7, 0), (8_500, 0)]
    index.compact()
    assert not index._died.any()
    index.save(tmp_path / "idx")
    assert not PdqIndex.load(tmp_path / "idx")._died.any()


def test_per_query_threshold_and_brute_force_fallback() -> None:
    rng = np.random.default_rng(3)
    codes = _codes(5_000, 4)
    index = PdqIndex()
    index.add_many(np.arange(len(codes)), codes)
    q = _flip(codes[10], 12, rng)
    assert [i for i, _ in index.search(q, threshold=11)] == []
    assert (10, 12) in index.search(q, threshold=12)
    # a radius no probe plan covers falls back to a scan, still exact
    assert index.search(q, threshold=120) == index.brute_force_search(q, threshold=120)
    with pytest.raises(ValueError):
        index.search(q, threshold=300)


def test_incremental_adds_removes_and_new_versions_match_brute_force() -> None:
    rng = np.random.default_rng(5)
    codes = _codes(30_000, 6)
    index = PdqIndex(tail_limit=500)
    for start in range(0, len(codes), 3_001):  # many segments, merged as they grow
        index.add_many(np.arange(start, min(start + 3_001, len(codes))), codes[start : start + 3_001])
        index.search(codes[0])  # folds the tail (in the background: the next adds race it)
    assert index.wait_maintenance(60)
    assert index.stats()["segments"] >= 1 and len(index) == len(codes)

    removed = set(range(0, len(codes), 7))
    assert index.remove_many(sorted(removed)) == len(removed)
    assert index.remove(0) is False and 0 not in index and 1 in index
    # a new version of id 1: its old hash no longer matches, the new one does
    new1 = _codes(1, 99)[0]
    old1 = codes[1].copy()
    index.add(1, words_hex(new1))
    assert index.get(1) == words_hex(new1)
    assert all(i != 1 for i, _ in index.search(old1, threshold=0))
    assert (1, 0) in index.search(new1, threshold=0)
    live = {i: (new1 if i == 1 else codes[i]) for i in range(len(codes)) if i not in removed}
    for _ in range(150):
        target = int(rng.choice(list(live)))
        q = _flip(live[target], int(rng.integers(0, 33)), rng)
        assert index.search(q) == index.brute_force_search(q)
        expected = sorted(
            ((i, _distance(c, q)) for i, c in live.items() if _distance(c, q) <= 31), key=lambda t: (t[1], t[0])
        )
        assert index.search(q) == expected
    # removing a quarter of everything compacts on the next fold
    index.remove_many(range(0, len(codes), 2))
    index.search(codes[3])
    assert index.wait_maintenance(60)
    assert index.stats()["dead"] == 0
    assert index.rows == len(index)


def test_save_load_round_trip_and_watermark(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    codes = _codes(20_000, 9)
    index = PdqIndex()
    index.add_many(np.arange(100, 100 + len(codes)), codes)
    index.remove_many(range(100, 200))
    index.save(tmp_path / "idx", watermark="42")
    assert PdqIndex.watermark_of(tmp_path / "idx") == "42"
    assert PdqIndex.watermark_of(tmp_path / "nothing") is None
    loaded = PdqIndex.load(tmp_path / "idx")
    assert len(loaded) == len(index) == len(codes) - 100
    for _ in range(50):
        q = _flip(codes[int(rng.integers(0, len(codes)))], int(rng.integers(0, 32)), rng)
        assert loaded.search(q) == index.search(q)
    # saving again replaces the directory atomically; the loaded copy keeps updating
    loaded.add(5, codes[0])
    loaded.save(tmp_path / "idx", watermark="43")
    again = PdqIndex.load(tmp_path / "idx")
    assert (5, 0) in again.search(codes[0], threshold=0)
    assert not (tmp_path / "idx.old").exists()
    (tmp_path / "idx" / "manifest.json").write_text('{"format": "something-else"}')
    with pytest.raises(ValueError):
        PdqIndex.load(tmp_path / "idx")


def test_degenerate_hashes() -> None:
    assert is_degenerate(pdq_words("0" * 64))
    assert is_degenerate(pdq_words("f" * 64))
    assert not is_degenerate(pdq_words("f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"))


def test_ids_must_be_small_non_negative_integers() -> None:
    index = PdqIndex()
    with pytest.raises(ValueError):
        index.add(-1, "0" * 64)
    with pytest.raises(ValueError):
        index.add(2**31, "0" * 64)
    assert index.search("0" * 64) == []


def _clustered(families: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Near-duplicate families: each a random centre and ``size`` copies 0..40 bits away."""
    rng = np.random.default_rng(seed)
    centres = _codes(families, seed + 1)
    rows = [_flip(c, int(rng.integers(0, 41)), rng) for c in centres for _ in range(size)]
    return np.stack(rows), centres


@pytest.mark.parametrize("compacted", [False, True], ids=["folded", "compacted"])
def test_recall_is_exact_on_clustered_near_duplicates_single_and_batched(compacted: bool) -> None:
    rng = np.random.default_rng(21)
    codes, centres = _clustered(400, 40, 22)  # 16k hashes, many within 31 bits of each other
    codes = np.concatenate([codes, _codes(20_000, 23)])  # and a random background
    index = PdqIndex(tail_limit=1_000)
    index.add_many(np.arange(30_000), codes[:30_000])
    index.compact() if compacted else index.fold(force=True)
    index.add_many(np.arange(30_000, len(codes)), codes[30_000:])  # a second segment and a tail
    queries = np.stack([_flip(centres[int(rng.integers(0, len(centres)))], int(rng.integers(0, 20)), rng)
                        for _ in range(60)] + [codes[int(rng.integers(0, len(codes)))] for _ in range(20)])
    batched = index.search_many(queries)
    many_found = 0
    for q, got in zip(queries, batched, strict=True):
        rows, dist = brute_force(codes, q, 31)
        expected = sorted(zip(rows.tolist(), dist.tolist()), key=lambda t: (t[1], t[0]))
        assert got == expected == index.search(q)
        many_found += len(expected) >= 10
    assert many_found >= 30  # the data really is clustered: recall is tested on crowded neighbourhoods


def test_distance_256_is_not_distance_0() -> None:
    codes = _codes(100, 31)
    index = PdqIndex()
    index.add_many(np.arange(100), codes)
    complement = ~codes[5]
    assert all(i != 5 for i, _ in index.search(complement, threshold=255))
    assert (5, 256) in index.search(complement, threshold=256)
    assert index.search_many(np.zeros((0, 4), dtype=np.uint64)) == []


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[threading.Event, threading.Event]]:
    """(entered, release): every segment build signals ``entered`` then waits for
    ``release``; released at teardown so no build is left waiting."""
    entered, release = threading.Event(), threading.Event()
    real = pdq_index._Segment.build.__func__  # type: ignore[attr-defined]

    def gated(cls: type, *args: object, **kwargs: object) -> object:
        entered.set()
        assert release.wait(60), "the gate was never opened"
        return real(cls, *args, **kwargs)

    monkeypatch.setattr(pdq_index._Segment, "build", classmethod(gated))  # type: ignore[arg-type]
    yield entered, release
    release.set()


def _in_thread(fn: object) -> list[object]:
    """Run ``fn`` in a thread and wait a bounded time for it; [result] if it returned."""
    out: list[object] = []
    t = threading.Thread(target=lambda: out.append(fn()), daemon=True)  # type: ignore[operator]
    t.start()
    t.join(30)
    return out


def test_a_compaction_started_by_a_search_never_blocks_lookups_or_updates(
    gate: tuple[threading.Event, threading.Event],
) -> None:
    entered, release = gate
    codes = _codes(6_000, 21)
    index = PdqIndex(tail_limit=1_000)
    release.set()
    index.add_many(np.arange(len(codes)), codes)
    index.fold(force=True)
    release.clear()
    entered.clear()
    index.remove_many(range(0, 6_000, 2))  # half dead: the next search starts a compaction
    assert index.search(codes[1]) == [(1, 0)]
    assert entered.wait(30) and not index.wait_maintenance(0)  # the compaction is held at the gate
    # while it is held: lookups answer from the old layout, updates go on (journaled)
    new = _codes(3, 22)
    assert _in_thread(lambda: index.add_many([1, 2, 7_000], new)) == [None]  # 1 replaced, 2 back, 7000 new
    assert _in_thread(lambda: index.remove(3)) == [True]
    assert _in_thread(lambda: index.search_many([words_hex(codes[1]), words_hex(new[0]), words_hex(codes[5])])) == [
        [[], [(1, 0)], [(5, 0)]]
    ]
    assert index.stats()["dead"] > 0
    release.set()
    assert index.wait_maintenance(60)
    st = index.stats()
    # the old rows of ids 1 and 3 were alive when the build read them: dead rows now, filtered at verification
    assert st["dead"] == 2 and st["live"] == len(index) == 3_000 - 1 + 2
    live = {i: codes[i] for i in range(1, 6_000, 2) if i not in (1, 3)} | {1: new[0], 2: new[1], 7_000: new[2]}
    for i in (1, 2, 5, 7_000, 5_999):
        assert index.search(live[i]) == index.brute_force_search(live[i]) == [(i, 0)]
    assert index.search(codes[3]) == [] and index.search(codes[1]) == []


def test_only_one_of_two_racing_maintenances_swaps_in() -> None:
    codes = _codes(5_000, 23)
    index = PdqIndex(tail_limit=1_000, auto_fold=False)
    index.add_many(np.arange(len(codes)), codes)
    index.fold(force=True)
    index.remove_many(range(0, 5_000, 2))
    with index._lock:
        first = index._begin(compact=True)
        second = index._begin(compact=True)
    index.remove(1)
    built = index._build(first), index._build(second)
    with index._lock:
        assert index._finish(built[1]) is True and index._finish(built[0]) is False
    assert len(index) == 2_499 and index.search(codes[1]) == [] and index.search(codes[5]) == [(5, 0)]


def _repacked(index: PdqIndex, width: int) -> None:
    """Re-pack every segment's postings at ``width`` bytes (4 is what a segment spanning
    2**24 rows or more uses: too large to build in a unit test)."""
    for s in index._segments:
        rel = pdq_index.unpack_postings(s.postings[:-1], s.width)
        assert len(rel) == s.tables_posted * s.n
        s.postings, s.width = pdq_index.pack_postings(rel, width), width


def test_four_byte_postings_answer_like_three_byte_ones() -> None:
    rng = np.random.default_rng(41)
    codes, centres = _clustered(100, 30, 42)
    index = PdqIndex(tail_limit=500)
    index.add_many(np.arange(len(codes)), codes)
    index.fold(force=True)
    assert {s.width for s in index._segments} == {3}
    queries = np.stack([_flip(centres[int(rng.integers(0, len(centres)))], int(rng.integers(0, 25)), rng)
                        for _ in range(40)])
    before = index.search_many(queries)
    _repacked(index, 4)
    assert index.search_many(queries) == before
    assert sum(len(h) for h in before) >= 40  # the queries do reach crowded neighbourhoods


def _write_old_format(index: PdqIndex, path: Path, version: int) -> None:
    """Save ``index`` as format /1 or /2 wrote it: flat
    uint32 directories; /2 packed postings, /1 uint32 global row numbers."""
    path.mkdir()
    n = index.rows
    np.save(path / "codes.npy", index._codes[:n])
    np.save(path / "ids.npy", index._ids[:n])
    segs = []
    for i, s in enumerate(index._segments):
        np.save(path / f"seg{i}.offsets.npy", s.directory.decode().astype(np.uint32))
        postings = s.postings
        if s.direct0:  # older formats kept table 0's postings: the rows in order
            postings = np.concatenate([pdq_index.pack_postings(np.arange(s.n), s.width)[:-1], postings])
        if version == 1:
            postings = pdq_index.unpack_postings(postings[:-1], s.width) + np.uint32(s.lo)
        np.save(path / f"seg{i}.postings.npy", postings)
        segs.append({"m": s.m, "b": s.b, "n": s.n} | ({"width": s.width} if version == 2 else {}))
    manifest = {"format": f"trustwire-pdq-index/{version}", "threshold": 31, "rows": n, "segments": segs,
                "watermark": "7"}
    (path / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize("version", [1, 2])
def test_an_index_saved_in_an_older_format_still_loads(tmp_path: Path, version: int) -> None:
    codes, index = _two_segments(20_000, 18_000, 43, tail_limit=3_000)
    assert index.stats()["tail"] == 0
    _write_old_format(index, tmp_path / "idx", version)
    assert PdqIndex.watermark_of(tmp_path / "idx") == "7"
    old = PdqIndex.load(tmp_path / "idx")
    rng = np.random.default_rng(44)
    for _ in range(30):
        q = _flip(codes[int(rng.integers(0, len(codes)))], int(rng.integers(0, 33)), rng)
        assert old.search(q) == index.search(q) == index.brute_force_search(q)


def test_two_level_directories_round_trip() -> None:
    rng = np.random.default_rng(46)
    dense = np.cumsum(rng.poisson(4.8, 1 << 16))  # ~10M hashes in 2**21 slots: blocks of 16 fit a byte
    d = pdq_index._Directory.encode(dense)
    assert d.lo.dtype == np.uint8 and d.nbytes < dense.size * 1.6 and (d.decode() == dense).all()
    crowded = np.cumsum(np.where(rng.random(5_000) < 0.01, 70_000, 1))  # some slots hold > 65,535 postings
    d = pdq_index._Directory.encode(crowded)
    assert d.shift == 0 and (d.decode() == crowded).all()
    assert (pdq_index._Directory.encode(np.zeros(3, np.int64)).decode() == 0).all()


def test_malformed_postings_are_refused_on_load(tmp_path: Path) -> None:
    codes = _codes(5_000, 45)
    index = PdqIndex()
    index.add_many(np.arange(len(codes)), codes)
    index.save(tmp_path / "idx")
    np.save(tmp_path / "idx" / "seg0.postings.npy", np.zeros(10, dtype=np.uint8))
    with pytest.raises(ValueError, match="malformed segment"):
        PdqIndex.load(tmp_path / "idx")


def test_a_saved_posting_naming_a_row_outside_its_segment_is_refused_on_load(tmp_path: Path) -> None:
    """A tampered saved index must not make the compiled scan read outside the codes."""
    codes = _codes(5_000, 47)
    index = PdqIndex()
    index.add_many(np.arange(len(codes)), codes)
    index.save(tmp_path / "idx")
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    width = int(manifest["segments"][0]["width"])
    postings = np.load(tmp_path / "idx" / "seg0.postings.npy")
    postings[len(postings) // 2 // width * width : len(postings) // 2 // width * width + width] = 0xFF
    np.save(tmp_path / "idx" / "seg0.postings.npy", postings)
    with pytest.raises(ValueError, match="malformed segment"):
        PdqIndex.load(tmp_path / "idx")


def test_the_compiled_scans_release_the_gil_and_are_cached() -> None:
    """Lookups must not stall the match service's other threads; compiled code is reused."""
    from clients.pdq_kernel import scan_rows, scan_segment

    kernel: Any
    for kernel in (scan_segment, scan_rows):
        assert kernel.targetoptions["nogil"] is True and kernel._cache is not None
        assert type(kernel._cache).__name__ == "FunctionCache"


# -- concurrent lookups ----------------------------------------------------------------------


def test_two_lookups_run_inside_the_kernel_at_once_each_with_its_own_scratch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Lookups take no lock: two searches meet inside the compiled scan. If lookups
    serialized, the second could not enter while the first waits there and the barrier
    would break (bounded wait, no clock assert). Neither allocates scratch (a thread's
    second lookup passes the kernel the same buffers as its first) and the two never
    share one."""
    codes = _codes(20_000, 51)
    index = PdqIndex()
    index.add_many(np.arange(len(codes)), codes)
    index.fold(force=True)
    real = pdq_index._kernel()
    met = threading.Barrier(2, timeout=30)
    seen: dict[int, list[tuple[Any, ...]]] = {}

    def scan_segment(*args: Any) -> object:
        calls = seen.setdefault(threading.get_ident(), [])
        calls.append(args[13:18])  # keys, starts, ends, candidates, their substrings
        if len(calls) == 1:
            met.wait()  # both lookups are in the scan at the same moment
        return real.scan_segment(*args)

    kernel = type("Kernel", (), {"scan_segment": staticmethod(scan_segment), "scan_rows": real.scan_rows})
    monkeypatch.setattr(pdq_index, "_kernel", lambda: kernel)
    results: list[object] = []

    def lookups(i: int) -> None:
        results.append([index.search(codes[i]), index.search(codes[i + 1])])

    threads = [threading.Thread(target=lookups, args=(i,), daemon=True) for i in (3, 5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not met.broken
    assert sorted(results) == [[[(3, 0)], [(4, 0)]], [[(5, 0)], [(6, 0)]]]  # type: ignore[type-var]
    (a1, a2), (b1, b2) = seen.values()
    assert all(x is y for x, y in zip(a1, a2, strict=True)) and all(x is y for x, y in zip(b1, b2, strict=True))
    assert not any(np.shares_memory(x, y) for x in a1 for y in b1)


def _fingerprint(ids: np.ndarray, codes: np.ndarray) -> int:
    """An order-free digest of a set of (id, hash) pairs."""
    if len(ids) == 0:
        return 0
    k = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0x27D4EB2F165667C5], dtype=np.uint64)
    with np.errstate(over="ignore"):
        h = np.asarray(ids, dtype=np.uint64) * np.uint64(0xFF51AFD7ED558CCD)
        for w in range(4):
            h ^= codes[:, w] * k[w]
            h = (h ^ (h >> np.uint64(29))) * np.uint64(0xBF58476D1CE4E5B9)
    return int(np.bitwise_xor.reduce(h))


def test_lookups_during_adds_removes_and_compactions_are_exact_for_the_state_they_saw(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two threads search while a third adds, replaces, removes, folds and compacts. Every
    answer must be brute force over the layout the lookup read, and that layout must be
    a state the index really was in after some update (no torn state)."""
    rng = np.random.default_rng(52)
    pool = _codes(12_000, 53)
    index = PdqIndex(tail_limit=700)
    index.add_many(np.arange(4_000), pool[:4_000])
    index.fold(force=True)
    model: dict[int, np.ndarray] = {i: pool[i] for i in range(4_000)}
    states = {_fingerprint(np.array(list(model)), np.stack(list(model.values())))}
    seen: list[tuple[object, np.ndarray, list[list[tuple[int, int]]]]] = []
    real_search = pdq_index._search

    def recording(layout: object, qs: np.ndarray, t: int) -> list[list[tuple[int, int]]]:
        out = real_search(layout, qs, t)  # type: ignore[arg-type]
        seen.append((layout, qs.copy(), out))
        return out

    monkeypatch.setattr(pdq_index, "_search", recording)
    done = threading.Event()

    def mutate() -> None:
        nxt = 4_000
        for step in range(60):
            op = step % 4
            if op == 0:  # new ids
                ids = np.arange(nxt, nxt + 150)
                nxt += 150
                batch = pool[ids]
            elif op == 1:  # new versions of existing ids
                ids = rng.choice(sorted(model), 40, replace=False)
                batch = _codes(40, 1_000 + step)
            else:
                ids = rng.choice(sorted(model), 200, replace=False)
                batch = None
            if batch is None:
                for i in ids.tolist():
                    del model[i]
            else:
                model.update(zip(ids.tolist(), batch, strict=True))
            states.add(_fingerprint(np.array(list(model)), np.stack(list(model.values()))))
            if batch is None:
                index.remove_many(ids.tolist())
            else:
                index.add_many(ids, batch)
            if step % 15 == 14:
                index.compact()
        done.set()

    def lookups(seed: int) -> None:
        r = np.random.default_rng(seed)
        while not done.is_set() or r.integers(0, 4) > 0:
            near = np.stack([_flip(pool[int(r.integers(0, 12_000))], int(r.integers(0, 36)), r)
                             for _ in range(int(r.integers(1, 5)))])
            index.search_many(near)

    threads = [threading.Thread(target=mutate, daemon=True)] + [
        threading.Thread(target=lookups, args=(s,), daemon=True) for s in (54, 55)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(240)
    assert done.is_set() and not any(t.is_alive() for t in threads)
    assert index.wait_maintenance(60)
    layouts = {id(lay) for lay, _, _ in seen}
    assert len(seen) >= 20 and len(layouts) >= 3  # lookups really did see the index change under them
    for layout, qs, out in seen:
        alive = np.flatnonzero(layout.alive(np.arange(layout.n)))  # type: ignore[attr-defined]
        assert _fingerprint(layout.ids[alive], layout.codes[alive]) in states  # type: ignore[attr-defined]
        for q, got in zip(qs, out, strict=True):
            assert got == pdq_index._brute_force_layout(layout, q, 31)  # type: ignore[arg-type]
    final = index.search_many(np.stack(list(model.values())[:50]), threshold=0)
    assert all((i, 0) in got for i, got in zip(list(model)[:50], final, strict=True))
