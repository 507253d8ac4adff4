"""Unauthenticated noise never evicts a member's rejection records; reads have quotas."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest

from clients.transport import connect
from exchange.core.entries import OPERATOR
from exchange.pb.trustwire.v1 import audit_pb2 as apb
from exchange.pb.trustwire.v1 import audit_pb2_grpc as agrpc
from exchange.pb.trustwire.v1 import exchange_pb2 as xpb
from exchange.pb.trustwire.v1 import operator_pb2 as opb
from exchange.pb.trustwire.v1 import operator_pb2_grpc as ogrpc
from exchange.server.rejections import RejectionLog
from tests.grpc.conftest import reason_of
from tests.serving.conftest import Served, serve

NOISE = 3000


async def _noise(target: str, n: int) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        publish = channel.unary_unary("/trustwire.v1.ExchangeService/Publish")
        sem = asyncio.Semaphore(64)

        async def one() -> None:
            async with sem:
                with pytest.raises(grpc.aio.AioRpcError):
                    await publish(b"", timeout=30)

        await asyncio.gather(*(one() for _ in range(n)))


def _rejections(served: Served) -> list[opb.RejectionEvent]:
    channel = connect(served.exchange.target, served.exchange.operator, OPERATOR, origin=served.exchange.name)
    try:
        stub = ogrpc.OperatorServiceStub(channel)  # type: ignore[no-untyped-call]
        return list(stub.ListRejections(opb.ListRejectionsRequest(since_ms=0, limit=1000), timeout=30).events)
    finally:
        channel.close()


def test_unauthenticated_noise_does_not_evict_member_rejections(tmp_path: Path) -> None:
    served = serve(tmp_path / "exchange")
    try:
        reply = served.stub("bob").Publish(xpb.PublishRequest(envelopes=[b"not an envelope"]), timeout=30)
        correlation = reply.results[0].error.correlation_id
        assert correlation
        asyncio.run(_noise(served.exchange.target, NOISE))
        events = _rejections(served)
        assert any(e.member_id == "bob" and e.correlation_id == correlation for e in events)
        noise_kept = [e for e in events if e.member_id == "-"]
        assert 0 < len(noise_kept) < NOISE  # sampled, not stored one by one
    finally:
        served.close()


def test_rejection_records_are_bounded_per_member_and_noise_is_sampled() -> None:
    clock = [0]
    log = RejectionLog(per_member=10, clock_ms=lambda: clock[0], unauthenticated_capacity=50,
                       unauthenticated_samples_per_s=5)
    mine = log.record("bob", "Publish", "INVALID_ARGUMENT", "malformed-envelope")
    for i in range(50_000):
        clock[0] = i  # 50 s of noise at 1,000 calls a second
        log.record("-", "Publish", "UNAUTHENTICATED", "missing-credentials", authenticated=False)
    for _ in range(5):
        log.record("alice", "Publish", "INVALID_ARGUMENT", "malformed-envelope")
    kept = log.since(0, limit=1_000_000)
    assert mine in kept
    assert sum(e.member == "-" for e in kept) == 50
    assert log.totals[("-", "missing-credentials")] == 50_000
    for _ in range(20):
        log.record("alice", "Publish", "INVALID_ARGUMENT", "malformed-envelope")
    assert sum(e.member == "alice" for e in log.since(0, limit=1_000_000)) == 10  # bounded per member
    assert mine in log.since(0, limit=1_000_000)  # alice's flood does not evict bob either


@pytest.fixture
def stingy(tmp_path: Path) -> Served:
    served = serve(
        tmp_path / "exchange", subscribe_burst=2, subscribe_rate=0.01, proof_burst=2, proof_rate=0.01,
        all_entries_burst=2, all_entries_rate=0.01,
    )
    served.publish("alice", "7" * 32)
    return served


def _exhausted(call: object) -> None:
    with pytest.raises(grpc.RpcError) as info:
        call()  # type: ignore[operator]
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, info.value  # type: ignore[attr-defined]
    assert reason_of(info.value) == "quota-exceeded"
    assert int(dict(info.value.trailing_metadata())["retry-after-ms"]) > 0  # type: ignore[attr-defined]


def test_subscribe_start_flood_hits_the_read_quota(stingy: Served) -> None:
    try:
        stub = stingy.stub("bob")

        def start() -> None:
            list(stub.Subscribe(xpb.SubscribeRequest(from_index=0, stop_at_head=True), timeout=30))

        start()
        start()
        _exhausted(start)
        list(stingy.stub("alice").Subscribe(xpb.SubscribeRequest(stop_at_head=True), timeout=30))  # per principal
    finally:
        stingy.close()


def test_proof_flood_hits_the_read_quota(stingy: Served) -> None:
    try:
        stub = agrpc.AuditServiceStub(stingy.channel("bob"))  # type: ignore[no-untyped-call]
        head = stingy.publish("alice", "8" * 32) + 1
        # a checkpoint covering the head (checkpoints are signed at most once per interval)
        size = stub.GetCheckpoint(apb.GetCheckpointRequest(covering_index=head - 1, wait_ms=10_000), timeout=30).size
        assert size >= 3
        stub.GetConsistencyProof(apb.GetConsistencyProofRequest(old_size=1, new_size=size), timeout=30)
        stub.GetConsistencyProof(apb.GetConsistencyProofRequest(old_size=2, new_size=size), timeout=30)
        _exhausted(lambda: stub.GetConsistencyProof(apb.GetConsistencyProofRequest(old_size=1, new_size=size),
                                                    timeout=30))
    finally:
        stingy.close()


def test_get_all_entries_flood_hits_the_read_quota(stingy: Served) -> None:
    try:
        channel = connect(stingy.exchange.target, stingy.exchange.operator, OPERATOR, origin=stingy.exchange.name)
        stub = agrpc.AuditServiceStub(channel)  # type: ignore[no-untyped-call]
        for _ in range(2):
            stub.GetAllEntries(apb.GetAllEntriesRequest(from_index=0), timeout=30)
        _exhausted(lambda: stub.GetAllEntries(apb.GetAllEntriesRequest(from_index=0), timeout=30))
        channel.close()
    finally:
        stingy.close()
