"""``trustwire member serve-match`` and ``trustwire member allow-list …``.

    trustwire member serve-match --config member.toml --token-file tokens \\
        --http-listen 0.0.0.0:8480 --grpc-listen 0.0.0.0:8481
    trustwire member serve-match --config member.toml --serve-tls-cert-file svc.pem \\
        --serve-tls-key-file svc.key --client-ca-file pipeline-ca.pem   # mutual TLS, no token
    trustwire member allow-list add md5 <hex> --reason "our logo" --state member.db

The service prints ``match service: http port N`` (and ``grpc port M``) on stdout once
it listens, then runs until SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import socket
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from exchange.core.errors import ConfigError, ExitCode

__all__ = ["add_parsers"]

log = logging.getLogger(__name__)


def add_parsers(msub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """Register the match-service sub-commands under ``trustwire member``."""
    sm = msub.add_parser(
        "serve-match", help="run the match service (HTTP/JSON and gRPC lookups) for the upload pipeline"
    )
    common(sm)
    sm.add_argument("--http-listen", default="127.0.0.1:8480", help="host:port for HTTP/JSON (port 0: any)")
    sm.add_argument("--grpc-listen", default=None, help="host:port for gRPC MatchService (default: off)")
    sm.add_argument("--token-file", type=Path, default=None,
                    help="bearer tokens of the upload pipeline, one per line (>= 32 characters each);"
                         " needed unless --client-ca-file is given (with both, calls need both)")
    sm.add_argument("--serve-tls-cert-file", type=Path, default=None, metavar="PEM",
                    help="the service's certificate: HTTPS and gRPC over TLS")
    sm.add_argument("--serve-tls-key-file", type=Path, default=None, metavar="PEM",
                    help="the unencrypted private key of --serve-tls-cert-file")
    sm.add_argument("--client-ca-file", type=Path, default=None, metavar="PEM",
                    help="mutual TLS: callers need a client certificate issued by this CA")
    sm.add_argument("--suppress-false-positives", type=int, default=0, metavar="N",
                    help="withhold matches of signals N or more members marked false_positive (0: off)")
    sm.add_argument("--ready-max-lag", type=int, default=1000, metavar="ENTRIES",
                    help="ready while at most this many entries behind the exchange's head")
    sm.add_argument("--max-content-bytes", type=int, default=32 << 20, help="largest upload hashed by the service")
    sm.set_defaults(run=serve_match)

    al = msub.add_parser("allow-list", help="the allow-list bank: known-benign hashes that never match")
    asub = al.add_subparsers(dest="allow_command", required=True, metavar="COMMAND")
    aa = asub.add_parser("add", help="allow-list a value (exact types and pdq)")
    common(aa)
    aa.add_argument("type")
    aa.add_argument("value")
    aa.add_argument("--reason", required=True, help="why it is benign (logged with every suppression)")
    aa.set_defaults(run=allow_add)
    ar = asub.add_parser("remove", help="remove an allow-list entry")
    common(ar)
    ar.add_argument("type")
    ar.add_argument("value")
    ar.set_defaults(run=allow_remove)
    ls = asub.add_parser("list", help="list allow-list entries")
    common(ls)
    ls.set_defaults(run=allow_list)


def _host_port(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"listen address {listen!r} is not host:port")
    return host.strip("[]") or "127.0.0.1", int(port)


def serve_match(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    import uvicorn

    from clients.cli.member_config import load_config, open_client
    from clients.matchsvc.allowlist import AllowList, allowlist_path
    from clients.matchsvc.auth import PipelineAuth, TokenSet
    from clients.matchsvc.grpc_api import start_grpc
    from clients.matchsvc.http_api import build_app
    from clients.matchsvc.service import MatchService, MatchSettings
    from clients.matchsvc.tls import ServeTls

    if args.suppress_false_positives < 0 or args.ready_max_lag < 0 or args.max_content_bytes <= 0:
        raise ConfigError("--suppress-false-positives and --ready-max-lag are >= 0; --max-content-bytes > 0")
    tls = ServeTls.load(args.serve_tls_cert_file, args.serve_tls_key_file, args.client_ca_file)
    tokens = PipelineAuth(
        TokenSet.load(args.token_file) if args.token_file is not None else None,
        client_certificates=tls is not None and tls.mutual,
    )
    config = load_config(args, env)
    host, port = _host_port(args.http_listen)
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted sockets only when the
    # listening socket says so (otherwise Nagle + delayed ACKs add 40 ms to keep-alive calls)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    client = open_client(config)
    if client.bank is None:
        client.close()
        raise ConfigError("the match service needs a state file (--state or `state` in the config)")
    allow = AllowList(allowlist_path(Path(config.state)), client.bank.pdq_threshold)
    settings = MatchSettings(
        suppress_false_positives=args.suppress_false_positives,
        ready_max_lag=args.ready_max_lag,
        max_content_bytes=args.max_content_bytes,
    )
    service = MatchService(client, settings, allow)
    grpc_server = None
    # SIGTERM ends the process with exit 0 after cleanup; uvicorn handles it gracefully while
    # it serves, then re-raises it, which lands here
    previous = signal.signal(signal.SIGTERM, _exit_cleanly)
    try:
        sock.listen(1024)
        service.start()
        scheme = "https" if tls else "http"
        lines = [f"match service: {scheme} port {sock.getsockname()[1]}"]
        if args.grpc_listen:
            grpc_server, grpc_port = start_grpc(service, tokens, args.grpc_listen, tls=tls)
            lines.append(f"match service: grpc port {grpc_port}")
        print("\n".join(lines), flush=True)
        app = build_app(service, tokens)
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                                               **(tls.uvicorn_options() if tls else {})))
        server.run(sockets=[sock])
    except SystemExit as exc:
        if exc.code != 0:
            raise
    finally:
        signal.signal(signal.SIGTERM, previous)
        if grpc_server is not None:
            grpc_server.stop(1)
        service.stop()
        sock.close()
    return int(ExitCode.OK)


def _exit_cleanly(signum: int, frame: Any) -> None:
    raise SystemExit(0)


def _allow(args: argparse.Namespace, env: Mapping[str, str]) -> Any:
    from clients.bank import DEFAULT_PDQ_THRESHOLD
    from clients.cli.member_config import load_config
    from clients.matchsvc.allowlist import AllowList, allowlist_path

    state = args.state if args.state is not None else load_config(args, env).state
    return AllowList(allowlist_path(Path(state)), DEFAULT_PDQ_THRESHOLD)


def _entry(e: Any) -> dict[str, Any]:
    return {"type": e.type, "value": e.value, "reason": e.reason, "added_at_ms": e.added_at_ms}


def _print(args: argparse.Namespace, data: Any, human: str) -> None:
    print(json.dumps(data, indent=2, sort_keys=True) if args.json else human)


def allow_add(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    allow = _allow(args, env)
    try:
        e = allow.add(args.type, args.value, args.reason)
    finally:
        allow.close()
    _print(args, _entry(e), f"allow-listed {e.type} {e.value}: {e.reason}")
    return int(ExitCode.OK)


def allow_remove(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    allow = _allow(args, env)
    try:
        allow.remove(args.type, args.value)
    finally:
        allow.close()
    _print(args, {"removed": True}, f"removed {args.type} {args.value} from the allow-list")
    return int(ExitCode.OK)


def allow_list(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    allow = _allow(args, env)
    try:
        entries = allow.entries()
    finally:
        allow.close()
    human = "\n".join(f"{e.type:<10} {e.value}  {e.reason}" for e in entries) or "the allow-list is empty"
    _print(args, [_entry(e) for e in entries], human)
    return int(ExitCode.OK)

