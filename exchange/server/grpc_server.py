"""App wiring: :func:`build_server` puts ledger → admission → core → services together
and serves them on ``grpc.aio``.

The rooms: :mod:`~exchange.server.interceptors` (the door: what is served without a
signature, what is refused), :mod:`~exchange.server.gate` (call authentication and
error mapping), one module per service (:mod:`~exchange.server.exchange_service`,
:mod:`~exchange.server.audit_service`, :mod:`~exchange.server.operator_service`),
:mod:`~exchange.server.streams` (caps, the pulse that wakes streams) and
:mod:`~exchange.server.engines` (the engine registry). The event loop runs in its
own thread; blocking work (SQLite, signatures) runs in an executor, so a long-lived
stream holds no thread.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer as AsyncHealthServicer
from grpc_reflection.v1alpha import reflection

from exchange.core import note as notes
from exchange.core.callauth import CallAuthenticator
from exchange.core.errors import ConfigError
from exchange.core.keyfiles import public_key_from_hex, read_seed_file
from exchange.pb.trustwire.v1 import audit_pb2 as apb
from exchange.pb.trustwire.v1 import exchange_pb2 as xpb
from exchange.pb.trustwire.v1 import operator_pb2 as opb
from exchange.server.admission import Admission
from exchange.server.audit_service import AuditService
from exchange.server.checkpoints import CheckpointLog
from exchange.server.config import ServerConfig
from exchange.server.engines import open_ledger
from exchange.server.exchange_service import ExchangeService
from exchange.server.gate import REASON_HEADER, Gate
from exchange.server.interceptors import Door
from exchange.server.ledger import Ledger
from exchange.server.metrics import EngineMetricsSource, ExchangeMetrics, serve_metrics
from exchange.server.operator_service import Alert, OperatorServicer, OperatorStatus
from exchange.server.quotas import Quota, Quotas, ReadQuotas, parse_overrides
from exchange.server.rejections import RejectionLog
from exchange.server.replay import SqliteReplayGuard
from exchange.server.service import ExchangeCore
from exchange.server.serving import ServingFigures
from exchange.server.streams import Pulse, StreamCaps, StreamLimits
from exchange.server.tls import server_credentials
from exchange.server.verification import VerifierPool
from exchange.server.witnesses import WitnessClient

__all__ = ["REASON_HEADER", "RunningServer", "build_server", "open_ledger"]

log = logging.getLogger(__name__)
T = TypeVar("T")


class _LoopThread:
    """An asyncio event loop on its own thread; the aio server lives on it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="grpc-aio", daemon=True)
        self._thread.start()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self.loop.close()


@dataclass
class RunningServer:
    server: grpc.aio.Server
    port: int
    core: ExchangeCore
    ledger: Ledger
    checkpoints: CheckpointLog
    health: AsyncHealthServicer
    caps: StreamCaps
    _pool: VerifierPool
    _loop: _LoopThread
    _executor: ThreadPoolExecutor
    _replay: SqliteReplayGuard
    metrics: ExchangeMetrics | None = None
    metrics_port: int | None = None  # None: the endpoint is off

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self, grace: float | None = 1.0) -> None:
        async def shutdown() -> None:
            await self.health.enter_graceful_shutdown()
            await self.server.stop(grace)

        self._loop.call(shutdown())
        self._loop.close()
        self._executor.shutdown(wait=True, cancel_futures=True)
        if self.metrics is not None:
            self.metrics.stop()
        self._pool.close()
        self.checkpoints.stop()
        self.ledger.close()
        self._replay.close()

    def wait(self) -> None:
        self._loop.call(self.server.wait_for_termination())


def _witness_client(spec: str, deadline_s: float) -> WitnessClient:
    url, _, vkey = spec.strip().partition(" ")
    if not url or not vkey.strip():
        raise ConfigError(f"a witness is '<url> <cosignature vkey>', got {spec!r}")
    return WitnessClient(url, vkey.strip(), timeout=deadline_s)


def audit_dir(config: ServerConfig) -> Path:
    path = config.audit_dir or Path(str(config.ledger_path) + ".audit")
    path.mkdir(parents=True, exist_ok=True)
    return path


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


def _stop_serving_on_engine_failure(ledger: Ledger, loop: _LoopThread, health: AsyncHealthServicer) -> None:
    """An engine that can fail for good (``on_failure``, the Kafka engine) turns health
    NOT_SERVING for every service, so load balancers stop sending calls here."""
    on_failure = getattr(ledger, "on_failure", None)
    if on_failure is None:
        return

    async def not_serving() -> None:
        for name in ("", *_SERVICE_NAMES):
            await health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)

    on_failure(lambda exc: asyncio.run_coroutine_threadsafe(not_serving(), loop.loop))


_SERVICE_NAMES = (
    xpb.DESCRIPTOR.services_by_name["ExchangeService"].full_name,
    apb.DESCRIPTOR.services_by_name["AuditService"].full_name,
    opb.DESCRIPTOR.services_by_name["OperatorService"].full_name,
)


def build_server(config: ServerConfig, clock_ms: Callable[[], int] | None = None) -> RunningServer:
    """Wire ledger → admission → core → services, bind, and start serving."""
    clock = clock_ms or (lambda: int(time.time() * 1000))
    credentials = server_credentials(config)  # None: plaintext, for loopback and development only
    operator_key = public_key_from_hex(config.operator_public_key)
    log_key = read_seed_file(config.log_key_file, "log_key_file")
    log_signer = notes.NoteSigner(config.name, log_key.signing_key)
    ledger = open_ledger(config, clock)
    cosigners = tuple(_witness_client(spec, config.witness_deadline_s) for spec in config.witnesses)
    checkpoints = CheckpointLog(
        ledger, audit_dir(config), log_signer, config.name, clock, cosigners,
        interval_ms=max(1, config.checkpoint_interval_ms),
    )
    pool = VerifierPool(workers=config.verify_workers)
    quotas = Quotas(
        Quota(rate=config.publish_rate, burst=config.publish_burst, max_batch=config.max_batch),
        parse_overrides(config.quota_overrides),
        clock_s=lambda: clock() / 1000,
    )
    reads = ReadQuotas(
        {
            "subscribe": (config.subscribe_rate, config.subscribe_burst),
            "proof": (config.proof_rate, config.proof_burst),
            "all_entries": (config.all_entries_rate, config.all_entries_burst),
        },
        clock_s=lambda: clock() / 1000,
    )
    admission = Admission(ledger, operator_key, clock, quotas, pool, reserved_keys={log_key.keyid: "the log key"})
    rejections = RejectionLog(clock_ms=clock)
    core = ExchangeCore(ledger, admission, checkpoints, clock, rejections, reads=reads)
    window_ms = config.call_window_s * 1000
    replay = SqliteReplayGuard(config.replay_path or audit_dir(config) / "calls.db", window_ms)
    auth = CallAuthenticator(config.name, core.call_key, core.authorize_call, replay, window_ms=window_ms, clock_ms=clock)
    caps = StreamCaps(
        StreamLimits(
            per_principal=config.streams_per_principal,
            per_connection=config.streams_per_connection,
            unauthenticated=config.unauthenticated_streams,
            unauthenticated_per_connection=config.unauthenticated_streams_per_connection,
        )
    )
    executor = ThreadPoolExecutor(max_workers=config.rpc_workers, thread_name_prefix="rpc")
    gate = Gate(auth, rejections, caps, executor, bind_certificates=config.tls_client_ca_file is not None)
    loop = _LoopThread()
    pulse = Pulse(loop.loop)
    checkpoints.add_listener(pulse.fire)
    figures = ServingFigures(caps, checkpoints.witness_states)
    engine_alerts = getattr(ledger, "alerts", None)  # an engine may add its own (Kafka: a lost ledger topic)

    def serving_alerts(now_ms: int, window_s: int) -> list[Alert]:
        return figures.alerts(now_ms, window_s) + (engine_alerts(now_ms, window_s) if engine_alerts else [])

    operator_status = OperatorStatus(core, engine=config.engine, origin=config.name, serving_alerts=serving_alerts)
    handlers = (
        ExchangeService(core, gate, pulse, heartbeat_s=config.subscribe_heartbeat_s).handler(),
        AuditService(core).handler(gate),
        OperatorServicer(operator_status, core).handler(gate),
    )
    options = [
        ("grpc.max_receive_message_length", config.max_message_bytes),
        ("grpc.max_send_message_length", config.max_message_bytes),
        ("grpc.so_reuseport", 0),
    ]

    async def serve() -> tuple[grpc.aio.Server, int, AsyncHealthServicer]:
        server = grpc.aio.server(interceptors=[Door(gate.methods, caps, rejections)], options=options)
        server.add_generic_rpc_handlers(handlers)
        health_servicer = AsyncHealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        reflection.enable_server_reflection((*_SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
        try:
            if credentials is None:
                port = server.add_insecure_port(config.listen)
            else:
                port = server.add_secure_port(config.listen, credentials)
        except RuntimeError:
            port = 0
        if port == 0:
            return server, 0, health_servicer
        await server.start()
        for name in ("", *_SERVICE_NAMES):
            await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
        return server, port, health_servicer

    def abandon() -> None:
        loop.close()
        executor.shutdown(wait=False)
        pool.close()
        checkpoints.stop()
        ledger.close()
        replay.close()

    server, port, health_servicer = loop.call(serve())
    if port == 0:
        abandon()
        raise ConfigError(f"cannot listen on {config.listen}")
    _stop_serving_on_engine_failure(ledger, loop, health_servicer)
    metrics = _metrics(config, core, ledger, checkpoints)
    metrics.add_serving_source(figures)
    try:
        metrics_port = serve_metrics(metrics, config.metrics_listen)
    except ConfigError:
        loop.call(server.stop(None))
        abandon()
        raise
    checkpoints.start()
    transport = "plaintext" if credentials is None else "mutual TLS" if config.tls_client_ca_file else "TLS"
    if credentials is None and not config.listen.startswith(("127.", "localhost:", "[::1]:")):
        log.warning("exchange listens on %s in plaintext; configure tls_cert_file/tls_key_file", config.listen)
    log.info(
        "exchange serving on port %d (%s, engine %s, ledger head %d)", port, transport, config.engine, ledger.head()
    )
    return RunningServer(
        server=server, port=port, core=core, ledger=ledger, checkpoints=checkpoints, health=health_servicer,
        caps=caps, _pool=pool, _loop=loop, _executor=executor, _replay=replay, metrics=metrics,
        metrics_port=metrics_port,
    )
