"""The match service's in-memory view: each matcher, updates, and vPDQ frame matching
checked against the brute-force reference (python-threatexchange's algorithm)."""

from __future__ import annotations

import json
import random
import threading

import pytest

from clients.bank import BankSignal
from clients.matchsvc.index import MatchIndex
from exchange.core.errors import InvalidValue
from exchange.core.signals import normalize, signal_type
from exchange.core.signals.vpdq import frames_of, match_percent

NOW = 1_800_000_000_000


def sig(type_: str, value: str, sid: str, **kw: object) -> BankSignal:
    base: dict[str, object] = dict(publisher="alice", signal_id=sid, index=len(sid), type=type_,
                                   value=normalize(type_, value), labels=("csam",), confidence=70, severity=3,
                                   groups=("g",), tlp=2, valid_from_ms=None, valid_until_ms=None, created_at_ms=0,
                                   retracted_index=None)
    base.update(kw)
    return BankSignal(**base)  # type: ignore[arg-type]


def rand_hex(rng: random.Random) -> str:
    return "%064x" % rng.getrandbits(256)


def flip(value: str, n: int, rng: random.Random) -> str:
    v = int(value, 16)
    for b in rng.sample(range(256), n):
        v ^= 1 << b
    return "%064x" % v


def test_each_matcher_and_updates() -> None:
    rng = random.Random(1)
    pdq = rand_hex(rng)
    index = MatchIndex(clock_ms=lambda: NOW)
    index.load([sig("md5", "A" * 32, "m1"), sig("domain", "bad.example", "d1"), sig("text", "buy now", "t1"),
                sig("pdq", pdq, "p1"), sig("md5", "b" * 32, "gone", retracted_index=9)], {("alice", "m1"): {2: 3}})
    assert [(h.signal.signal_id, dict(h.opinions)) for h in index.lookup("md5", "a" * 32)] == [
        ("m1", {"true_positive": 3})
    ]
    assert index.lookup("md5", "b" * 32) == []
    assert [h.signal.signal_id for h in index.lookup("url", normalize("url", "https://x.bad.example/p"))] == ["d1"]
    assert [h.signal.signal_id for h in index.lookup("text", "please buy now!")] == ["t1"]
    near = flip(pdq, 30, rng)
    assert [(h.signal.signal_id, h.distance) for h in index.lookup("pdq", near)] == [("p1", 30)]
    assert index.lookup("pdq", flip(pdq, 32, rng)) == []
    # a retraction, an expiry and a compromised key (the bank has no row any more) all unlink
    index.put(sig("md5", "a" * 32, "m1", retracted_index=10), ("alice", "m1"), {})
    index.put(sig("pdq", pdq, "p1", valid_until_ms=NOW - 1), ("alice", "p1"), {})
    index.put(None, ("alice", "d1"), {})
    assert index.lookup("md5", "a" * 32) == [] and index.lookup("pdq", near) == []
    assert index.lookup("domain", "bad.example") == []
    assert index.sizes() == {"md5": 0, "domain": 0, "text": 1, "pdq": 0}
    # a new version replaces the old value
    index.put(sig("md5", "c" * 32, "t1"), ("alice", "t1"), {})
    assert index.lookup("text", "buy now") == [] and len(index.lookup("md5", "c" * 32)) == 1


def test_vpdq_normalization() -> None:
    kind = signal_type("vpdq")
    for raw, canonical in kind.examples:
        assert kind.normalize(raw) == canonical
        kind.check(canonical)
    for bad in kind.bad_examples:
        with pytest.raises(InvalidValue):
            kind.normalize(bad)
    frames = [rand_hex(random.Random(i)) for i in range(64)]
    with pytest.raises(InvalidValue, match="at most 63"):
        kind.normalize(",".join(frames))
    assert frames_of(kind.normalize(",".join(frames[:3]))) == sorted(frames[:3])
    # the pytx form round-trips through our canonical form
    assert kind.normalize(kind.pytx_value(kind.normalize(",".join(frames[:5])))) == kind.normalize(",".join(frames[:5]))
    assert json.loads(kind.pytx_value(frames[0]))[0].startswith(frames[0] + ",100,")


def test_vpdq_frame_matching_equals_the_reference() -> None:
    rng = random.Random(7)
    videos = [[rand_hex(rng) for _ in range(rng.randint(3, 20))] for _ in range(30)]
    index = MatchIndex(clock_ms=lambda: NOW)
    index.load([sig("vpdq", ",".join(v), f"v{i}") for i, v in enumerate(videos)], {})
    checked = matched = 0
    for _ in range(150):
        source = videos[rng.randrange(len(videos))]
        keep = rng.randint(1, len(source))
        query = [flip(f, rng.randint(0, 40), rng) for f in rng.sample(source, keep)]
        query += [rand_hex(rng) for _ in range(rng.randint(0, 3))]
        q = frames_of(normalize("vpdq", ",".join(query)))
        expected = set()
        for i, v in enumerate(videos):
            qp, cp = match_percent(q, sorted(set(v)))
            if qp >= 80.0 and cp >= 0.0:
                expected.add(f"v{i}")
        got = {h.signal.signal_id: h.video for h in index.lookup("vpdq", ",".join(q))}
        assert set(got) == expected
        for sid, video in got.items():
            assert video == match_percent(q, sorted(set(videos[int(sid[1:])])))
        checked += 1
        matched += bool(expected)
    assert checked == 150 and 20 < matched < 150  # both outcomes exercised
    index.put(None, ("alice", "v0"), {})
    assert index.lookup("vpdq", ",".join(videos[0])) == []


def test_a_pdq_rebuild_never_blocks_lookups_or_updates() -> None:
    """Between the snapshot and the swap, lookups and updates run against the old index
    (only begin and finish take the lock); what changed meanwhile is replayed."""
    rng = random.Random(5)
    values = [rand_hex(rng) for _ in range(3000)]
    index = MatchIndex(clock_ms=lambda: NOW)
    index.load([sig("pdq", v, f"p{i}") for i, v in enumerate(values)], {})
    for i in range(3000, 3100):  # a tail the next rebuild folds in
        values.append(rand_hex(rng))
        index.put(sig("pdq", values[i], f"p{i}"), ("alice", f"p{i}"), {})
    snapshot = index.begin_rebuild()
    with pytest.raises(RuntimeError):
        index.begin_rebuild()  # one at a time
    # the lock is free while the new index is being built: lookups and updates go on
    assert index._lock.acquire(blocking=False)
    index._lock.release()
    index.put(None, ("alice", "p7"), {})
    values.append(rand_hex(rng))
    index.put(sig("pdq", values[-1], "p3100"), ("alice", "p3100"), {})
    assert [h.signal.signal_id for h in index.lookup("pdq", values[-1])] == ["p3100"]
    assert index.finish_rebuild(index.build(snapshot)) == 2
    for i in (7, 3100, 42, 3050):
        got = [h.signal.signal_id for h in index.lookup("pdq", flip(values[i], 20, rng))]
        assert got == ([] if i == 7 else [f"p{i}"])
    # a rebuild that straddles a clear() is dropped
    stale = index.build(index.begin_rebuild())
    index.clear()
    assert index.finish_rebuild(stale) == -1 and index.lookup("pdq", values[42]) == []


def test_vpdq_distance_agrees_with_python_threatexchange() -> None:
    """The anchor: pytx's own VPDQSignal.compare_hash on the same pairs."""
    from threatexchange.extensions.vpdq.vpdq import VPDQSignal

    kind = signal_type("vpdq")
    rng = random.Random(11)
    agreed = matches = 0
    for _ in range(120):
        signal = [rand_hex(rng) for _ in range(rng.randint(2, 12))]
        content = [flip(f, rng.randint(0, 40), rng) for f in rng.sample(signal, rng.randint(1, len(signal)))]
        content += [rand_hex(rng) for _ in range(rng.randint(0, 2))]
        s, c = normalize("vpdq", ",".join(signal)), normalize("vpdq", ",".join(content))
        ours = kind.distance(s, c) is not None
        theirs = VPDQSignal.compare_hash(kind.pytx_value(c), kind.pytx_value(s)).match
        assert ours == theirs, (s, c)
        agreed += 1
        matches += ours
    assert agreed == 120 and 10 < matches < 110


def test_batched_pdq_lookups_equal_single_ones() -> None:
    rng = random.Random(9)
    values = [rand_hex(rng) for _ in range(2000)]
    index = MatchIndex(clock_ms=lambda: NOW)
    index.load([sig("pdq", v, f"p{i}") for i, v in enumerate(values)] + [sig("md5", "a" * 32, "m1")], {})
    index.put(None, ("alice", "p5"), {})  # removed: must not come back in a batch
    queries = [flip(values[i], rng.randrange(0, 40), rng) for i in range(0, 60)] + [values[5], rand_hex(rng)]
    batched = index.lookup_many("pdq", queries)
    assert batched == [index.lookup("pdq", q) for q in queries]
    assert sum(bool(b) for b in batched) >= 30 and batched[-2] == []
    assert index.lookup_many("md5", ["a" * 32, "b" * 32]) == [index.lookup("md5", "a" * 32), []]


def _pausing_kernel(monkeypatch: pytest.MonkeyPatch, during_scan: object) -> None:
    """Run ``during_scan()`` once, inside the first compiled PDQ scan, indexed or of the
    unindexed tail (the lookup is mid-search)."""
    from clients import pdq_index

    real, done = pdq_index._kernel(), threading.Event()

    def pausing(name: str) -> object:
        def scan(*args: object) -> object:
            if not done.is_set():
                done.set()
                during_scan()  # type: ignore[operator]
            return getattr(real, name)(*args)

        return staticmethod(scan)

    kernel = type("Kernel", (), {"scan_segment": pausing("scan_segment"), "scan_rows": pausing("scan_rows")})
    monkeypatch.setattr(pdq_index, "_kernel", lambda: kernel)


def _replace_mid_search(
    monkeypatch: pytest.MonkeyPatch, index: MatchIndex, gone: tuple[str, str], new: BankSignal
) -> threading.Event:
    """Inside the next compiled scan, remove ``gone`` and add ``new`` (which reuses its
    row) from another thread, which needs the service's lock: the event is set only if
    the lookup under way does not hold it."""
    updated = threading.Event()

    def update() -> None:
        def swap() -> None:
            index.put(None, gone, {})
            index.put(new, (new.publisher, new.signal_id), {})
            updated.set()

        t = threading.Thread(target=swap, daemon=True)
        t.start()
        t.join(10)

    _pausing_kernel(monkeypatch, update)
    return updated


def test_pdq_lookups_search_outside_the_lock_and_a_row_reused_meanwhile_does_not_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The PDQ search runs without the service's lock (concurrent lookups overlap), so an
    update may land mid-search: the signal found is removed and its row reused by another
    signal whose hash is far from the query. That signal must not answer with the old
    hash's distance."""
    rng = random.Random(7)
    a, far = rand_hex(rng), rand_hex(rng)
    index = MatchIndex(clock_ms=lambda: NOW)
    index.load([sig("pdq", a, "p1")] + [sig("md5", "%032x" % i, f"m{i}") for i in range(64)], {})
    index.pdq_threshold = 31
    query = flip(a, 10, rng)
    updated = _replace_mid_search(monkeypatch, index, ("alice", "p1"), sig("pdq", far, "p2"))
    hits = index.lookup("pdq", query)
    assert updated.is_set()  # the update ran while the lookup was searching
    assert [h.signal.signal_id for h in hits] == []  # p1 is gone; p2 is 100+ bits away
    assert [h.signal.signal_id for h in index.lookup("pdq", far)] == ["p2"]


def test_vpdq_lookups_search_frames_outside_the_lock_and_a_video_replaced_meanwhile_does_not_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The frame index is searched without the service's lock, as PDQ: an update landing
    mid-search removes the video found and reuses its row for another video far from
    the query. The old video's frames must not answer for the new one."""
    rng = random.Random(11)
    video, other = [rand_hex(rng) for _ in range(6)], [rand_hex(rng) for _ in range(6)]
    index = MatchIndex(clock_ms=lambda: NOW)
    index.load([sig("vpdq", ",".join(video), "v1")] + [sig("md5", "%032x" % i, f"m{i}") for i in range(64)], {})
    query = ",".join(frames_of(normalize("vpdq", ",".join(flip(f, 5, rng) for f in video))))
    assert [h.signal.signal_id for h in index.lookup("vpdq", query)] == ["v1"]
    updated = _replace_mid_search(monkeypatch, index, ("alice", "v1"), sig("vpdq", ",".join(other), "v2"))
    hits = index.lookup("vpdq", query)
    assert updated.is_set()  # the update ran while the lookup was searching the frames
    assert hits == []  # v1 is gone; v2's frames are ~128 bits from every query frame
    assert [h.signal.signal_id for h in index.lookup("vpdq", ",".join(other))] == ["v2"]
