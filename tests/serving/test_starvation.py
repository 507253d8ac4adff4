"""Long-lived calls cannot starve the exchange: unauthenticated health Watch and
reflection streams are capped, member streams are capped, and a member's calls
still answer while they are all open."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import Future
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2

from clients.transport import _CallSigner, connect
from exchange.pb.trustwire.v1 import exchange_pb2 as xpb
from exchange.pb.trustwire.v1 import exchange_pb2_grpc as xgrpc
from tests.conftest import start_taskforce, wait_until
from tests.serving.conftest import GROUP, Follower, Served, ops_alerts, serve

ANSWER_WITHIN_S = 1.0  # the bound, as a gRPC deadline on each probe (not a timing assertion)
WATCH = "/grpc.health.v1.Health/Watch"
REFLECT = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"


def own_connection(served: Served, member: str) -> grpc.Channel:
    """A channel on a connection of its own (grpc shares connections between equal channels)."""
    raw = grpc.insecure_channel(served.exchange.target, options=[("grpc.use_local_subchannel_pool", 1)])
    return grpc.intercept_channel(raw, _CallSigner(served.signers[member], member, served.exchange.name))


class Flood:
    """``n`` streams of one kind over ``connections`` channels, on an event loop of its own."""

    def __init__(self, target: str, method: str, n: int, connections: int) -> None:
        self.codes: dict[str, int] = {}
        self.open = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._stop: asyncio.Event | None = None
        self._ready: Future[None] = asyncio.run_coroutine_threadsafe(self._run(target, method, n, connections), self._loop)  # type: ignore[assignment]

    async def _requests(self) -> AsyncIterator[reflection_pb2.ServerReflectionRequest]:
        """One request, then the stream stays open (not half-closed) until the flood ends."""
        yield reflection_pb2.ServerReflectionRequest(list_services="")
        assert self._stop is not None
        await self._stop.wait()

    async def _run(self, target: str, method: str, n: int, connections: int) -> None:
        self._stop = asyncio.Event()
        # a local subchannel pool per channel: each channel is its own connection
        channels = [
            grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
            for _ in range(connections)
        ]
        opened = asyncio.Event()
        started = 0

        async def one(i: int) -> None:
            nonlocal started
            channel = channels[i % connections]
            try:
                if method == WATCH:
                    call = channel.unary_stream(
                        WATCH, request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
                        response_deserializer=health_pb2.HealthCheckResponse.FromString,
                    )(health_pb2.HealthCheckRequest(service=""))
                    await call.read()
                else:
                    call = channel.stream_stream(
                        REFLECT, request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
                        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
                    )(self._requests())  # sent for us (a refusal racing a write is not an error)
                    await call.read()
                self.open += 1
                started += 1
                if started == n:
                    opened.set()
                assert self._stop is not None
                await self._stop.wait()
                call.cancel()
            except grpc.aio.AioRpcError as exc:
                name = exc.code().name
                if exc.code() == grpc.StatusCode.INTERNAL and "SendMessageOperation" in exc.debug_error_string():
                    # grpc.aio's client: its own write of our request raced the server's refusal and the
                    # client reports that local failure instead of the server's status
                    name = "RESOURCE_EXHAUSTED"
                self.codes[name] = self.codes.get(name, 0) + 1
                started += 1
                if started == n:
                    opened.set()

        tasks = [asyncio.create_task(one(i)) for i in range(n)]
        await asyncio.wait_for(opened.wait(), 60)
        self._tasks = tasks
        self._channels = channels

    def wait_open(self) -> None:
        self._ready.result(90)

    def close(self) -> None:
        async def stop() -> None:
            assert self._stop is not None
            self._stop.set()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            for c in self._channels:
                await c.close()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(60)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@pytest.fixture
def flooded(tmp_path: Path) -> Iterator[tuple[Served, Flood, Flood]]:
    served = serve(tmp_path / "exchange")
    watch = Flood(served.exchange.target, WATCH, 200, connections=20)
    reflect = Flood(served.exchange.target, REFLECT, 200, connections=20)
    try:
        watch.wait_open()
        reflect.wait_open()
        yield served, watch, reflect
    finally:
        watch.close()
        reflect.close()
        served.close()


def test_unauthenticated_watch_and_reflection_streams_cannot_starve_members(
    flooded: tuple[Served, Flood, Flood],
) -> None:
    served, watch, reflect = flooded
    # the caps held: most of the 400 streams were refused, with a clear status
    assert watch.open + reflect.open <= 64
    refused = watch.codes.get("RESOURCE_EXHAUSTED", 0) + reflect.codes.get("RESOURCE_EXHAUSTED", 0)
    assert refused == 400 - watch.open - reflect.open, (watch.codes, reflect.codes)

    # while the survivors stay open, a member's Publish and Subscribe and a Health/Check answer
    bob = served.stub("bob")
    index = served.publish("alice", "f" * 32)
    pages = bob.Subscribe(xpb.SubscribeRequest(from_index=index, stop_at_head=True), timeout=ANSWER_WITHIN_S)
    assert any(page.records for page in pages)
    channel = grpc.insecure_channel(served.exchange.target)
    try:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=ANSWER_WITHIN_S)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        channel.close()
    reply = bob.GetEntries(xpb.GetEntriesRequest(from_index=0), timeout=ANSWER_WITHIN_S)
    assert reply.head > index


def test_member_stream_flood_is_capped_per_principal(tmp_path: Path) -> None:
    served = serve(tmp_path / "exchange", streams_per_principal=3)
    try:
        followers = [Follower(served.stub("bob")) for _ in range(3)]
        wait_until(lambda: all(f.next_index > 0 for f in followers), timeout=30)  # the three are open
        extra = Follower(served.stub("bob"))
        assert extra.ended.wait(30)
        assert extra.code == grpc.StatusCode.RESOURCE_EXHAUSTED, extra.code
        # other members are not affected by bob's flood
        alice = Follower(served.stub("alice"))
        index = served.publish("alice", "e" * 32)
        wait_until(lambda: index in alice.indices and all(index in f.indices for f in followers), timeout=30)
        for f in (*followers, alice):
            f.cancel()
    finally:
        served.close()


def test_member_stream_flood_is_capped_per_connection(tmp_path: Path) -> None:
    served = serve(tmp_path / "exchange", streams_per_connection=2, streams_per_principal=100)
    try:
        stub = served.stub("bob")  # one channel: one connection
        served.publish("alice", "4" * 32)
        followers = [Follower(stub) for _ in range(2)]
        wait_until(lambda: all(f.next_index > 0 for f in followers), timeout=30)  # both open
        extra = Follower(stub)
        assert extra.ended.wait(30)
        assert extra.code == grpc.StatusCode.RESOURCE_EXHAUSTED, extra.code
        other = Follower(xgrpc.ExchangeServiceStub(own_connection(served, "bob")))  # another connection still opens
        index = served.publish("alice", "d" * 32)
        wait_until(lambda: index in other.indices, timeout=30)
        for f in (*followers, other):
            f.cancel()
    finally:
        served.close()


def test_stream_caps_show_in_ops_status(tmp_path: Path) -> None:
    """Refusals are visible to the operator: a streams-refused alert naming the cap."""
    served = serve(tmp_path / "exchange", streams_per_principal=1)
    try:
        served.publish("alice", "6" * 32)
        held = Follower(served.stub("bob"))
        wait_until(lambda: held.next_index > 0, timeout=30)  # open: its first page arrived
        refused = Follower(served.stub("bob"))
        assert refused.ended.wait(30) and refused.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        alerts = ops_alerts(served)
        assert any(a["kind"] == "streams-refused" and a["subject"] == "principal" for a in alerts), alerts
        held.cancel()
    finally:
        served.close()


def test_stream_caps_show_in_metrics(tmp_path: Path) -> None:
    tf = start_taskforce(tmp_path, streams_per_principal=1)
    try:
        stub = xgrpc.ExchangeServiceStub(
            connect(tf.target, tf.signers["bob"], "bob", origin=tf.origin)
        )
        held = Follower(stub)
        wait_until(lambda: held.next_index > 0, timeout=30)  # open: its first page arrived
        refused = Follower(stub)
        assert refused.ended.wait(30) and refused.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert tf.server.metrics is not None
        text = tf.server.metrics.text()
        assert 'trustwire_streams_refused_total{cap="principal"} 1.0' in text, text
        assert 'trustwire_streams_open{kind="member"} 1.0' in text
        assert 'trustwire_stream_cap{cap="principal"} 1.0' in text
        held.cancel()
    finally:
        tf.close()
