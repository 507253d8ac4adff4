"""A C2SP tlog-witness: cosigns checkpoints of the logs it trusts over HTTP.

:class:`Witness` implements ``add-checkpoint`` (c2sp.org/tlog-witness) without
HTTP; :func:`serve_witness` exposes it on ``POST <prefix>/add-checkpoint``.
For each trusted origin the witness remembers the latest checkpoint it
cosigned in a SQLite file (:class:`WitnessState`).  Checking the request's old
size against that record, checking the consistency proof against the stored
root, and storing the new checkpoint happen in ONE ``BEGIN IMMEDIATE``
transaction, so two racing requests cannot roll the record back (the race in
the spec's last paragraph).

Checks, in order (first failure wins)::

    body too large                              413
    body malformed                              400
    origin not configured                       404
    no signature from a trusted log key         403
    old size > checkpoint size                  400
    old size != latest cosigned size            409  text/x.tlog.size body
    old size == size but a different root       409  (recorded as a conflict)
    consistency proof does not verify           422  (recorded as a conflict)
    otherwise: persist, then                    200  cosignature/v1 line

Refused checkpoints that carry a valid log signature but contradict the
stored one are kept in the ``conflicts`` table with both notes: they may be
proof that the log showed different views to different parties.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sqlite3
import sys
import threading
import time
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, NamedTuple
from urllib.parse import urlsplit

import nacl.signing

from exchange.core.errors import ConfigError, ExitCode, TrustwireError
from exchange.core.keyfiles import read_seed_file
from exchange.core.merkle import EMPTY_ROOT, ProofError, verify_consistency
from exchange.core.note import (
    CosignatureSigner,
    NoteError,
    NoteVerifier,
    open_note,
    validate_key_name,
)
from exchange.core.witness_protocol import (
    ADD_CHECKPOINT_PATH,
    MAX_REQUEST_SIZE,
    SIGNATURES_CONTENT_TYPE,
    SIZE_CONTENT_TYPE,
    AddCheckpointRequest,
    WitnessProtocolError,
    format_cosignatures,
    format_size,
    parse_add_checkpoint,
)

__all__ = [
    "Conflict",
    "CosignedCheckpoint",
    "RunningWitness",
    "Witness",
    "WitnessConfig",
    "WitnessResponse",
    "WitnessState",
    "main",
    "read_signing_key",
    "serve_witness",
]

log = logging.getLogger(__name__)

TEXT_CONTENT_TYPE: Final = "text/plain; charset=utf-8"
BUSY_TIMEOUT_S: Final = 30.0
"""How long a request waits for another one's transaction to finish."""
IDLE_TIMEOUT_S: Final = 30.0
"""How long a keep-alive connection may sit idle before the server closes it."""


class WitnessResponse(NamedTuple):
    """An HTTP response: status code, Content-Type and body."""

    status: int
    content_type: str
    body: bytes


def _text(status: int, message: str) -> WitnessResponse:
    return WitnessResponse(status, TEXT_CONTENT_TYPE, (message + "\n").encode("utf-8"))


# --------------------------------------------------------------------------
# State
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class CosignedCheckpoint:
    """The latest checkpoint the witness cosigned for one origin."""

    origin: str
    size: int
    root: bytes
    note: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Conflict:
    """A refused checkpoint, validly signed by the log, that contradicts the record."""

    origin: str
    kind: str
    """``same-size-fork`` (409) or ``inconsistent`` (422)."""
    old_size: int
    proof: tuple[bytes, ...]
    cosigned_note: str | None
    """The note the witness had cosigned (``None`` if it never cosigned one)."""
    refused_note: str
    recorded_at: int


_SCHEMA: Final = (
    "CREATE TABLE IF NOT EXISTS checkpoints (origin TEXT PRIMARY KEY, size INTEGER NOT NULL,"
    " root BLOB NOT NULL, note TEXT NOT NULL, updated_at INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS conflicts (id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " origin TEXT NOT NULL, kind TEXT NOT NULL, old_size INTEGER NOT NULL, proof BLOB NOT NULL,"
    " cosigned_note TEXT, refused_note TEXT NOT NULL, recorded_at INTEGER NOT NULL)",
)


class WitnessState:
    """Per-origin latest cosigned checkpoint, and the conflicts seen, in SQLite.

    Every transaction opens its own connection, so the object may be shared
    by threads and the file even by processes; :meth:`transaction` takes the
    write lock up front (``BEGIN IMMEDIATE``).
    """

    def __init__(self, path: Path | str, busy_timeout: float = BUSY_TIMEOUT_S) -> None:
        self.path = Path(path)
        self._busy_timeout = busy_timeout
        with contextlib.closing(self._connect()) as db:
            db.execute("PRAGMA journal_mode=WAL")
            for statement in _SCHEMA:
                db.execute(statement)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=self._busy_timeout, isolation_level=None)
        db.execute("PRAGMA synchronous=FULL")
        return db

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: committed on success, rolled back on an exception."""
        with contextlib.closing(self._connect()) as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    @staticmethod
    def read_latest(db: sqlite3.Connection, origin: str) -> CosignedCheckpoint | None:
        """The record for ``origin`` as seen by ``db`` (inside a transaction)."""
        row = db.execute(
            "SELECT size, root, note FROM checkpoints WHERE origin = ?", (origin,)
        ).fetchone()
        if row is None:
            return None
        return CosignedCheckpoint(origin=origin, size=row[0], root=row[1], note=row[2])

    @staticmethod
    def write_latest(db: sqlite3.Connection, record: CosignedCheckpoint, now: int) -> None:
        """Replace the record for ``record.origin`` (inside a transaction)."""
        db.execute(
            "INSERT INTO checkpoints (origin, size, root, note, updated_at) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (origin) DO UPDATE SET size = excluded.size, root = excluded.root,"
            " note = excluded.note, updated_at = excluded.updated_at",
            (record.origin, record.size, record.root, record.note, now),
        )

    @staticmethod
    def write_conflict(db: sqlite3.Connection, conflict: Conflict) -> None:
        """Keep the evidence of a refused checkpoint (inside a transaction)."""
        db.execute(
            "INSERT INTO conflicts (origin, kind, old_size, proof, cosigned_note, refused_note,"
            " recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                conflict.origin,
                conflict.kind,
                conflict.old_size,
                b"".join(conflict.proof),
                conflict.cosigned_note,
                conflict.refused_note,
                conflict.recorded_at,
            ),
        )

    def latest(self, origin: str) -> CosignedCheckpoint | None:
        """The latest checkpoint cosigned for ``origin``, if any."""
        with contextlib.closing(self._connect()) as db:
            return self.read_latest(db, origin)

    def conflicts(self, origin: str | None = None) -> list[Conflict]:
        """Recorded conflicts, oldest first, optionally for one origin."""
        query = (
            "SELECT origin, kind, old_size, proof, cosigned_note, refused_note, recorded_at"
            " FROM conflicts"
        )
        args: tuple[str, ...] = ()
        if origin is not None:
            query += " WHERE origin = ?"
            args = (origin,)
        with contextlib.closing(self._connect()) as db:
            rows = db.execute(query + " ORDER BY id", args).fetchall()
        return [_conflict_from_row(row) for row in rows]


def _conflict_from_row(row: Sequence[Any]) -> Conflict:
    proof_blob: bytes = row[3]
    proof = tuple(proof_blob[i : i + 32] for i in range(0, len(proof_blob), 32))
    return Conflict(
        origin=row[0],
        kind=row[1],
        old_size=row[2],
        proof=proof,
        cosigned_note=row[4],
        refused_note=row[5],
        recorded_at=row[6],
    )


# --------------------------------------------------------------------------
# Witness core
# --------------------------------------------------------------------------


class _Refusal(Exception):
    """Ends a transaction early with a response (after recording any conflict)."""

    def __init__(self, response: WitnessResponse) -> None:
        super().__init__(response.status)
        self.response = response


class Witness:
    """The add-checkpoint logic of a witness, without HTTP.

    ``logs`` maps each trusted origin to the log's verifier keys; a
    checkpoint needs a valid signature from at least one of them.
    """

    def __init__(
        self,
        name: str,
        signing_key: nacl.signing.SigningKey,
        logs: Mapping[str, Sequence[NoteVerifier]],
        state: WitnessState | Path | str,
    ) -> None:
        self._signer = CosignatureSigner(name, signing_key)
        self._logs = MappingProxyType({origin: tuple(keys) for origin, keys in logs.items()})
        for origin, keys in self._logs.items():
            if not keys:
                raise ConfigError(f"log {origin!r} has no verifier keys")
        self.state = state if isinstance(state, WitnessState) else WitnessState(state)

    @classmethod
    def from_config(cls, config: WitnessConfig) -> Witness:
        """Build a witness from its configuration (reads the key file)."""
        logs = {origin: config.log_verifiers(origin) for origin in config.logs}
        return cls(config.name, read_signing_key(config.key_file), logs, config.state)

    @property
    def name(self) -> str:
        return self._signer.name

    @property
    def verifier_key(self) -> str:
        """The witness's cosigner vkey (type 0x04), to give to logs and clients."""
        return self._signer.verifier_key()

    def add_checkpoint(self, body: bytes, now: int) -> WitnessResponse:
        """Handle one add-checkpoint request body; ``now`` is the POSIX time of the cosignature."""
        if len(body) > MAX_REQUEST_SIZE:
            return _text(413, f"request body is larger than {MAX_REQUEST_SIZE} bytes")
        try:
            request = parse_add_checkpoint(body)
        except WitnessProtocolError as exc:
            return _text(400, str(exc))
        checkpoint = request.checkpoint
        verifiers = self._logs.get(checkpoint.origin)
        if verifiers is None:
            return _text(404, f"unknown log origin {checkpoint.origin!r}")
        try:
            open_note(request.note, verifiers)
        except NoteError as exc:
            return _text(403, f"no valid signature from a trusted key of this log: {exc}")
        if request.old_size > checkpoint.size:
            return _text(
                400, f"old size {request.old_size} is larger than the checkpoint size {checkpoint.size}"
            )
        try:
            self._check_and_store(request, now)
        except _Refusal as refusal:
            return refusal.response
        cosignature = self._signer.sign(checkpoint, now)
        return WitnessResponse(200, SIGNATURES_CONTENT_TYPE, format_cosignatures([cosignature]))

    def _check_and_store(self, request: AddCheckpointRequest, now: int) -> None:
        """Compare with the record and replace it, atomically; raise :class:`_Refusal` to refuse."""
        checkpoint = request.checkpoint
        refusal: _Refusal | None = None
        with self.state.transaction() as db:
            stored = WitnessState.read_latest(db, checkpoint.origin)
            stored_size = 0 if stored is None else stored.size
            stored_root = EMPTY_ROOT if stored is None else stored.root
            if request.old_size != stored_size:
                raise _Refusal(WitnessResponse(409, SIZE_CONTENT_TYPE, format_size(stored_size)))
            refusal = self._find_conflict(request, stored, stored_root, now, db)
            if refusal is None:
                record = CosignedCheckpoint(
                    origin=checkpoint.origin,
                    size=checkpoint.size,
                    root=checkpoint.root_hash,
                    note=request.note,
                )
                WitnessState.write_latest(db, record, now)
        # Raised after the commit, so the recorded conflict is kept.
        if refusal is not None:
            raise refusal

    def _find_conflict(
        self,
        request: AddCheckpointRequest,
        stored: CosignedCheckpoint | None,
        stored_root: bytes,
        now: int,
        db: sqlite3.Connection,
    ) -> _Refusal | None:
        """Check the root (same size) or the consistency proof; record what contradicts."""
        checkpoint = request.checkpoint
        if request.old_size == checkpoint.size and checkpoint.root_hash != stored_root:
            kind, response = "same-size-fork", _text(
                409,
                f"checkpoint of size {checkpoint.size} has a different root hash than the one"
                " already cosigned",
            )
        else:
            try:
                verify_consistency(
                    request.old_size, checkpoint.size, stored_root, checkpoint.root_hash, request.proof
                )
                return None
            except ProofError as exc:
                kind, response = "inconsistent", _text(422, f"consistency proof does not verify: {exc}")
        log.warning(
            "possible misbehaviour of log %r: validly signed checkpoint of size %d refused (%s,"
            " old size %d); evidence recorded",
            checkpoint.origin,
            checkpoint.size,
            kind,
            request.old_size,
        )
        conflict = Conflict(
            origin=checkpoint.origin,
            kind=kind,
            old_size=request.old_size,
            proof=request.proof,
            cosigned_note=None if stored is None else stored.note,
            refused_note=request.note,
            recorded_at=now,
        )
        WitnessState.write_conflict(db, conflict)
        return _Refusal(response)


# --------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------


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
            return _text(411, "chunked bodies are not supported; send Content-Length")
        raw = self.headers.get("Content-Length")
        if raw is None:
            return _text(411, "Content-Length is required")
        if not (raw.isascii() and raw.isdigit()):
            return _text(400, "Content-Length is not a decimal number")
        length = int(raw)
        if length > self.server.max_body:
            return _text(413, f"request body is larger than {self.server.max_body} bytes")
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
            self._send(_text(404, "not found"), close=self._unread_body())
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
            response = _text(500, "internal error")
        self._send(response)

    def _unread_body(self) -> bool:
        """Whether a request body may be left unread (then the connection must close)."""
        raw = self.headers.get("Content-Length", "0")
        return raw != "0" or "Transfer-Encoding" in self.headers

    def _not_allowed(self) -> None:
        if self._path_matches():
            self._send(_text(405, "only POST is allowed"), close=self._unread_body(), allow="POST")
        else:
            self._send(_text(404, "not found"), close=self._unread_body())

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


def _split_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ConfigError(f"listen address {listen!r} must be host:port")
    return host.strip("[]"), int(port)


def _check_prefix(prefix: str) -> str:
    if prefix and (not prefix.startswith("/") or prefix.endswith("/")):
        raise ConfigError(f"prefix {prefix!r} must start with '/' and not end with '/'")
    return prefix


def serve_witness(
    witness: Witness,
    listen: str = "127.0.0.1:0",
    prefix: str = "",
    clock: Callable[[], float] = time.time,
    max_body: int = MAX_REQUEST_SIZE,
) -> RunningWitness:
    """Serve ``POST <prefix>/add-checkpoint`` on ``listen`` (port 0 picks a free port)."""
    host, port = _split_listen(listen)
    prefix = _check_prefix(prefix)
    server = _WitnessHTTPServer((host, port), witness, prefix + ADD_CHECKPOINT_PATH, clock, max_body)
    bound_port = int(server.server_address[1])
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="witness-http", daemon=True
    )
    thread.start()
    log.info("witness %s listening on %s:%d%s", witness.name, host, bound_port, prefix)
    return RunningWitness(server=server, thread=thread, host=host, port=bound_port, prefix=prefix)


# --------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------


def read_signing_key(path: Path) -> nacl.signing.SigningKey:
    """Read a hex Ed25519 seed (32 bytes) from ``path``."""
    return read_seed_file(path).signing_key


_CONFIG_KEYS: Final = frozenset({"name", "key_file", "state", "listen", "prefix", "logs"})


@dataclass(frozen=True, slots=True, kw_only=True)
class WitnessConfig:
    """Settings of a witness, e.g. from TOML::

        name = "witness.example/w1"
        key_file = "witness.key"        # hex Ed25519 seed
        state = "witness.db"
        listen = "127.0.0.1:7380"
        prefix = ""                     # submission prefix path

        [logs]
        "trustwire.example/log" = ["trustwire.example/log+1a2b3c4d+AQ..."]
    """

    name: str
    key_file: Path
    state: Path = Path("trustwire-witness.db")
    listen: str = "127.0.0.1:7380"
    prefix: str = ""
    logs: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Trusted origin → the log's verifier keys (vkeys of type 0x01)."""

    def __post_init__(self) -> None:
        try:
            validate_key_name(self.name)
        except NoteError as exc:
            raise ConfigError(f"witness name: {exc}") from exc
        _split_listen(self.listen)
        _check_prefix(self.prefix)
        for origin in self.logs:
            self.log_verifiers(origin)

    def log_verifiers(self, origin: str) -> tuple[NoteVerifier, ...]:
        """The parsed verifier keys of one configured log."""
        vkeys = self.logs[origin]
        if not vkeys:
            raise ConfigError(f"log {origin!r} has no verifier keys")
        try:
            return tuple(NoteVerifier.from_string(vkey) for vkey in vkeys)
        except NoteError as exc:
            raise ConfigError(f"log {origin!r}: {exc}") from exc

    @classmethod
    def from_toml(cls, text: str, source: str = "witness config") -> WitnessConfig:
        """Parse TOML text; unknown keys are errors, name and key_file are required."""
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{source} is not valid TOML: {exc}") from exc
        unknown = sorted(set(data) - _CONFIG_KEYS)
        if unknown:
            raise ConfigError(f"{source}: unknown key(s) {', '.join(unknown)}")
        missing = sorted({"name", "key_file"} - set(data))
        if missing:
            raise ConfigError(f"{source}: missing key(s) {', '.join(missing)}")
        values: dict[str, Any] = {k: _string(data, k, source) for k in data if k != "logs"}
        for key in ("key_file", "state"):
            if key in values:
                values[key] = Path(values[key])
        return cls(**values, logs=_logs_table(data.get("logs", {}), source))

    @classmethod
    def load(cls, path: Path) -> WitnessConfig:
        """Read and parse a TOML file."""
        try:
            return cls.from_toml(Path(path).read_text(), str(path))
        except FileNotFoundError as exc:
            raise ConfigError(f"witness config {path} does not exist") from exc


def _string(data: Mapping[str, Any], key: str, source: str) -> str:
    value = data[key]
    if not isinstance(value, str):
        raise ConfigError(f"{source}: {key} must be a string")
    return value


def _logs_table(table: Any, source: str) -> Mapping[str, tuple[str, ...]]:
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: logs must be a table of origin = [vkeys]")
    logs: dict[str, tuple[str, ...]] = {}
    for origin, vkeys in table.items():
        if not isinstance(vkeys, list) or not all(isinstance(v, str) for v in vkeys):
            raise ConfigError(f"{source}: logs.{origin} must be a list of verifier key strings")
        logs[origin] = tuple(vkeys)
    return MappingProxyType(logs)


# --------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m clients.witness --config witness.toml``: serve until interrupted."""
    parser = argparse.ArgumentParser(prog="trustwire-witness", description="Run a C2SP tlog-witness.")
    parser.add_argument("--config", type=Path, required=True, help="witness TOML file")
    parser.add_argument("-v", "--verbose", action="count", default=0)
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = WitnessConfig.load(args.config)
        witness = Witness.from_config(config)
        running = serve_witness(witness, config.listen, config.prefix)
    except TrustwireError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    print(f"witness {witness.name} on {running.url}\n{witness.verifier_key}")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        # poll: a SIGTERM that lands on another thread only sets CPython's flag, and the
        # handler runs when the main thread next executes bytecode (never, in a bare wait())
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        return int(ExitCode.INTERRUPTED)
    finally:
        running.stop()
    return int(ExitCode.OK)


if __name__ == "__main__":
    sys.exit(main())
