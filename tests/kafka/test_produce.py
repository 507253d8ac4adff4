"""SafeProducer.produce_many on a real broker: a round's entries in one call, in order,
through a full queue (back-pressure), with delivery reported only on failure."""

from __future__ import annotations

import time
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from exchange.server.kafka import KafkaSettings
from exchange.server.kafka.produce import SafeProducer


def _topic(settings: KafkaSettings, name: str) -> None:
    admin = AdminClient(settings.admin_config())
    for future in admin.create_topics([NewTopic(name, 1)]).values():
        future.result(timeout=30)


def _read_all(settings: KafkaSettings, topic: str, count: int, timeout: float = 30.0) -> list[bytes]:
    consumer = Consumer(settings.tail_config("produce-test"))
    consumer.assign([TopicPartition(topic, 0, 0)])
    got: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while len(got) < count and time.monotonic() < deadline:
            m = consumer.poll(0.5)
            if m is None:
                continue
            err = m.error()
            if err is not None and err.code() == KafkaError._PARTITION_EOF:
                continue
            assert err is None, err
            got.append(m.value() or b"")
    finally:
        consumer.close()
    return got


def test_produce_many_keeps_the_order_through_a_full_queue(kafka_settings: Callable[..., KafkaSettings]) -> None:
    settings = kafka_settings()
    topic = f"{settings.topic_prefix}.produce"
    _topic(settings, topic)
    config = {**settings.producer_config("test", 20_000, errors_only=True), "queue.buffering.max.messages": 7}
    producer = SafeProducer(config, "test")
    failures: list[object] = []
    values = [b"message-%04d" % i for i in range(200)]
    try:
        for i in range(0, len(values), 50):  # each call is refused in part (the queue holds 7) and waits
            producer.produce_many(
                topic, values[i:i + 50], on_delivery=lambda err, msg: failures.append(err), timeout=20)
        assert producer.flush(20) == 0
    finally:
        producer.close()
    assert failures == []
    assert producer.delivered == 0  # only failures are reported: the caller counts what flush confirmed
    assert _read_all(settings, topic, len(values)) == values
