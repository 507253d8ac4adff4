"""``trustwire serve``: run an exchange until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from exchange.core.errors import ExitCode
from exchange.core.settings import load_settings
from exchange.server.config import ServerConfig

log = logging.getLogger(__name__)


def add_parser(sub: Any) -> None:
    p = sub.add_parser("serve", help="run an exchange", description="Run an exchange (settings: file → TRUSTWIRE_* → flags).")
    p.add_argument("--config", type=Path, help="TOML settings file ([exchange] section or top level)")
    p.add_argument("--listen", help="host:port to listen on (default 127.0.0.1:7443)")
    p.add_argument("--engine", choices=["sqlite", "kafka"], help="stream engine (default sqlite)")
    p.add_argument("--bootstrap", help="engine kafka: the cluster's bootstrap servers, host:port[,host:port…]")
    p.add_argument("--kafka-topic-prefix", help="engine kafka: prefix of the topics and group (default trustwire)")
    p.add_argument("--kafka-view-path", type=Path, help="engine kafka: this replica's local view of the ledger")
    p.add_argument("--ledger-path", type=Path, help="SQLite ledger file")
    p.add_argument("--operator-public-key", help="hex Ed25519 operator public key (trust anchor)")
    p.add_argument("--log-key-file", type=Path, help="file with the log key's hex seed (signs checkpoints)")
    p.add_argument("--name", help="the log's origin line, naming this exchange (e.g. example.org/trustwire)")
    p.add_argument("--tls-cert-file", type=Path, help="PEM server certificate (enables TLS)")
    p.add_argument("--tls-key-file", type=Path, help="PEM server private key")
    p.add_argument("--tls-client-ca-file", type=Path, help="PEM CA for client certificates (enables mutual TLS)")
    p.add_argument(
        "--full-verify", action="store_true",
        help="trust no seal: re-check every page, index and record against the signed roots before serving",
    )
    p.add_argument("--metrics-listen", help="host:port of the Prometheus /metrics endpoint (default 127.0.0.1:9464; off)")
    p.set_defaults(run=run)


def config_from_args(args: argparse.Namespace, env: Mapping[str, str]) -> ServerConfig:
    overrides = {
        "listen": args.listen,
        "engine": args.engine,
        "kafka_bootstrap": args.bootstrap,
        "kafka_topic_prefix": args.kafka_topic_prefix,
        "kafka_view_path": args.kafka_view_path,
        "ledger_path": args.ledger_path,
        "operator_public_key": args.operator_public_key,
        "log_key_file": args.log_key_file,
        "name": args.name,
        "tls_cert_file": args.tls_cert_file,
        "tls_key_file": args.tls_key_file,
        "tls_client_ca_file": args.tls_client_ca_file,
        "metrics_listen": args.metrics_listen,
    }
    return load_settings(ServerConfig, file=args.config, env=env, overrides=overrides, section=None)


def transport_banner(config: ServerConfig) -> str:
    """Whether clients reach this exchange over TLS, mutual TLS or plaintext."""
    if config.tls_cert_file is None:
        return "plaintext, TLS off (loopback and development only)"
    if config.tls_client_ca_file is None:
        return "TLS on (clients verify the exchange; no client certificates)"
    return "mutual TLS on (every client presents a certificate from tls_client_ca_file)"


def run(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from exchange.server.grpc_server import audit_dir, build_server
    from exchange.server.integrity import forget_seals

    config = config_from_args(args, env)
    if getattr(args, "full_verify", False) and config.engine == "sqlite":
        forget_seals(config.ledger_path, audit_dir(config))
    server = build_server(config)
    stop = threading.Event()

    def _stop(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    print(f"trustwire exchange listening on port {server.port} (ledger {config.ledger_path})", flush=True)
    print(f"log verifier key: {server.checkpoints.verifier_key}", flush=True)
    print(f"transport: {transport_banner(config)}", flush=True)
    if server.metrics_port is not None:
        print(f"metrics: http://{config.metrics_listen.rpartition(':')[0]}:{server.metrics_port}/metrics", flush=True)
    try:
        # poll: a SIGTERM that lands on a grpc thread only sets CPython's flag, and the
        # handler runs when the main thread next executes bytecode (never, in a bare wait())
        while not stop.wait(0.5):
            pass
    finally:
        server.stop(grace=2.0)
    return int(ExitCode.OK)
