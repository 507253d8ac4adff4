"""The door refuses what the gate does not authenticate: client-streaming and bidi
methods, and methods nobody registered, of any kind."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool

from exchange.core.callauth import CallAuthenticator
from exchange.core.errors import NotServed
from exchange.server.gate import Gate
from exchange.server.interceptors import Door
from exchange.server.rejections import RejectionLog
from exchange.server.streams import StreamCaps, StreamLimits
from tests.conftest import TaskForce
from tests.grpc.conftest import reason_of


def _sneaky_service() -> descriptor_pool.DescriptorPool:
    """attack.v1.Sneaky: Upload (client streaming), Chat (bidi), Ping (unary)."""
    f = descriptor_pb2.FileDescriptorProto(name="attack/v1/sneaky.proto", package="attack.v1", syntax="proto3")
    f.message_type.add(name="M")
    svc = f.service.add(name="Sneaky")
    svc.method.add(name="Upload", input_type=".attack.v1.M", output_type=".attack.v1.M", client_streaming=True)
    svc.method.add(name="Chat", input_type=".attack.v1.M", output_type=".attack.v1.M", client_streaming=True,
                   server_streaming=True)
    svc.method.add(name="Ping", input_type=".attack.v1.M", output_type=".attack.v1.M")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(f)
    return pool


def _never(*args: object) -> bytes:
    raise AssertionError("the gate consulted the key directory for a method kind it refuses")


@pytest.fixture
def sneaky_server() -> Iterator[str]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    auth = CallAuthenticator("test.invalid/log", _never, _never)
    rejections = RejectionLog()
    caps = StreamCaps(StreamLimits())
    gate = Gate(auth, rejections, caps, ThreadPoolExecutor(2))
    service = _sneaky_service().FindServiceByName("attack.v1.Sneaky")
    handler = gate.service(service, {})  # Ping not implemented either: refused too

    async def start() -> tuple[grpc.aio.Server, int]:
        server = grpc.aio.server(interceptors=[Door(gate.methods, caps, rejections)])
        server.add_generic_rpc_handlers((handler,))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        return server, port

    server, port = asyncio.run_coroutine_threadsafe(start(), loop).result(30)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(None), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def _refused(exc: grpc.RpcError) -> None:
    assert exc.code() == grpc.StatusCode.UNIMPLEMENTED, exc  # type: ignore[attr-defined]
    assert reason_of(exc) == NotServed.reason


@pytest.mark.parametrize("method", ["Upload", "Chat"])
def test_client_streaming_and_bidi_methods_are_refused_not_passed_through(sneaky_server: str, method: str) -> None:
    with grpc.insecure_channel(sneaky_server) as channel:
        call = channel.stream_stream(f"/attack.v1.Sneaky/{method}")
        with pytest.raises(grpc.RpcError) as info:
            list(call(iter([b"", b""]), timeout=10))
        _refused(info.value)


def test_unimplemented_gated_method_is_refused(sneaky_server: str) -> None:
    with grpc.insecure_channel(sneaky_server) as channel, pytest.raises(grpc.RpcError) as info:
        channel.unary_unary("/attack.v1.Sneaky/Ping")(b"", timeout=10)
    _refused(info.value)


@pytest.mark.parametrize("kind", ["unary_unary", "unary_stream", "stream_unary", "stream_stream"])
def test_unknown_method_of_any_kind_is_refused(taskforce: TaskForce, kind: str) -> None:
    with grpc.insecure_channel(taskforce.target) as channel:
        call = getattr(channel, kind)("/trustwire.v1.ExchangeService/DropTables")
        request = iter([b""]) if kind.startswith("stream") else b""
        with pytest.raises(grpc.RpcError) as info:
            reply = call(request, timeout=10)
            if kind.endswith("stream"):
                list(reply)
        _refused(info.value)
