"""Review: a reviewer's decisions on queue items, and the outbox of opinions.

Deciding a claimed item records the decision and, when the policy's ``[feedback]
publish_on_decision`` is on (or ``publish=True``), the verdict to publish as a
signed opinion (actioned → true_positive, dismissed → false_positive) on every live
signal of the item's evidence; both commit together. The outbox is flushed now and retried on every sync until the exchange
has each opinion.
"""

from __future__ import annotations

import logging

from clients.builders import EntryBuilder
from clients.client import ExchangeClient
from clients.feedback import VERDICT_FOR_DECISION, Outbox
from clients.queue import ModerationQueue, QueueItem, State
from clients.routing import Router
from clients.store import MemberStore
from exchange.core.errors import InvalidValue, TrustwireError
from exchange.core.records import Receipt

__all__ = ["Review"]

log = logging.getLogger(__name__)


class Review:
    def __init__(
        self,
        client: ExchangeClient,
        builder: EntryBuilder,
        router: Router,
        store: MemberStore | None,
        queue: ModerationQueue | None,
        outbox: Outbox | None,
    ) -> None:
        self._client = client
        self._builder = builder
        self._router = router
        self._store = store
        self._queue = queue
        self._outbox = outbox

    def decide(
        self, item_id: int, reviewer: str, decision: State | str, reason: str = "", publish: bool | None = None
    ) -> QueueItem:
        """Record a reviewer's decision on a claimed queue item (and the opinion to send)."""
        if self._store is None or self._queue is None:
            raise InvalidValue("this needs a state file (MemberClient(state=...))")
        state = State(decision)
        fb = self._router.policy.feedback
        with self._store.transaction():
            item = self._queue.decide(item_id, reviewer, state, reason)
            verdict = VERDICT_FOR_DECISION.get(state)
            wanted = fb.publish_on_decision if publish is None else publish
            if verdict and wanted and self._outbox is not None:
                for publisher, signal_id in item.live_signals():  # every signal the content matched
                    if fb.on_own_signals or publisher != self._router.member_id:
                        self._outbox.want(publisher, signal_id, verdict, item_id=item.id)
        self.flush_quietly()
        return item

    def flush_quietly(self) -> int:
        """:meth:`flush`, logging (not raising) a transport error: the rows stay pending."""
        try:
            return self.flush()
        except TrustwireError as exc:
            log.warning("feedback opinions not published yet (will retry on the next sync): %s", exc.message)
            return 0

    def flush(self) -> int:
        """Sign and publish the opinions waiting in the outbox; returns how many the
        exchange accepted. Transport errors raise (the rows stay pending)."""
        if self._outbox is None:
            return 0
        sent = 0
        while True:
            rows = self._outbox.pending()
            if not rows:
                return sent
            envelopes = []
            for r in rows:
                env = r.envelope
                if env is None:
                    env = self._client.sign(self._builder.opinion(r.publisher, r.signal_id, r.verdict))
                    self._outbox.set_envelope(r.publisher, r.signal_id, env)
                envelopes.append(env)
            outcomes = self._client.publish_envelopes(envelopes)
            for r, o in zip(rows, outcomes, strict=True):
                if isinstance(o, Receipt):
                    self._outbox.mark_sent(r.publisher, r.signal_id, o.index)
                    sent += 1
                else:
                    self._outbox.mark_rejected(r.publisher, r.signal_id, f"{o.reason}: {o.message}")
                    log.warning("opinion on %s/%s rejected: %s", r.publisher, r.signal_id, o.reason)
