"""The moderation queue (SQLite): one item per (content, signal) the policy selected.

States: ``pending`` → ``in_review`` (claimed by a reviewer) → ``actioned`` /
``dismissed`` / ``escalated``. ``withdrawn`` marks items whose signal was retracted
or expired before anyone decided; ``auto_actioned`` items were handled by the
member's hook. Enqueueing the same (content, signal) twice is a no-op.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from clients.bank import Match
from clients.policy import Action, Decision
from clients.store import MemberStore
from exchange.core.errors import InvalidInput, NotFound

__all__ = ["ModerationQueue", "QueueItem", "State"]


class State(StrEnum):
    PENDING = "pending"
    IN_REVIEW = "in_review"
    ACTIONED = "actioned"
    DISMISSED = "dismissed"
    ESCALATED = "escalated"
    WITHDRAWN = "withdrawn"
    AUTO_ACTIONED = "auto_actioned"


OPEN_STATES = (State.PENDING, State.IN_REVIEW)
DECISIONS = (State.ACTIONED, State.DISMISSED, State.ESCALATED)


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueItem:
    id: int
    content_ref: str
    publisher: str
    signal_id: str
    signal_index: int
    type: str
    distance: int
    priority: int
    rule: str
    labels: tuple[str, ...]
    state: State
    created_at_ms: int
    updated_at_ms: int
    reviewer: str | None
    reason: str | None


_COLUMNS = (
    "id, content_ref, publisher, signal_id, signal_idx, type, distance, priority, rule, labels, state,"
    " created_at_ms, updated_at_ms, reviewer, reason"
)


def _item(r: tuple[object, ...]) -> QueueItem:
    return QueueItem(
        id=int(r[0]),  # type: ignore[call-overload]
        content_ref=str(r[1]),
        publisher=str(r[2]),
        signal_id=str(r[3]),
        signal_index=int(r[4]),  # type: ignore[call-overload]
        type=str(r[5]),
        distance=int(r[6]),  # type: ignore[call-overload]
        priority=int(r[7]),  # type: ignore[call-overload]
        rule=str(r[8]),
        labels=tuple(json.loads(str(r[9]))),
        state=State(str(r[10])),
        created_at_ms=int(r[11]),  # type: ignore[call-overload]
        updated_at_ms=int(r[12]),  # type: ignore[call-overload]
        reviewer=None if r[13] is None else str(r[13]),
        reason=None if r[14] is None else str(r[14]),
    )


class ModerationQueue:
    def __init__(self, store: MemberStore, clock_ms: Callable[[], int] = lambda: int(time.time() * 1000)) -> None:
        self._store = store
        self._clock_ms = clock_ms

    def enqueue(self, match: Match, decision: Decision) -> bool:
        """Add an item for a policy decision; False if it was already queued."""
        if decision.action is Action.IGNORE:
            return False
        state = State.AUTO_ACTIONED if decision.action is Action.AUTO_ACTION else State.PENDING
        now = self._clock_ms()
        s = match.signal
        with self._store.transaction() as c:
            cur = c.execute(
                f"INSERT INTO queue ({_COLUMNS}) VALUES (NULL,?,?,?,?,?,?,?,?,?,?,?,?,NULL,NULL)"
                " ON CONFLICT (content_ref, publisher, signal_id) DO NOTHING",
                (
                    match.content_ref, s.publisher, s.signal_id, s.index, s.type, match.distance,
                    decision.priority, decision.rule, json.dumps(list(s.labels)), state.value, now, now,
                ),
            )
        return cur.rowcount > 0

    def withdraw(self, publisher: str, signal_id: str, reason: str) -> int:
        """Withdraw the open items of a retracted or expired signal."""
        now = self._clock_ms()
        with self._store.transaction() as c:
            cur = c.execute(
                "UPDATE queue SET state = ?, reason = ?, updated_at_ms = ? WHERE publisher = ? AND signal_id = ?"
                " AND state IN (?, ?)",
                (State.WITHDRAWN.value, reason, now, publisher, signal_id, *OPEN_STATES),
            )
        return cur.rowcount

    def items(self, states: tuple[State, ...] | None = None, limit: int = 1000) -> list[QueueItem]:
        sql = f"SELECT {_COLUMNS} FROM queue"
        args: list[object] = []
        if states:
            sql += " WHERE state IN (" + ",".join("?" * len(states)) + ")"
            args.extend(s.value for s in states)
        sql += " ORDER BY priority, id LIMIT ?"
        args.append(limit)
        return [_item(r) for r in self._store.conn.execute(sql, args)]

    def get(self, item_id: int) -> QueueItem:
        r = self._store.conn.execute(f"SELECT {_COLUMNS} FROM queue WHERE id = ?", (item_id,)).fetchone()
        if r is None:
            raise NotFound(f"no queue item {item_id}")
        return _item(r)

    def claim(self, item_id: int, reviewer: str) -> QueueItem:
        now = self._clock_ms()
        with self._store.transaction() as c:
            cur = c.execute(
                "UPDATE queue SET state = ?, reviewer = ?, updated_at_ms = ? WHERE id = ? AND state = ?",
                (State.IN_REVIEW.value, reviewer, now, item_id, State.PENDING.value),
            )
            if cur.rowcount == 0:
                raise InvalidInput(f"queue item {item_id} is not pending ({self.get(item_id).state})")
        return self.get(item_id)

    def decide(self, item_id: int, reviewer: str, decision: State, reason: str = "") -> QueueItem:
        if decision not in DECISIONS:
            raise InvalidInput("a decision is actioned, dismissed or escalated")
        now = self._clock_ms()
        with self._store.transaction() as c:
            cur = c.execute(
                "UPDATE queue SET state = ?, reviewer = ?, reason = ?, updated_at_ms = ? WHERE id = ? AND state = ?",
                (decision.value, reviewer, reason, now, item_id, State.IN_REVIEW.value),
            )
            if cur.rowcount == 0:
                raise InvalidInput(f"queue item {item_id} must be claimed first ({self.get(item_id).state})")
        return self.get(item_id)

    def counts(self) -> dict[str, dict[int, int]]:
        """{state: {priority: count}}."""
        out: dict[str, dict[int, int]] = {}
        for state, priority, n in self._store.conn.execute(
            "SELECT state, priority, COUNT(*) FROM queue GROUP BY state, priority ORDER BY state, priority"
        ):
            out.setdefault(str(state), {})[int(priority)] = int(n)
        return out
