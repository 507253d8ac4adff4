"""Operators (issue 7): Prometheus metrics, OperatorService, rejection events,
health and reflection as stock tools (grpcurl) use them.

The metrics tests scrape the real HTTP endpoint after a known workload and compare
exact numbers; the privacy test plants a canary in every field a rejected entry can
carry and checks it never reaches the logs, the operator API or the metrics.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from clients.transport import connect
from exchange.core.callauth import sign_call
from exchange.core.entries import OPERATOR
from exchange.core.errors import ConfigError
from exchange.pb.trustwire.v1 import exchange_pb2 as xpb
from exchange.pb.trustwire.v1 import operator_pb2 as opb
from exchange.pb.trustwire.v1 import operator_pb2_grpc as ogrpc
from exchange.server.metrics import DEFAULT_METRICS_LISTEN, ENGINE_METRICS, EngineSample
from tests.conftest import GROUP_ALL, GROUP_NCII, REPO, TaskForce, start_taskforce, wait_until
from tests.grpc.conftest import (
    MD5_A,
    MD5_B,
    MD5_C,
    PUBLISH,
    RPC_TIMEOUT_S,
    Reflected,
    Stubs,
    assert_entry_error,
    assert_rpc_error,
    publish_raw,
    reencode_envelope,
    sign,
)

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only, never a proxy


def scrape(tf: TaskForce) -> tuple[Samples, str]:
    """GET /metrics over HTTP, as Prometheus does; samples by (name, sorted labels)."""
    assert tf.server.metrics_port, "the metrics endpoint is not running"
    with _DIRECT.open(f"http://127.0.0.1:{tf.server.metrics_port}/metrics", timeout=10) as reply:
        assert reply.status == 200
        assert reply.headers["Content-Type"].startswith("text/plain")
        text = reply.read().decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples, text


def metric(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def family(samples: Samples, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {labels: v for (n, labels), v in samples.items() if n == name}


@pytest.fixture
def tf(tmp_path: Path) -> Iterator[TaskForce]:
    # carol's batches are capped at 3 envelopes, so a whole-call refusal is part of the workload
    force = start_taskforce(tmp_path, metrics_listen="127.0.0.1:0", quota_overrides=("carol:1000:1000:3",))
    try:
        yield force
    finally:
        force.close()


def _operator_stub(tf: TaskForce) -> tuple[grpc.Channel, ogrpc.OperatorServiceStub]:
    channel = connect(tf.target, tf.operator, OPERATOR, origin=tf.origin)
    return channel, ogrpc.OperatorServiceStub(channel)


# -- exact counts after a known workload -----------------------------------------------------------


def test_metrics_count_a_known_workload(tf: TaskForce) -> None:
    stubs = Stubs(tf)
    try:
        bob, alice, carol = tf.client("bob"), tf.client("alice"), tf.client("carol")
        as_bob, as_carol = stubs.member("bob"), stubs.member("carol")
        md5s = [sign(bob.signal("md5", v, groups=[GROUP_ALL], signal_id=f"b{i}"), bob.signer)
                for i, v in enumerate((MD5_A, MD5_B, MD5_C))]
        url = sign(bob.signal("url", "https://example.com/a", groups=[GROUP_ALL], signal_id="u1"), bob.signer)
        custom = sign(bob.signal("zz_custom", "opaque-1", groups=[GROUP_ALL], signal_id="z1"), bob.signer)
        shouting = bob.signal("md5", MD5_A, groups=[GROUP_ALL], signal_id="upper")
        shouting.value = MD5_A.upper()
        # call 1: five new entries and one non-normalized value
        results = publish_raw(as_bob, [*md5s, url, custom, sign(shouting, bob.signer)])
        assert [r.WhichOneof("result") for r in results] == ["receipt"] * 5 + ["error"]
        # call 2: a re-publish gets the old receipt: a duplicate, not a new entry
        (again,) = publish_raw(as_bob, [md5s[0]])
        assert again.receipt.index == results[0].receipt.index
        # call 3: a retraction
        assert publish_raw(as_bob, [sign(bob.retraction("b1"), bob.signer)])[0].WhichOneof("result") == "receipt"
        # call 4: alice, two signals
        alice_envs = [sign(alice.signal("md5", v, groups=[GROUP_NCII], signal_id=f"a{i}"), alice.signer)
                      for i, v in enumerate((MD5_A, MD5_B))]
        assert all(r.WhichOneof("result") == "receipt" for r in publish_raw(stubs.member("alice"), alice_envs))
        # call 5: carol signs an entry of bob's
        claims_bob = bob.signal("md5", MD5_C, groups=[GROUP_ALL], signal_id="c-as-b")
        (wrong,) = publish_raw(as_carol, [sign(claims_bob, carol.signer)])
        assert_entry_error(wrong, "PERMISSION_DENIED", "wrong-member", "caller carol cannot publish")
        # call 6: carol's batch of four is over her limit of three: the whole call is refused
        batch = [sign(carol.signal("md5", MD5_A, groups=[GROUP_ALL], signal_id=f"c{i}"), carol.signer)
                 for i in range(4)]
        with pytest.raises(grpc.RpcError) as info:
            publish_raw(as_carol, batch)
        assert_rpc_error(info.value, grpc.StatusCode.RESOURCE_EXHAUSTED, "oversized-batch", "exceeds the limit of 3")
        # call 7: no credentials at all: refused before anyone is authenticated
        with pytest.raises(grpc.RpcError) as info:
            stubs.plain().Publish(xpb.PublishRequest(envelopes=[md5s[0]]), timeout=RPC_TIMEOUT_S)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]

        # a subscriber holds a stream open
        stream = as_carol.Subscribe(xpb.SubscribeRequest(from_index=0), timeout=60)
        first = next(stream)
        assert first.head == 16
        wait_until(lambda: tf.server.checkpoints.latest().size == 16)  # type: ignore[union-attr]
        wait_until(lambda: metric(scrape(tf)[0], "trustwire_subscriber_lag_entries", member="carol") == 0)

        samples, text = scrape(tf)
        assert family(samples, "trustwire_entries_accepted_total") == {
            (("member", "operator"), ("type", "keyevent")): 8,  # the task force's enrolment
            (("member", "bob"), ("type", "md5")): 3,
            (("member", "bob"), ("type", "url")): 1,
            (("member", "bob"), ("type", "other")): 1,  # an unregistered signal type: no free-form label
            (("member", "bob"), ("type", "retraction")): 1,
            (("member", "alice"), ("type", "md5")): 2,
        }
        assert family(samples, "trustwire_entries_rejected_total") == {
            (("member", "bob"), ("reason", "non-normalized-value"), ("type", "md5")): 1,
            (("member", "carol"), ("reason", "wrong-member"), ("type", "md5")): 1,
            (("member", "carol"), ("reason", "oversized-batch"), ("type", "-")): 4,
        }
        assert family(samples, "trustwire_entries_duplicate_total") == {(("member", "bob"),): 1}
        assert family(samples, "trustwire_rejections_total") == {
            (("member", "bob"), ("method", "Publish"), ("reason", "non-normalized-value")): 1,
            (("member", "carol"), ("method", "Publish"), ("reason", "wrong-member")): 1,
            (("member", "carol"), ("method", "Publish"), ("reason", "oversized-batch")): 1,
            (("member", "-"), ("method", "Publish"), ("reason", "missing-credentials")): 1,
        }
        # seven Publish calls reached the core: the enrolment and calls 1-6
        assert metric(samples, "trustwire_publish_duration_seconds_count") == 7
        assert metric(samples, "trustwire_publish_duration_seconds_bucket", le="+Inf") == 7
        assert metric(samples, "trustwire_ledger_entries") == 16
        assert metric(samples, "trustwire_ledger_head_index") == 15
        assert (metric(samples, "trustwire_ledger_bytes") or 0) > 0
        assert family(samples, "trustwire_subscribers_connected") == {
            (("member", "alice"),): 0, (("member", "bob"),): 0, (("member", "carol"),): 1,
        }
        assert family(samples, "trustwire_subscriber_lag_entries") == {(("member", "carol"),): 0}
        assert metric(samples, "trustwire_checkpoint_tree_size") == 16
        assert metric(samples, "trustwire_tree_size") == 16
        assert 0 <= (metric(samples, "trustwire_checkpoint_age_seconds") or -1) < 3600
        assert metric(samples, "trustwire_build_info", version="0.1.0", engine="sqlite",
                      origin="test.trustwire.invalid/log") == 1
        assert "process_cpu_seconds_total" in text

        # the stream closes: the gauge follows
        stream.cancel()
        wait_until(lambda: metric(scrape(tf)[0], "trustwire_subscribers_connected", member="carol") == 0)
        assert family(scrape(tf)[0], "trustwire_subscriber_lag_entries") == {}
    finally:
        stubs.close()


def test_engine_metrics_hook(tf: TaskForce) -> None:
    """What the Kafka engine reports through engine_metrics() is exported as is."""

    class FakeKafkaEngine:
        calls = 0

        def engine_metrics(self) -> list[EngineSample]:
            FakeKafkaEngine.calls += 1
            return [
                EngineSample(name="kafka_producer_queue_messages", value=3),
                EngineSample(name="kafka_sequencer_failovers_total", value=2, kind="counter"),
                EngineSample(name="kafka_sequencer_info", value=1, labels={"sequencer_id": "replica-b", "epoch": "7"}),
            ]

    class BrokenEngine:
        def engine_metrics(self) -> list[EngineSample]:
            raise RuntimeError("librdkafka stats not yet available")

    assert tf.server.metrics is not None
    tf.server.metrics.add_engine_source(BrokenEngine())  # a failing source never fails the scrape
    tf.server.metrics.add_engine_source(FakeKafkaEngine())
    samples, _ = scrape(tf)
    assert metric(samples, "trustwire_engine_kafka_producer_queue_messages") == 3
    assert metric(samples, "trustwire_engine_kafka_sequencer_failovers_total") == 2
    assert metric(samples, "trustwire_engine_kafka_sequencer_info", sequencer_id="replica-b", epoch="7") == 1
    assert metric(samples, "trustwire_ledger_entries") == 8
    assert FakeKafkaEngine.calls == 1


def test_group_commit_figures_are_exported(tf: TaskForce) -> None:
    """The SQLite ledger's group-commit counters: one call after another, each append
    is its own write transaction; a call that stores nothing commits nothing."""
    samples, _ = scrape(tf)
    groups0 = metric(samples, "trustwire_engine_ledger_groups_committed_total")
    batches0 = metric(samples, "trustwire_engine_ledger_batches_committed_total")
    assert groups0 is not None and batches0 is not None and groups0 >= 1  # the enrolment
    stubs = Stubs(tf)
    try:
        bob = tf.client("bob")
        for i, value in enumerate((MD5_A, MD5_B, MD5_C)):
            env = sign(bob.signal("md5", value, groups=[GROUP_ALL], signal_id=f"g{i}"), bob.signer)
            assert publish_raw(stubs.member("bob"), [env])[0].WhichOneof("result") == "receipt"
        carol = tf.client("carol")
        wrong = sign(bob.signal("md5", MD5_A, groups=[GROUP_ALL], signal_id="not-carols"), carol.signer)
        assert publish_raw(stubs.member("carol"), [wrong])[0].WhichOneof("result") == "error"
    finally:
        stubs.close()
    samples, _ = scrape(tf)
    assert metric(samples, "trustwire_engine_ledger_groups_committed_total") == groups0 + 3
    assert metric(samples, "trustwire_engine_ledger_batches_committed_total") == batches0 + 3


def test_metrics_endpoint_settings(tmp_path: Path) -> None:
    off = start_taskforce(tmp_path / "off", metrics_listen="off")
    try:
        assert off.server.metrics_port is None and off.server.metrics is not None
        assert "trustwire_ledger_entries 8.0" in off.server.metrics.text()  # still computed for in-process use
    finally:
        off.close()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = f"127.0.0.1:{busy.getsockname()[1]}"
        with pytest.raises(ConfigError, match=f"cannot serve metrics on {taken}"):
            start_taskforce(tmp_path / "busy", metrics_listen=taken)
    with pytest.raises(ConfigError, match="metrics_listen is host:port"):
        start_taskforce(tmp_path / "bad", metrics_listen="9464")
    # the default address, when taken (another exchange, a parallel test run): serve without metrics
    with socket.socket() as default:
        default.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 0)
        host, port = DEFAULT_METRICS_LISTEN.split(":")
        try:
            default.bind((host, int(port)))
            default.listen()
            held = True
        except OSError:
            held = False  # taken by another process, which may let go of it at any time
        tf = start_taskforce(tmp_path / "default", metrics_listen=DEFAULT_METRICS_LISTEN)
        try:
            assert tf.server.metrics_port is None if held else tf.server.metrics_port in (None, int(port))
        finally:
            tf.close()


# -- OperatorService: the operator only -------------------------------------------------------------


def test_member_reads_operator_status(taskforce: TaskForce, stubs: Stubs) -> None:
    channel = connect(taskforce.target, taskforce.signers["alice"], "alice", origin=taskforce.origin)
    try:
        with pytest.raises(grpc.RpcError) as info:
            ogrpc.OperatorServiceStub(channel).GetStatus(opb.GetStatusRequest(), timeout=RPC_TIMEOUT_S)
        assert_rpc_error(info.value, grpc.StatusCode.PERMISSION_DENIED, "permission-denied", "only the operator")
    finally:
        channel.close()
    refused = taskforce.server.core.rejections.since(0)
    assert [(e.member, e.method, e.reason) for e in refused] == [("alice", "GetStatus", "permission-denied")]


def test_member_lists_rejections(taskforce: TaskForce) -> None:
    channel = connect(taskforce.target, taskforce.signers["bob"], "bob", origin=taskforce.origin)
    try:
        with pytest.raises(grpc.RpcError) as info:
            ogrpc.OperatorServiceStub(channel).ListRejections(opb.ListRejectionsRequest(), timeout=RPC_TIMEOUT_S)
        assert_rpc_error(info.value, grpc.StatusCode.PERMISSION_DENIED, "permission-denied", "only the operator")
    finally:
        channel.close()


def test_anonymous_reads_operator_status(taskforce: TaskForce, stubs: Stubs) -> None:
    stub = ogrpc.OperatorServiceStub(stubs.channel())
    with pytest.raises(grpc.RpcError) as info:
        stub.GetStatus(opb.GetStatusRequest(), timeout=RPC_TIMEOUT_S)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]


def test_member_claims_operator_principal(taskforce: TaskForce) -> None:
    """A member signing calls as "operator" with its own key is refused before any status is read."""
    channel = connect(taskforce.target, taskforce.signers["bob"], OPERATOR, origin=taskforce.origin)
    try:
        with pytest.raises(grpc.RpcError) as info:
            ogrpc.OperatorServiceStub(channel).GetStatus(opb.GetStatusRequest(), timeout=RPC_TIMEOUT_S)
        assert_rpc_error(info.value, grpc.StatusCode.PERMISSION_DENIED, "wrong-member", "operator key")
    finally:
        channel.close()


def test_refused_call_names_its_rejection_event(taskforce: TaskForce, stubs: Stubs) -> None:
    """What a client saw (the tw-correlation-id trailer) leads the operator to the event."""
    with pytest.raises(grpc.RpcError) as info:
        stubs.plain().Publish(xpb.PublishRequest(), timeout=RPC_TIMEOUT_S)
    trailers = dict(info.value.trailing_metadata())  # type: ignore[attr-defined]
    correlation = trailers["tw-correlation-id"]
    channel, operator = _operator_stub(taskforce)
    try:
        events = operator.ListRejections(opb.ListRejectionsRequest(since_ms=0), timeout=RPC_TIMEOUT_S).events
        (event,) = [e for e in events if e.correlation_id == correlation]
        assert (event.member_id, event.method, event.status, event.reason, event.count) == (
            "-", "Publish", "UNAUTHENTICATED", "missing-credentials", 1
        )
        later = operator.ListRejections(
            opb.ListRejectionsRequest(since_ms=event.at_ms + 60_000), timeout=RPC_TIMEOUT_S
        )
        assert list(later.events) == []
    finally:
        channel.close()


# -- rejection events never carry payloads or identifiers ---------------------------------------------

CANARY = "canary5e1f0c"  # lowercase so it fits ids, groups and principals too


def test_rejections_carry_no_payload_or_identifier(
    tf: TaskForce, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    stubs = Stubs(tf)
    try:
        bob, carol = tf.client("bob"), tf.client("carol")
        as_bob = stubs.member("bob")
        # per-envelope rejections, each with the canary in a different field
        non_normalized = bob.signal("text", "xxxx", groups=[GROUP_ALL], signal_id=f"id-{CANARY}")
        non_normalized.value = f"  Phrase {CANARY.upper()}  "
        foreign_group = bob.signal("md5", MD5_A, groups=[f"group-{CANARY}"], signal_id="g1",
                                   description=f"about {CANARY}", labels=[CANARY])
        claims_carol = carol.signal("md5", MD5_B, groups=[GROUP_ALL], signal_id=f"c-{CANARY}",
                                    description=CANARY)
        unknown_signal = bob.retraction(f"never-{CANARY}")
        forged = reencode_envelope(sign(bob.signal("md5", MD5_C, groups=[GROUP_ALL], description=CANARY),
                                        bob.signer), sig=b"\x00" * 64)
        garbage = f"not an envelope {CANARY}".encode()
        results = publish_raw(as_bob, [
            sign(non_normalized, bob.signer), sign(foreign_group, bob.signer), sign(claims_carol, bob.signer),
            sign(unknown_signal, bob.signer), forged, garbage,
        ])
        reasons = [r.error.reason for r in results]
        assert reasons == ["non-normalized-value", "group-not-allowed", "wrong-member", "not-found",
                           "forged-signature", "malformed-envelope"]
        # whole-call refusals: a canary principal, and a canary member id that is not enrolled
        body = xpb.PublishRequest(envelopes=[garbage]).SerializeToString(deterministic=True)
        for principal in (CANARY, f"m-{CANARY}"):
            md = sign_call(bob.signer, principal, PUBLISH, tf.origin, body)
            with pytest.raises(grpc.RpcError):
                stubs.plain().Publish(xpb.PublishRequest(envelopes=[garbage]), metadata=md, timeout=RPC_TIMEOUT_S)

        channel, operator = _operator_stub(tf)
        try:
            listed = operator.ListRejections(opb.ListRejectionsRequest(since_ms=0), timeout=RPC_TIMEOUT_S)
            status = operator.GetStatus(opb.GetStatusRequest(), timeout=RPC_TIMEOUT_S)
        finally:
            channel.close()
        _, metrics_text = scrape(tf)
    finally:
        stubs.close()

    logged = [r for r in caplog.records if r.name == "trustwire.rejections"]
    assert {r.rejection["reason"] for r in logged} >= set(reasons) | {"wrong-member"}  # type: ignore[attr-defined]
    assert {e.reason for e in listed.events} >= set(reasons)
    assert "bob" in {e.member_id for e in listed.events} and "-" in {e.member_id for e in listed.events}
    everything = {
        "rejection log records": "\n".join(f"{r.getMessage()} {r.__dict__!r}" for r in logged),
        "any log record": "\n".join(f"{r.name} {r.getMessage()} {r.args!r} {r.__dict__!r}" for r in caplog.records),
        "ListRejections": str(listed) + repr(listed.SerializeToString()),
        "GetStatus": str(status) + repr(status.SerializeToString()),
        "metrics": metrics_text,
    }
    for where, text in everything.items():
        assert CANARY not in text.lower(), f"the canary leaked into {where}"
    # the structured event has exactly these fields: nothing from the request rides along
    assert {tuple(sorted(r.rejection)) for r in logged} == {  # type: ignore[attr-defined]
        ("at_ms", "correlation_id", "count", "member", "method", "reason", "status")
    }


# -- health and reflection, as grpcurl uses them --------------------------------------------------------


def test_reflection_lists_and_describes_services(taskforce: TaskForce, stubs: Stubs) -> None:
    """`grpcurl -plaintext HOST:PORT list` and `describe trustwire.v1.ExchangeService`,
    done with grpc's own reflection client (no credentials, like grpcurl)."""
    channel = stubs.channel()
    exchange_name, operator_name = "trustwire.v1.ExchangeService", "trustwire.v1.OperatorService"
    reflected = Reflected(channel, [exchange_name, operator_name])
    assert reflected.services == {
        exchange_name, "trustwire.v1.AuditService", operator_name,
        "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection",
    }
    exchange = reflected.service(exchange_name)
    methods = {m.name: (m.input_type, m.output_type, m.server_streaming) for m in exchange.method}
    assert methods["Publish"] == (".trustwire.v1.PublishRequest", ".trustwire.v1.PublishResponse", False)
    assert methods["Subscribe"] == (".trustwire.v1.SubscribeRequest", ".trustwire.v1.SubscribeResponse", True)
    assert set(methods) == {"Publish", "Subscribe", "GetEntries", "GetKeyDirectory"}
    record = reflected.message("trustwire.v1.PublishResult")
    assert {f.name for f in record.field} == {"receipt", "error"}
    assert {m.name for m in reflected.service(operator_name).method} == {"GetStatus", "ListRejections"}

    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "trustwire.v1.ExchangeService", "trustwire.v1.AuditService", "trustwire.v1.OperatorService"):
        reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=RPC_TIMEOUT_S)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING, service


def test_operator_status_reports_the_stream(tf: TaskForce) -> None:
    """GetStatus: members, rejects and a connected subscriber, read through the API."""
    bob = tf.client("bob")
    bob.publish([bob.signal("md5", v, groups=[GROUP_ALL]) for v in (MD5_A, MD5_B)])
    channel, operator = _operator_stub(tf)
    try:
        status = operator.GetStatus(opb.GetStatusRequest(window_s=900, silent_after_s=3600), timeout=RPC_TIMEOUT_S)
    finally:
        channel.close()
    members = {m.member_id: m for m in status.members}
    assert set(members) == {"alice", "bob", "carol", "operator"}
    assert (members["bob"].accepted_total, members["bob"].accepted_in_window) == (2, 2)
    assert dict(members["bob"].accepted_by_type) == {"md5": 2}
    assert members["bob"].rate_per_s == pytest.approx(2 / 900)
    assert members["operator"].role == "operator" and members["carol"].role == "member"
    assert status.ledger_head == 10 and status.window_s == 900 and status.engine == "sqlite"
    assert list(status.alerts) == []
    assert time.time() * 1000 - status.now_ms < 3_600_000  # the server's own clock, not ours



# -- the dashboard and its documentation ------------------------------------------------------------


def test_dashboard_queries_are_documented_and_use_exported_metrics(tf: TaskForce) -> None:
    dashboard = json.loads((REPO / "dashboards" / "trustwire-exchange.json").read_text())
    doc = (REPO / "dashboards" / "PROMQL.md").read_text()
    _, text = scrape(tf)
    exported = {f.name for f in text_string_to_metric_families(text)}
    exported |= {s.name for f in text_string_to_metric_families(text) for s in f.samples}
    exported |= {f"trustwire_engine_{name}" for name in ENGINE_METRICS}  # what the Kafka engine reports
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 30
    for expr in exprs:
        assert f"`{expr}`" in doc, f"PROMQL.md does not document {expr}"
    rules = doc[doc.index("## Alerting rules"):]
    for expr in [*exprs, *re.findall(r"expr: (.+)", rules)]:
        for name in re.findall(r"\b(?:trustwire|process)_[a-z_]+", expr):
            known = name in exported or name.removesuffix("_total") in exported  # a counter with no sample yet
            assert known, f"{name} (in {expr}) is not a metric the exchange exports"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert {v["name"] for v in dashboard["templating"]["list"]} == {"datasource", "instance", "member"}
