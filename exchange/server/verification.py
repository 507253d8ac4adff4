"""Admission phase 1: everything that needs no ledger state, off the serving process.

For each envelope, the stateless half of the acceptance rule
(:func:`exchange.core.acceptance.check_signed`, with the authenticated caller as
``principal``). Signature checks dominate admission, and only the libsodium call
releases the GIL, so batches go to a pool of worker *processes* (one worker is one
process: the exchange's own process then runs phase 2 and the append of one batch
while the worker checks the next, on another core). A batch of any size takes a
worker that is idle: the round trip costs the serving process far less than checking
even one envelope under its GIL. Only when every worker is busy is a small batch
(under ``threshold``) checked inline rather than queued behind them.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import queue
import struct
import subprocess
import sys
import threading
from collections.abc import Sequence
from typing import BinaryIO

from exchange.core.acceptance import KeyTable, check_signed_batch, directory_keys, key_table
from exchange.core.acceptance import Signed as Checked
from exchange.core.dsse import Envelope
from exchange.core.entries import EntryKind, MemberId, parse_payload
from exchange.core.errors import TrustwireError
from exchange.core.keydir import KeyDirectory
from exchange.core.keys import KeyId

__all__ = ["Checked", "KeyTable", "VerifierPool", "key_table"]

log = logging.getLogger(__name__)


def check_batch(
    principal: str, raws: Sequence[bytes], operator_key: bytes, keys: KeyTable
) -> list[Checked | TrustwireError]:
    """Phase 1 for a batch, in stages (:func:`exchange.core.acceptance.check_signed_batch`)."""
    return check_signed_batch(raws, operator_key, keys, principal=principal)


_Light = tuple[bytes, str, bytes, KeyId, bytes, EntryKind, MemberId]
"""What a worker sends back for an envelope it accepted: the SHA-256 of the bytes it
checked, the envelope's fields but not its bytes (the parent holds them), the entry's
kind and its publisher."""


class WorkerMismatch(Exception):
    """A worker's answer is not about the envelope bytes the parent holds."""


def _check_batch_light(
    principal: str, raws: Sequence[bytes], operator_key: bytes, keys: KeyTable
) -> list[_Light | TrustwireError]:
    """Worker side: like check_batch, in compact form (protobuf messages do not pickle
    under their generated module name, so the parent parses the payload it needs)."""
    out: list[_Light | TrustwireError] = []
    for c in check_batch(principal, raws, operator_key, keys):
        if isinstance(c, TrustwireError):
            out.append(c)
        else:
            env = c.envelope
            out.append((env.digest, env.payload_type, env.payload, env.keyid, env.sig, c.kind, c.publisher))
    return out


def _rebuild(raw: bytes, light: _Light | TrustwireError) -> Checked | TrustwireError:
    """Parent side: a worker's compact answer for ``raw`` as the ``Checked`` it stands for.

    The worker is this server's own child running this same code on bytes the parent
    sent, so its verdict and the fields it read are trusted as the parent's own would
    be; what is checked is that the answer is about *these* bytes (the SHA-256 of what
    the worker checked against ``raw``'s): an answer
    misrouted or out of order raises :class:`WorkerMismatch` and the batch is checked
    inline. A refusal needs no binding: it only keeps an envelope out."""
    if isinstance(light, TrustwireError):
        return light
    digest, payload_type, payload, keyid, sig, kind, publisher = light
    if hashlib.sha256(raw).digest() != digest:
        raise WorkerMismatch("a verification worker answered for other bytes")
    env = Envelope(payload_type=payload_type, payload=payload, keyid=keyid, sig=sig, raw=raw)
    return Checked(env, kind, parse_payload(kind, payload), publisher)


class _Worker:
    """One verification process (``python -m exchange.server.verification``), spoken to
    over its stdin/stdout with length-prefixed pickles. Our own process, not
    multiprocessing's: it never re-imports the embedding program's ``__main__``."""

    def __init__(self) -> None:
        self.table_version = -1  # the key table this worker holds (sent only when it changes)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "exchange.server.verification"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )

    def send(self, job: object) -> None:
        _write_frame(self.proc.stdin, pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL))  # type: ignore[arg-type]

    def receive(self) -> list[_Light | TrustwireError]:
        return pickle.loads(_read_frame(self.proc.stdout))  # type: ignore[arg-type, no-any-return]  # noqa: S301 - our own child

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=5)


def _write_frame(stream: BinaryIO, data: bytes) -> None:
    stream.write(struct.pack(">Q", len(data)) + data)
    stream.flush()


def _read_frame(stream: BinaryIO) -> bytes:
    header = stream.read(8)
    if len(header) != 8:
        raise EOFError("verification worker went away")
    (size,) = struct.unpack(">Q", header)
    data = stream.read(size)
    if len(data) != size:
        raise EOFError("verification worker went away")
    return data


class VerifierPool:
    """Runs :func:`check_batch` on ``workers`` processes (0: one per core), or inline.

    Several batches are checked at once. A batch takes a worker that is idle, whatever
    its size, and any others idle at that moment for each further ``threshold``
    envelopes, never waiting while it holds one. When none is idle, a batch under
    ``threshold`` is checked inline (sooner than waiting for one) and a larger batch
    waits for one. A slot's process starts on first use: for a large batch on its path,
    for a small one in the background (the batch is checked inline meanwhile). If a
    worker fails, the batch is checked inline and the worker replaced."""

    def __init__(self, workers: int = 0, threshold: int = 64) -> None:
        self.workers = workers or os.cpu_count() or 1
        self._threshold = threshold
        self._idle: queue.LifoQueue[_Worker | None] = queue.LifoQueue()
        for _ in range(self.workers):
            self._idle.put(None)  # a slot whose process starts on first use
        self._lock = threading.Lock()
        self._procs: list[_Worker] = []
        self._table_of: KeyDirectory | None = None  # the directory whose key table workers get
        self._table_copy: dict[str, tuple[str, bytes]] = {}
        self._table_version = 0
        self._closed = False

    def check(
        self, principal: str, raws: Sequence[bytes], operator_key: bytes, directory: KeyDirectory
    ) -> list[Checked | TrustwireError]:
        """Phase 1 for a batch against ``directory``'s keys (a published, never-mutated
        directory: its key table is copied once per directory, and sent to each worker
        once)."""
        if not raws:
            return []
        small = len(raws) < self._threshold
        try:
            first = self._idle.get_nowait()
        except queue.Empty:
            if small:  # every worker busy: sooner inline than queued
                return check_batch(principal, raws, operator_key, directory_keys(directory))
            first = self._idle.get()
        if first is None and small:  # a slot not started yet: start it off this call's path
            threading.Thread(target=self._start_idle, name="verifier-start", daemon=True).start()
            return check_batch(principal, raws, operator_key, directory_keys(directory))
        version, table = self._table(directory)
        held = [first]
        while len(held) < self.workers and len(raws) >= self._threshold * (len(held) + 1):
            try:
                held.append(self._idle.get_nowait())
            except queue.Empty:
                break
        size = -(-len(raws) // len(held))
        chunks = [list(raws[i : i + size]) for i in range(0, len(raws), size)]
        procs: list[_Worker] = []
        try:
            procs.extend(w if w is not None else self._start() for w in held)
            for worker, chunk in zip(procs, chunks, strict=True):
                fresh = worker.table_version != version
                worker.send((principal, chunk, operator_key, version, table if fresh else None))
                worker.table_version = version
            results = [worker.receive() for worker in procs]
            held = list(procs)
        except (OSError, EOFError, pickle.PickleError) as exc:
            log.warning("a verification worker failed (%s); checking this batch inline", exc)
            for worker in procs:
                self._retire(worker)
            held = [None] * len(held)
            return check_batch(principal, raws, operator_key, directory_keys(directory))
        finally:
            for slot in held:
                self._idle.put(slot)
        try:
            return [_rebuild(raw, item) for chunk, part in zip(chunks, results, strict=True)
                    for raw, item in zip(chunk, part, strict=True)]
        except (WorkerMismatch, ValueError) as exc:  # ValueError: an answer of the wrong length
            log.error("a verification worker's answer does not match its batch (%s); checking it inline", exc)
            return check_batch(principal, raws, operator_key, directory_keys(directory))

    def _table(self, directory: KeyDirectory) -> tuple[int, dict[str, tuple[str, bytes]]]:
        with self._lock:
            if self._table_of is not directory:
                self._table_of, self._table_copy = directory, key_table(directory)
                self._table_version += 1
            return self._table_version, self._table_copy

    def _start(self) -> _Worker:
        worker = _Worker()
        with self._lock:
            self._procs.append(worker)
        return worker

    def _start_idle(self) -> None:
        """Start a slot's process in the background and offer it as idle (or stop it, if
        the pool closed meanwhile)."""
        try:
            worker: _Worker | None = self._start()
        except OSError as exc:
            log.warning("a verification worker did not start (%s); it starts on the next large batch", exc)
            worker = None
        with self._lock:
            closed = self._closed
        if closed and worker is not None:
            self._retire(worker)
            return
        self._idle.put(worker)

    def _retire(self, worker: _Worker | None) -> None:
        if worker is None:
            return
        with self._lock:
            if worker in self._procs:
                self._procs.remove(worker)
        try:
            worker.close()
        except (OSError, subprocess.TimeoutExpired):
            pass

    def close(self) -> None:
        with self._lock:
            self._closed = True
            live, self._procs = self._procs, []
        for worker in live:
            try:
                worker.close()
            except (OSError, subprocess.TimeoutExpired):
                pass


def _serve_worker() -> None:
    """Worker loop: read a job, check it, write the results, until stdin closes."""
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    table: dict[str, tuple[str, bytes]] = {}
    while True:
        try:
            job = pickle.loads(_read_frame(stdin))  # noqa: S301 - from our parent only
        except EOFError:
            return
        principal, raws, operator_key, _version, new_table = job
        if new_table is not None:  # the parent sends the key table only when it changed
            table = new_table
        _write_frame(stdout, pickle.dumps(_check_batch_light(principal, raws, operator_key, table)))


if __name__ == "__main__":
    _serve_worker()
