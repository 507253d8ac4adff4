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


class RejectionLog:
    def __init__(self, capacity: int = 10_000, clock_ms: Callable[[], int] = lambda: int(time.time() * 1000)) -> None:
        self._events: deque[Rejection] = deque(maxlen=capacity)
        self._lock = threading.Lock()
        self._clock_ms = clock_ms
        self.totals: Counter[tuple[str, str]] = Counter()  # (member, reason) -> envelopes
        self._listeners: list[Callable[[Rejection], None]] = []

    def subscribe(self, listener: Callable[[Rejection], None]) -> None:
        self._listeners.append(listener)

    def record(self, member: str, method: str, status: str, reason: str, count: int = 1) -> Rejection:
        event = Rejection(
            at_ms=self._clock_ms(), member=member, method=method, status=status, reason=reason,
            correlation_id=uuid.uuid4().hex[:16], count=count,
        )
        with self._lock:
            self._events.append(event)
            self.totals[(member, reason)] += count
        log.info(
            "rejected %s from %s in %s (%s, %d envelope(s), correlation id %s)",
            event.reason, event.member, event.method, event.status, event.count, event.correlation_id,
            extra={"rejection": asdict(event)},
        )
        for listener in self._listeners:
            listener(event)
        return event

    def since(self, at_ms: int, limit: int = 1000) -> list[Rejection]:
        with self._lock:
            return [e for e in self._events if e.at_ms >= at_ms][-limit:]
