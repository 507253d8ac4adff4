"""The Kafka engine's own promises, beyond the ledger contract: fencing of a zombie
sequencer, refusal of unsafe topics and of a view that belongs to another ledger."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from exchange.core.errors import ConfigError, LedgerCorrupt
from exchange.core.records import Receipt, Record, encode_record
from exchange.server.kafka import KafkaLedger, KafkaSettings
from exchange.server.kafka.topics import Topics
from exchange.server.kafka.wire import encode_entry, encode_epoch_start
from tests.kafka.broker import Broker, BrokerMissing
from tests.ledger_contract import G1, signal, task_force


def _open(kafka_settings: Callable[..., KafkaSettings], opened: list[KafkaLedger], **overrides: object) -> KafkaLedger:
    ledger = KafkaLedger(kafka_settings(**overrides))
    opened.append(ledger)
    return ledger


def _write(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"})
    for v in values:
        producer.produce(topic, v, partition=0)
    assert producer.flush(10) == 0


def test_a_zombie_sequencer_cannot_add_or_replace_entries(
    kafka_settings: Callable[..., KafkaSettings], kafka_ledgers: list[KafkaLedger], kafka_bootstrap: str
) -> None:
    ledger = _open(kafka_settings, kafka_ledgers)
    got = ledger.append(task_force())
    assert all(isinstance(r, Receipt) for r in got)
    head, state = ledger.head(), ledger.view.state
    before = [s.record for s in ledger.read(0, 100)]
    topic = Topics.for_prefix(ledger.settings.topic_prefix).ledger
    forged = encode_record(head, 1, signal("alice", "zombie", [G1]).envelope)
    _write(kafka_bootstrap, topic, [
        encode_entry(state.epoch - 1 if state.epoch > 1 else 0, forged),  # an older epoch
        encode_entry(state.epoch, encode_record(head - 1, 1, b"rewrite")),  # an index already taken
        encode_epoch_start(state.epoch, head, "zombie"),  # not a higher epoch
    ])
    (r,) = ledger.append([signal("alice", "real", [G1])])
    assert isinstance(r, Receipt) and r.index == head
    assert [s.record for s in ledger.read(0, head)] == before
    assert Record.decode(ledger.read(head, 1)[0].record).envelope == signal("alice", "real", [G1]).envelope


def test_a_rival_claim_fences_the_sequencer_which_claims_again(
    kafka_settings: Callable[..., KafkaSettings], kafka_ledgers: list[KafkaLedger], kafka_bootstrap: str
) -> None:
    ledger = _open(kafka_settings, kafka_ledgers)
    assert all(isinstance(r, Receipt) for r in ledger.append(task_force()))
    state = ledger.view.state
    topic = Topics.for_prefix(ledger.settings.topic_prefix).ledger
    # another process claims the next epoch (as a new sequencer would)
    _write(kafka_bootstrap, topic, [encode_epoch_start(state.epoch + 1, state.next_index, "rival")])
    # our sequencer's next entries carry the old epoch: the rule ignores them, the
    # sequencer notices, steps down without answering, claims epoch + 2 and redoes them
    s1, s2 = signal("alice", "after-1", [G1]), signal("alice", "after-2", [G1])
    outcomes = ledger.append([s1, s2])
    assert [o.index for o in outcomes if isinstance(o, Receipt)] == [state.next_index, state.next_index + 1]
    assert ledger.view.state.epoch >= state.epoch + 2
    assert ledger.sequencer.epochs_started >= 2
    envelopes = [Record.decode(s.record).envelope for s in ledger.read(0, 100)]
    assert envelopes.count(s1.envelope) == 1 and envelopes.count(s2.envelope) == 1
    assert ledger.append([s1]) == outcomes[:1]  # still exactly once


def test_a_ledger_topic_that_retention_could_delete_is_refused(
    kafka_settings: Callable[..., KafkaSettings], kafka_ledgers: list[KafkaLedger], kafka_bootstrap: str,
    topic_prefix: str,
) -> None:
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    topic = Topics.for_prefix(topic_prefix).ledger
    for f in admin.create_topics([NewTopic(topic, 1, config={"retention.ms": "604800000"})]).values():
        f.result(10)
    with pytest.raises(ConfigError, match="retention.ms=604800000"):
        _open(kafka_settings, kafka_ledgers)


def test_a_topic_with_more_than_one_partition_is_refused(
    kafka_settings: Callable[..., KafkaSettings], kafka_ledgers: list[KafkaLedger], kafka_bootstrap: str,
    topic_prefix: str,
) -> None:
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    for f in admin.create_topics([NewTopic(Topics.for_prefix(topic_prefix).submissions, 4)]).values():
        f.result(10)
    with pytest.raises(ConfigError, match="4 partitions"):
        _open(kafka_settings, kafka_ledgers)


def test_a_view_of_another_ledger_is_refused(
    kafka_settings: Callable[..., KafkaSettings], kafka_ledgers: list[KafkaLedger], tmp_path: Path
) -> None:
    ledger = _open(kafka_settings, kafka_ledgers)
    assert all(isinstance(r, Receipt) for r in ledger.append(task_force()[:2]))
    ledger.close()
    with pytest.raises(ConfigError, match="another ledger topic"):
        _open(kafka_settings, kafka_ledgers, topic_prefix="other-prefix-" + tmp_path.name[-8:])
    try:
        elsewhere = Broker.start(tmp_path / "other-cluster.log")
    except BrokerMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    try:  # same prefix, another cluster: the topic there is not the ledger this view holds
        with pytest.raises(LedgerCorrupt, match="belongs to another ledger"):
            _open(kafka_settings, kafka_ledgers, bootstrap=elsewhere.bootstrap)
    finally:
        elsewhere.stop()
    again = _open(kafka_settings, kafka_ledgers)  # the right cluster: it resumes
    assert again.head() == 2


def test_a_new_replica_rebuilds_the_ledger_from_the_topic(
    kafka_settings: Callable[..., KafkaSettings], kafka_ledgers: list[KafkaLedger], tmp_path: Path
) -> None:
    first = _open(kafka_settings, kafka_ledgers)
    assert all(isinstance(r, Receipt) for r in first.append(task_force() + [signal("alice", "s", [G1, "g-two"])]))
    second = _open(kafka_settings, kafka_ledgers, view_path=tmp_path / "second-view.db")
    assert second.head() == first.head()
    assert [s.record for s in second.read(0, 100)] == [s.record for s in first.read(0, 100)]
    assert second.signal("alice", "s") == first.signal("alice", "s")
    assert set(second.directory.members) == set(first.directory.members)
    # either replica may be the sequencer; appends through both land in one order
    (a,) = second.append([signal("alice", "via-second", [G1])])
    (b,) = first.append([signal("alice", "via-first", [G1])])
    assert isinstance(a, Receipt) and isinstance(b, Receipt) and b.index == a.index + 1
