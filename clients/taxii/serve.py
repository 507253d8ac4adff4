"""Run the TAXII app with uvicorn in a thread (the CLI's sync loop keeps the main thread)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from starlette.applications import Starlette

from exchange.core.errors import Unavailable

__all__ = ["RunningTaxii", "serve_in_thread"]


@dataclass(frozen=True, slots=True)
class RunningTaxii:
    server: uvicorn.Server
    thread: threading.Thread
    url: str  # http(s)://host:port/taxii2/

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)


def serve_in_thread(
    app: Starlette,
    host: str = "127.0.0.1",
    port: int = 0,
    cert_file: Path | None = None,
    key_file: Path | None = None,
    ready_timeout: float = 20.0,
) -> RunningTaxii:
    """Start serving and return once the socket listens (port 0 picks a free one)."""
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", access_log=False, lifespan="off",
        ssl_certfile=str(cert_file) if cert_file else None, ssl_keyfile=str(key_file) if key_file else None,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="trustwire-taxii", daemon=True)
    thread.start()
    deadline = time.monotonic() + ready_timeout
    while not server.started:  # bounded wait for the listening socket
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise Unavailable(f"the TAXII server could not listen on {host}:{port}")
        time.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()
    scheme = "https" if cert_file else "http"
    return RunningTaxii(server, thread, f"{scheme}://{host}:{bound[1]}/taxii2/")
