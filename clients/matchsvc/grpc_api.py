"""The match service over gRPC (``trustwire.v1.MatchService``): decode, call, encode.

Every call needs ``authorization: Bearer <token>`` metadata. Errors abort with the
error's gRPC status and the ``tw-reason`` trailer, as the exchange's do.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import grpc

from clients.matchsvc.auth import PipelineAuth
from clients.matchsvc.tls import ServeTls
from clients.matchsvc.service import MatchService
from clients.matchsvc.wire import hashes_pb, result_pb
from exchange.core.errors import InvalidInput, TrustwireError
from exchange.pb.trustwire.v1 import match_pb2 as mpb
from exchange.pb.trustwire.v1 import match_pb2_grpc as mgrpc

__all__ = ["MatchServicer", "start_grpc"]

log = logging.getLogger(__name__)

REASON_HEADER = "tw-reason"
T = TypeVar("T")


class MatchServicer(mgrpc.MatchServiceServicer):
    def __init__(self, service: MatchService, tokens: PipelineAuth) -> None:
        self._service = service
        self._tokens = tokens

    def _call(self, context: grpc.ServicerContext, fn: Callable[[], T], request: object = None) -> T:
        try:
            auth = dict(context.invocation_metadata()).get("authorization")
            self._tokens.check(str(auth) if auth is not None else None)
            if isinstance(request, _Undecodable):
                raise InvalidInput(f"the request body is not a valid {request.what} protobuf message")
            return fn()
        except TrustwireError as err:
            context.set_trailing_metadata(((REASON_HEADER, err.reason),))
            context.abort(grpc.StatusCode[err.status], err.message)
        except Exception:  # noqa: BLE001 - never leak a traceback to the caller
            log.exception("internal error in a MatchService call")
            context.set_trailing_metadata(((REASON_HEADER, TrustwireError.reason),))
            context.abort(grpc.StatusCode.INTERNAL, "internal error; see the service log")
        raise AssertionError("unreachable")  # context.abort raises

    def Lookup(self, request: mpb.LookupRequest, context: grpc.ServicerContext) -> mpb.LookupResponse:
        return self._call(context, lambda: result_pb(self._service.lookup(request.type, request.value)), request)

    def LookupBatch(self, request: mpb.LookupBatchRequest, context: grpc.ServicerContext) -> mpb.LookupBatchResponse:
        def run() -> mpb.LookupBatchResponse:
            results = self._service.lookup_batch([(q.type, q.value) for q in request.queries])
            return mpb.LookupBatchResponse(results=[result_pb(r) for r in results])

        return self._call(context, run, request)

    def LookupContent(
        self, request: mpb.LookupContentRequest, context: grpc.ServicerContext
    ) -> mpb.LookupContentResponse:
        def run() -> mpb.LookupContentResponse:
            hashes, results = self._service.lookup_content(request.content, request.filename or None)
            return mpb.LookupContentResponse(hashes=hashes_pb(hashes), results=[result_pb(r) for r in results])

        return self._call(context, run, request)


class _Undecodable:
    """A request body that is not the method's message: answered INVALID_ARGUMENT (grpc
    itself would answer INTERNAL if the deserializer raised)."""

    def __init__(self, what: str) -> None:
        self.what = what


def _lenient(message: Any) -> Callable[[bytes], Any]:
    def decode(data: bytes) -> Any:
        try:
            return message.FromString(data)
        except Exception:  # noqa: BLE001 - DecodeError and whatever else bad bytes provoke
            return _Undecodable(message.DESCRIPTOR.full_name)

    return decode


def _handlers(servicer: MatchServicer) -> Any:
    methods: dict[str, tuple[Callable[..., Any], Any]] = {
        "Lookup": (servicer.Lookup, mpb.LookupRequest),
        "LookupBatch": (servicer.LookupBatch, mpb.LookupBatchRequest),
        "LookupContent": (servicer.LookupContent, mpb.LookupContentRequest),
    }
    return grpc.method_handlers_generic_handler(
        "trustwire.v1.MatchService",
        {
            name: grpc.unary_unary_rpc_method_handler(
                fn, request_deserializer=_lenient(req), response_serializer=lambda m: m.SerializeToString()
            )
            for name, (fn, req) in methods.items()
        },
    )


def start_grpc(
    service: MatchService, tokens: PipelineAuth, listen: str, workers: int = 8, tls: ServeTls | None = None
) -> tuple[Any, int]:
    """Serve MatchService on ``listen`` (host:port; port 0 picks one), over TLS when
    ``tls`` is given (client certificates required if it has a client CA); returns
    (server, port)."""
    limit = service.settings.max_content_bytes + (1 << 16)
    server = grpc.server(
        ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tw-match-grpc"),
        options=[("grpc.max_receive_message_length", limit)],
    )
    server.add_generic_rpc_handlers((_handlers(MatchServicer(service, tokens)),))
    port = server.add_secure_port(listen, tls.grpc_credentials()) if tls else server.add_insecure_port(listen)
    server.start()
    return server, port
