"""Bank semantics on a state file: versions, retractions, expiry, the PDQ index, lookups."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from clients import pdq_index
from clients.bank import PERSIST_MIN_HASHES, Bank
from clients.pdq_index import PdqIndex, words_hex
from clients.store import MemberStore
from exchange.core.entries import ms_to_timestamp
from exchange.pb.trustwire.v1 import entries_pb2 as pb

NOW = 1_800_000_000_000


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> int:
        return self.now


def _pdq(seed: int) -> str:
    return words_hex(np.random.default_rng(seed).integers(0, 2**64, size=4, dtype=np.uint64))


def _near(h: str, bits: int) -> str:
    v = int(h, 16) ^ ((1 << bits) - 1)
    return f"{v:064x}"


def _signal(sid: str, type_: str, value: str, *, publisher: str = "alice", until: int | None = None,
            labels: tuple[str, ...] = ()) -> pb.Signal:
    s = pb.Signal(signal_id=sid, member_id=publisher, type=type_, value=value, labels=list(labels), confidence=80,
                  sharing=pb.Sharing(groups=["g"]), created_at=ms_to_timestamp(NOW - 1000))
    if until is not None:
        s.valid_until.CopyFrom(ms_to_timestamp(until))
    return s


@pytest.fixture
def bank(tmp_path: Path) -> Bank:
    return Bank(MemberStore(tmp_path / "state.db"), clock_ms=Clock())


def test_versions_keep_the_highest_index_and_move_the_pdq_hash(bank: Bank) -> None:
    a, b = _pdq(1), _pdq(2)
    assert bank.add_signal(_signal("s", "pdq", a), index=10)
    assert [s.signal_id for s, _ in bank.search_pdq(a)] == ["s"]
    assert not bank.add_signal(_signal("s", "pdq", b), index=9)  # older: ignored
    assert bank.add_signal(_signal("s", "pdq", b), index=11)
    assert bank.search_pdq(a) == []
    assert [(s.signal_id, d) for s, d in bank.search_pdq(_near(b, 5))] == [("s", 5)]
    # a new version of another type leaves the PDQ index
    assert bank.add_signal(_signal("s", "md5", "0" * 32), index=12)
    assert bank.search_pdq(b) == [] and [s.index for s in bank.lookup("md5", "0" * 32)] == [12]


def test_retraction_and_expiry_remove_from_matching(bank: Bank) -> None:
    clock: Clock = bank._clock_ms  # type: ignore[assignment]
    h1, h2 = _pdq(3), _pdq(4)
    bank.add_signal(_signal("r", "pdq", h1), index=1)
    bank.add_signal(_signal("e", "pdq", h2, until=NOW + 60_000), index=2)
    bank.add_signal(_signal("m", "md5", "1" * 32, until=NOW + 60_000), index=3)
    assert bank.retract("alice", "r", index=4)
    assert not bank.retract("alice", "r", index=1)  # a retraction older than the signal is ignored
    assert bank.search_pdq(h1) == []
    assert [s.signal_id for s, _ in bank.search_pdq(h2)] == ["e"]
    assert bank.sweep_expired() == []
    clock.now = NOW + 60_000
    assert bank.search_pdq(h2) == [] and bank.lookup("md5", "1" * 32) == []  # expired: no match even before a sweep
    assert sorted(s.signal_id for s in bank.sweep_expired()) == ["e", "m"]
    assert bank.sweep_expired() == []  # idempotent
    assert len(bank.pdq_index()) == 0
    stats = bank.stats()
    assert (stats["signals"], stats["live"], stats["retracted"], stats["expired"]) == (3, 0, 1, 2)
    # a new version with a later valid_until comes back
    bank.add_signal(_signal("e", "pdq", h2, until=NOW + 120_000), index=5)
    assert [s.signal_id for s, _ in bank.search_pdq(h2)] == ["e"]


def test_degenerate_pdq_is_flagged_and_not_indexed(bank: Bank) -> None:
    bank.add_signal(_signal("blank", "pdq", "0" * 64), index=1)
    assert bank.search_pdq("0" * 64) == []
    assert bank.get("alice", "blank").quality_flag == "degenerate-pdq"  # type: ignore[union-attr]
    assert bank.stats()["pdq_degenerate"] == 1


def test_index_changes_follow_the_transaction(bank: Bank) -> None:
    h = _pdq(5)
    bank.pdq_index()  # built (empty) before the change
    with pytest.raises(RuntimeError):
        with bank._store.transaction():
            bank.add_signal(_signal("x", "pdq", h), index=1)
            raise RuntimeError("crash before commit")
    assert bank.get("alice", "x") is None and bank.search_pdq(h) == []
    bank.add_signal(_signal("x", "pdq", h), index=1)
    assert [s.signal_id for s, _ in bank.search_pdq(h)] == ["x"]


def test_index_is_saved_and_reloaded_only_when_current(tmp_path: Path) -> None:
    store = MemberStore(tmp_path / "s.db")
    bank = Bank(store, clock_ms=Clock())
    hashes = [_pdq(100 + i) for i in range(50)]
    for i, h in enumerate(hashes):
        bank.add_signal(_signal(f"p{i}", "pdq", h), index=i + 1)
    bank.pdq_index()
    assert bank.save_index(force=True)
    assert PdqIndex.watermark_of(tmp_path / "s.db.pdq") == str(bank._changes())
    # a new process: loads the saved arrays
    fresh = Bank(store, clock_ms=Clock())
    assert len(fresh.pdq_index()) == 50 and [s.signal_id for s, _ in fresh.search_pdq(hashes[7])] == ["p7"]
    # a change after the save: the saved copy is stale, so the next process rebuilds
    bank.retract("alice", "p7", index=100)
    stale = Bank(store, clock_ms=Clock())
    assert stale.search_pdq(hashes[7]) == [] and len(stale.pdq_index()) == 49
    assert PERSIST_MIN_HASHES > 50 and not stale.save_index()  # small banks are not worth saving


def test_exact_lookups_domains_and_text(bank: Bank) -> None:
    bank.add_signal(_signal("d", "domain", "evil.example"), index=1)
    bank.add_signal(_signal("u", "url", "https://bad.example/x"), index=2)
    bank.add_signal(_signal("t", "text", "cheap followers"), index=3)
    bank.add_signal(_signal("a", "account", "examplechat:id:42"), index=4)
    assert [m.signal.signal_id for m in bank.match_value("domain", "WWW.Evil.Example.", "ref")] == ["d"]
    assert [m.signal.signal_id for m in bank.match_value("domain", "notevil.example", "ref")] == []
    assert {m.signal.signal_id for m in bank.match_value("url", "https://a.evil.example/p?q=1", "ref")} == {"d"}
    assert [m.signal.signal_id for m in bank.match_value("url", "HTTPS://BAD.example/x", "ref")] == ["u"]
    assert [m.signal.signal_id for m in bank.match_value("text", "Buy CHEAP   followers now", "ref")] == ["t"]
    assert [m.signal.signal_id for m in bank.match_value("account", "ExampleChat:ID:42", "ref")] == ["a"]
    assert bank.counts_by_type() == {"account": 1, "domain": 1, "text": 1, "url": 1}


def test_opinions_aggregate_per_signal_and_feedback(bank: Bank) -> None:
    bank.add_signal(_signal("s", "md5", "2" * 32), index=1)
    for author, verdict, idx in [("bob", pb.VERDICT_FALSE_POSITIVE, 2), ("carol", pb.VERDICT_TRUE_POSITIVE, 3),
                                 ("bob", pb.VERDICT_TRUE_POSITIVE, 4), ("carol", pb.VERDICT_SEEN, 1)]:
        bank.add_opinion(pb.Opinion(member_id=author, signal=pb.SignalRef(member_id="alice", signal_id="s"),
                                    verdict=verdict), index=idx)
    assert bank.opinions("alice", "s") == {"bob": "true_positive", "carol": "true_positive"}  # latest each
    assert bank.opinion_counts("alice", "s") == {pb.VERDICT_TRUE_POSITIVE: 2}
    (entry,) = bank.feedback("alice")
    assert entry["counts"] == {"true_positive": 2} and entry["type"] == "md5" and entry["live"] is True


def test_a_forced_compaction_of_the_banks_index_never_blocks_its_lookups(
    bank: Bank, monkeypatch: pytest.MonkeyPatch
) -> None:
    hashes = [_pdq(100 + i) for i in range(40)]
    for i, h in enumerate(hashes):
        bank.add_signal(_signal(f"s{i}", "pdq", h), index=i + 1)
    for i in range(0, 40, 2):
        assert bank.retract("alice", f"s{i}", index=100 + i)
    index = bank.pdq_index()
    entered, release = threading.Event(), threading.Event()
    real = pdq_index._Segment.build.__func__  # type: ignore[attr-defined]

    def gated(cls: type, *args: object, **kwargs: object) -> object:  # the compaction's build waits here
        entered.set()
        assert release.wait(60), "the gate was never opened"
        return real(cls, *args, **kwargs)

    monkeypatch.setattr(pdq_index._Segment, "build", classmethod(gated))  # type: ignore[arg-type]
    compaction = threading.Thread(target=index.compact, daemon=True)
    compaction.start()
    try:
        assert entered.wait(30)
        answers: list[list[str]] = []

        def lookups() -> None:  # through the bank, while the compaction is held at the gate
            bank.add_signal(_signal("late", "pdq", _pdq(999)), index=500)
            assert bank.retract("alice", "s1", index=501)
            for h in (hashes[3], hashes[2], hashes[1], _near(_pdq(999), 4)):
                answers.append([s.signal_id for s, _ in bank.search_pdq(h)])

        worker = threading.Thread(target=lookups, daemon=True)
        worker.start()
        worker.join(30)
        assert not worker.is_alive() and compaction.is_alive()  # answered while the merge waits
        assert answers == [["s3"], [], [], ["late"]]
    finally:
        release.set()
    compaction.join(60)
    assert not compaction.is_alive() and index.stats()["segments"] == 1 and bank.pdq_index() is index
    for i in range(3, 40, 2):
        assert [s.signal_id for s, _ in bank.search_pdq(hashes[i])] == [f"s{i}"]
    assert bank.search_pdq(hashes[1]) == [] and [s.signal_id for s, _ in bank.search_pdq(_pdq(999))] == ["late"]


def _vm_steps(bank: Bank, work: object) -> int:
    """SQLite virtual-machine steps ``work`` costs on the bank's connection (load-proof)."""
    steps = [0]

    def count() -> int:
        steps[0] += 1
        return 0

    bank._store.conn.set_progress_handler(count, 1)
    try:
        work()  # type: ignore[operator]
    finally:
        bank._store.conn.set_progress_handler(None, 1)
    return steps[0]


def test_batched_lookups_by_key_cost_the_same_whatever_the_bank_size(bank: Bank) -> None:
    """Catch-up must not slow down as the bank fills: a page's look-ups by (publisher,
    signal_id) go through the primary key. (``(a, b) IN (VALUES ...)`` scanned the whole
    table: a 10M-entry catch-up went from 257 to 521 µs per entry by its second 100k.)"""
    md5 = lambda i: f"{i:032x}"  # noqa: E731

    def page(start: int) -> object:
        keys = [("alice", f"s{i}") for i in range(start, start + 50)]
        return lambda: (bank.add_signals([(_signal(k[1], "md5", md5(i)), 10_000_000 + i, "", 0)
                                          for i, k in enumerate(keys, start)]),
                        bank.get_many(keys), bank.opinion_counts_many(keys + keys))

    bank.add_signals([(_signal(f"s{i}", "md5", md5(i)), i, "", 0) for i in range(100)])
    small = _vm_steps(bank, page(0))
    for start in range(100, 10_100, 2000):
        bank.add_signals([(_signal(f"s{i}", "md5", md5(i)), i, "", 0) for i in range(start, start + 2000)])
    large = _vm_steps(bank, page(5_000))
    assert large < 2 * small, (small, large)
    got = bank.get_many([("alice", "s5"), ("alice", "s5"), ("bob", "s5")])
    assert list(got) == [("alice", "s5")]  # a repeated key answers once, an absent one not at all


def test_a_batch_stores_each_signals_own_sharing_and_labels(bank: Bank) -> None:
    """The sharing and labels columns are read through caches keyed by their values (the
    sharing by its bytes): signals of one batch that differ only there keep their own."""
    sharings = [pb.Sharing(groups=["g"], tlp=pb.TLP_AMBER), pb.Sharing(groups=["g"], tlp=pb.TLP_RED),
                pb.Sharing(groups=["g", "h"], tlp=pb.TLP_AMBER), pb.Sharing(groups=["h", "g"], tlp=pb.TLP_AMBER)]
    labels = [(), ("csam",), ("csam", "src:hotline"), ("src:hotline", "csam")]
    signals = []
    for i, (sharing, tags) in enumerate(zip(sharings, labels, strict=True)):
        s = _signal(f"s{i}", "md5", f"{i:032x}", labels=tags)
        s.sharing.CopyFrom(sharing)
        signals.append(s)
    assert bank.add_signals([(s, i + 1, "", 0) for i, s in enumerate(signals)]) == [True] * 4
    for i, (sharing, tags) in enumerate(zip(sharings, labels, strict=True)):
        got = bank.get("alice", f"s{i}")
        assert got is not None
        assert (got.groups, got.tlp, got.labels) == (tuple(sharing.groups), sharing.tlp, tuple(sorted(tags)))
