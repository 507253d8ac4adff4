"""Rejections as structured events, so operators can explain every one.

Each event carries the time, the member, the gRPC status, the stable reason and a
correlation id, never the payload nor any value or identifier from it. Events go
to the ``trustwire.rejections`` logger and into a bounded in-memory ring that the
operator tools read.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import asdict, dataclass

__all__ = ["Rejection", "RejectionLog"]

log = logging.getLogger("trustwire.rejections")


@dataclass(frozen=True, slots=True, kw_only=True)
class Rejection:
    at_ms: int
    member: str
    method: str
    status: str
    reason: str
    correlation_id: str
    count: int = 1  # envelopes in the call that got this reason


UNAUTHENTICATED = "-"
"""The member column of a rejection whose caller was never authenticated."""


class RejectionLog:
    """Bounded rejection records: a ring per authenticated member, and a separate,
    sampled ring for unauthenticated callers, so noise from the internet never evicts a
    member's real rejections. Every rejection is counted in :attr:`totals`."""

    def __init__(
        self,
        per_member: int = 1_000,
        clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
        *,
        unauthenticated_capacity: int = 1_000,
        unauthenticated_samples_per_s: int = 20,
    ) -> None:
        self._per_member = per_member
        self._members: dict[str, deque[Rejection]] = {}
        self._anonymous: deque[Rejection] = deque(maxlen=unauthenticated_capacity)
        self._sample_rate = unauthenticated_samples_per_s
        self._sample_window = (0, 0)  # (second, samples kept in it)
        self._lock = threading.Lock()
        self._clock_ms = clock_ms
        self.totals: Counter[tuple[str, str]] = Counter()  # (member, reason) -> envelopes
        self._listeners: list[Callable[[Rejection], None]] = []

    def subscribe(self, listener: Callable[[Rejection], None]) -> None:
        self._listeners.append(listener)

    def record(
        self, member: str, method: str, status: str, reason: str, count: int = 1, *, authenticated: bool = True
    ) -> Rejection:
        """Record a rejection; an unauthenticated one is counted, and kept (and logged)
        only as a sample of at most ``unauthenticated_samples_per_s`` a second."""
        event = Rejection(
            at_ms=self._clock_ms(), member=member if authenticated else UNAUTHENTICATED, method=method,
            status=status, reason=reason, correlation_id=uuid.uuid4().hex[:16], count=count,
        )
        with self._lock:
            self.totals[(event.member, reason)] += count
            keep = True
            if authenticated:
                ring = self._members.get(member)
                if ring is None:
                    ring = self._members[member] = deque(maxlen=self._per_member)
                ring.append(event)
            else:
                second, kept = self._sample_window
                if event.at_ms // 1000 != second:
                    second, kept = event.at_ms // 1000, 0
                keep = kept < self._sample_rate
                self._sample_window = (second, kept + keep)
                if keep:
                    self._anonymous.append(event)
        if keep:
            log.info(
                "rejected %s from %s in %s (%s, %d envelope(s), correlation id %s)",
                event.reason, event.member, event.method, event.status, event.count, event.correlation_id,
                extra={"rejection": asdict(event)},
            )
        for listener in self._listeners:
            listener(event)
        return event

    def since(self, at_ms: int, limit: int = 1000) -> list[Rejection]:
        """Kept records from ``at_ms`` on, oldest first, the newest ``limit`` of them."""
        with self._lock:
            rings = [*self._members.values(), self._anonymous]
            events = [e for ring in rings for e in ring if e.at_ms >= at_ms]
        events.sort(key=lambda e: e.at_ms)
        return events[-limit:]
