"""An idempotent producer that replaces itself once it is fenced.

When a message reaches message.timeout.ms, librdkafka cannot know whether the broker
stored it, and it fences the idempotent producer for good (``_FENCED``,
``PRODUCER_FENCED`` or a fatal error). Such messages have an unknown fate: callers
must not assume either way (the ledger rule and dedupe-by-digest make a retry
exact). This wrapper notices the fencing and builds a fresh producer for the next
message.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from exchange.core.errors import Unavailable
from exchange.server.kafka.throttle import Throttled

__all__ = ["Delivery", "SafeProducer", "UNKNOWN_FATE"]

log = logging.getLogger(__name__)

UNKNOWN_FATE = frozenset(
    {KafkaError._MSG_TIMED_OUT, KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError._FATAL}
)
Delivery = Callable[[KafkaError | None, Message], None]


class SafeProducer:
    def __init__(self, config: dict[str, Any], name: str) -> None:
        self._config = config
        self._name = name
        self._lock = threading.Lock()
        self._producer = Producer(config)
        self._broken = False
        self._replaced = Throttled(log, 30.0)
        self.delivered = 0
        """Messages whose delivery the broker confirmed."""
        self.errors = 0
        """Deliveries that failed (including unknown fates)."""

    def _current(self) -> Producer:
        with self._lock:
            if self._broken:
                self._replace_locked()
            return self._producer

    def _replace_locked(self) -> None:
        old = self._producer
        self._replaced.log(logging.WARNING, "%s producer was fenced or timed out; replacing it", self._name)
        try:
            old.purge(in_queue=True, in_flight=True, blocking=False)
            old.poll(0)
        except KafkaException:
            pass
        self._producer = Producer(self._config)
        self._broken = False

    def reset(self) -> None:
        """Discard the producer now (after an unknown-fate outcome)."""
        with self._lock:
            self._replace_locked()

    def _watch(self, callback: Delivery | None) -> Delivery:
        def delivered(err: KafkaError | None, msg: Message) -> None:
            if err is None:
                self.delivered += 1
            else:
                self.errors += 1
                if err.code() in UNKNOWN_FATE or err.fatal():
                    self._broken = True
            if callback is not None:
                callback(err, msg)

        return delivered

    def produce(
        self, topic: str, value: bytes, *, key: bytes | None = None, on_delivery: Delivery | None = None,
        timeout: float = 5.0,
    ) -> None:
        """Queue one message for partition 0; BufferError (back-pressure) waits up to ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            producer = self._current()
            try:
                producer.produce(topic, value=value, key=key, partition=0, on_delivery=self._watch(on_delivery))
                producer.poll(0)
                return
            except BufferError:
                if time.monotonic() > deadline:
                    raise Unavailable("the Kafka producer queue is full; retry") from None
                producer.poll(0.05)
            except KafkaException as exc:
                err: KafkaError = exc.args[0]
                if err.fatal() or err.code() in UNKNOWN_FATE:
                    self._broken = True
                    if time.monotonic() < deadline:
                        continue
                raise Unavailable(f"cannot write to Kafka: {err.str()}") from exc

    def produce_many(
        self, topic: str, values: list[bytes], *, on_delivery: Delivery | None = None, timeout: float = 5.0
    ) -> None:
        """Queue ``values`` for partition 0, in order, with one call per attempt
        (``produce_batch``); a full queue (back-pressure) waits up to ``timeout`` for
        the rest. If a message other than a tail of the batch is refused, the order
        could break: that is an unknown fate (Unavailable, the producer replaced)."""
        deadline = time.monotonic() + timeout
        pending: list[dict[str, Any]] = [{"value": v} for v in values]
        while pending:
            producer = self._current()
            queued = producer.produce_batch(topic, pending, partition=0, on_delivery=self._watch(on_delivery))
            producer.poll(0)
            if queued == len(pending):
                return
            refused = [m for m in pending if "_error" in m]
            first = next(i for i, m in enumerate(pending) if "_error" in m)
            errors = {m["_error"].code() if isinstance(m["_error"], KafkaError) else None for m in refused}
            if len(refused) != len(pending) - first or errors != {KafkaError._QUEUE_FULL}:
                self._broken = True
                raise Unavailable(f"cannot write to Kafka: {refused[0]['_error']}")
            if time.monotonic() > deadline:
                raise Unavailable("the Kafka producer queue is full; retry")
            pending = [{"value": m["value"]} for m in refused]
            producer.poll(0.05)

    def flush(self, timeout: float) -> int:
        """Serve delivery callbacks until everything is delivered; return what is left."""
        with self._lock:
            producer = self._producer
        return int(producer.flush(timeout))

    def poll(self, timeout: float) -> None:
        with self._lock:
            producer = self._producer
        producer.poll(timeout)

    def queued(self) -> int:
        """Messages waiting in the producer's queue (or in flight)."""
        with self._lock:
            return len(self._producer)

    def close(self, timeout: float = 2.0) -> None:
        with self._lock:
            left = self._producer.flush(timeout)
            if left:
                log.warning("%s producer closed with %d undelivered message(s)", self._name, left)
