"""The match index's column store: strings round-trip, rows are reused, stale digest
map entries never answer, and merges keep every live entry."""

from __future__ import annotations

import random

import numpy as np

from clients.bank import BankSignal
from clients.matchsvc.columns import DigestMap, SignalRows, _Strings
from clients.matchsvc.index import MatchIndex

NOW = 1_800_000_000_000


def sig(sid: str, value: str, type_: str = "md5", **kw: object) -> BankSignal:
    base: dict[str, object] = dict(publisher="alice", signal_id=sid, index=7, type=type_, value=value,
                                   labels=("csam", "x"), confidence=70, severity=3, groups=("g",), tlp=2,
                                   valid_from_ms=None, valid_until_ms=NOW + 5, created_at_ms=1, retracted_index=None,
                                   accepted_at_ms=9, keyid="ab" * 32)
    base.update(kw)
    return BankSignal(**base)  # type: ignore[arg-type]


def test_strings_round_trip_packed_plain_and_long() -> None:
    s = _Strings(8)
    cases = ["", "a" * 32, "0f" * 32, "ABCD", "abc", "sig-123", "é" * 16, "x" * 33, "ab" * 33, "naïve"]
    for i, v in enumerate(cases[:8]):
        s.set(i, v)
    assert [s.get(i) for i in range(8)] == cases[:8]
    s.grow(16)
    for i, v in enumerate(cases[8:], start=8):
        s.set(i, v)
    assert [s.get(i) for i in range(10)] == cases
    assert int(s.meta[1]) == -16 and int(s.meta[3]) == 4  # hex packed; upper case kept as text
    s.set(6, "short")  # a long string replaced by a short one leaves nothing behind
    assert s.get(6) == "short" and 6 not in s.long


def test_a_row_rebuilds_the_signal_exactly() -> None:
    rows = SignalRows(capacity=1)
    a = sig("9f" * 16, "a" * 32)
    b = sig("b", "b" * 32, valid_until_ms=None, valid_from_ms=NOW + 1, labels=())
    ra, rb = rows.add(a, 1, 2), rows.add(b, 3, 4)
    assert rows.signal(ra) == a and rows.signal(rb) == b and len(rows) == 2
    assert rows.live_at(ra, NOW) and not rows.live_at(ra, NOW + 5) and not rows.live_at(rb, NOW)
    rows.free(ra)
    assert not rows.alive(ra) and rows.add(sig("c", "c" * 32), 5, 6) == ra  # freed rows are reused
    assert rows.signal(ra).signal_id == "c"


def test_a_digest_collision_or_a_reused_row_never_answers_for_another_signal() -> None:
    """Map entries are only hints: two keys forced onto one digest, and a row reused by
    another signal, are both told apart by verifying the row."""
    index = MatchIndex(clock_ms=lambda: NOW)
    index.load([sig("m1", "a" * 32), sig("m2", "b" * 32)], {})
    row_b = index._exact_rows("md5", "b" * 32)[0]
    index._by_value.add(index._rows.cols["value_digest"][index._exact_rows("md5", "a" * 32)[0]].item(), row_b)
    assert [h.signal.signal_id for h in index.lookup("md5", "a" * 32)] == ["m1"]
    index.put(None, ("alice", "m1"), {})
    index.put(sig("m3", "c" * 32), ("alice", "m3"), {})  # takes m1's freed row
    assert index.lookup("md5", "a" * 32) == []
    assert [h.signal.signal_id for h in index.lookup("md5", "c" * 32)] == ["m3"]


def test_merges_keep_every_live_entry_and_drop_stale_ones() -> None:
    rng = random.Random(3)
    index = MatchIndex(clock_ms=lambda: NOW)
    values = {f"s{i}": "%032x" % rng.getrandbits(128) for i in range(2000)}
    index.load([sig(k, v) for k, v in list(values.items())[:1000]], {})
    for k, v in list(values.items())[1000:]:
        index.put(sig(k, v), ("alice", k), {})
    for k in list(values)[::7]:  # remove some, re-version others with a new value
        index.put(None, ("alice", k), {})
        del values[k]
    for k in list(values)[::5]:
        values[k] = "%032x" % rng.getrandbits(128)
        index.put(sig(k, values[k]), ("alice", k), {})
    before = index._by_value.nbytes()
    assert index.merge_maps(min_pending=10)
    assert index._by_value.pending() == 0 and index._by_value.nbytes() > before
    assert len(index._by_value._keys) == len(values) == len(index)  # stale entries dropped
    for k, v in values.items():
        assert [h.signal.signal_id for h in index.lookup("md5", v)] == [k]


def test_digest_map_build_is_sorted_and_filtered() -> None:
    m = DigestMap()
    for d, r in [(5, 0), (2**64 - 1, 1), (5, 2), (0, 3)]:
        m.add(d, r)
    m.merge(lambda keys, rows: rows != 2)
    assert list(m._keys) == [0, 5, 2**64 - 1] and sorted(m.get(5)) == [0] and m.get(2**64 - 1) == [1]
    m.add(5, 9)
    assert sorted(m.get(5)) == [0, 9] and m.get(6) == []
    assert np.all(np.diff(m._keys.astype(np.float64)) >= 0)


def test_loading_leaves_no_spare_capacity_and_rows_grow_after() -> None:
    index = MatchIndex(clock_ms=lambda: NOW)
    index.load([sig(f"s{i}", "%032x" % i) for i in range(60_000)], {})
    rows = index._rows
    assert rows.end == 60_000 and len(rows.cols) == 60_000 + 1024 and len(rows.cols) == len(rows.values.meta)
    for i in range(60_000, 61_100):  # past the headroom: grows by a quarter, keeps every row
        index.put(sig(f"s{i}", "%032x" % i), ("alice", f"s{i}"), {})
    assert len(rows.cols) >= 61_100 and len(index) == 61_100
    assert all([h.signal.signal_id for h in index.lookup("md5", "%032x" % i)] == [f"s{i}"] for i in (0, 59_999, 61_099))
