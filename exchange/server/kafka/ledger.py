"""KafkaLedger: the :class:`~exchange.server.ledger.Ledger` of one exchange replica
on a Kafka cluster.

Reads are answered by the replica's local view (:mod:`.view`). ``append`` sends the
batch to ``<prefix>.submissions`` and waits, up to the publish deadline, for the
sequencer's result (:mod:`.sequencer`, on whichever replica Kafka elected): a
receipt exists only once its entry is durable in the ledger topic (acks=all) and
accepted by the ledger rule. A timeout is UNAVAILABLE; publishing the same envelope
again is then deduplicated by digest (same index, no duplicate). Envelopes the view
already holds are answered from it (their original receipts) without a round trip, so
a re-publish succeeds even while there is no sequencer.

A replica whose view stopped (the ledger topic lost, see :mod:`.watch`) refuses
appends, reports a critical alert and tells ``on_failure`` listeners (the server
then answers health checks NOT_SERVING).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence

from confluent_kafka.admin import AdminClient

from exchange.core.errors import Unavailable
from exchange.core.keydir import KeyDirectory
from exchange.core.records import Receipt
from exchange.server.kafka.produce import SafeProducer
from exchange.server.kafka.results import Pending, ResultRouter
from exchange.server.kafka.sequencer import Sequencer
from exchange.server.kafka.settings import KafkaSettings
from exchange.server.kafka.topics import Topics, ensure_topics
from exchange.server.kafka.view import LedgerView, Tailer
from exchange.server.kafka.wire import Batch, encode_batch
from exchange.server.ledger import Outcome, SignalState, Stored, Submission
from exchange.server.metrics import EngineSample
from exchange.server.operator_service import CRITICAL, Alert

__all__ = ["KafkaLedger"]

log = logging.getLogger(__name__)

CHUNK_ENVELOPES = 500
CHUNK_BYTES = 512 * 1024
"""Submissions are split into messages of at most this much (Kafka message limits)."""


def _chunks(batch: Sequence[Submission]) -> list[list[Submission]]:
    out: list[list[Submission]] = [[]]
    size = 0
    for s in batch:
        if out[-1] and (len(out[-1]) >= CHUNK_ENVELOPES or size + len(s.envelope) > CHUNK_BYTES):
            out.append([])
            size = 0
        out[-1].append(s)
        size += len(s.envelope)
    return out


class KafkaLedger:
    """One replica's ledger on Kafka (see the module docstring)."""

    def __init__(self, settings: KafkaSettings, clock_ms: Callable[[], int] | None = None) -> None:
        self.settings = settings
        self.topics = Topics.for_prefix(settings.topic_prefix)
        clock = clock_ms or (lambda: int(time.time() * 1000))
        ensure_topics(AdminClient(settings.admin_config()), self.topics, settings)
        settings.view_path.parent.mkdir(parents=True, exist_ok=True)
        self.view = LedgerView(settings.view_path, self.topics.ledger, clock)
        self._stop = threading.Event()
        self._closed = False
        self._stoppers: list[Callable[[], None]] = []
        try:
            self.tailer = Tailer(settings, self.view)
            self.tailer.start()
            self._stoppers.append(self.tailer.stop)
            if not self.tailer.wait_eof(settings.ready_timeout_s):
                if self.tailer.failure is not None:
                    raise Unavailable(f"the ledger view failed: {self.tailer.failure}")
                log.warning("still catching up with %s after %.0fs; serving meanwhile", self.topics.ledger,
                            settings.ready_timeout_s)
            self._results = ResultRouter(settings, self.topics.results)
            self._results.start(settings.ready_timeout_s)
            self._stoppers.append(self._results.stop)
            self._producer = SafeProducer(
                settings.producer_config("submit", settings.publish_deadline_ms), "submissions"
            )
            poller = threading.Thread(target=self._poll, name="kafka-submit", daemon=True)
            poller.start()

            def stop_submitting() -> None:
                self._stop.set()
                poller.join(5)
                self._producer.close(1.0)

            self._stoppers.append(stop_submitting)
            self.sequencer = Sequencer(settings, self.topics, self.tailer, clock)
            self.sequencer.start()
            self._stoppers.append(self.sequencer.stop)
        except BaseException:
            self._shutdown()
            raise
        log.info(
            "kafka ledger %s ready at index %d (replica %s)", self.topics.ledger, self.view.head(), settings.replica_id
        )

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.1)

    # -- reads: the local view --------------------------------------------------------------

    @property
    def directory(self) -> KeyDirectory:
        return self.view.directory

    def head(self) -> int:
        return self.view.head()

    def read(self, start: int, limit: int) -> list[Stored]:
        return self.view.read(start, limit)

    def receipt_for(self, digest: bytes) -> Receipt | None:
        return self.view.receipt_for(digest)

    def receipts_for(self, digests: Sequence[bytes]) -> dict[bytes, Receipt]:
        return self.view.receipts_for(digests)

    def leaf_hashes(self, start: int, limit: int) -> list[bytes]:
        return self.view.leaf_hashes(start, limit)

    def signal(self, publisher: str, signal_id: str) -> SignalState | None:
        return self.view.signal(publisher, signal_id)

    def signals(self, refs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], SignalState]:
        return self.view.signals(refs)

    def key_event_records(self, until: int) -> list[bytes]:
        return self.view.key_event_records(until)

    def wait_for(self, index: int, timeout: float) -> int:
        return self.view.wait_for(index, timeout)

    # -- writes: through the sequencer --------------------------------------------------------

    def append(self, batch: Sequence[Submission]) -> list[Outcome]:
        if not batch:
            return []
        if self.tailer.failure is not None:
            raise Unavailable("this replica's ledger view has stopped; use another replica")
        in_view = self.view.receipts_for([s.digest for s in batch])
        known: list[Receipt | None] = [in_view.get(s.digest) for s in batch]
        fresh = [s for s, k in zip(batch, known, strict=True) if k is None]
        answers = iter(self._sequence(fresh) if fresh else [])
        return [k if k is not None else next(answers) for k in known]

    def _sequence(self, batch: Sequence[Submission]) -> list[Outcome]:
        """Send ``batch`` to the sequencer and wait for its outcomes (in order)."""
        deadline_s = self.settings.publish_deadline_s
        deadline = time.monotonic() + deadline_s
        deadline_ms = int(time.time() * 1000) + self.settings.publish_deadline_ms
        waits: list[tuple[bytes, Pending]] = []
        try:
            for chunk in _chunks(batch):
                request_id = uuid.uuid4().bytes
                waits.append((request_id, self._results.expect(request_id)))
                message = Batch(
                    request_id=request_id,
                    replica_id=self.settings.replica_id,
                    submissions=tuple(chunk),
                    deadline_ms=deadline_ms,
                )
                self._producer.produce(
                    self.topics.submissions,
                    encode_batch(message),
                    key=self.settings.replica_id.encode(),
                    timeout=max(0.0, deadline - time.monotonic()),
                )
            outcomes: list[Outcome] = []
            for _, pending in waits:
                if not pending.wait(deadline - time.monotonic()):
                    known = [self.view.receipt_for(s.digest) for s in batch]
                    if all(known):  # the answer was lost, not the entries: they are in the ledger
                        return [k for k in known if k is not None]
                    raise Unavailable(
                        f"the ledger did not confirm the batch within {deadline_s:g}s; publish again "
                        "(re-publishing is idempotent)"
                    )
                outcomes.extend(pending.outcomes)
        finally:
            for request_id, _ in waits:
                self._results.forget(request_id)
        if len(outcomes) != len(batch):
            raise Unavailable(f"the sequencer answered {len(outcomes)} outcomes for {len(batch)} envelopes")
        indices = [o.index for o in outcomes if isinstance(o, Receipt)]
        if indices:  # read your writes on this replica
            self.view.wait_for(max(indices), max(0.0, deadline - time.monotonic()))
        return outcomes

    # -- what operators see ------------------------------------------------------------------

    def on_failure(self, listener: Callable[[BaseException], None]) -> None:
        """``listener(exc)`` once this replica's view stops (at once if it has)."""
        self.tailer.on_failure(listener)

    def alerts(self, now_ms: int, window_s: int) -> list[Alert]:
        """``ops status`` alerts of the engine: a stopped view is critical."""
        failure = self.tailer.failure
        if failure is None:
            return []
        return [Alert(level=CRITICAL, kind="ledger-view-stopped", subject=self.topics.ledger,
                      message=f"this replica stopped serving: {failure}")]

    def engine_metrics(self) -> Iterable[EngineSample]:
        """The ``trustwire_engine_kafka_*`` figures (names in exchange.server.metrics.ENGINE_METRICS)."""
        producers = (self._producer, *self.sequencer.producers)
        state = self.view.state
        end = self.tailer.end_offset
        yield EngineSample(name="kafka_producer_queue_messages", value=sum(p.queued() for p in producers))
        yield EngineSample(name="kafka_producer_delivered_total", value=sum(p.delivered for p in producers),
                           kind="counter")
        yield EngineSample(name="kafka_producer_errors_total", value=sum(p.errors for p in producers), kind="counter")
        yield EngineSample(name="kafka_consumer_records_total", value=self.tailer.messages_read, kind="counter")
        if end is not None:
            yield EngineSample(name="kafka_consumer_lag_messages", value=max(0, end - state.offset))
        if state.epoch:
            yield EngineSample(name="kafka_sequencer_info", value=1,
                               labels={"sequencer_id": state.sequencer_id, "epoch": str(state.epoch)})
        yield EngineSample(name="kafka_sequencer_epoch", value=state.epoch)
        yield EngineSample(name="kafka_sequencer_is_self", value=1 if self.sequencer.epoch is not None else 0)
        yield EngineSample(name="kafka_sequencer_failovers_total", value=self.tailer.epochs_seen, kind="counter")
        yield EngineSample(name="kafka_sequencer_entries_total", value=self.sequencer.entries_sequenced,
                           kind="counter")
        yield EngineSample(name="kafka_sequencer_cpu_seconds_total", value=self.sequencer.cpu_s, kind="counter")
        yield EngineSample(name="kafka_view_cpu_seconds_total", value=self.tailer.cpu_s, kind="counter")
        yield EngineSample(name="kafka_view_serving", value=0 if self.tailer.failure is not None else 1)
        yield from self.view.engine_metrics()

    # -- lifecycle ---------------------------------------------------------------------------

    def _shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        for stop in reversed(self._stoppers):
            try:
                stop()
            except Exception as exc:  # noqa: BLE001 - keep closing the rest
                log.warning("stopping the kafka ledger: %s", exc)
        self._stoppers.clear()
        self.view.close()

    def close(self) -> None:
        self._shutdown()
