"""The authentication gate every member, auditor and operator call passes through.

Each method of a gated service is served from raw request bytes, so the gate runs
call-auth v3 (PROTOCOL.md §4) in its normative order: headers, clock window and key
id from metadata first, and only for a caller that passes those does it read the
request message; then the signature over the exact bytes received, the key
directory, the replay guard, and only then is the body parsed. A method of a kind
the gate does not authenticate (client streaming, bidirectional) is refused.

Errors map here, once: a TrustwireError becomes its status with the ``tw-reason``
trailer (and a correlation id operators can look up); anything else becomes
INTERNAL with a logged correlation id.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import Executor
from typing import Any, TypeVar, cast

import grpc
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message import DecodeError, Message
from google.protobuf.message_factory import GetMessageClass

from exchange.core.callauth import H_PRINCIPAL, CallAuthenticator, CallCredentials, CallHeaders
from exchange.core.errors import InvalidInput, NotServed, QuotaExceeded, TrustwireError
from exchange.server.rejections import RejectionLog
from exchange.server.streams import StreamCaps
from exchange.server.tls import bind_principal

__all__ = [
    "CORRELATION_HEADER", "Context", "Gate", "REASON_HEADER", "RETRY_AFTER_HEADER", "StreamBehavior", "UnaryBehavior",
    "abort_with",
]

log = logging.getLogger(__name__)

REASON_HEADER = "tw-reason"
CORRELATION_HEADER = "tw-correlation-id"  # the rejection event operators can look up
RETRY_AFTER_HEADER = "retry-after-ms"

Context = grpc.aio.ServicerContext[Any, Any]
UnaryBehavior = Callable[[CallCredentials, Any], Any]
"""A unary method: credentials and the parsed request → the reply (runs in the executor)."""
StreamBehavior = Callable[[CallCredentials, Any, Context], AsyncIterator[Any]]
"""A server-streaming method: an async iterator of replies (runs on the event loop)."""
T = TypeVar("T")
_EOF: Any = grpc.aio.EOF  # type: ignore[attr-defined]  # missing from grpc-stubs


async def abort_with(context: Context, err: TrustwireError, correlation: str | None = None) -> None:
    """End the call with ``err``'s status, its reason and (if any) a correlation id."""
    trailers = [(REASON_HEADER, err.reason)]
    if correlation:
        trailers.append((CORRELATION_HEADER, correlation))
    if isinstance(err, QuotaExceeded):
        trailers.append((RETRY_AFTER_HEADER, str(err.retry_after_ms)))
    await context.abort(grpc.StatusCode[err.status], err.message, trailing_metadata=tuple(trailers))


def _metadata(context: Context) -> dict[str, str]:
    return {k: v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)}


class Gate:
    """Builds authenticated handlers for whole services; see the module docstring."""

    def __init__(
        self,
        auth: CallAuthenticator,
        rejections: RejectionLog,
        caps: StreamCaps,
        executor: Executor,
        *,
        bind_certificates: bool = False,
    ) -> None:
        self._auth = auth
        self._rejections = rejections
        self._caps = caps
        self._executor = executor
        self._bind_certificates = bind_certificates
        self.methods: set[str] = set()
        """Full paths of every gated method (the interceptor lets only these through)."""

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking work (SQLite, signatures) in the executor."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def service(
        self,
        descriptor: ServiceDescriptor,
        unary: Mapping[str, UnaryBehavior],
        streaming: Mapping[str, StreamBehavior] | None = None,
    ) -> grpc.GenericRpcHandler[Any, Any]:
        handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
        streams = streaming or {}
        for method in descriptor.methods:
            path = f"/{descriptor.full_name}/{method.name}"
            self.methods.add(path)
            handlers[method.name] = self._handler(path, method, unary.get(method.name), streams.get(method.name))
        return grpc.method_handlers_generic_handler(descriptor.full_name, handlers)

    # -- handlers -------------------------------------------------------------------------------

    def _handler(
        self, path: str, method: MethodDescriptor, unary: UnaryBehavior | None, stream: StreamBehavior | None
    ) -> grpc.RpcMethodHandler[Any, Any]:
        request_type: type[Message] = GetMessageClass(method.input_type)
        serialize: Callable[[Any], bytes] = lambda message: message.SerializeToString()  # noqa: E731
        if method.client_streaming:
            return grpc.stream_stream_rpc_method_handler(self._refuse(path, "client-streaming"))
        if method.server_streaming and stream is not None:
            return grpc.stream_stream_rpc_method_handler(
                self._streaming(path, request_type, stream), response_serializer=serialize
            )
        if not method.server_streaming and unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                self._unary(path, request_type, unary), response_serializer=serialize
            )
        return grpc.stream_stream_rpc_method_handler(self._refuse(path, "unimplemented"))

    def _refuse(self, path: str, kind: str) -> Callable[[Any, Context], AsyncIterator[Any]]:
        async def refuse(requests: Any, context: Context) -> AsyncIterator[Any]:
            await self._fail(path, context, NotServed(f"{path} ({kind}) is not served"), None)
            yield  # pragma: no cover - abort raises

        return refuse

    async def _authenticate(self, path: str, request_type: type[Message], context: Context) -> tuple[CallCredentials, Any]:
        metadata = _metadata(context)
        if self._bind_certificates and metadata.get(H_PRINCIPAL):
            bind_principal(cast(Any, context.auth_context()), metadata[H_PRINCIPAL])
        headers, public_key = self._auth.precheck(metadata)  # steps 1-3: the body is not read yet
        body = await context.read()
        if body is _EOF:
            raise InvalidInput("the call carried no request message")
        return await self.run(self._verify_and_parse, path, headers, public_key, body, request_type)

    def _verify_and_parse(
        self, path: str, headers: CallHeaders, public_key: bytes, body: bytes, request_type: type[Message]
    ) -> tuple[CallCredentials, Any]:
        """Steps 4-6, then (only then) the body is parsed: one trip to the executor."""
        credentials = self._auth.verify(path, headers, public_key, body)
        return credentials, _parse(request_type, body)

    def _unary(
        self, path: str, request_type: type[Message], behavior: UnaryBehavior
    ) -> Callable[[Any, Context], Any]:
        async def handle(requests: Any, context: Context) -> Any:
            credentials: CallCredentials | None = None
            try:
                credentials, request = await self._authenticate(path, request_type, context)
                return await self.run(behavior, credentials, request)
            except Exception as exc:
                await self._fail(path, context, exc, credentials)

        return handle

    def _streaming(
        self, path: str, request_type: type[Message], behavior: StreamBehavior
    ) -> Callable[[Any, Context], AsyncIterator[Any]]:
        async def handle(requests: Any, context: Context) -> AsyncIterator[Any]:
            credentials: CallCredentials | None = None
            try:
                credentials, request = await self._authenticate(path, request_type, context)
                with self._caps.member_stream(credentials.principal, context.peer()):
                    async for reply in behavior(credentials, request, context):
                        yield reply
            except Exception as exc:
                await self._fail(path, context, exc, credentials)

        return handle

    async def _fail(
        self, path: str, context: Context, exc: BaseException, caller: CallCredentials | None
    ) -> None:
        if isinstance(exc, grpc.aio.AbortError):
            raise exc
        name = path.rsplit("/", 1)[-1]
        if isinstance(exc, TrustwireError):
            event = self._rejections.record(
                caller.principal if caller else "-", name, exc.status, exc.reason, authenticated=caller is not None
            )
            await abort_with(context, exc, event.correlation_id)
        correlation = uuid.uuid4().hex[:12]
        log.error("internal error in %s (correlation id %s)", path, correlation, exc_info=exc)
        await context.abort(grpc.StatusCode.INTERNAL, f"internal error (correlation id {correlation})")


def _parse(request_type: type[Message], body: bytes) -> Any:
    try:
        return request_type.FromString(body)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise InvalidInput(f"the request body is not a valid {request_type.DESCRIPTOR.full_name} protobuf message") from exc
