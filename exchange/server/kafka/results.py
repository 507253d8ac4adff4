"""Results of this replica's submissions, routed from ``<prefix>.results`` to the
callers waiting for them (by request id).

The router starts at the end of the topic (it only cares about requests made from
now on) and is ready once it has reached that end, before any request is sent.
"""

from __future__ import annotations

import logging
import threading

from confluent_kafka import OFFSET_END, Consumer, KafkaError, TopicPartition

from exchange.core.errors import Unavailable
from exchange.server.kafka.settings import KafkaSettings, drain
from exchange.server.kafka.wire import decode_result
from exchange.server.ledger import Outcome

__all__ = ["Pending", "ResultRouter"]

log = logging.getLogger(__name__)


class Pending:
    """One awaited result."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self.outcomes: tuple[Outcome, ...] = ()

    def resolve(self, outcomes: tuple[Outcome, ...]) -> None:
        self.outcomes = outcomes
        self._done.set()

    def wait(self, timeout: float) -> bool:
        return self._done.wait(max(0.0, timeout))


class ResultRouter:
    def __init__(self, settings: KafkaSettings, topic: str) -> None:
        self._settings = settings
        self._topic = topic
        self._pending: dict[bytes, Pending] = {}
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, timeout: float) -> None:
        consumer = Consumer(self._settings.tail_config("results-tail"))
        consumer.assign([TopicPartition(self._topic, 0, OFFSET_END)])
        self._thread = threading.Thread(target=self._run, args=(consumer,), name="kafka-results", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            self.stop()
            raise Unavailable(f"could not reach the end of {self._topic} within {timeout:.0f}s")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def expect(self, request_id: bytes) -> Pending:
        pending = Pending()
        with self._lock:
            self._pending[request_id] = pending
        return pending

    def forget(self, request_id: bytes) -> None:
        with self._lock:
            self._pending.pop(request_id, None)

    def _run(self, consumer: Consumer) -> None:
        replica = self._settings.replica_id
        key = replica.encode()
        try:
            while not self._stop.is_set():
                for m in drain(consumer, 500, 0.1):
                    err = m.error()
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF:
                            self._ready.set()
                        else:
                            log.warning("results tail: %s", err)
                        continue
                    self._ready.set()
                    if m.key() != key:  # another replica's answer (the sequencer keys each by replica)
                        continue
                    result = decode_result(m.value())
                    if result is None or result.replica_id != replica:
                        continue
                    with self._lock:
                        pending = self._pending.pop(result.request_id, None)
                    if pending is not None:
                        pending.resolve(result.outcomes)
        except Exception as exc:  # noqa: BLE001
            log.critical("the results router stopped: %s", exc, exc_info=exc)
        finally:
            consumer.close()
