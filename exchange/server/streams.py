"""Long-lived calls: caps on how many are open, and the pulse that wakes them.

A stream holds no thread (the server runs on ``grpc.aio``), but each one still
costs memory and a wake-up per checkpoint, so the exchange bounds them: per
authenticated principal, per connection, and, for the unauthenticated health and
reflection streams, per connection and overall. A refused stream fails
RESOURCE_EXHAUSTED with a message naming the cap and its setting.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from exchange.core.errors import ResourceExhausted

__all__ = ["Pulse", "StreamCaps", "StreamLimits"]


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamLimits:
    per_principal: int = 64
    per_connection: int = 128
    unauthenticated: int = 64
    unauthenticated_per_connection: int = 8


class StreamCaps:
    """Counts open streams by principal, by connection, and unauthenticated ones."""

    def __init__(self, limits: StreamLimits) -> None:
        self.limits = limits
        self._lock = threading.Lock()
        self._principals: Counter[str] = Counter()
        self._connections: Counter[str] = Counter()
        self._anonymous: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()  # cap name -> streams refused
        self.last_refused_s: dict[str, float] = {}  # cap name -> when (unix seconds)

    def _refuse(self, cap: str, message: str) -> None:
        self.refused[cap] += 1
        self.last_refused_s[cap] = time.time()
        raise ResourceExhausted(message)

    @contextmanager
    def member_stream(self, principal: str, connection: str) -> Iterator[None]:
        """Hold one authenticated stream slot for the ``with`` block."""
        lim = self.limits
        with self._lock:
            if self._principals[principal] >= lim.per_principal:
                self._refuse("principal", f"too many open streams for this principal (stream cap {lim.per_principal},"
                              " setting streams_per_principal); close one first")
            if self._connections[connection] >= lim.per_connection:
                self._refuse("connection", f"too many open streams on this connection (stream cap"
                              f" {lim.per_connection}, setting streams_per_connection)")
            self._principals[principal] += 1
            self._connections[connection] += 1
        try:
            yield
        finally:
            with self._lock:
                self._principals[principal] -= 1
                self._connections[connection] -= 1
                if not self._principals[principal]:
                    del self._principals[principal]
                if not self._connections[connection]:
                    del self._connections[connection]

    def take_anonymous(self, connection: str) -> None:
        """Take one unauthenticated (health, reflection) stream slot; see :meth:`release_anonymous`."""
        lim = self.limits
        with self._lock:
            if sum(self._anonymous.values()) >= lim.unauthenticated:
                self._refuse("unauthenticated", f"too many unauthenticated streams (cap {lim.unauthenticated},"
                              " setting unauthenticated_streams)")
            if self._anonymous[connection] >= lim.unauthenticated_per_connection:
                self._refuse("unauthenticated_connection", "too many unauthenticated streams on this connection"
                              f" (cap {lim.unauthenticated_per_connection}, setting"
                              " unauthenticated_streams_per_connection)")
            self._anonymous[connection] += 1

    def release_anonymous(self, connection: str) -> None:
        with self._lock:
            self._anonymous[connection] -= 1
            if self._anonymous[connection] <= 0:
                del self._anonymous[connection]

    def open_counts(self) -> dict[str, int]:
        """Open streams: authenticated and unauthenticated (metrics, ``ops top``)."""
        with self._lock:
            return {"member": sum(self._principals.values()), "unauthenticated": sum(self._anonymous.values())}


class Pulse:
    """Wakes every waiting stream when the log grows (a new checkpoint) or the key
    directory changes. :meth:`fire` may be called from any thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._event = asyncio.Event()

    def fire(self) -> None:
        try:
            self._loop.call_soon_threadsafe(self._fire)
        except RuntimeError:  # the loop has closed: the server is stopping
            pass

    def _fire(self) -> None:
        event, self._event = self._event, asyncio.Event()
        event.set()

    async def wait(self, timeout: float) -> None:
        """Return at the next pulse, or after ``timeout`` seconds."""
        try:
            async with asyncio.timeout(timeout):  # a timer, not a task per wait
                await self._event.wait()
        except TimeoutError:
            pass
