"""Prometheus metrics of the match service (its own registry, served at ``/metrics``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["MatchMetrics"]

_LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class MatchMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.lookups = Counter(
            "trustwire_match_lookups", "Lookups answered, by signal type and outcome (match/miss)",
            ["type", "outcome"], registry=r,
        )
        self.latency = Histogram(
            "trustwire_match_lookup_seconds", "Time to answer one lookup (after decoding), by signal type",
            ["type"], buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.suppressed = Counter(
            "trustwire_match_suppressed", "Matches withheld, by reason (allow_list/false_positive)",
            ["reason"], registry=r,
        )
        self.refused = Counter(
            "trustwire_match_refused", "Requests refused, by reason (tw-reason)", ["reason"], registry=r
        )
        self.index_size = Gauge(
            "trustwire_match_index_signals", "Matchable signals in memory, by type", ["type"], registry=r
        )
        self.allow_list_size = Gauge("trustwire_match_allow_list_entries", "Allow-list entries", registry=r)
        self.cursor = Gauge("trustwire_match_cursor", "Next ledger index the service will read", registry=r)
        self.head = Gauge("trustwire_match_head", "Size of the newest checkpoint the service verified", registry=r)
        self.lag = Gauge("trustwire_match_lag_entries", "Entries behind the exchange's checkpointed head", registry=r)
        self.ready = Gauge("trustwire_match_ready", "1 when caught up and following the exchange", registry=r)
        self.quarantined = Counter(
            "trustwire_match_quarantined", "Entries that failed verification while following", registry=r
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
