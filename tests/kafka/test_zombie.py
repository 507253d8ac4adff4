"""Zombie sequencers: a sequencer that lost its epoch but keeps writing, and every
reader ignores what it writes.

1. In process, deterministic: a rival claim fences the running sequencer between two
   rounds; its next entries really reach the topic with the old epoch; both replicas'
   views and a replay of the topic from offset 0 ignore them.
2. With real processes: the sequencing ``trustwire serve`` is frozen (SIGSTOP) past its
   group session while members publish; the other replica takes over; the frozen one
   resumes (SIGCONT) as a zombie. Whatever it still writes, the ledger stays one
   ledger: contiguous, every acknowledged entry exactly once where its receipt says,
   the same on both replicas and in a replay of the topic.
"""

from __future__ import annotations

import signal as signals
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from exchange.core.records import Receipt
from exchange.pb.trustwire.v1 import kafka_pb2 as kpb
from exchange.server.kafka import KafkaLedger, KafkaSettings
from exchange.server.kafka.rule import RuleState, apply_many
from exchange.server.kafka.topics import Topics
from exchange.server.kafka.wire import decode_ledger_message, encode_epoch_start
from tests.kafka.cluster import Cluster, Publisher, Tally, check_ledger, ledger_records, wait_for
from tests.ledger_contract import G1, signal, task_force

pytestmark = pytest.mark.timeout(240)


def topic_messages(bootstrap: str, topic: str) -> list[tuple[int, bytes | None]]:
    """Every message of the topic, from offset 0 to its end (bounded)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "tests-zombie", "enable.partition.eof": True,
                         "enable.auto.commit": False})
    out: list[tuple[int, bytes | None]] = []
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            m = consumer.poll(0.5)
            if m is None:
                continue
            err = m.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    return out
                continue
            out.append((int(m.offset() or 0), m.value()))
    finally:
        consumer.close()
    raise AssertionError(f"could not read {topic} to its end")


def stale_entries(messages: list[tuple[int, bytes | None]]) -> int:
    """Entries written with an epoch lower than a claim already in the topic."""
    highest, stale = 0, 0
    for _, value in messages:
        msg = decode_ledger_message(value)
        if isinstance(msg, kpb.EpochStart):
            highest = max(highest, msg.epoch)
        elif isinstance(msg, kpb.SequencedEntry) and msg.epoch < highest:
            stale += 1
    return stale


def replayed(messages: list[tuple[int, bytes | None]]) -> list[bytes]:
    return apply_many(RuleState(), messages)[1]


# -- 1. in process ----------------------------------------------------------------------------


def test_a_fenced_sequencer_really_writes_stale_entries_and_every_reader_ignores_them(
    kafka_settings: Callable[..., KafkaSettings], kafka_ledgers: list[KafkaLedger], kafka_bootstrap: str,
    tmp_path: Path,
) -> None:
    a = KafkaLedger(kafka_settings())
    kafka_ledgers.append(a)
    assert all(isinstance(r, Receipt) for r in a.append(task_force()))
    b = KafkaLedger(kafka_settings(view_path=tmp_path / "b-view.db"))
    kafka_ledgers.append(b)
    topic = Topics.for_prefix(a.settings.topic_prefix).ledger
    state = a.view.state
    rival = Producer({"bootstrap.servers": kafka_bootstrap, "enable.idempotence": True, "acks": "all"})
    rival.produce(topic, encode_epoch_start(state.epoch + 1, state.next_index, "rival"), partition=0)
    assert rival.flush(10) == 0
    outcomes = a.append([signal("alice", "after-rival", [G1])])  # a is now the zombie of its epoch
    assert all(isinstance(o, Receipt) for o in outcomes)
    messages = topic_messages(kafka_bootstrap, topic)
    assert stale_entries(messages) >= 1  # the zombie really wrote
    wait_for(lambda: b.head() == a.head(), 30, "the second view")
    ledger = [s.record for s in a.read(0, 1000)]
    assert [s.record for s in b.read(0, 1000)] == ledger == replayed(messages)
    check_ledger(ledger)


# -- 2. real processes --------------------------------------------------------------------------


def test_a_frozen_sequencer_resumes_as_a_zombie_and_the_ledger_stays_one(cluster: Cluster) -> None:
    zombie, survivor, epochs_before = cluster.two_replicas()
    tally = Tally()
    alice = Publisher(cluster, "alice", [zombie.target], tally, batches=10_000, batch=5, pause_s=0.05)
    bob = Publisher(cluster, "bob", [survivor.target], tally, batches=10_000, batch=5, pause_s=0.05)
    for p in (alice, bob):
        p.start()
    wait_for(lambda: len(alice.acks) >= 20 and len(bob.acks) >= 20, 60, "publishing to get going")
    zombie.proc.send_signal(signals.SIGSTOP)  # mid-stream: it was sequencing alice's and bob's batches
    try:
        wait_for(lambda: survivor.epochs_started() > epochs_before, 60, "the survivor to take over")
        took_over = time.monotonic()
        wait_for(lambda: any(t > took_over for t, _ in bob.acks), 60, "publishes through the survivor")
    finally:
        zombie.proc.send_signal(signals.SIGCONT)
    resumed = time.monotonic()
    wait_for(lambda: any(t > resumed for t, _ in alice.acks), 60, "the resumed replica to serve again")
    for p in (alice, bob):
        p.stop_flag.set()
    for p in (alice, bob):
        p.join(90)
        assert not p.is_alive(), "a publisher did not finish"
    assert zombie.alive() and survivor.alive()
    acknowledged = {**tally.acked, **tally.retried_ok}
    assert not tally.errors, tally.errors

    records = ledger_records(cluster, survivor.target)
    where = check_ledger(records)  # contiguous, no envelope twice
    for envelope, receipt in acknowledged.items():
        assert where.get(envelope) == receipt.index, "an acknowledged entry is missing or moved"
    wait_for(lambda: len(ledger_records(cluster, zombie.target)) == len(records), 60, "the zombie's view")
    assert ledger_records(cluster, zombie.target) == records
    messages = topic_messages(cluster.bootstrap, Topics.for_prefix(cluster.prefix).ledger)
    assert replayed(messages) == records
    print(f"\nzombie sequencer: {stale_entries(messages)} stale-epoch entr(ies) in the topic, all ignored; "
          f"{len(tally.failed)} envelope(s) needed a retry")
