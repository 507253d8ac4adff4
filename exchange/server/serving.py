"""What the serving layer tells operators: stream counts and caps, witness health.

One source for both views: Prometheus figures (``trustwire_streams_*``,
``trustwire_witness_*``) and ``ops status`` / ``ops top`` alerts (``witness-down``,
``streams-refused``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from exchange.server.checkpoints import WitnessState
from exchange.server.metrics import EngineSample
from exchange.server.operator_service import WARNING, Alert
from exchange.server.streams import StreamCaps

__all__ = ["ServingFigures"]


class ServingFigures:
    def __init__(self, caps: StreamCaps, witnesses: Callable[[], list[WitnessState]]) -> None:
        self._caps = caps
        self._witnesses = witnesses

    def engine_metrics(self) -> Iterable[EngineSample]:
        """Samples in the EngineMetricsSource shape (exported without the engine prefix)."""
        for kind, n in self._caps.open_counts().items():
            yield EngineSample(name="streams_open", value=n, labels={"kind": kind})
        for cap, n in sorted(self._caps.refused.items()):
            yield EngineSample(name="streams_refused_total", value=n, kind="counter", labels={"cap": cap})
        lim = self._caps.limits
        for cap, n in (("principal", lim.per_principal), ("connection", lim.per_connection),
                       ("unauthenticated", lim.unauthenticated),
                       ("unauthenticated_connection", lim.unauthenticated_per_connection)):
            yield EngineSample(name="stream_cap", value=n, labels={"cap": cap})
        for w in self._witnesses():
            labels = {"witness": w.name}
            yield EngineSample(name="witness_up", value=1 if w.up else 0, labels=labels)
            yield EngineSample(name="witness_cosigned_size", value=w.cosigned_size, labels=labels)
            yield EngineSample(name="witness_failures", value=w.failures, labels=labels)

    def alerts(self, now_ms: int, window_s: int) -> list[Alert]:
        out: list[Alert] = []
        for w in self._witnesses():
            if w.failures:
                out.append(Alert(level=WARNING, kind="witness-down", subject=w.name,
                                 message=f"witness {w.name} failed {w.failures} request(s) in a row: {w.last_error}"))
        for cap, at_s in sorted(self._caps.last_refused_s.items()):
            if now_ms - at_s * 1000 <= window_s * 1000:
                out.append(Alert(level=WARNING, kind="streams-refused", subject=cap,
                                 message=f"the {cap} stream cap refused streams ({self._caps.refused[cap]} so far)"))
        return out
