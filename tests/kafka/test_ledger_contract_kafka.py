"""The ledger contract (tests/ledger_contract.py) against KafkaLedger on a real broker."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from exchange.server.kafka import KafkaLedger, KafkaSettings
from exchange.server.ledger import Ledger
from tests.ledger_contract import *  # noqa: F403 - the contract's test functions


@pytest.fixture
def make_ledger(
    kafka_settings: Callable[..., KafkaSettings], kafka_ledgers: list[KafkaLedger]
) -> Callable[..., Ledger]:
    def make(clock_ms: Callable[[], int] | None = None) -> Ledger:
        ledger = KafkaLedger(kafka_settings(), clock_ms=clock_ms)
        kafka_ledgers.append(ledger)
        return ledger

    return make
