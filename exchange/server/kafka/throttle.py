"""Log lines that repeat while a fault lasts, throttled: the first one is written, then
at most one per interval, saying how many were held back."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

__all__ = ["Throttled"]


class Throttled:
    """One repeating log line (the message format identifies it)."""

    def __init__(self, logger: logging.Logger, interval_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._log = logger
        self._interval = interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def log(self, level: int, msg: str, *args: object) -> bool:
        """Log ``msg % args`` unless the same format was logged within the interval; True if written."""
        now = self._clock()
        with self._lock:
            last = self._last.get(msg)
            if last is not None and now - last < self._interval:
                self._held[msg] = self._held.get(msg, 0) + 1
                return False
            self._last[msg] = now
            held = self._held.pop(msg, 0)
        if held:
            self._log.log(level, msg + " (%d similar line(s) held back)", *args, held)
        else:
            self._log.log(level, msg, *args)
        return True
