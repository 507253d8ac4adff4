"""Routing a match: the member's policy decides, the queue records, the outbox
notes a ``seen`` opinion when the policy wants one, and an auto-action hook runs."""

from __future__ import annotations

from collections.abc import Callable

from clients.bank import VERDICTS, Bank, Match
from clients.feedback import Outbox
from clients.policy import Action, Decision, MatchFacts, Policy
from clients.queue import ModerationQueue
from exchange.core.errors import InvalidValue

__all__ = ["Router"]


class Router:
    def __init__(
        self,
        member_id: str,
        policy: Policy,
        bank: Bank | None,
        queue: ModerationQueue | None,
        outbox: Outbox | None,
        on_auto_action: Callable[[Match, Decision], None] | None = None,
    ) -> None:
        self.member_id = member_id
        self.policy = policy
        self._bank = bank
        self._queue = queue
        self._outbox = outbox
        self.on_auto_action = on_auto_action

    def facts(self, match: Match) -> MatchFacts:
        """What the policy sees of a match: the signal and what members said of it."""
        s = match.signal
        counts = self._bank.opinion_counts(s.publisher, s.signal_id) if self._bank else {}
        return MatchFacts.of(s, {VERDICTS.get(v, str(v)): n for v, n in counts.items()}, match.distance)

    def route(self, match: Match) -> int:
        """Apply the policy to one match; 1 if a new queue item was written."""
        if self._queue is None:
            raise InvalidValue("this needs a state file (MemberClient(state=...))")
        decision = self.policy.decide(self.facts(match))
        added = self._queue.enqueue(match, decision)
        if added and decision.action is Action.AUTO_ACTION and self.on_auto_action is not None:
            self.on_auto_action(match, decision)
        fb = self.policy.feedback
        s = match.signal
        if fb.publish_seen_on_match and self._outbox is not None and (fb.on_own_signals or s.publisher != self.member_id):
            self._outbox.want(s.publisher, s.signal_id, "seen")
        return int(added)

    def decide_and_route(self, match: Match) -> tuple[Match, Decision]:
        """Route a match and return it with the policy's decision (for the caller's report)."""
        decision = self.policy.decide(self.facts(match))
        self.route(match)
        return match, decision
