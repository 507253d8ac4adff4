"""Serving the console: uvicorn on a socket the caller chose, optionally over HTTPS.

Without HTTPS the console listens on loopback only (put a TLS proxy in front, or
pass a certificate): session cookies then lack ``Secure``, which browsers accept
only for localhost.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from clients.console.accounts import AccountStore
from clients.console.gateway import Gateway
from clients.console.media import MediaRoots
from clients.console.web import build_app
from exchange.core.errors import ConfigError

__all__ = ["ConsoleServer", "HttpsFiles", "start_console"]


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpsFiles:
    cert_file: Path
    key_file: Path


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


@dataclass
class ConsoleServer:
    server: uvicorn.Server
    thread: threading.Thread
    url: str

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def _bind(listen: str, https: HttpsFiles | None) -> socket.socket:
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit():
        raise ConfigError(f"listen must be HOST:PORT, not {listen!r}")
    if https is None and not _is_loopback(host):
        raise ConfigError("without --https-cert-file the console listens on loopback only (127.0.0.1, ::1)")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, int(port)))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {listen}: {exc.strerror}") from exc
    return sock


def start_console(
    gateway: Gateway,
    accounts: AccountStore,
    media: MediaRoots,
    listen: str = "127.0.0.1:0",
    https: HttpsFiles | None = None,
) -> ConsoleServer:
    """Serve the console on a background thread; returns once it accepts connections."""
    sock = _bind(listen, https)
    app = build_app(gateway, accounts, media, secure_cookies=https is not None)
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="off",
        ssl_certfile=str(https.cert_file) if https else None, ssl_keyfile=str(https.key_file) if https else None,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="tw-console", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:  # bounded retry: started, died, or timed out
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise ConfigError("the console failed to start (see the log)")
        time.sleep(0.02)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return ConsoleServer(server=server, thread=thread, url=f"{'https' if https else 'http'}://{shown}:{port}")
