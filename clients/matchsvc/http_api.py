"""The match service over HTTP/JSON (Starlette), for upload pipelines in any language.

The API is described in ``openapi.json`` beside this module (served at
``/v1/openapi.json``). Every ``/v1`` call but health, readiness and the OpenAPI
document needs ``Authorization: Bearer <token>``; ``/metrics`` is Prometheus text.
Errors are ``{"error": {"reason", "message"}}`` with the ``tw-reason`` header and the
HTTP status of the error's gRPC status. Handlers are synchronous on purpose: a
lookup is microseconds of CPU under one lock, cheaper than a thread hop.

``GET /v1/lookup/{type}``, the upload pipeline's hot call, is answered by a raw ASGI
fast path in front of Starlette (:func:`_fast_lookup`: no routing, request object or
middleware; JSON by orjson): same authentication, errors, metrics and answer. PDQ
lookups that arrive in the same turn of the event loop are searched as one batch
(:class:`_Gather`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from clients.matchsvc.auth import PipelineAuth
from clients.matchsvc.service import LookupResult, MatchService, hash_content
from clients.matchsvc.wire import hashes_dict, result_dict
from exchange.core.errors import BatchTooLarge, InvalidInput, TrustwireError
from exchange.core.signals import Matcher, signal_type

__all__ = ["build_app", "HTTP_STATUS", "MAX_JSON_BYTES"]

log = logging.getLogger(__name__)

REASON_HEADER = "tw-reason"
MAX_JSON_BYTES = 1 << 20
DRAIN_BYTES = 8 << 20
HTTP_STATUS = {
    "INVALID_ARGUMENT": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "OUT_OF_RANGE": 400,
    "RESOURCE_EXHAUSTED": 413,
    "UNAVAILABLE": 503,
}

Handler = Callable[[Request], Awaitable[Response]]
LOOKUP_PREFIX = "/v1/lookup/"


class _OrjsonResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def _error(err: TrustwireError) -> JSONResponse:
    status = HTTP_STATUS.get(err.status, 500)
    headers = {REASON_HEADER: err.reason}
    if status == 401:
        headers["www-authenticate"] = "Bearer"
    return JSONResponse({"error": {"reason": err.reason, "message": err.message}}, status, headers=headers)


async def _body(request: Request, limit: int) -> bytes:
    """The request body, refused (413) past ``limit`` bytes. An oversized body of up to
    ``DRAIN_BYTES`` is read and dropped first, so the client reads the 413 instead of a
    reset connection; a larger one is refused at once."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max(limit, DRAIN_BYTES):
        raise BatchTooLarge(f"the request body is limited to {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max(limit, DRAIN_BYTES):
            break
        if size <= limit:
            chunks.append(chunk)
    if size > limit:
        raise BatchTooLarge(f"the request body is limited to {limit} bytes")
    return b"".join(chunks)


async def _json(request: Request) -> Any:
    raw = await _body(request, MAX_JSON_BYTES)
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput("the request body is not valid JSON") from exc


def _str_field(obj: Any, name: str) -> str:
    value = obj.get(name) if isinstance(obj, dict) else None
    if not isinstance(value, str):
        raise InvalidInput(f"field {name!r} must be a string")
    return value


def _refused(service: MatchService, err: TrustwireError) -> Response:
    """The answer to a refused call, counted when it is the caller's doing."""
    if err.status in ("UNAUTHENTICATED", "INVALID_ARGUMENT", "RESOURCE_EXHAUSTED"):
        service.metrics.refused.labels(err.reason).inc()
    return _error(err)


def _lookup_response(service: MatchService, type_name: str, value: str | None) -> Response:
    if value is None:
        raise InvalidInput("query parameter 'value' is required")
    return _OrjsonResponse(result_dict(service.lookup(type_name, value)))


class _Gather:
    """Near-duplicate (``HAMMING``) lookups that arrive together, searched as one batch:
    each request waits for the end of the event loop's current turn, then every lookup
    queued in that turn goes to :meth:`MatchService.lookup_each` (one ``search_many``)."""

    def __init__(self, service: MatchService) -> None:
        self._service = service
        self._queued: dict[str, list[tuple[str, asyncio.Future[LookupResult]]]] = {}

    @staticmethod
    def wanted(type_name: str) -> bool:
        try:
            return signal_type(type_name).matcher is Matcher.HAMMING
        except TrustwireError:
            return False

    async def lookup(self, type_name: str, raw: str) -> LookupResult:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[LookupResult] = loop.create_future()
        if not self._queued:
            loop.call_soon(self._flush)
        self._queued.setdefault(type_name, []).append((raw, future))
        return await future

    def _flush(self) -> None:
        queued, self._queued = self._queued, {}
        for type_name, items in queued.items():
            try:
                answers: list[LookupResult | TrustwireError] = self._service.lookup_each(
                    type_name, [raw for raw, _ in items])
            except Exception as exc:  # noqa: BLE001 - every waiting request gets the failure
                for _, future in items:
                    future.set_exception(exc)
                continue
            for (_, future), answer in zip(items, answers, strict=True):
                if isinstance(answer, TrustwireError):
                    future.set_exception(answer)
                else:
                    future.set_result(answer)


def _fast_lookup(app: ASGIApp, service: MatchService, tokens: PipelineAuth) -> ASGIApp:
    """``GET /v1/lookup/{type}`` straight from the ASGI scope; everything else to ``app``."""
    gather = _Gather(service)

    async def asgi(scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or scope["method"] != "GET" or not path.startswith(LOOKUP_PREFIX):
            await app(scope, receive, send)
            return
        type_name = path[len(LOOKUP_PREFIX):]
        if not type_name or "/" in type_name:
            await app(scope, receive, send)
            return
        try:
            auth = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"authorization"), None)
            tokens.check(auth)
            query = scope.get("query_string", b"").decode("latin-1")
            value = dict(parse_qsl(query, keep_blank_values=True)).get("value")
            if value is not None and gather.wanted(type_name):
                response: Response = _OrjsonResponse(result_dict(await gather.lookup(type_name, value)))
            else:
                response = _lookup_response(service, type_name, value)
        except TrustwireError as err:
            response = _refused(service, err)
        except Exception:  # noqa: BLE001 - never leak a traceback to the caller
            log.exception("internal error in %s", LOOKUP_PREFIX)
            response = _error(TrustwireError("internal error; see the service log"))
        await response(scope, receive, send)

    return asgi


def build_app(service: MatchService, tokens: PipelineAuth) -> ASGIApp:
    openapi = json.loads(resources.files("clients.matchsvc").joinpath("openapi.json").read_text())

    def guarded(handler: Handler, auth: bool = True) -> Handler:
        async def run(request: Request) -> Response:
            try:
                if auth:
                    tokens.check(request.headers.get("authorization"))
                return await handler(request)
            except TrustwireError as err:
                return _refused(service, err)
            except Exception:  # noqa: BLE001 - never leak a traceback to the caller
                log.exception("internal error in %s", request.url.path)
                return _error(TrustwireError("internal error; see the service log"))

        return run

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def ready(request: Request) -> Response:
        r = service.readiness()
        body = {"ready": r.ready, "cursor": r.cursor, "head": r.head, "lag": r.lag, "reason": r.reason}
        return JSONResponse(body, 200 if r.ready else 503)

    async def metrics(request: Request) -> Response:
        return Response(service.metrics.render(), media_type="text/plain; version=0.0.4")

    async def spec(request: Request) -> Response:
        return JSONResponse(openapi)

    async def lookup_one(request: Request) -> Response:  # served by _fast_lookup; kept for the routing table
        return _lookup_response(service, request.path_params["type"], request.query_params.get("value"))

    async def lookup_batch(request: Request) -> Response:
        data = await _json(request)
        queries = data.get("queries") if isinstance(data, dict) else None
        if not isinstance(queries, list):
            raise InvalidInput("the body is {\"queries\": [{\"type\": …, \"value\": …}, …]}")
        pairs = [(_str_field(q, "type"), _str_field(q, "value")) for q in queries]
        return JSONResponse({"results": [result_dict(r) for r in service.lookup_batch(pairs)]})

    async def lookup_content(request: Request) -> Response:
        data = await _body(request, service.settings.max_content_bytes)
        name = request.query_params.get("filename")
        hashes, results = await run_in_threadpool(service.lookup_content, data, name)  # decoding takes ms
        return JSONResponse({"hashes": hashes_dict(hashes), "results": [result_dict(r) for r in results]})

    async def hash_only(request: Request) -> Response:
        data = await _body(request, service.settings.max_content_bytes)
        name = request.query_params.get("filename")
        return JSONResponse({"hashes": hashes_dict(await run_in_threadpool(hash_content, data, name))})

    def _allow_list() -> Any:
        if service.allow is None:
            raise InvalidInput("this service runs without an allow-list")
        return service.allow

    async def allow_list(request: Request) -> Response:
        entries = _allow_list().entries()
        return JSONResponse({"entries": [
            {"type": e.type, "value": e.value, "reason": e.reason, "added_at_ms": e.added_at_ms} for e in entries
        ]})

    async def allow_add(request: Request) -> Response:
        data = await _json(request)
        e = _allow_list().add(_str_field(data, "type"), _str_field(data, "value"), _str_field(data, "reason"))
        log.info("allow-listed a %s value: %s", e.type, e.reason)
        return JSONResponse({"type": e.type, "value": e.value, "reason": e.reason, "added_at_ms": e.added_at_ms}, 201)

    async def allow_remove(request: Request) -> Response:
        value = request.query_params.get("value")
        if value is None:
            raise InvalidInput("query parameter 'value' is required")
        _allow_list().remove(request.path_params["type"], value)
        log.info("removed a %s value from the allow-list", request.path_params["type"])
        return Response(status_code=204)

    routes = [
        Route("/v1/health", guarded(health, auth=False), methods=["GET"]),
        Route("/v1/ready", guarded(ready, auth=False), methods=["GET"]),
        Route("/metrics", guarded(metrics, auth=False), methods=["GET"]),
        Route("/v1/openapi.json", guarded(spec, auth=False), methods=["GET"]),
        Route("/v1/lookup/{type}", guarded(lookup_one), methods=["GET"]),
        Route("/v1/lookup", guarded(lookup_batch), methods=["POST"]),
        Route("/v1/content", guarded(lookup_content), methods=["POST"]),
        Route("/v1/hash", guarded(hash_only), methods=["POST"]),
        Route("/v1/allow-list", guarded(allow_list), methods=["GET"]),
        Route("/v1/allow-list", guarded(allow_add), methods=["POST"]),
        Route("/v1/allow-list/{type}", guarded(allow_remove), methods=["DELETE"]),
    ]
    return _fast_lookup(Starlette(routes=routes), service, tokens)
