"""What the exchange counts for its operators, and its Prometheus endpoint.

:class:`Activity` is the in-memory record of one exchange process: entries
accepted and rejected (by member, type and reason), publish latency, recent
publish rates, and the subscriber streams that are connected with their cursors.
The core service feeds it (:meth:`Activity.track_publish`, :meth:`Activity.stream`);
the operator service and :class:`ExchangeMetrics` read it.

Labels are closed sets or enrolled principals, never anything taken from a payload:

    member   the authenticated principal ("operator" for key events; "-" when the
             call was refused before it was authenticated)
    type     the signal type for signals (a registered type name, "other" for
             types this exchange does not know), the entry kind otherwise
             (retraction, opinion, keyevent); "unknown" when the envelope could not
             be decoded, "-" when the whole call was refused before admission
    reason   the stable error reason (exchange.core.errors), e.g. "wrong-member"

:class:`ExchangeMetrics` exposes these, the ledger, the audit log and whatever the
stream engine reports (:class:`EngineMetricsSource`) in its own
``CollectorRegistry``, so several exchanges can run in one process (tests).
Everything is computed when Prometheus scrapes; nothing is cached between scrapes.

Metric names (see dashboards/PROMQL.md for the queries built on them)::

    trustwire_build_info{version,engine,origin}             gauge, always 1
    trustwire_start_time_seconds                            gauge
    trustwire_entries_accepted_total{member,type}           counter
    trustwire_entries_rejected_total{member,type,reason}    counter
    trustwire_entries_duplicate_total{member}               counter (re-published, got the old receipt)
    trustwire_rejections_total{member,method,reason}        counter (rejection events, any RPC)
    trustwire_publish_duration_seconds                      histogram (Publish calls, in the core)
    trustwire_ledger_entries                                gauge (ledger size = next index)
    trustwire_ledger_head_index                             gauge (index of the newest entry; absent when empty)
    trustwire_ledger_bytes                                  gauge (on-disk size, engines that know it)
    trustwire_subscribers_connected{member}                 gauge
    trustwire_subscriber_lag_entries{member}                gauge (max over the member's streams)
    trustwire_checkpoint_age_seconds                        gauge (since the newest checkpoint was signed)
    trustwire_checkpoint_tree_size                          gauge (entries the newest checkpoint covers)
    trustwire_checkpoint_signed_timestamp_seconds           gauge
    trustwire_tree_size                                     gauge (leaves in the Merkle tree store)
    trustwire_engine_<name>{...}                            whatever the engine reports (Kafka: see
                                                            ENGINE_METRICS below)
    trustwire_<name>{...}                                   whatever the serving layer reports
                                                            (SERVING_METRICS below: streams, caps, witnesses)
    process_*                                               the standard process collector
"""

from __future__ import annotations

import bisect
import itertools
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from wsgiref.simple_server import WSGIServer

from google.protobuf.message import DecodeError
from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from exchange.core.entries import PAYLOAD_TYPES, EntryKind
from exchange.core.errors import ConfigError, InvalidValue, TrustwireError
from exchange.core.signals import OpaqueType, signal_type
from exchange.pb.trustwire.v1 import entries_pb2 as pb
from exchange.pb.trustwire.v1 import envelope_pb2
from exchange.server.figures import EngineMetricsSource, EngineSample

if TYPE_CHECKING:
    from exchange.server.admission import Admitted

__all__ = [
    "Activity",
    "DEFAULT_METRICS_LISTEN",
    "ENGINE_METRICS",
    "EngineMetricsSource",
    "EngineSample",
    "ExchangeMetrics",
    "LATENCY_BUCKETS",
    "StreamView",
    "SubscriberStream",
    "entry_type",
    "serve_metrics",
]

log = logging.getLogger(__name__)

_Admitted = TypeVar("_Admitted", bound=Sequence["Admitted"])

DEFAULT_METRICS_LISTEN = "127.0.0.1:9464"
"""The Prometheus endpoint's default address (9464: the port OpenTelemetry's
Prometheus exporters use; loopback unless configured)."""
DISABLED = ("", "off", "none", "disabled")

UNKNOWN_TYPE = "unknown"  # the envelope or its payload did not decode
OTHER_TYPE = "other"  # a well-formed signal type this exchange has not registered
REFUSED_TYPE = "-"  # the whole call was refused before admission decoded anything
UNAUTHENTICATED = "-"

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
RATE_HORIZON_S = 900  # per-second publish counts kept for rate windows up to 15 minutes
LAG_READINGS = 10  # lag readings kept per stream
LAG_READING_INTERVAL_MS = 1000  # at most one reading per stream per second

ENGINE_METRICS: Mapping[str, str] = {
    # name (exported as trustwire_engine_<name>)  -> meaning; what the Kafka engine should report
    "kafka_producer_queue_messages": "gauge: messages waiting in the producer queue (librdkafka msg_cnt)",
    "kafka_producer_delivered_total": "counter: messages (submissions, entries, results) the broker confirmed",
    "kafka_producer_errors_total": "counter: deliveries that failed",
    "kafka_consumer_records_total": "counter: ledger-topic records consumed into this replica's view",
    "kafka_consumer_lag_messages": "gauge: ledger-topic offsets not yet applied by this replica",
    "kafka_sequencer_info": "gauge 1 labelled {sequencer_id, epoch}: the sequencer this replica follows",
    "kafka_sequencer_is_self": "gauge: 1 when this replica is the sequencer",
    "kafka_sequencer_failovers_total": "counter: epochs started (sequencer changes) seen by this replica",
    "kafka_sequencer_epoch": "gauge: the ledger's current epoch (0 before the first sequencer)",
    "kafka_sequencer_entries_total": "counter: entries this replica sequenced (while it was the sequencer)",
    "kafka_sequencer_cpu_seconds_total": "counter: CPU seconds of the sequencing thread (÷ entries: CPU per entry)",
    "kafka_view_cpu_seconds_total": "counter: CPU seconds of the view's tailing thread (÷ records: CPU per entry)",
    "kafka_view_serving": "gauge: 0 once this replica's view stopped (ledger topic lost); it then serves nothing",
    # the SQLite ledger (the embedded engine, and each Kafka replica's view)
    "ledger_groups_committed_total": "counter: write transactions committed (group commit: one WAL sync each)",
    "ledger_batches_committed_total": "counter: batches those transactions carried (÷ groups: batches per sync)",
}

SERVING_METRICS: Mapping[str, str] = {
    # name (exported as trustwire_<name>) -> meaning; reported by exchange.server.serving
    "streams_open": "gauge {kind}: open streams, member (Subscribe) or unauthenticated (health, reflection)",
    "streams_refused_total": "counter {cap}: streams refused RESOURCE_EXHAUSTED by a stream cap",
    "stream_cap": "gauge {cap}: the configured stream caps",
    "witness_up": "gauge {witness}: 1 when the witness's latest cosignature request succeeded",
    "witness_cosigned_size": "gauge {witness}: the largest checkpoint the witness cosigned",
    "witness_failures": "gauge {witness}: consecutive failed cosignature requests",
}


# -- what an entry is, for labels -------------------------------------------------------------


def entry_type(raw: bytes) -> str:
    """The ``type`` label of an envelope: signal type, else entry kind (never a value)."""
    env = envelope_pb2.Envelope()
    try:
        env.ParseFromString(raw)
    except DecodeError:
        return UNKNOWN_TYPE
    kind = PAYLOAD_TYPES.get(env.payload_type)
    if kind is None:
        return UNKNOWN_TYPE
    if kind is not EntryKind.SIGNAL:
        return kind.value
    signal = pb.Signal()
    try:
        signal.ParseFromString(env.payload)
    except DecodeError:
        return UNKNOWN_TYPE
    return signal_label(signal)


def entry_label(kind: EntryKind, entry: Any) -> str:
    """The ``type`` label of an entry admission already decoded."""
    return signal_label(entry) if kind is EntryKind.SIGNAL else kind.value


def signal_label(signal: pb.Signal) -> str:
    try:
        known = signal_type(signal.type)
    except InvalidValue:
        return UNKNOWN_TYPE
    return OTHER_TYPE if isinstance(known, OpaqueType) else known.name


# -- the activity record ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamView:
    """One connected subscriber stream, as of a reading."""

    stream_id: str
    member: str
    cursor: int
    lag: int
    opened_ms: int
    readings: tuple[int, ...]  # recent lag readings, oldest first

    @property
    def lag_growing(self) -> bool:
        """The last three readings rose strictly (the subscriber falls further behind)."""
        r = self.readings[-3:]
        return len(r) == 3 and r[0] < r[1] < r[2]


class SubscriberStream:
    """A handle the core keeps while it serves one Subscribe stream."""

    __slots__ = ("stream_id", "member", "opened_ms", "cursor", "readings", "_last_reading_ms", "_owner")

    def __init__(self, owner: Activity, stream_id: str, member: str, cursor: int, opened_ms: int) -> None:
        self._owner = owner
        self.stream_id = stream_id
        self.member = member
        self.opened_ms = opened_ms
        self.cursor = cursor
        self.readings: deque[int] = deque(maxlen=LAG_READINGS)
        self._last_reading_ms = -LAG_READING_INTERVAL_MS

    def advance(self, cursor: int) -> None:
        """The subscriber received everything before ``cursor`` (the page was sent)."""
        self.cursor = cursor

    def close(self) -> None:
        self._owner._close(self.stream_id)


@dataclass(slots=True)
class _Member:
    last_accept_ms: int = 0
    seconds: deque[list[int]] = field(default_factory=deque)  # [unix second, accepted]


class Activity:
    """Thread-safe counters and stream registry of one exchange process."""

    def __init__(self, clock_ms: Callable[[], int] = lambda: int(time.time() * 1000)) -> None:
        self._clock_ms = clock_ms
        self.started_ms = clock_ms()
        self._lock = threading.Lock()
        self.accepted: Counter[tuple[str, str]] = Counter()  # (member, type)
        self.rejected: Counter[tuple[str, str, str]] = Counter()  # (member, type, reason)
        self.duplicates: Counter[str] = Counter()  # member
        self.rejections: Counter[tuple[str, str, str]] = Counter()  # (member, method, reason): events
        self._latency_buckets = [0] * (len(LATENCY_BUCKETS) + 1)
        self._latency_sum = 0.0
        self._members: dict[str, _Member] = {}
        self._streams: dict[str, SubscriberStream] = {}
        self._stream_ids = itertools.count(1)

    def now_ms(self) -> int:
        return self._clock_ms()

    # -- publishing -----------------------------------------------------------------------------

    def track_publish(
        self,
        principal: str,
        envelopes: Sequence[bytes],
        call: Callable[[], _Admitted],
    ) -> _Admitted:
        """Run one Publish through ``call`` and record what admission decided and the latency.

        Labels come from the entries admission decoded; only an envelope refused before
        it decoded is parsed here for its label. Re-publishing an accepted envelope
        counts as a duplicate.
        """
        started = time.perf_counter()
        try:
            admitted = call()
        except TrustwireError as exc:
            self._observe(time.perf_counter() - started)
            with self._lock:
                self.rejected[(principal, REFUSED_TYPE, exc.reason)] += len(envelopes)
            raise
        self._observe(time.perf_counter() - started)
        now = self._clock_ms()
        labelled = [
            (entry_label(*a.decoded) if a.decoded is not None else entry_type(raw), a)
            for raw, a in zip(envelopes, admitted, strict=True)
        ]
        with self._lock:
            fresh = 0
            for label, a in labelled:
                if isinstance(a.outcome, TrustwireError):
                    self.rejected[(principal, label, a.outcome.reason)] += 1
                elif a.duplicate:
                    self.duplicates[principal] += 1
                else:
                    self.accepted[(principal, label)] += 1
                    fresh += 1
            if fresh:
                self._count_rate(principal, now, fresh)
        return admitted

    def _count_rate(self, member: str, now_ms: int, n: int) -> None:
        m = self._members.setdefault(member, _Member())
        m.last_accept_ms = now_ms
        second = now_ms // 1000
        if m.seconds and m.seconds[-1][0] == second:
            m.seconds[-1][1] += n
        else:
            m.seconds.append([second, n])
        while m.seconds and m.seconds[0][0] <= second - RATE_HORIZON_S:
            m.seconds.popleft()

    def _observe(self, seconds: float) -> None:
        with self._lock:
            self._latency_buckets[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
            self._latency_sum += seconds

    def on_rejection(self, event: Any) -> None:
        """RejectionLog listener: one event per refused call or per reason in a batch."""
        with self._lock:
            self.rejections[(event.member, event.method, event.reason)] += 1

    def latency(self) -> tuple[list[tuple[str, float]], float]:
        """Cumulative (le, count) buckets ending with +Inf, and the sum of seconds."""
        with self._lock:
            counts, total = list(self._latency_buckets), self._latency_sum
        out: list[tuple[str, float]] = []
        running = 0
        for bound, n in zip((*(str(b) for b in LATENCY_BUCKETS), "+Inf"), counts, strict=True):
            running += n
            out.append((bound, running))
        return out, total

    def recent(self, window_s: int) -> dict[str, tuple[int, int]]:
        """member → (entries accepted in the last ``window_s`` seconds, last accept ms)."""
        now_s = self._clock_ms() // 1000
        with self._lock:
            return {
                member: (sum(n for s, n in m.seconds if s > now_s - window_s), m.last_accept_ms)
                for member, m in self._members.items()
            }

    def snapshot(self) -> tuple[Counter[tuple[str, str]], Counter[tuple[str, str, str]], Counter[str], Counter[tuple[str, str, str]]]:
        """Copies of (accepted, rejected, duplicates, rejection events)."""
        with self._lock:
            return Counter(self.accepted), Counter(self.rejected), Counter(self.duplicates), Counter(self.rejections)

    # -- subscribers ----------------------------------------------------------------------------

    def stream(self, member: str, cursor: int) -> SubscriberStream:
        with self._lock:
            handle = SubscriberStream(self, f"s{next(self._stream_ids)}", member, cursor, self._clock_ms())
            self._streams[handle.stream_id] = handle
        return handle

    def _close(self, stream_id: str) -> None:
        with self._lock:
            self._streams.pop(stream_id, None)

    def streams(self, head: int) -> list[StreamView]:
        """Every connected stream with its lag against ``head``; takes a lag reading
        per stream at most once per second (readers call this as they poll)."""
        now = self._clock_ms()
        out = []
        with self._lock:
            for s in self._streams.values():
                lag = max(0, head - s.cursor)
                if now - s._last_reading_ms >= LAG_READING_INTERVAL_MS:
                    s.readings.append(lag)
                    s._last_reading_ms = now
                out.append(
                    StreamView(
                        stream_id=s.stream_id, member=s.member, cursor=s.cursor, lag=lag,
                        opened_ms=s.opened_ms, readings=tuple(s.readings),
                    )
                )
        return out


# -- the engine hook ----------------------------------------------------------------------------


class _Collector(Collector):
    def __init__(self, owner: ExchangeMetrics) -> None:
        self._owner = owner

    def collect(self) -> Iterator[Metric]:
        yield from self._owner.collect()


# -- the Prometheus side ------------------------------------------------------------------------


class ExchangeMetrics:
    """The exchange's Prometheus registry and its HTTP endpoint."""

    def __init__(
        self,
        activity: Activity,
        *,
        head: Callable[[], int],
        members: Callable[[], Iterable[str]],
        checkpoint: Callable[[], tuple[int, int] | None],
        tree_size: Callable[[], int],
        engine: str,
        origin: str,
        ledger_file: Path | None = None,
        process: bool = True,
    ) -> None:
        """``checkpoint()`` gives the newest checkpoint's (size, signed_at_ms), or None."""
        self.activity = activity
        self._head = head
        self._members = members
        self._checkpoint = checkpoint
        self._tree_size = tree_size
        self._engine = engine
        self._origin = origin
        self._ledger_file = ledger_file
        self._sources: list[EngineMetricsSource] = []
        self._serving: list[EngineMetricsSource] = []
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(self))
        if process:
            ProcessCollector(registry=self.registry)
        self._httpd: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def add_engine_source(self, source: EngineMetricsSource) -> None:
        self._sources.append(source)

    def add_serving_source(self, source: EngineMetricsSource) -> None:
        """Figures of the serving layer, exported as ``trustwire_<name>``."""
        self._serving.append(source)

    def text(self) -> str:
        """The exposition text, as a scrape sees it."""
        return generate_latest(self.registry).decode()

    # -- endpoint -------------------------------------------------------------------------------

    def serve(self, listen: str) -> int:
        """Serve ``/metrics`` on ``host:port`` (port 0: any free port); return the port."""
        host, sep, port_text = listen.rpartition(":")
        try:
            port = int(port_text)
        except ValueError:
            port = -1
        if not sep or not host or not 0 <= port <= 65535:
            raise ConfigError(f"metrics_listen is host:port (or 'off'), got {listen!r}")
        self._httpd, self._thread = start_http_server(port, addr=host.strip("[]"), registry=self.registry)
        return int(self._httpd.server_address[1])

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    # -- collection -----------------------------------------------------------------------------

    def collect(self) -> Iterator[Metric]:
        a = self.activity
        info = GaugeMetricFamily(
            "trustwire_build_info", "Version, engine and log origin of this exchange", labels=["version", "engine", "origin"]
        )
        info.add_metric([_version(), self._engine, self._origin], 1)
        yield info
        yield GaugeMetricFamily(
            "trustwire_start_time_seconds", "When this exchange process started (unix seconds)", value=a.started_ms / 1000
        )

        accepted, rejected, duplicates, events = a.snapshot()
        fam = CounterMetricFamily(
            "trustwire_entries_accepted", "Entries admitted to the ledger, by publisher and type", labels=["member", "type"]
        )
        for (member, kind), n in sorted(accepted.items()):
            fam.add_metric([member, kind], n)
        yield fam
        fam = CounterMetricFamily(
            "trustwire_entries_rejected",
            "Envelopes refused, by caller, type and reason (type '-': the whole call was refused)",
            labels=["member", "type", "reason"],
        )
        for (member, kind, reason), n in sorted(rejected.items()):
            fam.add_metric([member, kind, reason], n)
        yield fam
        fam = CounterMetricFamily(
            "trustwire_entries_duplicate", "Envelopes re-published after acceptance (answered with the old receipt)",
            labels=["member"],
        )
        for member, n in sorted(duplicates.items()):
            fam.add_metric([member], n)
        yield fam
        fam = CounterMetricFamily(
            "trustwire_rejections",
            "Rejection events (a refused call, or one reason within a Publish batch), by caller, method and reason",
            labels=["member", "method", "reason"],
        )
        for (member, method, reason), n in sorted(events.items()):
            fam.add_metric([member, method, reason], n)
        yield fam

        buckets, total = a.latency()
        hist = HistogramMetricFamily(
            "trustwire_publish_duration_seconds", "Time the exchange spent on a Publish call (admission and commit)"
        )
        hist.add_metric([], buckets, total)
        yield hist

        head = self._head()
        yield GaugeMetricFamily("trustwire_ledger_entries", "Entries in the ledger (its size; the next index)", value=head)
        if head > 0:
            yield GaugeMetricFamily("trustwire_ledger_head_index", "Index of the newest ledger entry", value=head - 1)
        size = _file_bytes(self._ledger_file)
        if size is not None:
            yield GaugeMetricFamily("trustwire_ledger_bytes", "On-disk size of the ledger (with its WAL)", value=size)

        streams = a.streams(head)
        connected = GaugeMetricFamily(
            "trustwire_subscribers_connected", "Subscribe streams open, by member", labels=["member"]
        )
        per_member = Counter(s.member for s in streams)
        for member in sorted(set(self._members()) | set(per_member)):
            connected.add_metric([member], per_member.get(member, 0))
        yield connected
        lag = GaugeMetricFamily(
            "trustwire_subscriber_lag_entries",
            "Ledger head minus the cursor of the member's furthest-behind open stream",
            labels=["member"],
        )
        worst: dict[str, int] = {}
        for s in streams:
            worst[s.member] = max(worst.get(s.member, 0), s.lag)
        for member, n in sorted(worst.items()):
            lag.add_metric([member], n)
        yield lag

        cp = self._checkpoint()
        if cp is not None:
            cp_size, signed_ms = cp
            yield GaugeMetricFamily(
                "trustwire_checkpoint_age_seconds", "Seconds since the newest checkpoint was signed",
                value=max(0.0, (a.now_ms() - signed_ms) / 1000),
            )
            yield GaugeMetricFamily(
                "trustwire_checkpoint_tree_size", "Entries covered by the newest signed checkpoint", value=cp_size
            )
            yield GaugeMetricFamily(
                "trustwire_checkpoint_signed_timestamp_seconds", "When the newest checkpoint was signed (unix seconds)",
                value=signed_ms / 1000,
            )
        yield GaugeMetricFamily("trustwire_tree_size", "Leaves in the audit log's Merkle tree store", value=self._tree_size())
        yield from self._families(self._sources, "trustwire_engine_", ENGINE_METRICS)
        yield from self._families(self._serving, "trustwire_", SERVING_METRICS)

    def _families(
        self, sources: list[EngineMetricsSource], prefix: str, helps: Mapping[str, str]
    ) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        for source in sources:
            try:
                samples = list(source.engine_metrics())
            except Exception:  # a scrape must not fail because the engine could not answer
                log.warning("engine metrics from %s failed", type(source).__name__, exc_info=True)
                continue
            for s in samples:
                name = prefix + (s.name.removesuffix("_total") if s.kind == "counter" else s.name)
                fam = families.get(name)
                if fam is None:
                    labels = sorted(s.labels)
                    cls = CounterMetricFamily if s.kind == "counter" else GaugeMetricFamily
                    fam = families[name] = cls(name, s.help or helps.get(s.name, s.name), labels=labels)
                try:
                    fam.add_metric([s.labels[k] for k in sorted(s.labels)], s.value)  # type: ignore[attr-defined]
                except (KeyError, ValueError):
                    log.warning("engine metric %s has inconsistent labels; dropped", s.name)
        yield from families.values()


def serve_metrics(metrics: ExchangeMetrics, listen: str) -> int | None:
    """Start the endpoint per the ``metrics_listen`` setting; the port, or None when off.

    An address that cannot be bound is a ConfigError, except the default one: when
    127.0.0.1:9464 is taken (a second exchange on the host, a test suite) the exchange
    serves without metrics and says so.
    """
    if listen.strip().lower() in DISABLED:
        log.info("metrics endpoint disabled (metrics_listen=%r)", listen)
        return None
    try:
        port = metrics.serve(listen)
    except OSError as exc:
        if listen == DEFAULT_METRICS_LISTEN:
            log.warning(
                "metrics endpoint not started: %s is unavailable (%s); set metrics_listen to another address",
                listen, exc.strerror or exc,
            )
            return None
        raise ConfigError(f"cannot serve metrics on {listen}: {exc.strerror or exc}") from exc
    log.info("metrics on http://%s:%d/metrics", listen.rpartition(":")[0], port)
    return port


def _version() -> str:
    try:
        return version("trustwire")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0+unknown"


def _file_bytes(path: Path | None) -> int | None:
    if path is None:
        return None
    total, found = 0, False
    for p in (path, path.with_name(path.name + "-wal")):
        try:
            total += p.stat().st_size
            found = True
        except OSError:
            continue
    return total if found else None
