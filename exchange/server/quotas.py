"""Per-member publish quotas: a token bucket of entries per second, and a batch size.

Each member has ``rate`` entries/s refilled into a bucket of ``burst`` entries. A
batch takes as many tokens as it has envelopes, all or nothing; when the bucket is
short the whole call is refused with RESOURCE_EXHAUSTED and the time after which
it would fit (``retry-after-ms``), before any work is done.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from exchange.core.errors import BatchTooLarge, ConfigError, QuotaExceeded

__all__ = ["Quota", "Quotas", "READS", "ReadQuotas", "parse_overrides"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Quota:
    rate: float  # entries per second
    burst: int  # bucket size (entries)
    max_batch: int  # envelopes per Publish call


def parse_overrides(specs: Sequence[str]) -> dict[str, Quota]:
    """``member:rate:burst:max_batch`` strings (from settings) → quotas."""
    out: dict[str, Quota] = {}
    for spec in specs:
        parts = spec.split(":")
        try:
            member, rate, burst, max_batch = parts[0], float(parts[1]), int(parts[2]), int(parts[3])
        except (IndexError, ValueError) as exc:
            raise ConfigError(f"a quota override is member:rate:burst:max_batch, got {spec!r}") from exc
        if len(parts) != 4 or rate <= 0 or burst < 1 or max_batch < 1:
            raise ConfigError(f"quota override {spec!r} needs rate > 0, burst >= 1, max_batch >= 1")
        out[member] = Quota(rate=rate, burst=burst, max_batch=max_batch)
    return out


class Quotas:
    def __init__(self, default: Quota, overrides: dict[str, Quota], clock_s: Callable[[], float]) -> None:
        self._default = default
        self._overrides = overrides
        self._clock_s = clock_s
        self._buckets: dict[str, tuple[float, float]] = {}  # principal -> (tokens, at)
        self._lock = threading.Lock()

    def quota(self, principal: str) -> Quota:
        return self._overrides.get(principal, self._default)

    def take(self, principal: str, entries: int) -> None:
        """Charge ``entries`` to the principal, or raise without charging anything."""
        q = self.quota(principal)
        if entries > q.max_batch:
            raise BatchTooLarge(f"batch of {entries} envelopes exceeds the limit of {q.max_batch}; split it")
        with self._lock:
            now = self._clock_s()
            tokens, at = self._buckets.get(principal, (float(q.burst), now))
            tokens = min(float(q.burst), tokens + (now - at) * q.rate)
            if tokens < entries:
                wait_ms = math.ceil((entries - tokens) / q.rate * 1000)
                self._buckets[principal] = (tokens, now)
                raise QuotaExceeded(
                    f"publish quota of {q.rate:g} entries/s (burst {q.burst}) exceeded; retry in {wait_ms} ms",
                    retry_after_ms=wait_ms,
                )
            self._buckets[principal] = (tokens - entries, now)


READS = ("subscribe", "proof", "all_entries")
"""Read kinds with a quota: Subscribe starts, inclusion/consistency proofs, GetAllEntries pages."""


class ReadQuotas:
    """Per-principal token buckets for reads, one bucket per kind in :data:`READS`.

    ``limits[kind]`` is ``(rate per second, burst)``. A read that finds its bucket
    empty is refused with RESOURCE_EXHAUSTED and ``retry-after-ms`` before any work.
    """

    def __init__(self, limits: dict[str, tuple[float, int]], clock_s: Callable[[], float]) -> None:
        for kind, (rate, burst) in limits.items():
            if kind not in READS or rate <= 0 or burst < 1:
                raise ConfigError(f"read quota {kind}: needs a known kind, rate > 0 and burst >= 1")
        self._limits = limits
        self._clock_s = clock_s
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, principal: str, kind: str) -> None:
        rate, burst = self._limits[kind]
        with self._lock:
            now = self._clock_s()
            tokens, at = self._buckets.get((principal, kind), (float(burst), now))
            tokens = min(float(burst), tokens + (now - at) * rate)
            if tokens < 1:
                wait_ms = math.ceil((1 - tokens) / rate * 1000)
                self._buckets[(principal, kind)] = (tokens, now)
                raise QuotaExceeded(
                    f"{kind.replace('_', ' ')} quota of {rate:g}/s (burst {burst}) exceeded; retry in {wait_ms} ms",
                    retry_after_ms=wait_ms,
                )
            self._buckets[(principal, kind)] = (tokens - 1, now)
