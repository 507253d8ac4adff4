"""The time-base re-check on the Kafka engine: the sequencer stamps ``accepted_at`` after
the replica's admission read its clock (see tests/unit/test_time_base.py)."""

from __future__ import annotations

from collections.abc import Callable

from exchange.server.kafka.ledger import KafkaLedger
from exchange.server.kafka.settings import KafkaSettings
from tests.unit.test_time_base import T, straddle


def test_batch_straddling_revoked_at_is_not_acknowledged_on_kafka(
    kafka_settings: Callable[..., KafkaSettings], kafka_ledgers: list[KafkaLedger]
) -> None:
    clock = {"admission": T + 1000, "ledger": T + 1000}
    ledger = KafkaLedger(kafka_settings(), clock_ms=lambda: clock["ledger"])
    kafka_ledgers.append(ledger)
    straddle(ledger, clock)
