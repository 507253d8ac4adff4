"""The witness over HTTP: ``POST <prefix>/add-checkpoint`` on a threading server."""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final
from urllib.parse import urlsplit

from clients.witness.config import check_prefix, split_listen
from clients.witness.core import Witness, WitnessResponse, text_response
from exchange.core.witness_protocol import ADD_CHECKPOINT_PATH, MAX_REQUEST_SIZE

log = logging.getLogger(__name__)

IDLE_TIMEOUT_S: Final = 30.0
"""How long a keep-alive connection may sit idle before the server closes it."""


class _WitnessHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        witness: Witness,
        path: str,
        clock: Callable[[], float],
        max_body: int,
    ) -> None:
        self.witness = witness
        self.endpoint = path
        self.clock = clock
        self.max_body = max_body
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Log handler failures; a client hanging up early is routine."""
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError | TimeoutError):
            log.debug("connection from %s ended: %s", client_address, error)
        else:
            log.exception("error while serving %s", client_address)


class _Handler(BaseHTTPRequestHandler):
    """``POST <prefix>/add-checkpoint``; everything else is 404 or 405."""

    protocol_version = "HTTP/1.1"
    server_version = "trustwire-witness"
    sys_version = ""
    timeout = IDLE_TIMEOUT_S
    server: _WitnessHTTPServer

    def _send(self, response: WitnessResponse, *, close: bool = False, allow: str = "") -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        if allow:
            self.send_header("Allow", allow)
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def _path_matches(self) -> bool:
        return urlsplit(self.path).path == self.server.endpoint

    def _content_length(self) -> int | WitnessResponse:
        """The declared body length, or the error response to send (and close)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return text_response(411, "chunked bodies are not supported; send Content-Length")
        raw = self.headers.get("Content-Length")
        if raw is None:
            return text_response(411, "Content-Length is required")
        if not (raw.isascii() and raw.isdigit()):
            return text_response(400, "Content-Length is not a decimal number")
        length = int(raw)
        if length > self.server.max_body:
            return text_response(413, f"request body is larger than {self.server.max_body} bytes")
        return length

    def handle_expect_100(self) -> bool:
        """Refuse an oversized body before the client sends it."""
        if self.command == "POST" and self._path_matches():
            length = self._content_length()
            if isinstance(length, WitnessResponse):
                self._send(length, close=True)
                return False
        return super().handle_expect_100()

    def do_POST(self) -> None:  # noqa: N802 (http.server naming)
        if not self._path_matches():
            self._send(text_response(404, "not found"), close=self._unread_body())
            return
        length = self._content_length()
        if isinstance(length, WitnessResponse):
            self._send(length, close=True)
            return
        body = self.rfile.read(length)
        if len(body) != length:
            self.close_connection = True
            return
        try:
            response = self.server.witness.add_checkpoint(body, int(self.server.clock()))
        except Exception:
            log.exception("add-checkpoint failed")
            response = text_response(500, "internal error")
        self._send(response)

    def _unread_body(self) -> bool:
        """Whether a request body may be left unread (then the connection must close)."""
        raw = self.headers.get("Content-Length", "0")
        return raw != "0" or "Transfer-Encoding" in self.headers

    def _not_allowed(self) -> None:
        if self._path_matches():
            self._send(text_response(405, "only POST is allowed"), close=self._unread_body(), allow="POST")
        else:
            self._send(text_response(404, "not found"), close=self._unread_body())

    do_GET = do_HEAD = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed  # noqa: N815

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib signature)
        log.debug("%s %s", self.address_string(), format % args)


@dataclass(slots=True)
class RunningWitness:
    """A witness HTTP server running on a background thread."""

    server: _WitnessHTTPServer
    thread: threading.Thread
    host: str
    port: int
    prefix: str

    @property
    def url(self) -> str:
        """The submission prefix URL (``add-checkpoint`` is appended to it)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{self.prefix}"

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def serve_witness(
    witness: Witness,
    listen: str = "127.0.0.1:0",
    prefix: str = "",
    clock: Callable[[], float] = time.time,
    max_body: int = MAX_REQUEST_SIZE,
) -> RunningWitness:
    """Serve ``POST <prefix>/add-checkpoint`` on ``listen`` (port 0 picks a free port)."""
    host, port = split_listen(listen)
    prefix = check_prefix(prefix)
    server = _WitnessHTTPServer((host, port), witness, prefix + ADD_CHECKPOINT_PATH, clock, max_body)
    bound_port = int(server.server_address[1])
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="witness-http", daemon=True
    )
    thread.start()
    log.info("witness %s listening on %s:%d%s", witness.name, host, bound_port, prefix)
    return RunningWitness(server=server, thread=thread, host=host, port=bound_port, prefix=prefix)
