"""The one server interceptor: the door every call comes through.

Gated methods (ExchangeService, AuditService, OperatorService) go to the
authentication gate (:mod:`exchange.server.gate`). Health and reflection are served
without a call signature, since stock tools use them, but their streams are capped
per connection and overall so they cannot starve members, and a malformed body is
INVALID_ARGUMENT. Every other method, of whatever kind, is refused.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from exchange.core.errors import InvalidInput, NotServed, TrustwireError
from exchange.server.gate import CORRELATION_HEADER, REASON_HEADER, Context, abort_with
from exchange.server.rejections import RejectionLog
from exchange.server.streams import StreamCaps

__all__ = ["Door", "UNAUTHENTICATED_PREFIXES"]

UNAUTHENTICATED_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")


class _Undecodable:
    """A request body that is not the method's protobuf message (grpc would answer INTERNAL)."""

    __slots__ = ("what",)

    def __init__(self, what: str) -> None:
        self.what = what

    def error(self) -> InvalidInput:
        return InvalidInput(f"the request body is not a valid {self.what} protobuf message")


def _lenient(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None
    what = getattr(getattr(getattr(deserializer, "__self__", None), "DESCRIPTOR", None), "full_name", "request")

    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception:  # DecodeError, and whatever else a malformed body provokes
            return _Undecodable(what)

    return deserialize


class Door(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """See the module docstring. ``gated`` is the set of full method paths the gate serves."""

    def __init__(self, gated: set[str], caps: StreamCaps, rejections: RejectionLog) -> None:
        self._gated = gated
        self._caps = caps
        self._rejections = rejections

    async def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]], details: grpc.HandlerCallDetails
    ) -> Any:
        method: str = details.method
        if method in self._gated:
            return await continuation(details)
        if method.startswith(UNAUTHENTICATED_PREFIXES):
            handler = await continuation(details)
            return None if handler is None else self._open(method, handler)
        return grpc.stream_stream_rpc_method_handler(self._refuse(method))

    async def _reject(self, method: str, context: Context, err: TrustwireError) -> None:
        event = self._rejections.record("-", method.rsplit("/", 1)[-1], err.status, err.reason, authenticated=False)
        await abort_with(context, err, event.correlation_id)

    def _refuse(self, method: str) -> Callable[[Any, Context], AsyncIterator[Any]]:
        async def refuse(requests: Any, context: Context) -> AsyncIterator[Any]:
            await self._reject(method, context, NotServed(f"{method} is not served"))
            yield  # pragma: no cover - abort raises

        return refuse

    def _open(self, method: str, handler: Any) -> Any:
        """An unauthenticated handler: capped streams, malformed bodies refused."""
        deserializer = _lenient(handler.request_deserializer)
        serializer = handler.response_serializer

        async def check(request: Any, context: Context) -> None:
            if isinstance(request, _Undecodable):
                await self._reject(method, context, request.error())

        if handler.unary_unary is not None:
            inner_unary: Any = handler.unary_unary

            async def unary(request: Any, context: Context) -> Any:
                await check(request, context)
                return await inner_unary(request, context)

            return grpc.unary_unary_rpc_method_handler(unary, deserializer, serializer)
        if handler.unary_stream is not None:
            inner: Any = handler.unary_stream
            if not inspect.isasyncgenfunction(inner):  # a coroutine that writes with context.write (health Watch)

                async def writing(request: Any, context: Context) -> None:
                    await check(request, context)
                    if await self._take_slot(method, context):
                        try:
                            await inner(request, context)
                        finally:
                            self._caps.release_anonymous(context.peer())

                return grpc.unary_stream_rpc_method_handler(writing, deserializer, serializer)

            async def unary_stream(request: Any, context: Context) -> AsyncIterator[Any]:
                await check(request, context)
                if await self._take_slot(method, context):
                    try:
                        async for reply in inner(request, context):
                            yield reply
                    finally:
                        self._caps.release_anonymous(context.peer())

            return grpc.unary_stream_rpc_method_handler(unary_stream, deserializer, serializer)
        if handler.stream_stream is not None and inspect.isasyncgenfunction(handler.stream_stream):
            inner_bidi: Any = handler.stream_stream

            async def stream_stream(requests: Any, context: Context) -> AsyncIterator[Any]:
                async def checked() -> AsyncIterator[Any]:
                    async for request in requests:
                        await check(request, context)
                        yield request

                if await self._take_slot(method, context):
                    try:
                        async for reply in inner_bidi(checked(), context):
                            yield reply
                    finally:
                        self._caps.release_anonymous(context.peer())

            return grpc.stream_stream_rpc_method_handler(stream_stream, deserializer, serializer)
        return grpc.stream_stream_rpc_method_handler(self._refuse(method))

    async def _take_slot(self, method: str, context: Context) -> bool:
        """Hold an unauthenticated stream slot (release it after), or end the call refused.

        A refusal sets the status and returns (False) instead of aborting, so a client
        whose first message is still in flight reads the refusal, not a transport error.
        """
        try:
            self._caps.take_anonymous(context.peer())
        except TrustwireError as err:
            event = self._rejections.record("-", method.rsplit("/", 1)[-1], err.status, err.reason, authenticated=False)
            context.set_trailing_metadata(((REASON_HEADER, err.reason), (CORRELATION_HEADER, event.correlation_id)))
            context.set_code(grpc.StatusCode[err.status])
            context.set_details(err.message)
            return False
        return True
