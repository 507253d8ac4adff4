"""What a part of the exchange reports of itself at scrape time (an engine's own
figures): the value type and the protocol, apart from the Prometheus side
(:mod:`exchange.server.metrics`) so that a ledger can report without importing it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

__all__ = ["EngineMetricsSource", "EngineSample"]


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineSample:
    """One value an engine reports, exported as ``trustwire_engine_<name>``."""

    name: str  # lowercase [a-z0-9_]; counters end in _total
    value: float
    kind: Literal["gauge", "counter"] = "gauge"
    help: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)


@runtime_checkable
class EngineMetricsSource(Protocol):
    """A stream engine (or any part of it) that reports its own figures at scrape time.

    The Kafka engine implements this (producer, consumer, sequencer identity and
    failovers; the names it should use are in ``exchange.server.metrics.ENGINE_METRICS``). Called from the
    scrape thread: return quickly and never raise for a figure you do not have.
    """

    def engine_metrics(self) -> Iterable[EngineSample]: ...
