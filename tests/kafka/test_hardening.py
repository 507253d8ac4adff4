"""Kafka hardening on a real broker: unsafe ledger topics refused, a lost ledger topic
stops the replica (health NOT_SERVING, a critical alert, one critical log line), known
envelopes answered without a sequencer, and the engine's metrics."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic
from grpc_health.v1 import health_pb2, health_pb2_grpc

from clients.cli.ops_view import OperatorView, Thresholds, _summary, snapshot
from exchange.core.errors import ConfigError, TrustwireError, Unavailable
from exchange.core.records import Receipt
from exchange.pb.trustwire.v1 import operator_pb2 as opb
from exchange.server.kafka import KafkaLedger, KafkaSettings
from exchange.server.kafka.topics import Topics
from exchange.server.kafka.watch import WATCH_INTERVAL_S
from exchange.server.metrics import EngineSample
from tests.conftest import GROUP_ALL, holds_for
from tests.kafka.broker import Broker
from tests.kafka.cluster import ORIGIN, Cluster, Publisher, Tally, wait_for
from tests.ledger_contract import G1, signal, task_force

pytestmark = pytest.mark.timeout(240)


def _open(kafka_settings: Callable[..., KafkaSettings], opened: list[KafkaLedger], **overrides: object) -> KafkaLedger:
    ledger = KafkaLedger(kafka_settings(**overrides))
    opened.append(ledger)
    return ledger


# -- unsafe topics ------------------------------------------------------------------------------


def test_an_unreplicated_ledger_topic_is_refused_without_the_opt_out(
    kafka_settings: Callable[..., KafkaSettings], kafka_ledgers: list[KafkaLedger]
) -> None:
    with pytest.raises(ConfigError, match=r"replication factor 1 \(needs >= 3\).*kafka_allow_unreplicated"):
        _open(kafka_settings, kafka_ledgers, allow_unreplicated=False)
    ledger = _open(kafka_settings, kafka_ledgers)  # the opt-out: one broker is accepted
    assert all(isinstance(r, Receipt) for r in ledger.append(task_force()[:2]))


def test_a_ledger_topic_with_min_insync_replicas_1_is_refused(
    kafka_settings: Callable[..., KafkaSettings], kafka_ledgers: list[KafkaLedger], kafka_bootstrap: str,
    topic_prefix: str,
) -> None:
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    topic = Topics.for_prefix(topic_prefix).ledger
    config = {"retention.ms": "-1", "retention.bytes": "-1", "min.insync.replicas": "1"}
    for f in admin.create_topics([NewTopic(topic, 1, config=config)]).values():
        f.result(10)
    with pytest.raises(ConfigError, match=r"min.insync.replicas=1 \(needs >= 2\)"):
        _open(kafka_settings, kafka_ledgers, allow_unreplicated=False)


# -- a known envelope without a sequencer -------------------------------------------------------


def _end(bootstrap: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "tests-end"})
    try:
        return int(consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1])
    finally:
        consumer.close()


def test_a_known_envelope_is_answered_from_the_view_without_a_sequencer(
    kafka_settings: Callable[..., KafkaSettings], kafka_ledgers: list[KafkaLedger], kafka_bootstrap: str
) -> None:
    ledger = _open(kafka_settings, kafka_ledgers)
    entries = task_force()
    first = ledger.append(entries)
    assert all(isinstance(r, Receipt) for r in first)
    ledger.sequencer.stop()  # no sequencer any more: nothing new can be ordered
    submissions = Topics.for_prefix(ledger.settings.topic_prefix).submissions
    before = _end(kafka_bootstrap, submissions)
    assert ledger.append(entries) == first  # the original receipts, from the view
    assert _end(kafka_bootstrap, submissions) == before  # and no round trip through Kafka
    ledger.settings = dataclasses.replace(ledger.settings, publish_deadline_s=2.0)  # not 20 s for what follows
    with pytest.raises(Unavailable, match="did not confirm"):  # a new envelope does need the sequencer
        ledger.append([entries[0], signal("alice", "new", [G1])])


# -- the engine's metrics -----------------------------------------------------------------------


def _samples(ledger: KafkaLedger) -> dict[str, EngineSample]:
    return {s.name: s for s in ledger.engine_metrics()}


def test_engine_metrics_name_the_sequencer_and_count_its_work(
    kafka_settings: Callable[..., KafkaSettings], kafka_ledgers: list[KafkaLedger], tmp_path: Path
) -> None:
    a = _open(kafka_settings, kafka_ledgers)
    assert all(isinstance(r, Receipt) for r in a.append(task_force()))
    b = _open(kafka_settings, kafka_ledgers, view_path=tmp_path / "b-view.db")
    (r,) = b.append([signal("alice", "via-b", [G1])])
    assert isinstance(r, Receipt)
    wait_for(lambda: a.head() == b.head() == r.index + 1, 30, "both views to hold every entry")
    wait_for(lambda: all("kafka_consumer_lag_messages" in _samples(x) for x in (a, b)), 30, "the watch's first look")
    sa, sb = _samples(a), _samples(b)
    assert sa["kafka_sequencer_is_self"].value + sb["kafka_sequencer_is_self"].value == 1
    sequencer = sa if sa["kafka_sequencer_is_self"].value else sb
    assert sequencer["kafka_sequencer_entries_total"].value == a.head()
    assert sa["kafka_sequencer_info"].labels == sb["kafka_sequencer_info"].labels
    assert sa["kafka_sequencer_info"].labels["epoch"] == str(int(sa["kafka_sequencer_epoch"].value)) != "0"
    for s in (sa, sb):
        assert s["kafka_consumer_records_total"].value >= a.head() + 1  # entries and the epoch claim
        assert s["kafka_consumer_lag_messages"].value >= 0
        assert s["kafka_producer_delivered_total"].value > 0
        assert s["kafka_producer_errors_total"].value == 0
        assert s["kafka_producer_queue_messages"].value >= 0
        assert s["kafka_view_serving"].value == 1
    assert sa["kafka_sequencer_failovers_total"].value >= 1  # a saw its own claim
    assert sequencer["kafka_sequencer_cpu_seconds_total"].value > 0
    assert sa["kafka_view_cpu_seconds_total"].value > 0 and sb["kafka_view_cpu_seconds_total"].value > 0


# -- a broker that loses the ledger topic -------------------------------------------------------


def _health(target: str) -> int:
    with grpc.insecure_channel(target) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        except grpc.RpcError:
            return -1
        return int(reply.status)


def test_a_broker_restart_that_loses_the_topic_stops_every_replica(
    own_broker: Broker, topic_prefix: str, tmp_path: Path
) -> None:
    cluster = Cluster(bootstrap=own_broker.bootstrap, prefix=topic_prefix, workdir=tmp_path, publish_deadline_s=5.0)
    try:
        a, b = cluster.start("a"), cluster.start("b")
        cluster.enrol(a.target)
        tally = Tally()
        Publisher(cluster, "alice", [a.target, b.target], tally, batches=3, batch=5, retry=False).run()
        assert len(tally.acked) == 15 and not tally.errors
        assert _health(a.target) == _health(b.target) == health_pb2.HealthCheckResponse.SERVING

        own_broker.restart()  # memory storage: the ledger topic is gone

        for x in (a, b):
            wait_for(lambda x=x: _health(x.target) == health_pb2.HealthCheckResponse.NOT_SERVING, 60,
                     f"{x.name} to stop serving")
        view = OperatorView(a.target, cluster.operator, origin=ORIGIN)
        try:
            status = view.status(Thresholds(window_s=60, silent_after_s=1800, checkpoint_max_age_s=60))
        finally:
            view.close()
        assert any("view STOPPED" in line for line in _summary(snapshot(status, a.target)))  # what ops status prints
        alerts = list(status.alerts)
        stopped = [al for al in alerts if al.kind == "ledger-view-stopped"]
        assert stopped and stopped[0].level == opb.ALERT_LEVEL_CRITICAL, alerts
        member = cluster.member("alice", b.target)
        try:
            envelope = member.sign(member.signal("md5", "0" * 32, groups=[GROUP_ALL], signal_id="late"))
            try:
                outcomes: list[object] = list(member.publish_envelopes([envelope]))
            except TrustwireError as exc:
                outcomes = [exc]
            assert [getattr(o, "status", None) for o in outcomes] == ["UNAVAILABLE"], outcomes
        finally:
            member.close()
        def quiet() -> bool:  # a stopped replica logs its CRITICAL line once and no claim flood
            return all(x.log_text().count(" CRITICAL ") <= 1 and x.log_text().count("claim of epoch") <= 2
                       for x in (a, b))

        holds_for(quiet, 3 * WATCH_INTERVAL_S)
        for x in (a, b):
            text = x.log_text()
            assert text.count(" CRITICAL ") == 1, text[-3000:]
            assert "no longer exists" in text or "re-created" in text
            assert text.count("claim of epoch") <= 2
            assert x.alive()  # it stops serving; it does not crash
    finally:
        cluster.stop()
