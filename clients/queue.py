"""The moderation queue (SQLite): one item per (content, signal) the policy selected.

States: ``pending`` → ``in_review`` (claimed by a reviewer) → ``actioned`` /
``dismissed`` / ``escalated``. An escalated item can be claimed again (by a senior
reviewer) and decided; a claimed item can be released back to ``pending``.
``withdrawn`` marks items whose signal was retracted or expired before anyone
decided; ``auto_actioned`` items were handled by the member's hook. Enqueueing the
same (content, signal) twice is a no-op.

One piece of content is one open item: a second signal matching content that already
has an open item (a file's md5 and its sha256, say) is added to that item's
``evidence`` (its priority becomes the more urgent of the two) instead of making a
second item. Withdrawing a signal withdraws an open item only once none of its
evidence is live; deciding it sends the verdict on every live signal of its evidence.

Every item keeps its reviewer, reason and timestamps (created, claimed, decided,
last update), and every transition is appended to ``queue_events``
(:meth:`ModerationQueue.history`, :meth:`ModerationQueue.events` for every reviewer).

Claims are owned: while an item is ``in_review`` only the reviewer who claimed it
can decide or release it, and a second claim fails; each of these raises
:class:`~exchange.core.errors.ClaimedByOther` naming the owner. A lead takes an
abandoned claim back with ``release(..., force=True)``, which the history records.
:meth:`ModerationQueue.page` lists items by priority with filters
(:class:`QueueFilter`) and paging. Deciding through
:meth:`clients.member.MemberClient.decide` also publishes the reviewer's verdict as a
signed opinion when the policy's ``[feedback]`` settings say so.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from clients.bank import Match
from clients.policy import Action, Decision
from clients.store import MemberStore
from exchange.core.errors import ClaimedByOther, InvalidInput, NotFound

__all__ = ["Evidence", "ModerationQueue", "QueueEvent", "QueueFilter", "QueueItem", "QueuePage", "State"]


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
class Evidence:
    """One signal an item's content matched."""

    publisher: str
    signal_id: str
    signal_index: int
    type: str
    distance: int
    withdrawn: bool = False


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
    claimed_at_ms: int | None = None
    decided_at_ms: int | None = None
    evidence: tuple[Evidence, ...] = ()  # every signal the content matched, this item's own first

    def live_signals(self) -> list[tuple[str, str]]:
        """(publisher, signal_id) of the evidence not withdrawn (the item's own signal for an older item)."""
        found = [(e.publisher, e.signal_id) for e in self.evidence if not e.withdrawn]
        return found if self.evidence else [(self.publisher, self.signal_id)]


_COLUMNS = (
    "id, content_ref, publisher, signal_id, signal_idx, type, distance, priority, rule, labels, state,"
    " created_at_ms, updated_at_ms, reviewer, reason, claimed_at_ms, decided_at_ms"
)


def _item(r: tuple[object, ...], evidence: tuple[Evidence, ...] = ()) -> QueueItem:
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
        claimed_at_ms=None if r[15] is None else int(r[15]),  # type: ignore[call-overload]
        decided_at_ms=None if r[16] is None else int(r[16]),  # type: ignore[call-overload]
        evidence=evidence,
    )


_EVIDENCE = "publisher, signal_id, signal_idx, type, distance, withdrawn"
_OPEN = ",".join("?" * len(OPEN_STATES))


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueEvent:
    item_id: int
    at_ms: int
    state: State
    reviewer: str | None
    reason: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueFilter:
    """What a reviewer narrows the queue to; empty fields do not filter."""

    states: tuple[State, ...] = ()
    type: str | None = None
    label: str | None = None
    publisher: str | None = None
    group: str | None = None
    min_age_ms: int | None = None
    max_age_ms: int | None = None

    def where(self, now_ms: int) -> tuple[str, list[object]]:
        """The SQL condition on ``queue`` and its arguments."""
        conds: list[str] = []
        args: list[object] = []
        if self.states:
            conds.append("state IN (" + ",".join("?" * len(self.states)) + ")")
            args.extend(s.value for s in self.states)
        for column, value in (("type", self.type), ("publisher", self.publisher)):
            if value:  # the item's own signal or any of its evidence
                conds.append(f"({column} = ? OR EXISTS (SELECT 1 FROM queue_evidence e"
                             f" WHERE e.item_id = queue.id AND e.{column} = ?))")
                args.extend((value, value))
        if self.label:
            conds.append("EXISTS (SELECT 1 FROM json_each(queue.labels) WHERE value = ?)")
            args.append(self.label)
        if self.group:
            conds.append(
                "EXISTS (SELECT 1 FROM signals s, json_each(s.groups) g WHERE g.value = ? AND"
                " ((s.publisher = queue.publisher AND s.signal_id = queue.signal_id) OR EXISTS (SELECT 1 FROM"
                " queue_evidence e WHERE e.item_id = queue.id AND e.publisher = s.publisher"
                " AND e.signal_id = s.signal_id)))"
            )
            args.append(self.group)
        if self.min_age_ms is not None:
            conds.append("created_at_ms <= ?")
            args.append(now_ms - self.min_age_ms)
        if self.max_age_ms is not None:
            conds.append("created_at_ms >= ?")
            args.append(now_ms - self.max_age_ms)
        return (" WHERE " + " AND ".join(conds)) if conds else "", args


@dataclass(frozen=True, slots=True, kw_only=True)
class QueuePage:
    items: tuple[QueueItem, ...]
    total: int
    offset: int
    limit: int


class ModerationQueue:
    def __init__(self, store: MemberStore, clock_ms: Callable[[], int] = lambda: int(time.time() * 1000)) -> None:
        self._store = store
        self._clock_ms = clock_ms

    def enqueue(self, match: Match, decision: Decision) -> bool:
        """Add an item for a policy decision; False if it was already queued. An item
        withdrawn earlier (its signal retracted, expired or rewritten by a stolen key) is
        opened again: the match is live once more (a compromise undone, say)."""
        if decision.action is Action.IGNORE:
            return False
        state = State.AUTO_ACTIONED if decision.action is Action.AUTO_ACTION else State.PENDING
        now = self._clock_ms()
        s = match.signal
        with self._store.transaction() as c:
            if state is State.PENDING and self._add_evidence(c, match, decision, now):
                return False
            row = c.execute(
                f"INSERT INTO queue ({_COLUMNS}) VALUES (NULL,?,?,?,?,?,?,?,?,?,?,?,?,NULL,NULL,NULL,NULL)"
                " ON CONFLICT (content_ref, publisher, signal_id) DO UPDATE SET state = excluded.state,"
                " signal_idx = excluded.signal_idx, reason = NULL, reviewer = NULL, claimed_at_ms = NULL,"
                " updated_at_ms = excluded.updated_at_ms"
                f" WHERE queue.state = '{State.WITHDRAWN.value}' RETURNING id",
                (
                    match.content_ref, s.publisher, s.signal_id, s.index, s.type, match.distance,
                    decision.priority, decision.rule, json.dumps(list(s.labels)), state.value, now, now,
                ),
            ).fetchone()
            if row is not None:
                self._event(c, int(row[0]), now, state, None, f"rule {decision.rule}")
                self._evidence_row(c, int(row[0]), match)
        return row is not None

    @staticmethod
    def _evidence_row(c: Any, item_id: int, match: Match) -> bool:
        s = match.signal
        return bool(c.execute(
            f"INSERT INTO queue_evidence ({_EVIDENCE}, item_id) VALUES (?,?,?,?,?,0,?) ON CONFLICT DO NOTHING",
            (s.publisher, s.signal_id, s.index, s.type, match.distance, item_id),
        ).rowcount)

    def _add_evidence(self, c: Any, match: Match, decision: Decision, now: int) -> bool:
        """Add a match to the open item of its content, if there is one; True if the
        match is on that item (already or now)."""
        s = match.signal
        if c.execute("SELECT 1 FROM queue WHERE content_ref = ? AND publisher = ? AND signal_id = ?",
                     (match.content_ref, s.publisher, s.signal_id)).fetchone():
            return False  # an item of its own (maybe decided): the insert is a no-op
        row = c.execute(
            f"SELECT id, state FROM queue WHERE content_ref = ? AND state IN ({_OPEN}) ORDER BY id LIMIT 1",
            (match.content_ref, *OPEN_STATES),
        ).fetchone()
        if row is None:
            return False
        item_id = int(row[0])
        if not c.execute("SELECT 1 FROM queue_evidence WHERE item_id = ?", (item_id,)).fetchone():
            first = self.get(item_id)  # an item from before evidence was kept: its own signal first
            c.execute(f"INSERT INTO queue_evidence ({_EVIDENCE}, item_id) VALUES (?,?,?,?,?,0,?)",
                      (first.publisher, first.signal_id, first.signal_index, first.type, first.distance, item_id))
        if self._evidence_row(c, item_id, match):
            c.execute("UPDATE queue SET priority = MIN(priority, ?), updated_at_ms = ? WHERE id = ?",
                      (decision.priority, now, item_id))
            self._event(c, item_id, now, State(str(row[1])), None,
                        f"evidence added: {s.type} {s.publisher}/{s.signal_id} (rule {decision.rule})")
        return True

    @staticmethod
    def _event(c: Any, item_id: int, at_ms: int, state: State, reviewer: str | None, reason: str | None) -> None:
        c.execute("INSERT INTO queue_events VALUES (?, ?, ?, ?, ?)", (item_id, at_ms, state.value, reviewer, reason))

    def withdraw(self, publisher: str, signal_id: str, reason: str) -> int:
        """Withdraw a retracted or expired signal from the open items it is evidence of;
        returns how many items were withdrawn (those left with no live evidence)."""
        now = self._clock_ms()
        withdrawn = 0
        with self._store.transaction() as c:
            rows = c.execute(
                f"SELECT id, state FROM queue WHERE state IN ({_OPEN}) AND ((publisher = ? AND signal_id = ?)"
                " OR id IN (SELECT item_id FROM queue_evidence WHERE publisher = ? AND signal_id = ?))",
                (*OPEN_STATES, publisher, signal_id, publisher, signal_id),
            ).fetchall()
            for item_id, state in rows:
                c.execute("UPDATE queue_evidence SET withdrawn = 1 WHERE item_id = ? AND publisher = ? AND signal_id = ?",
                          (item_id, publisher, signal_id))
                if c.execute("SELECT 1 FROM queue_evidence WHERE item_id = ? AND withdrawn = 0", (item_id,)).fetchone():
                    self._event(c, int(item_id), now, State(str(state)), None,
                                f"evidence {publisher}/{signal_id} withdrawn: {reason}")
                    continue
                c.execute("UPDATE queue SET state = ?, reason = ?, updated_at_ms = ? WHERE id = ?",
                          (State.WITHDRAWN.value, reason, now, item_id))
                self._event(c, int(item_id), now, State.WITHDRAWN, None, reason)
                withdrawn += 1
        return withdrawn

    def _with_evidence(self, rows: list[tuple[object, ...]]) -> list[QueueItem]:
        """Items of ``queue`` rows with their evidence (one query)."""
        found: dict[int, list[Evidence]] = {}
        ids = [int(r[0]) for r in rows]  # type: ignore[call-overload]
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            for item_id, pub, sid, idx, typ, dist, gone in self._store.conn.execute(
                f"SELECT item_id, {_EVIDENCE} FROM queue_evidence WHERE item_id IN ({','.join('?' * len(chunk))})"
                " ORDER BY rowid", chunk,
            ):
                found.setdefault(int(item_id), []).append(Evidence(
                    publisher=str(pub), signal_id=str(sid), signal_index=int(idx), type=str(typ),
                    distance=int(dist), withdrawn=bool(gone)))
        return [_item(r, tuple(found.get(i, ()))) for r, i in zip(rows, ids, strict=True)]

    def items(self, states: tuple[State, ...] | None = None, limit: int = 1000) -> list[QueueItem]:
        sql = f"SELECT {_COLUMNS} FROM queue"
        args: list[object] = []
        if states:
            sql += " WHERE state IN (" + ",".join("?" * len(states)) + ")"
            args.extend(s.value for s in states)
        sql += " ORDER BY priority, id LIMIT ?"
        args.append(limit)
        return self._with_evidence(list(self._store.conn.execute(sql, args)))

    def get(self, item_id: int) -> QueueItem:
        r = self._store.conn.execute(f"SELECT {_COLUMNS} FROM queue WHERE id = ?", (item_id,)).fetchone()
        if r is None:
            raise NotFound(f"no queue item {item_id}")
        return self._with_evidence([r])[0]

    def _owned_elsewhere(self, item_id: int, reviewer: str) -> None:
        """Raise ClaimedByOther if another reviewer holds the item's claim."""
        item = self.get(item_id)
        if item.state is State.IN_REVIEW and item.reviewer != reviewer:
            raise ClaimedByOther(f"queue item {item_id} is claimed by {item.reviewer}")

    def claim(self, item_id: int, reviewer: str) -> QueueItem:
        """pending (or escalated) → in_review, by ``reviewer``; claiming one's own
        claim again is a no-op, another reviewer's raises ClaimedByOther."""
        if not reviewer:
            raise InvalidInput("a claim needs a reviewer")
        now = self._clock_ms()
        with self._store.transaction() as c:
            cur = c.execute(
                "UPDATE queue SET state = ?, reviewer = ?, claimed_at_ms = ?, updated_at_ms = ?"
                " WHERE id = ? AND state IN (?, ?)",
                (State.IN_REVIEW.value, reviewer, now, now, item_id, State.PENDING.value, State.ESCALATED.value),
            )
            if cur.rowcount == 0:
                self._owned_elsewhere(item_id, reviewer)
                item = self.get(item_id)
                if item.state is State.IN_REVIEW:
                    return item
                raise InvalidInput(f"queue item {item_id} is not pending ({item.state})")
            self._event(c, item_id, now, State.IN_REVIEW, reviewer, None)
        return self.get(item_id)

    def release(self, item_id: int, reviewer: str, force: bool = False) -> QueueItem:
        """in_review → pending: the owner gives the item back, or (``force``) a lead
        takes back another reviewer's claim."""
        now = self._clock_ms()
        with self._store.transaction() as c:
            owner = self.get(item_id).reviewer
            if not force:
                self._owned_elsewhere(item_id, reviewer)
            cur = c.execute(
                "UPDATE queue SET state = ?, updated_at_ms = ? WHERE id = ? AND state = ?",
                (State.PENDING.value, now, item_id, State.IN_REVIEW.value),
            )
            if cur.rowcount == 0:
                raise InvalidInput(f"queue item {item_id} is not in review ({self.get(item_id).state})")
            reason = "released" if owner == reviewer else f"released (claim of {owner} taken back)"
            self._event(c, item_id, now, State.PENDING, reviewer, reason)
        return self.get(item_id)

    def decide(self, item_id: int, reviewer: str, decision: State, reason: str = "") -> QueueItem:
        """in_review → actioned / dismissed / escalated, by the reviewer who claimed
        it, with a reason."""
        if decision not in DECISIONS:
            raise InvalidInput("a decision is actioned, dismissed or escalated")
        if not reviewer:
            raise InvalidInput("a decision needs a reviewer")
        now = self._clock_ms()
        with self._store.transaction() as c:
            cur = c.execute(
                "UPDATE queue SET state = ?, reviewer = ?, reason = ?, decided_at_ms = ?, updated_at_ms = ?"
                " WHERE id = ? AND state = ? AND reviewer = ?",
                (decision.value, reviewer, reason, now, now, item_id, State.IN_REVIEW.value, reviewer),
            )
            if cur.rowcount == 0:
                self._owned_elsewhere(item_id, reviewer)
                raise InvalidInput(f"queue item {item_id} must be claimed first ({self.get(item_id).state})")
            self._event(c, item_id, now, decision, reviewer, reason or None)
        return self.get(item_id)

    def history(self, item_id: int) -> list[QueueEvent]:
        """Every transition of an item, oldest first."""
        return [
            QueueEvent(item_id=int(i), at_ms=int(at), state=State(str(st)), reviewer=rv, reason=rs)
            for i, at, st, rv, rs in self._store.conn.execute(
                "SELECT item_id, at_ms, state, reviewer, reason FROM queue_events WHERE item_id = ? ORDER BY rowid",
                (item_id,),
            )
        ]

    def events(self, reviewer: str | None = None, offset: int = 0, limit: int = 100) -> list[QueueEvent]:
        """Every reviewer's transitions (or one reviewer's), newest first."""
        sql = "SELECT item_id, at_ms, state, reviewer, reason FROM queue_events"
        args: list[object] = []
        if reviewer is not None:
            sql += " WHERE reviewer = ?"
            args.append(reviewer)
        sql += " ORDER BY rowid DESC LIMIT ? OFFSET ?"
        args += [limit, offset]
        return [
            QueueEvent(item_id=int(i), at_ms=int(at), state=State(str(st)), reviewer=rv, reason=rs)
            for i, at, st, rv, rs in self._store.conn.execute(sql, args)
        ]

    def page(self, where: QueueFilter = QueueFilter(), offset: int = 0, limit: int = 50) -> QueuePage:
        """Items matching ``where`` by priority (then age), ``limit`` from ``offset``."""
        if offset < 0 or not 0 < limit <= 1000:
            raise InvalidInput("paging needs offset >= 0 and 0 < limit <= 1000")
        cond, args = where.where(self._clock_ms())
        total = int(self._store.conn.execute(f"SELECT COUNT(*) FROM queue{cond}", args).fetchone()[0])
        rows = self._store.conn.execute(
            f"SELECT {_COLUMNS} FROM queue{cond} ORDER BY priority, id LIMIT ? OFFSET ?", [*args, limit, offset]
        )
        return QueuePage(items=tuple(self._with_evidence(list(rows))), total=total, offset=offset, limit=limit)

    def for_content(self, content_ref: str) -> list[QueueItem]:
        """Every item about one piece of content: each signal it matched."""
        rows = self._store.conn.execute(
            f"SELECT {_COLUMNS} FROM queue WHERE content_ref = ? ORDER BY priority, id", (content_ref,)
        )
        return self._with_evidence(list(rows))

    def facets(self) -> dict[str, list[str]]:
        """The types, publishers, labels and sharing groups present in the queue, for filter menus."""
        c = self._store.conn
        return {
            "type": [str(r[0]) for r in c.execute("SELECT DISTINCT type FROM queue ORDER BY 1")],
            "publisher": [str(r[0]) for r in c.execute("SELECT DISTINCT publisher FROM queue ORDER BY 1")],
            "label": [
                str(r[0])
                for r in c.execute("SELECT DISTINCT j.value FROM queue, json_each(queue.labels) j ORDER BY 1")
            ],
            "group": [
                str(r[0])
                for r in c.execute(
                    "SELECT DISTINCT g.value FROM queue q JOIN signals s ON s.publisher = q.publisher"
                    " AND s.signal_id = q.signal_id, json_each(s.groups) g ORDER BY 1"
                )
            ],
        }

    def counts(self) -> dict[str, dict[int, int]]:
        """{state: {priority: count}}."""
        out: dict[str, dict[int, int]] = {}
        for state, priority, n in self._store.conn.execute(
            "SELECT state, priority, COUNT(*) FROM queue GROUP BY state, priority ORDER BY state, priority"
        ):
            out.setdefault(str(state), {})[int(priority)] = int(n)
        return out
