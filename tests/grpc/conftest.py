"""Helpers shared by the gRPC suites: raw stubs, signing, result assertions."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from clients.transport import connect
from exchange.core.dsse import sign_envelope
from exchange.core.entries import Entry, encode_entry
from exchange.core.keys import Signer
from exchange.pb.trustwire.v1 import envelope_pb2
from exchange.pb.trustwire.v1 import exchange_pb2 as xpb
from exchange.pb.trustwire.v1 import exchange_pb2_grpc as xgrpc
from tests.conftest import TaskForce

SERVICE = "trustwire.v1.ExchangeService"
PUBLISH = f"/{SERVICE}/Publish"
SUBSCRIBE = f"/{SERVICE}/Subscribe"
GET_ENTRIES = f"/{SERVICE}/GetEntries"
GET_KEY_DIRECTORY = f"/{SERVICE}/GetKeyDirectory"
RPC_TIMEOUT_S = 10.0

# Normalized sample values.
MD5_A = "d41d8cd98f00b204e9800998ecf8427e"
MD5_B = "0cc175b9c0f1b6a831c399e269772661"
MD5_C = "92eb5ffee6ae2fec3ad71c777531578f"


def sign(entry: Entry, signer: Signer) -> bytes:
    """Canonical DSSE envelope bytes of ``entry`` signed by ``signer``."""
    return sign_envelope(*encode_entry(entry), signer).raw


def reencode_envelope(raw: bytes, *, sig: bytes | None = None, payload: bytes | None = None) -> bytes:
    """The same envelope with its signature or payload swapped, canonically encoded."""
    msg = envelope_pb2.Envelope()
    msg.ParseFromString(raw)
    if sig is not None:
        msg.signatures[0].sig = sig
    if payload is not None:
        msg.payload = payload
    return msg.SerializeToString(deterministic=True)


def flip_bit(data: bytes, at: int) -> bytes:
    b = bytearray(data)
    b[at] ^= 0x01
    return bytes(b)


class Stubs:
    """Raw ExchangeService stubs that sign calls as a given principal."""

    def __init__(self, tf: TaskForce) -> None:
        self._tf = tf
        self._channels: list[grpc.Channel] = []

    def member(self, name: str, signer: Signer | None = None) -> xgrpc.ExchangeServiceStub:
        channel = connect(self._tf.target, signer or self._tf.signers[name], name, origin=self._tf.origin)
        self._channels.append(channel)
        return xgrpc.ExchangeServiceStub(channel)

    def plain(self) -> xgrpc.ExchangeServiceStub:
        """No call credentials at all: the caller adds metadata by hand."""
        channel = grpc.insecure_channel(self._tf.target)
        self._channels.append(channel)
        return xgrpc.ExchangeServiceStub(channel)

    def channel(self) -> grpc.Channel:
        channel = grpc.insecure_channel(self._tf.target)
        self._channels.append(channel)
        return channel

    def close(self) -> None:
        for c in self._channels:
            c.close()


@pytest.fixture
def stubs(taskforce: TaskForce) -> Iterator[Stubs]:
    s = Stubs(taskforce)
    try:
        yield s
    finally:
        s.close()


class Reflected:
    """What a grpcurl-style client learns from server reflection: the service names, and the
    file descriptors (with their dependencies) that define the symbols asked about."""

    def __init__(self, channel: grpc.Channel, symbols: Sequence[str]) -> None:
        requests = [reflection_pb2.ServerReflectionRequest(list_services="")]
        requests += [reflection_pb2.ServerReflectionRequest(file_containing_symbol=s) for s in symbols]
        # A finite request stream: the call ends when the answers are in, leaving no thread or
        # stream behind (and no descriptor pool fed from Python callbacks).
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        replies = list(stub.ServerReflectionInfo(iter(requests), timeout=RPC_TIMEOUT_S))
        assert len(replies) == len(requests), replies
        for reply in replies:
            assert not reply.HasField("error_response"), reply.error_response
        self.services = {s.name for s in replies[0].list_services_response.service}
        self.files: dict[str, descriptor_pb2.FileDescriptorProto] = {}
        for reply in replies[1:]:
            for raw in reply.file_descriptor_response.file_descriptor_proto:
                fd = descriptor_pb2.FileDescriptorProto.FromString(raw)
                self.files[fd.name] = fd

    def service(self, full_name: str) -> descriptor_pb2.ServiceDescriptorProto:
        (found,) = [s for f in self.files.values() for s in f.service if f"{f.package}.{s.name}" == full_name]
        return found

    def message(self, full_name: str) -> descriptor_pb2.DescriptorProto:
        (found,) = [m for f in self.files.values() for m in f.message_type if f"{f.package}.{m.name}" == full_name]
        return found


def publish_raw(stub: xgrpc.ExchangeServiceStub, envelopes: Sequence[bytes], **kwargs: object) -> list[xpb.PublishResult]:
    response = stub.Publish(xpb.PublishRequest(envelopes=list(envelopes)), timeout=RPC_TIMEOUT_S, **kwargs)
    results = list(response.results)
    assert len(results) == len(envelopes)
    return results


def assert_entry_error(result: xpb.PublishResult, status: str, reason: str, text: str) -> None:
    """A per-envelope rejection with this status name, reason and message substring."""
    assert result.WhichOneof("result") == "error", f"expected an error, got {result}"
    assert result.error.status == status, result.error
    assert result.error.reason == reason, result.error
    assert text in result.error.message, result.error


def reason_of(exc: grpc.RpcError) -> str:
    return dict(exc.trailing_metadata() or ()).get("tw-reason", "")  # type: ignore[attr-defined]


def assert_rpc_error(exc: grpc.RpcError, code: grpc.StatusCode, reason: str, text: str) -> None:
    """A whole-call failure with this status code, tw-reason trailer and message substring."""
    assert exc.code() == code, (exc.code(), exc.details())  # type: ignore[attr-defined]
    assert reason_of(exc) == reason, (reason_of(exc), exc.details())  # type: ignore[attr-defined]
    assert text in (exc.details() or ""), exc.details()  # type: ignore[attr-defined]
