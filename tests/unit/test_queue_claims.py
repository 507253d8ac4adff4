"""Queue claim ownership and the console's queue API (filters, paging, events)."""

from __future__ import annotations

from pathlib import Path

import pytest

from clients.bank import Bank, Match
from clients.policy import Action, Decision
from clients.queue import ModerationQueue, QueueFilter, State
from clients.store import MemberStore
from exchange.core.entries import ms_to_timestamp
from exchange.core.errors import ClaimedByOther, InvalidInput
from exchange.pb.trustwire.v1 import entries_pb2 as pb

NOW = 1_800_000_000_000
HOUR = 3_600_000


class Clock:
    now = NOW

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def queue(tmp_path: Path) -> ModerationQueue:
    clock = Clock()
    store = MemberStore(tmp_path / "state.db")
    bank = Bank(store, clock_ms=clock)
    q = ModerationQueue(store, clock_ms=clock)
    for n, (publisher, labels, groups, priority) in enumerate([
        ("alice", ["csam"], ["g1"], 0), ("bob", ["spam"], ["g2"], 2), ("alice", ["spam", "ncii"], ["g1", "g2"], 1),
    ]):
        s = pb.Signal(signal_id=f"s{n}", member_id=publisher, type="md5", value=f"{n:032x}", labels=labels,
                      confidence=80, sharing=pb.Sharing(groups=groups), created_at=ms_to_timestamp(NOW - 1000))
        bank.add_signal(s, index=10 + n)
        banked = bank.get(publisher, f"s{n}")
        assert banked is not None
        clock.now = NOW + n * HOUR
        q.enqueue(Match(content_ref=f"upload-{n}.png", signal=banked), Decision(action=Action.ENQUEUE, priority=priority, rule="r"))
    clock.now = NOW + 30 * HOUR
    return q


def test_claim_hijack_is_refused_naming_the_owner(queue: ModerationQueue) -> None:
    queue.claim(1, "ana")
    with pytest.raises(ClaimedByOther, match="claimed by ana") as claim:
        queue.claim(1, "ben")
    with pytest.raises(ClaimedByOther, match="claimed by ana"):
        queue.decide(1, "ben", State.DISMISSED, "not mine")
    with pytest.raises(ClaimedByOther, match="claimed by ana"):
        queue.release(1, "ben")
    assert claim.value.reason == "claim-owned"
    item = queue.get(1)
    assert (item.state, item.reviewer) == (State.IN_REVIEW, "ana")
    assert [(e.state, e.reviewer) for e in queue.history(1)] == [(State.PENDING, None), (State.IN_REVIEW, "ana")]
    assert queue.claim(1, "ana").reviewer == "ana"  # claiming one's own claim again: no-op
    assert len(queue.history(1)) == 2
    assert queue.decide(1, "ana", State.ACTIONED, "seen").state is State.ACTIONED


def test_a_lead_takes_an_abandoned_claim_back_on_the_record(queue: ModerationQueue) -> None:
    queue.claim(2, "ana")
    assert queue.release(2, "lea", force=True).state is State.PENDING
    assert queue.history(2)[-1].reason == "released (claim of ana taken back)"
    with pytest.raises(InvalidInput, match="not in review"):
        queue.release(2, "lea", force=True)


def test_filters_paging_and_every_reviewers_events(queue: ModerationQueue) -> None:
    def ids(where: QueueFilter) -> list[int]:
        return [i.id for i in queue.page(where).items]

    assert ids(QueueFilter()) == [1, 3, 2]  # by priority
    assert ids(QueueFilter(label="spam")) == [3, 2]
    assert ids(QueueFilter(publisher="alice")) == [1, 3]
    assert ids(QueueFilter(group="g2")) == [3, 2]
    assert ids(QueueFilter(min_age_ms=29 * HOUR)) == [1, 2]  # queued 30 h and 29 h ago
    assert ids(QueueFilter(max_age_ms=28 * HOUR + 1)) == [3]
    queue.claim(1, "ana")
    assert ids(QueueFilter(states=(State.PENDING,))) == [3, 2]
    page = queue.page(QueueFilter(), offset=1, limit=1)
    assert ([i.id for i in page.items], page.total) == ([3], 3)
    with pytest.raises(InvalidInput):
        queue.page(QueueFilter(), limit=0)
    queue.claim(2, "ben")
    assert [(e.item_id, e.reviewer) for e in queue.events(limit=2)] == [(2, "ben"), (1, "ana")]
    assert [e.item_id for e in queue.events("ana")] == [1]
    assert queue.for_content("upload-0.png")[0].id == 1
    assert queue.facets()["label"] == ["csam", "ncii", "spam"] and queue.facets()["group"] == ["g1", "g2"]
