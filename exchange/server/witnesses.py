"""Witness client: asks one C2SP tlog-witness to cosign the log's checkpoints.

:class:`WitnessClient` implements :class:`~exchange.server.checkpoints.Cosigner`
over HTTP (stdlib ``urllib``).  It remembers the size of the latest checkpoint
the witness cosigned for this log (0 until it learns better) and sends
``old <size>`` with the consistency proof from that size.  A ``409`` with a
``text/x.tlog.size`` body tells it the witness's real size: it retries once
from there.  A cosignature is returned only after it verified against the
configured witness key.

``timeout`` is a total deadline for one request (connect, send, headers and body),
not a per-read timeout: a witness that drips a byte every few seconds is cut off
when the deadline passes.

Failures raise (the caller decides whether a missing cosignature matters)::

    WitnessUnavailable  (Unavailable)     network error, timeout, 5xx
    WitnessRejected     (TrustwireError)  any other refusal (400, 403, 404, 413, 422, …)
    WitnessConflict     (SecurityError)   the witness holds a checkpoint this one does not
                                          extend (larger size, same-size fork, 409 twice)
    BadCosignature      (SecurityError)   the 200 body is malformed or has no valid
                                          cosignature from the configured key
"""

from __future__ import annotations

import http.client
import logging
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Final
from urllib.parse import urlsplit

from exchange.core.errors import (  # the witness errors are re-exported from here
    BadCosignature,
    TrustwireError,
    WitnessConflict,
    WitnessRejected,
    WitnessUnavailable,
)
from exchange.core.note import (
    CosignatureVerifier,
    NoteError,
    Signature,
    parse_note,
)
from exchange.core.witness_protocol import (
    ADD_CHECKPOINT_PATH,
    MAX_RESPONSE_SIZE,
    SIZE_CONTENT_TYPE,
    WitnessProtocolError,
    encode_add_checkpoint,
    parse_cosignatures,
    parse_size,
)

__all__ = [
    "BadCosignature",
    "DEFAULT_TIMEOUT_S",
    "WitnessClient",
    "WitnessConflict",
    "WitnessRejected",
    "WitnessUnavailable",
]

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S: Final = 5.0
_ERROR_TEXT_LIMIT: Final = 200


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A witness never redirects; a 3xx is reported as an error, not followed."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def _deadline_handlers(deadline: float) -> tuple[urllib.request.BaseHandler, ...]:
    """urllib handlers whose connections are shut down at ``deadline`` (time.monotonic())."""

    def connection(base: type[http.client.HTTPConnection]) -> type[http.client.HTTPConnection]:
        class Connection(base):  # type: ignore[misc, valid-type]
            _timer: threading.Timer | None = None

            def connect(self) -> None:
                super().connect()
                self._timer = threading.Timer(max(0.0, deadline - time.monotonic()), self._expire)
                self._timer.daemon = True
                self._timer.start()

            def _expire(self) -> None:
                sock = self.sock
                if sock is not None:
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

            def close(self) -> None:
                if self._timer is not None:
                    self._timer.cancel()
                super().close()

        return Connection

    http_connection = connection(http.client.HTTPConnection)
    https_connection = connection(http.client.HTTPSConnection)

    class HTTP(urllib.request.HTTPHandler):
        def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
            return self.do_open(http_connection, req)

    class HTTPS(urllib.request.HTTPSHandler):
        def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
            return self.do_open(https_connection, req, context=self._context)  # type: ignore[attr-defined]

    return HTTP(), HTTPS()


class _Reply:
    """Status, Content-Type and body of one HTTP exchange."""

    __slots__ = ("status", "content_type", "body")

    def __init__(self, status: int, content_type: str, body: bytes) -> None:
        self.status = status
        self.content_type = content_type
        self.body = body

    def text(self) -> str:
        """A short printable excerpt of the body, for error messages."""
        return self.body[:_ERROR_TEXT_LIMIT].decode("utf-8", "replace").strip()


class WitnessClient:
    """A :class:`~exchange.server.checkpoints.Cosigner` backed by one witness.

    ``url`` is the witness's submission prefix (``http[s]://host:port[/path]``);
    ``witness_key`` is its cosigner verifier key (type 0x04 vkey or verifier).
    Environment proxies are not used.
    """

    def __init__(
        self,
        url: str,
        witness_key: CosignatureVerifier | str,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        known_size: int = 0,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
            raise ValueError(f"witness URL {url!r} must be http(s)://host[:port][/prefix]")
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.endpoint = url.rstrip("/") + ADD_CHECKPOINT_PATH
        self.verifier = (
            CosignatureVerifier.from_string(witness_key) if isinstance(witness_key, str) else witness_key
        )
        self.timeout = timeout
        self._known_size = known_size
        self._lock = threading.Lock()

    @property
    def known_size(self) -> int:
        """The size of the latest checkpoint the witness is known to have cosigned."""
        return self._known_size

    def cosign(self, note: str, size: int, consistency: Callable[[int], list[bytes]]) -> list[str]:
        """Return the witness's verified cosignature lines (without newlines) for ``note``."""
        with self._lock:
            return self._cosign(note, size, consistency)

    def _cosign(self, note: str, size: int, consistency: Callable[[int], list[bytes]]) -> list[str]:
        reply = self._submit(note, size, consistency, self._known_size)
        if reply.status == 409:
            witness_size = self._conflicting_size(reply, size)
            reply = self._submit(note, size, consistency, witness_size)
            if reply.status == 409:
                self._conflicting_size(reply, size)  # learns the size if the body has one
                raise WitnessConflict(
                    f"witness {self.verifier.name} refused checkpoint {size} twice (409): {reply.text()}"
                )
        if reply.status != 200:
            raise self._refusal(reply)
        lines = self._verified_lines(note, reply.body)
        self._known_size = size
        return lines

    def _submit(
        self, note: str, size: int, consistency: Callable[[int], list[bytes]], old: int
    ) -> _Reply:
        if old > size:
            raise WitnessConflict(
                f"witness {self.verifier.name} has cosigned size {old}, larger than checkpoint"
                f" {size}: the log may have lost entries or forked"
            )
        proof = consistency(old) if old > 0 else []
        body = encode_add_checkpoint(old, proof, note)
        log.debug("add-checkpoint old=%d size=%d to %s", old, size, self.verifier.name)
        return self._post(body)

    def _post(self, body: bytes) -> _Reply:
        request = urllib.request.Request(
            self.endpoint,
            data=body,
            method="POST",
            headers={"Content-Type": "text/plain; charset=utf-8"},
        )
        deadline = time.monotonic() + self.timeout
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), _NoRedirect(), *_deadline_handlers(deadline)
        )
        try:
            with opener.open(request, timeout=self.timeout) as response:
                reply = _Reply(response.status, response.headers.get_content_type(), _read(response))
            self._check_deadline(deadline)
            return reply
        except urllib.error.HTTPError as exc:
            self._check_deadline(deadline)
            with exc:
                reply = _Reply(exc.code, exc.headers.get_content_type(), _read(exc))
            if reply.status >= 500:
                raise WitnessUnavailable(
                    f"witness {self.verifier.name} failed with HTTP {reply.status}: {reply.text()}"
                ) from exc
            return reply
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            self._check_deadline(deadline)
            raise WitnessUnavailable(f"witness {self.verifier.name} is unreachable: {exc}") from exc

    def _check_deadline(self, deadline: float) -> None:
        if time.monotonic() >= deadline:
            raise WitnessUnavailable(
                f"witness {self.verifier.name} did not answer within {self.timeout:g}s (total deadline)"
            )

    def _conflicting_size(self, reply: _Reply, size: int) -> int:
        """The witness's size from a 409 body, if retrying from it can succeed."""
        if reply.content_type != SIZE_CONTENT_TYPE:
            raise WitnessConflict(
                f"witness {self.verifier.name} refused checkpoint {size} (409): {reply.text()}"
            )
        try:
            witness_size = parse_size(reply.body)
        except WitnessProtocolError as exc:
            raise WitnessRejected(f"witness {self.verifier.name} sent a bad 409 body: {exc}", 409) from exc
        self._known_size = witness_size
        if witness_size > size:
            raise WitnessConflict(
                f"witness {self.verifier.name} has cosigned size {witness_size}, larger than"
                f" checkpoint {size}: the log may have lost entries or forked"
            )
        return witness_size

    def _refusal(self, reply: _Reply) -> TrustwireError:
        message = f"witness {self.verifier.name} answered HTTP {reply.status}: {reply.text()}"
        if reply.status == 422:
            return WitnessConflict(message + " (it found the consistency proof invalid)")
        return WitnessRejected(message, reply.status)

    def _verified_lines(self, note: str, body: bytes) -> list[str]:
        """Keep the cosignatures by the configured key, each verified; require one."""
        try:
            signatures = parse_cosignatures(body)
        except WitnessProtocolError as exc:
            raise BadCosignature(f"witness {self.verifier.name}: {exc}") from exc
        text = parse_note(note).text
        mine = [s for s in signatures if (s.name, s.key_hash) == (self.verifier.name, self.verifier.key_hash)]
        if not mine:
            raise BadCosignature(
                f"witness {self.verifier.name} returned no cosignature from its configured key"
            )
        for signature in mine:
            try:
                self.verifier.verify(text, signature.signature)
            except NoteError as exc:
                raise BadCosignature(f"witness {self.verifier.name}: {exc}") from exc
        return [_line(signature) for signature in mine]


def _line(signature: Signature) -> str:
    return signature.to_line().rstrip("\n")


def _read(response: http.client.HTTPResponse | urllib.error.HTTPError) -> bytes:
    body = response.read(MAX_RESPONSE_SIZE + 1)
    if len(body) > MAX_RESPONSE_SIZE:
        raise WitnessUnavailable(f"witness response is larger than {MAX_RESPONSE_SIZE} bytes")
    return body
