"""gRPC wiring: one interceptor for authentication and error mapping, a thin
servicer, health and reflection, and :func:`build_server`.
"""

from __future__ import annotations

import contextvars
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from exchange.core.callauth import H_PRINCIPAL, CallAuthenticator, CallCredentials
from exchange.core.entries import ms_to_timestamp
from exchange.core.errors import ConfigError, InvalidInput, QuotaExceeded, TrustwireError
from exchange.core import note as notes
from exchange.core.keyfiles import public_key_from_hex, read_seed_file
from exchange.pb.trustwire.v1 import audit_pb2 as apb
from exchange.pb.trustwire.v1 import audit_pb2_grpc as agrpc
from exchange.pb.trustwire.v1 import exchange_pb2 as xpb
from exchange.pb.trustwire.v1 import exchange_pb2_grpc as xgrpc
from exchange.pb.trustwire.v1 import operator_pb2 as opb
from exchange.pb.trustwire.v1 import operator_pb2_grpc as ogrpc
from exchange.server.admission import Admission
from exchange.server.checkpoints import CheckpointLog
from exchange.server.verification import VerifierPool
from exchange.server.quotas import Quota, Quotas, parse_overrides
from exchange.server.rejections import RejectionLog
from exchange.server.witnesses import WitnessClient
from exchange.server.config import ServerConfig
from exchange.server.ledger import Ledger, Receipt, SqliteLedger
from exchange.server.metrics import EngineMetricsSource, ExchangeMetrics, serve_metrics
from exchange.server.operator_service import OperatorServicer, OperatorStatus
from exchange.server.service import ExchangeCore
from exchange.server.tls import bind_principal, server_credentials

__all__ = ["RunningServer", "build_server", "REASON_HEADER"]

log = logging.getLogger(__name__)

REASON_HEADER = "tw-reason"
CORRELATION_HEADER = "tw-correlation-id"  # the rejection event operators can look up
RETRY_AFTER_HEADER = "retry-after-ms"
_UNAUTHENTICATED_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")
_caller: contextvars.ContextVar[CallCredentials | None] = contextvars.ContextVar("trustwire_caller")


def _principal() -> str:
    """The authenticated principal of the current call (set by the interceptor)."""
    caller = _caller.get(None)
    if caller is None:
        raise RuntimeError("servicer ran without an authenticated caller")
    return caller.principal


def _abort(context: grpc.ServicerContext, err: TrustwireError, correlation: str | None = None) -> None:
    trailers = [(REASON_HEADER, err.reason)]
    if correlation:
        trailers.append((CORRELATION_HEADER, correlation))
    if isinstance(err, QuotaExceeded):
        trailers.append((RETRY_AFTER_HEADER, str(err.retry_after_ms)))
    context.set_trailing_metadata(tuple(trailers))
    context.abort(grpc.StatusCode[err.status], err.message)


class _Undecodable:
    """A request body that is not the method's protobuf message.

    grpc answers INTERNAL when a request deserializer raises, before any of our code
    runs; so the deserializer returns this instead and the call fails INVALID_ARGUMENT.
    """

    __slots__ = ("what",)

    def __init__(self, what: str) -> None:
        self.what = what

    def error(self) -> InvalidInput:
        return InvalidInput(f"the request body is not a valid {self.what} protobuf message")


def _lenient(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None
    message = getattr(deserializer, "__self__", None)
    what = getattr(getattr(message, "DESCRIPTOR", None), "full_name", "request")

    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception:  # DecodeError, and whatever else a malformed body provokes
            return _Undecodable(what)

    return deserialize


def _unauthenticated(handler: Any, deserializer: Callable[[bytes], Any] | None) -> Any:
    """Health and reflection: no call signature, but a malformed body is still INVALID_ARGUMENT."""

    def refuse(request: Any, context: grpc.ServicerContext) -> None:
        context.set_trailing_metadata(((REASON_HEADER, InvalidInput.reason),))
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.error().message)

    def checked_requests(requests: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
        for request in requests:
            if isinstance(request, _Undecodable):
                refuse(request, context)
            yield request

    def unary(request: Any, context: grpc.ServicerContext) -> Any:
        if isinstance(request, _Undecodable):
            refuse(request, context)
        return handler.unary_unary(request, context)

    def unary_stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        if isinstance(request, _Undecodable):
            refuse(request, context)
        yield from handler.unary_stream(request, context)

    def stream_stream(requests: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
        yield from handler.stream_stream(checked_requests(requests, context), context)

    behavior: Callable[[Any, grpc.ServicerContext], Any]
    if handler.unary_unary is not None:
        make, behavior = grpc.unary_unary_rpc_method_handler, unary
    elif handler.unary_stream is not None:
        make, behavior = grpc.unary_stream_rpc_method_handler, unary_stream
    elif handler.stream_stream is not None:
        make, behavior = grpc.stream_stream_rpc_method_handler, stream_stream
    else:
        return handler
    return make(behavior, request_deserializer=deserializer, response_serializer=handler.response_serializer)


class _Interceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    """Authenticates every call and maps errors to status codes.

    TrustwireError becomes its own status and reason; anything else becomes
    INTERNAL with a correlation id that is also logged (with the traceback).
    With ``bind_certificates`` (mutual TLS), the call's principal must also be the
    one the client certificate names (CertificateMismatch otherwise), checked before
    the signature so a mismatched caller touches no key or nonce state.
    """

    def __init__(self, auth: CallAuthenticator, rejections: RejectionLog, bind_certificates: bool = False) -> None:
        self._auth = auth
        self._rejections = rejections
        self._bind_certificates = bind_certificates

    def intercept_service(self, continuation: Callable[[Any], Any], details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(details)
        method: str = details.method
        if handler is None:
            return handler
        deserializer = _lenient(handler.request_deserializer)
        if method.startswith(_UNAUTHENTICATED_PREFIXES):
            return _unauthenticated(handler, deserializer)
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap_unary(method, handler.unary_unary),
                request_deserializer=deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._wrap_stream(method, handler.unary_stream),
                request_deserializer=deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler

    def _enter(self, method: str, request: Any, context: grpc.ServicerContext) -> None:
        _caller.set(None)  # threads are reused: forget the previous call's principal
        if isinstance(request, _Undecodable):
            raise request.error()
        metadata = {k: v for k, v in context.invocation_metadata() if isinstance(v, str)}
        if self._bind_certificates and metadata.get(H_PRINCIPAL):
            bind_principal(context.auth_context(), metadata[H_PRINCIPAL])
        body = request.SerializeToString(deterministic=True)
        _caller.set(self._auth.authenticate(method, metadata, body))

    def _fail(self, method: str, context: grpc.ServicerContext, exc: BaseException) -> None:
        if isinstance(exc, TrustwireError):
            caller = _caller.get(None)
            event = self._rejections.record(
                caller.principal if caller else "-", method.rsplit("/", 1)[-1], exc.status, exc.reason
            )
            _abort(context, exc, event.correlation_id)
        correlation = uuid.uuid4().hex[:12]
        log.error("internal error in %s (correlation id %s)", method, correlation, exc_info=exc)
        context.abort(grpc.StatusCode.INTERNAL, f"internal error (correlation id {correlation})")

    def _wrap_unary(self, method: str, behavior: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
        def wrapped(request: Any, context: grpc.ServicerContext) -> Any:
            try:
                self._enter(method, request, context)
                return behavior(request, context)
            except Exception as exc:
                self._fail(method, context, exc)

        return wrapped

    def _wrap_stream(self, method: str, behavior: Callable[[Any, Any], Iterator[Any]]) -> Callable[[Any, Any], Any]:
        def wrapped(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            try:
                self._enter(method, request, context)
                yield from behavior(request, context)
            except Exception as exc:
                self._fail(method, context, exc)

        return wrapped


def _receipt_pb(r: Receipt) -> xpb.Receipt:
    return xpb.Receipt(index=r.index, accepted_at=ms_to_timestamp(r.accepted_at_ms), leaf_hash=r.leaf_hash)


class ExchangeServicer(xgrpc.ExchangeServiceServicer):  # type: ignore[misc]
    """Decode, call the core, encode. Nothing else."""

    def __init__(self, core: ExchangeCore) -> None:
        self._core = core

    def Publish(self, request: xpb.PublishRequest, context: grpc.ServicerContext) -> xpb.PublishResponse:
        outcomes = self._core.publish(_principal(), list(request.envelopes))
        results = []
        for o in outcomes:
            if isinstance(o, Receipt):
                results.append(xpb.PublishResult(receipt=_receipt_pb(o)))
            else:
                results.append(
                    xpb.PublishResult(
                        error=xpb.EntryError(
                            status=o.status, reason=o.reason, message=o.message, correlation_id=o.correlation_id or ""
                        )
                    )
                )
        return xpb.PublishResponse(results=results)

    def Subscribe(self, request: xpb.SubscribeRequest, context: grpc.ServicerContext) -> Iterator[xpb.SubscribeResponse]:
        pages = self._core.subscribe(
            _principal(),
            request.from_index,
            request.stop_at_head,
            context.is_active,
            trusted_size=request.trusted_size,
        )
        for proven in pages:
            page, size = proven.page, proven.checkpoint.size
            yield xpb.SubscribeResponse(
                records=page.records,
                next_index=page.next_index,
                head=page.head,
                checkpoint=proven.checkpoint.note,
                proof=apb.BatchInclusionProof(tree_size=size, hashes=proven.inclusion),
                consistency=apb.ConsistencyProof(
                    old_size=proven.consistency_from, new_size=size, hashes=proven.consistency
                ),
            )

    def GetEntries(self, request: xpb.GetEntriesRequest, context: grpc.ServicerContext) -> xpb.GetEntriesResponse:
        page = self._core.page(_principal(), request.from_index, request.limit)
        return xpb.GetEntriesResponse(records=page.records, next_index=page.next_index, head=page.head)

    def GetKeyDirectory(
        self, request: xpb.GetKeyDirectoryRequest, context: grpc.ServicerContext
    ) -> xpb.GetKeyDirectoryResponse:
        records, head = self._core.key_event_records(_principal(), request.until_index)
        return xpb.GetKeyDirectoryResponse(records=records, head=head)


class AuditServicer(agrpc.AuditServiceServicer):  # type: ignore[misc]
    def __init__(self, core: ExchangeCore) -> None:
        self._core = core

    def GetCheckpoint(self, request: apb.GetCheckpointRequest, context: grpc.ServicerContext) -> apb.GetCheckpointResponse:
        covering = request.covering_index if request.HasField("covering_index") else None
        cp = self._core.latest_checkpoint(_principal(), covering, request.wait_ms)
        return apb.GetCheckpointResponse(
            note=cp.note, size=cp.size, log_verifier_key=self._core.checkpoints.verifier_key
        )

    def ListCheckpoints(
        self, request: apb.ListCheckpointsRequest, context: grpc.ServicerContext
    ) -> apb.ListCheckpointsResponse:
        cps = self._core.list_checkpoints(_principal(), request.from_size, request.limit)
        return apb.ListCheckpointsResponse(notes=[c.note for c in cps])

    def GetInclusionProof(
        self, request: apb.GetInclusionProofRequest, context: grpc.ServicerContext
    ) -> apb.InclusionProof:
        size, hashes = self._core.inclusion_proof(_principal(), request.index, request.tree_size)
        return apb.InclusionProof(index=request.index, tree_size=size, hashes=hashes)

    def GetConsistencyProof(
        self, request: apb.GetConsistencyProofRequest, context: grpc.ServicerContext
    ) -> apb.ConsistencyProof:
        size, hashes = self._core.consistency_proof(_principal(), request.old_size, request.new_size)
        return apb.ConsistencyProof(old_size=request.old_size, new_size=size, hashes=hashes)

    def GetAllEntries(
        self, request: apb.GetAllEntriesRequest, context: grpc.ServicerContext
    ) -> apb.GetAllEntriesResponse:
        page = self._core.all_entries(_principal(), request.from_index, request.limit)
        return apb.GetAllEntriesResponse(records=page.records, next_index=page.next_index, head=page.head)


@dataclass
class RunningServer:
    server: grpc.Server
    port: int
    core: ExchangeCore
    ledger: Ledger
    checkpoints: CheckpointLog
    health: health.HealthServicer
    _pool: VerifierPool
    metrics: ExchangeMetrics | None = None
    metrics_port: int | None = None  # None: the endpoint is off

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self, grace: float | None = 1.0) -> None:
        self.health.enter_graceful_shutdown()
        self.server.stop(grace).wait()
        if self.metrics is not None:
            self.metrics.stop()
        self._pool.close()
        self.checkpoints.stop()
        self.ledger.close()

    def wait(self) -> None:
        self.server.wait_for_termination()


def _witness_client(spec: str) -> WitnessClient:
    url, _, vkey = spec.strip().partition(" ")
    if not url or not vkey.strip():
        raise ConfigError(f"a witness is '<url> <cosignature vkey>', got {spec!r}")
    return WitnessClient(url, vkey.strip())


def audit_dir(config: ServerConfig) -> Path:
    path = config.audit_dir or Path(str(config.ledger_path) + ".audit")
    path.mkdir(parents=True, exist_ok=True)
    return path


def open_ledger(config: ServerConfig, clock_ms: Callable[[], int]) -> Ledger:
    if config.engine == "sqlite":
        Path(config.ledger_path).parent.mkdir(parents=True, exist_ok=True)
        return SqliteLedger(config.ledger_path, clock_ms=clock_ms)
    if config.engine == "kafka":
        try:
            from exchange.server.kafka import KafkaLedger, settings_from_config
        except ModuleNotFoundError as exc:
            if not (exc.name or "").startswith("confluent_kafka"):
                raise
            raise ConfigError("engine kafka needs the kafka extra: pip install 'trustwire[kafka]'") from exc
        return KafkaLedger(settings_from_config(config), clock_ms=clock_ms)
    raise ConfigError(f"unknown engine {config.engine!r}; choose sqlite or kafka")


def _metrics(config: ServerConfig, core: ExchangeCore, ledger: Ledger, checkpoints: CheckpointLog) -> ExchangeMetrics:
    """The Prometheus registry of this server; an engine that reports figures is a source."""

    def latest() -> tuple[int, int] | None:
        cp = checkpoints.latest()
        return None if cp is None else (cp.size, cp.signed_at_ms)

    metrics = ExchangeMetrics(
        core.activity,
        head=ledger.head,
        members=lambda: list(core.admission.directory.members),
        checkpoint=latest,
        tree_size=lambda: checkpoints.tree.size,
        engine=config.engine,
        origin=config.name,
        ledger_file=getattr(ledger, "path", None),
    )
    if isinstance(ledger, EngineMetricsSource):
        metrics.add_engine_source(ledger)
    metrics.add_engine_source(checkpoints.verification)
    return metrics


def build_server(config: ServerConfig, clock_ms: Callable[[], int] | None = None) -> RunningServer:
    """Wire ledger → admission → core → servicer, bind, and start serving."""
    clock = clock_ms or (lambda: int(time.time() * 1000))
    credentials = server_credentials(config)  # None: plaintext, for loopback and development only
    operator_key = public_key_from_hex(config.operator_public_key)
    log_key = read_seed_file(config.log_key_file, "log_key_file")
    log_signer = notes.NoteSigner(config.name, log_key.signing_key)
    ledger = open_ledger(config, clock)
    cosigners = tuple(_witness_client(spec) for spec in config.witnesses)
    checkpoints = CheckpointLog(ledger, audit_dir(config), log_signer, config.name, clock, cosigners)
    pool = VerifierPool(workers=config.verify_workers)
    quotas = Quotas(
        Quota(rate=config.publish_rate, burst=config.publish_burst, max_batch=config.max_batch),
        parse_overrides(config.quota_overrides),
        clock_s=lambda: clock() / 1000,
    )
    admission = Admission(ledger, operator_key, clock, quotas, pool, reserved_keys={log_key.keyid: "the log key"})
    rejections = RejectionLog(clock_ms=clock)
    core = ExchangeCore(ledger, admission, checkpoints, clock, rejections)
    auth = CallAuthenticator(
        core.call_key, core.authorize_call, window_ms=config.call_window_s * 1000, clock_ms=clock
    )
    options = [
        ("grpc.max_receive_message_length", config.max_message_bytes),
        ("grpc.max_send_message_length", config.max_message_bytes),
        ("grpc.so_reuseport", 0),
    ]
    server = grpc.server(
        ThreadPoolExecutor(max_workers=config.rpc_workers, thread_name_prefix="rpc"),
        interceptors=[_Interceptor(auth, rejections, bind_certificates=config.tls_client_ca_file is not None)],
        options=options,
        maximum_concurrent_rpcs=config.rpc_workers * 4,
    )
    xgrpc.add_ExchangeServiceServicer_to_server(ExchangeServicer(core), server)
    agrpc.add_AuditServiceServicer_to_server(AuditServicer(core), server)
    operator_status = OperatorStatus(core, engine=config.engine, origin=config.name)
    ogrpc.add_OperatorServiceServicer_to_server(OperatorServicer(operator_status, core, _principal), server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    service_names = (
        xpb.DESCRIPTOR.services_by_name["ExchangeService"].full_name,
        apb.DESCRIPTOR.services_by_name["AuditService"].full_name,
        opb.DESCRIPTOR.services_by_name["OperatorService"].full_name,
        health.SERVICE_NAME,
        reflection.SERVICE_NAME,
    )
    reflection.enable_server_reflection(service_names, server)
    try:
        if credentials is None:
            port = server.add_insecure_port(config.listen)
        else:
            port = server.add_secure_port(config.listen, credentials)
    except RuntimeError:
        port = 0
    if port == 0:
        checkpoints.stop()
        ledger.close()
        raise ConfigError(f"cannot listen on {config.listen}")
    metrics = _metrics(config, core, ledger, checkpoints)
    try:
        metrics_port = serve_metrics(metrics, config.metrics_listen)
    except ConfigError:
        checkpoints.stop()
        ledger.close()
        raise
    checkpoints.start()
    server.start()
    for name in ("", *service_names[:3]):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    transport = "plaintext" if credentials is None else "mutual TLS" if config.tls_client_ca_file else "TLS"
    if credentials is None and not config.listen.startswith(("127.", "localhost:", "[::1]:")):
        log.warning("exchange listens on %s in plaintext; configure tls_cert_file/tls_key_file", config.listen)
    log.info(
        "exchange serving on port %d (%s, engine %s, ledger head %d)", port, transport, config.engine, ledger.head()
    )
    return RunningServer(
        server=server, port=port, core=core, ledger=ledger, checkpoints=checkpoints, health=health_servicer, _pool=pool,
        metrics=metrics, metrics_port=metrics_port,
    )
