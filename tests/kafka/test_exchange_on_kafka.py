"""The whole exchange on the Kafka engine: publish, verified subscribe, checkpoints,
audit, and a second replica serving the same ledger."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from clients.auditor import AuditClient
from clients.member import MemberClient
from exchange.core.entries import OPERATOR
from exchange.core.records import Receipt
from exchange.pb.trustwire.v1 import entries_pb2 as pb
from exchange.server.config import ServerConfig
from exchange.server.grpc_server import RunningServer, build_server
from exchange.server.kafka import KafkaLedger
from tests.conftest import GROUP_ALL, GROUP_NCII, MEMBERS, TaskForce, start_taskforce, wait_until
from tests.kafka.conftest import TEST_SESSION_MS

N_KEY_EVENTS = 2 + 2 * len(MEMBERS)
MD5S = [f"{i:032x}" for i in range(1, 40)]


def _receipts(outcomes: list[object]) -> list[Receipt]:
    assert all(isinstance(o, Receipt) for o in outcomes), outcomes
    return outcomes  # type: ignore[return-value]


def kafka_config(bootstrap: str, prefix: str) -> dict[str, object]:
    return {
        "engine": "kafka",
        "kafka_bootstrap": bootstrap,
        "kafka_topic_prefix": prefix,
        "kafka_group_session_ms": TEST_SESSION_MS,
        "kafka_allow_unreplicated": True,  # one tansu broker
        "publish_deadline_s": 20.0,
    }


def replica(tf: TaskForce, directory: Path, bootstrap: str, prefix: str) -> RunningServer:
    """Another exchange process-alike on the same ledger (its own view and audit log)."""
    directory.mkdir(parents=True, exist_ok=True)
    return build_server(
        ServerConfig(
            operator_public_key=tf.operator.public_key.hex(),
            log_key_file=tf.tmp / "log.key",
            listen="127.0.0.1:0",
            ledger_path=directory / "ledger.db",
            name="test.trustwire.invalid/log",
            **kafka_config(bootstrap, prefix),  # type: ignore[arg-type]
        )
    )


def member_on(tf: TaskForce, target: str, name: str, state: Path | None = None) -> MemberClient:
    return MemberClient(
        target, member_id=name, signer=tf.signers[name], operator_key=tf.operator.public_key,
        log_key=tf.log_key, state=state,
    )


@pytest.fixture
def kafka_taskforce(tmp_path: Path, kafka_bootstrap: str, topic_prefix: str) -> Iterator[TaskForce]:
    tf = start_taskforce(tmp_path / "r1", **kafka_config(kafka_bootstrap, topic_prefix))
    try:
        yield tf
    finally:
        tf.close()


def test_the_exchange_runs_on_kafka(kafka_taskforce: TaskForce) -> None:
    tf = kafka_taskforce
    assert isinstance(tf.server.ledger, KafkaLedger)
    assert tf.server.ledger.head() == N_KEY_EVENTS
    alice = tf.client("alice")
    entries = [alice.signal("md5", v, groups=[GROUP_ALL], signal_id=f"s{i}") for i, v in enumerate(MD5S[:5])]
    hidden = alice.signal("md5", MD5S[5], groups=[GROUP_NCII], signal_id="ncii")
    got = _receipts(alice.publish(entries + [hidden]))
    assert [r.index for r in got] == list(range(N_KEY_EVENTS, N_KEY_EVENTS + 6))
    assert _receipts(alice.publish(entries)) == got[:5]  # idempotent re-publish
    assert tf.server.ledger.head() == N_KEY_EVENTS + 6

    bob = tf.client("bob")
    seen = [v for v in bob.subscribe(follow=False)]
    signals = [v.entry.signal_id for v in seen if isinstance(v.entry, pb.Signal)]
    assert signals == [f"s{i}" for i in range(5)]  # bob is not in the NCII group
    assert [v.index for v in seen][-5:] == [r.index for r in got[:5]]


def test_sync_verifies_proofs_and_checkpoints_follow_the_ledger(kafka_taskforce: TaskForce, tmp_path: Path) -> None:
    tf = kafka_taskforce
    alice = tf.client("alice")
    _receipts(alice.publish([alice.signal("md5", v, groups=[GROUP_ALL], signal_id=f"s{i}") for i, v in enumerate(MD5S[:8])]))
    bob = member_on(tf, tf.target, "bob", tmp_path / "bob.db")
    try:
        report = bob.sync()
        assert report.signals == 8 and report.quarantined == 0
        assert report.next_index == tf.server.ledger.head()
        _receipts(alice.publish([alice.retraction("s0")]))
        report = bob.sync()
        assert report.retractions == 1
    finally:
        bob.close()
    wait_until(lambda: checkpoint_size(tf.server) == tf.server.ledger.head())
    auditor = AuditClient(
        tf.target, principal=OPERATOR, signer=tf.operator, operator_key=tf.operator.public_key, log_key=tf.log_key
    )
    try:
        audit = auditor.verify()
        assert audit.ok, audit.findings
        assert audit.entries == tf.server.ledger.head()
    finally:
        auditor.close()


def checkpoint_size(server: RunningServer) -> int:
    latest = server.checkpoints.latest()
    return latest.size if latest is not None else 0


def test_a_follower_sees_new_entries_quickly(kafka_taskforce: TaskForce) -> None:
    tf = kafka_taskforce
    alice, bob = tf.client("alice"), tf.client("bob")
    arrived: dict[str, float] = {}
    stop = threading.Event()

    def follow() -> None:
        for v in bob.subscribe(follow=True):
            if isinstance(v.entry, pb.Signal):
                arrived[v.entry.signal_id] = time.monotonic()
            if len(arrived) == 10 or stop.is_set():
                return

    follower = threading.Thread(target=follow, daemon=True)
    follower.start()
    sent: dict[str, float] = {}
    for i in range(10):
        sent[f"f{i}"] = time.monotonic()
        _receipts(alice.publish([alice.signal("md5", MD5S[i], groups=[GROUP_ALL], signal_id=f"f{i}")]))
    follower.join(30)
    stop.set()
    assert sorted(arrived) == sorted(sent)
    lat = sorted((arrived[k] - sent[k]) * 1000 for k in sent)
    print(f"\npublish→subscriber latency over Kafka (incl. the publish round trip): "
          f"median {lat[len(lat) // 2]:.1f} ms, max {lat[-1]:.1f} ms")


def test_two_replicas_serve_one_ledger(
    kafka_taskforce: TaskForce, tmp_path: Path, kafka_bootstrap: str, topic_prefix: str
) -> None:
    tf = kafka_taskforce
    second = replica(tf, tmp_path / "r2", kafka_bootstrap, topic_prefix)
    try:
        assert second.ledger.head() == N_KEY_EVENTS  # caught up from the topic at start
        alice1, alice2 = tf.client("alice"), member_on(tf, second.target, "alice")
        try:
            r1 = _receipts(alice1.publish([alice1.signal("md5", MD5S[0], groups=[GROUP_ALL])]))
            r2 = _receipts(alice2.publish([alice2.signal("md5", MD5S[1], groups=[GROUP_ALL])]))
            r3 = _receipts(alice2.publish([alice1.signal("md5", MD5S[2], groups=[GROUP_ALL], signal_id="x")]))
            assert [r.index for r in r1 + r2 + r3] == [N_KEY_EVENTS, N_KEY_EVENTS + 1, N_KEY_EVENTS + 2]
            # the same envelope through the other replica: the same receipt
            env = alice1.sign(alice1.signal("md5", MD5S[3], groups=[GROUP_ALL], signal_id="y", created_at_ms=1_700_000_000_000))
            first = _receipts(alice1.publish_envelopes([env]))
            assert _receipts(alice2.publish_envelopes([env])) == first
        finally:
            alice2.close()
        head = tf.server.ledger.head()
        wait_until(lambda: second.ledger.head() == head)
        assert [s.record for s in second.ledger.read(0, 100)] == [s.record for s in tf.server.ledger.read(0, 100)]
        wait_until(lambda: checkpoint_size(second) == head)
        wait_until(lambda: checkpoint_size(tf.server) == head)
        # both replicas sign the same tree: the same root for the same size
        assert second.checkpoints.tree.root(head) == tf.server.checkpoints.tree.root(head)
    finally:
        second.stop(grace=0.2)


def test_a_restarted_replica_resumes_and_a_new_one_rebuilds(
    kafka_taskforce: TaskForce, tmp_path: Path, kafka_bootstrap: str, topic_prefix: str
) -> None:
    tf = kafka_taskforce
    alice = tf.client("alice")
    _receipts(alice.publish([alice.signal("md5", v, groups=[GROUP_ALL]) for v in MD5S[:4]]))
    r2 = replica(tf, tmp_path / "r2", kafka_bootstrap, topic_prefix)
    head = tf.server.ledger.head()
    assert r2.ledger.head() == head
    r2.stop(grace=0.2)
    _receipts(alice.publish([alice.signal("md5", v, groups=[GROUP_ALL]) for v in MD5S[4:6]]))
    r2 = replica(tf, tmp_path / "r2", kafka_bootstrap, topic_prefix)  # same view: resumes from its offset
    try:
        assert r2.ledger.head() == head + 2
        assert [s.record for s in r2.ledger.read(0, 100)] == [s.record for s in tf.server.ledger.read(0, 100)]
    finally:
        r2.stop(grace=0.2)


def test_ops_status_shows_the_kafka_engine(
    kafka_taskforce: TaskForce, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`ops status` names the sequencer and its epoch, and the view's state and lag."""
    from exchange.program.cli import main

    tf = kafka_taskforce
    key = tmp_path / "operator.key"
    key.write_text(tf.operator.seed.hex())
    ops = ["ops", "status", "--exchange", tf.target, "--origin", tf.origin, "--operator-key-file", str(key)]
    capsys.readouterr()
    assert main([*ops, "--json"]) == 0
    figures = {f["name"]: f for f in json.loads(capsys.readouterr().out)["engine_figures"]}
    assert figures["kafka_sequencer_is_self"]["value"] == 1  # the only replica
    assert figures["kafka_view_serving"]["value"] == 1
    assert figures["kafka_sequencer_info"]["labels"]["epoch"] == "1"
    assert figures["ledger_groups_committed_total"]["value"] >= 1
    sequencer = figures["kafka_sequencer_info"]["labels"]["sequencer_id"]
    assert main(ops) == 0
    out = capsys.readouterr().out
    assert f"kafka: epoch 1, sequencer {sequencer} (this replica); view serving" in out, out


def test_the_kafka_engine_figures_are_exported(kafka_taskforce: TaskForce) -> None:
    """issue 14 item 9: the trustwire_engine_kafka_* metrics README and dashboards/ promise."""
    from tests.grpc.test_metrics import family, metric, scrape

    tf = kafka_taskforce
    samples, _ = scrape(tf)
    head = tf.server.ledger.head()
    assert metric(samples, "trustwire_engine_kafka_sequencer_is_self") == 1  # the only replica
    assert metric(samples, "trustwire_engine_kafka_sequencer_entries_total") == head
    assert metric(samples, "trustwire_engine_kafka_view_serving") == 1
    assert metric(samples, "trustwire_engine_kafka_producer_errors_total") == 0
    assert (metric(samples, "trustwire_engine_kafka_producer_delivered_total") or 0) >= head
    assert (metric(samples, "trustwire_engine_kafka_consumer_records_total") or 0) >= head + 1
    assert metric(samples, "trustwire_engine_kafka_producer_queue_messages") is not None
    ((labels, value),) = family(samples, "trustwire_engine_kafka_sequencer_info").items()
    assert value == 1 and dict(labels)["epoch"] == "1" and dict(labels)["sequencer_id"]
    assert metric(samples, "trustwire_engine_kafka_sequencer_failovers_total") == 1
