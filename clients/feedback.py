"""The feedback loop: reviewers' verdicts flow back to the coalition as signed opinions.

- Deciding a queue item through :meth:`clients.member.MemberClient.decide` records the
  decision and, when the policy's ``[feedback] publish_on_decision`` is on, an opinion
  to publish in the same transaction: ``actioned`` → ``true_positive``,
  ``dismissed`` → ``false_positive`` (``escalated`` is not a verdict).
- With ``publish_seen_on_match`` a first match of a signal the member has no opinion
  on yet queues ``seen``; ``seen`` never replaces a verdict.
- The :class:`Outbox` (table ``outbox`` in the state file) holds one row per signal:
  the latest verdict this member wants the coalition to see. The client signs it once,
  stores the envelope and sends it (right away, and again on every sync until the
  exchange has it); re-sending the same bytes returns the same receipt, so a crash
  between "sent" and "recorded" neither loses nor duplicates an opinion.
- The bank aggregates everyone's opinions per signal; policy rules use the counts
  (``min_false_positive = 2`` → ignore, for instance), and the publisher sees what the
  others said about its own signals with :func:`feedback_report`
  (``trustwire member feedback``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from clients.bank import Bank
from clients.queue import State
from clients.store import MemberStore

__all__ = ["Outbox", "OutboxRow", "OutboxState", "VERDICT_FOR_DECISION", "feedback_report"]

VERDICT_FOR_DECISION = {State.ACTIONED: "true_positive", State.DISMISSED: "false_positive"}


class OutboxState(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboxRow:
    publisher: str
    signal_id: str
    verdict: str
    item_id: int | None
    state: OutboxState
    envelope: bytes | None
    ledger_index: int | None
    error: str | None
    created_at_ms: int
    updated_at_ms: int


_COLUMNS = (
    "publisher, signal_id, verdict, item_id, state, envelope, ledger_index, error, created_at_ms, updated_at_ms"
)


def _row(r: tuple[object, ...]) -> OutboxRow:
    return OutboxRow(
        publisher=str(r[0]),
        signal_id=str(r[1]),
        verdict=str(r[2]),
        item_id=None if r[3] is None else int(r[3]),  # type: ignore[call-overload]
        state=OutboxState(str(r[4])),
        envelope=None if r[5] is None else bytes(r[5]),  # type: ignore[call-overload]
        ledger_index=None if r[6] is None else int(r[6]),  # type: ignore[call-overload]
        error=None if r[7] is None else str(r[7]),
        created_at_ms=int(r[8]),  # type: ignore[call-overload]
        updated_at_ms=int(r[9]),  # type: ignore[call-overload]
    )


class Outbox:
    def __init__(self, store: MemberStore, clock_ms: Callable[[], int] = lambda: int(time.time() * 1000)) -> None:
        self._store = store
        self._clock_ms = clock_ms

    def want(self, publisher: str, signal_id: str, verdict: str, item_id: int | None = None) -> bool:
        """Ask for ``verdict`` on a signal to be published; False if nothing changes
        (the same verdict is already wanted or sent, or ``seen`` after a verdict)."""
        now = self._clock_ms()
        with self._store.transaction() as c:
            old = c.execute(
                "SELECT verdict FROM outbox WHERE publisher = ? AND signal_id = ?", (publisher, signal_id)
            ).fetchone()
            if old is not None and (old[0] == verdict or verdict == "seen"):
                return False
            c.execute(
                f"INSERT INTO outbox ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, NULL, NULL, NULL, ?, ?)"
                " ON CONFLICT (publisher, signal_id) DO UPDATE SET verdict = excluded.verdict,"
                " item_id = excluded.item_id, state = excluded.state, envelope = NULL, ledger_index = NULL,"
                " error = NULL, updated_at_ms = excluded.updated_at_ms",
                (publisher, signal_id, verdict, item_id, OutboxState.PENDING.value, now, now),
            )
        return True

    def pending(self, limit: int = 500) -> list[OutboxRow]:
        return [
            _row(r)
            for r in self._store.conn.execute(
                f"SELECT {_COLUMNS} FROM outbox WHERE state = ? ORDER BY updated_at_ms, publisher, signal_id LIMIT ?",
                (OutboxState.PENDING.value, limit),
            )
        ]

    def set_envelope(self, publisher: str, signal_id: str, envelope: bytes) -> None:
        with self._store.transaction() as c:
            c.execute(
                "UPDATE outbox SET envelope = ? WHERE publisher = ? AND signal_id = ? AND envelope IS NULL",
                (envelope, publisher, signal_id),
            )

    def mark_sent(self, publisher: str, signal_id: str, ledger_index: int) -> None:
        with self._store.transaction() as c:
            c.execute(
                "UPDATE outbox SET state = ?, ledger_index = ?, error = NULL, updated_at_ms = ?"
                " WHERE publisher = ? AND signal_id = ?",
                (OutboxState.SENT.value, ledger_index, self._clock_ms(), publisher, signal_id),
            )

    def mark_rejected(self, publisher: str, signal_id: str, error: str) -> None:
        with self._store.transaction() as c:
            c.execute(
                "UPDATE outbox SET state = ?, error = ?, updated_at_ms = ? WHERE publisher = ? AND signal_id = ?",
                (OutboxState.REJECTED.value, error, self._clock_ms(), publisher, signal_id),
            )

    def rows(self) -> list[OutboxRow]:
        return [
            _row(r)
            for r in self._store.conn.execute(f"SELECT {_COLUMNS} FROM outbox ORDER BY publisher, signal_id")
        ]

    def get(self, publisher: str, signal_id: str) -> OutboxRow | None:
        r = self._store.conn.execute(
            f"SELECT {_COLUMNS} FROM outbox WHERE publisher = ? AND signal_id = ?", (publisher, signal_id)
        ).fetchone()
        return None if r is None else _row(r)


def feedback_report(bank: Bank, member_id: str) -> dict[str, object]:
    """Opinions the coalition published on ``member_id``'s signals, from the bank.

    ``{"member": …, "signals": [{signal_id, type, labels, live, counts: {verdict: n},
    by_member: {member: verdict}, last_index, last_at_ms}], "totals": {verdict: n},
    "by_member": {member: {verdict: n}}}``. The member's own opinions on its own
    signals are left out: feedback is what the others said.
    """
    signals = []
    totals: dict[str, int] = {}
    by_member: dict[str, dict[str, int]] = {}
    for entry in bank.feedback(member_id):
        others = {m: v for m, v in entry["by_member"].items() if m != member_id}  # type: ignore[attr-defined]
        if not others:
            continue
        counts: dict[str, int] = {}
        for m, v in others.items():
            counts[v] = counts.get(v, 0) + 1
            totals[v] = totals.get(v, 0) + 1
            per = by_member.setdefault(m, {})
            per[v] = per.get(v, 0) + 1
        signals.append({**entry, "counts": counts, "by_member": others})
    return {"member": member_id, "signals": signals, "totals": totals, "by_member": by_member}
