"""The match service's start-up from a real member state file: the bank's saved PDQ index
is used only while current, and a restart answers exactly as a cold start."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench.gen_member_state import NOW_MS, generate, values
from clients.bank import Bank
from clients.matchsvc.index import Hit, MatchIndex
from clients.pdq_index import PdqIndex
from clients.store import MemberStore
from exchange.core.entries import ms_to_timestamp
from exchange.pb.trustwire.v1 import entries_pb2 as pb

SIZE = 3000


def _start(state: Path) -> MatchIndex:
    """What MatchService.start does: a fresh bank on the file, loaded into a fresh view."""
    bank = Bank(MemberStore(state))
    index = MatchIndex(pdq_threshold=bank.pdq_threshold, clock_ms=lambda: NOW_MS)
    assert index.load_bank(bank) == SIZE
    return index


def _near(value: str, bits: int) -> str:
    return "%064x" % (int(value, 16) ^ ((1 << bits) - 1))


def _answers(index: MatchIndex, queries: list[tuple[str, str]]) -> list[list[tuple[object, ...]]]:
    def key(h: Hit) -> tuple[object, ...]:
        return (h.signal, h.distance, tuple(sorted(h.opinions.items())))

    return [[key(h) for h in index.lookup(t, v)] for t, v in queries]


def _queries() -> list[tuple[str, str]]:
    pdq = values(SIZE, "pdq")
    return ([("pdq", v) for v in pdq[:40]] + [("pdq", _near(v, 9)) for v in pdq[40:80]]
            + [("pdq", "%064x" % i) for i in range(3)] + [("md5", v) for v in values(SIZE, "md5")[:40]])


def test_a_restart_with_the_saved_index_answers_exactly_as_a_cold_start(tmp_path: Path) -> None:
    state = tmp_path / "member.db"
    generate(state, SIZE)
    cold = _start(state)
    assert not cold.pdq_from_saved
    saved = state.with_name(state.name + ".pdq")
    assert json.loads((saved / "manifest.json").read_text())["rows"] == SIZE * 4 // 10  # kept for the next start
    warm = _start(state)
    assert warm.pdq_from_saved
    queries = _queries()
    expected = _answers(cold, queries)
    assert sum(1 for a in expected if a) >= 120  # the queries do hit (exact, near and md5)
    assert _answers(warm, queries) == expected
    assert warm.memory()["pdq"] == cold.memory()["pdq"]


def test_a_stale_saved_index_is_never_served(tmp_path: Path) -> None:
    """The attack: a saved index holding the same ids but an old value for one of them."""
    state = tmp_path / "member.db"
    generate(state, SIZE)
    _start(state)  # saves the index
    pdq = values(SIZE, "pdq")
    bank = Bank(MemberStore(state))
    old = next(s for s in bank.iter_signals() if s.type == "pdq" and s.value == pdq[0])
    fresh = _near(pdq[1], 60)  # a new version of the signal, far from its old value
    changed = pb.Signal(signal_id=old.signal_id, member_id=old.publisher, type="pdq", value=fresh, confidence=70,
                        sharing=pb.Sharing(groups=["g-all"]), created_at=ms_to_timestamp(NOW_MS - 1000))
    assert bank.add_signals([(changed, SIZE * 10, old.keyid, NOW_MS - 500)]) == [True]  # same rowid
    restarted = _start(state)
    assert not restarted.pdq_from_saved  # the bank's change count outdated it
    assert [h.signal.signal_id for h in restarted.lookup("pdq", fresh)] == [old.signal_id]
    assert old.signal_id not in [h.signal.signal_id for h in restarted.lookup("pdq", pdq[0])]
    again = _start(state)  # the rebuilt index was saved in turn, current again
    assert again.pdq_from_saved
    assert _answers(again, _queries() + [("pdq", fresh)]) == _answers(restarted, _queries() + [("pdq", fresh)])


def test_relabel_renames_ids_and_refuses_ids_it_does_not_hold() -> None:
    pdq = values(SIZE, "pdq")[:50]
    index = PdqIndex(threshold=31)
    index.add_many(np.arange(1000, 1050), pdq)
    index.fold(force=True)
    with pytest.raises(ValueError):
        index.relabel(np.arange(1000, 1049), np.arange(49))  # one id missing
    with pytest.raises(ValueError):
        index.relabel(np.arange(1001, 1051), np.arange(50))  # one id it does not hold
    index.relabel(np.arange(1049, 999, -1), np.arange(50))  # any order
    assert index.search(pdq[0], 0) == [(49, 0)] and index.search(pdq[49], 0) == [(0, 0)]
    assert 1000 not in index and index.get(0) == pdq[49]
