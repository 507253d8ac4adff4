"""Verification workers for ``trustwire audit verify``: ranges of records checked on
every core, merged in order, with progress and a resumable state.

The reader (this process) streams records and hands ranges of :data:`CHUNK` to worker
processes, each holding a :class:`RangeVerifier` built once from the ledger's key
events; at most two ranges per worker are in flight, so memory stays flat whatever
the ledger's size. Results are merged in ledger order by the :class:`Auditor`.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from itertools import chain, islice
from typing import Any

from clients.verify_pool import process_pool
from exchange.core.audit import CHUNK, AuditReport, Auditor, ChunkResult, RangeVerifier

__all__ = ["AuditRun", "Progress", "SaveState", "run_audit"]

Progress = Callable[[int], None]
SaveState = Callable[[dict[str, Any]], None]
SAVE_EVERY_S = 5.0
SMALL = 4 * CHUNK  # fewer records than this are checked in this process

_worker: RangeVerifier | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditRun:
    """How to run an audit: the range, the workers, and where progress goes."""

    verify_from: int = 0  # signatures are checked from this index (the tree still from 0)
    stop: int | None = None  # stop before this index
    workers: int = 1
    resume: dict[str, Any] | None = None  # a state saved by an earlier run
    progress: Progress | None = None
    save_state: SaveState | None = None


def _init(operator_key: bytes, key_events: list[bytes], verify_from: int) -> None:
    global _worker
    _worker = RangeVerifier(operator_key, key_events, verify_from)


def _check(start: int, raws: list[bytes]) -> ChunkResult:
    if _worker is None:
        raise RuntimeError("verification worker not initialised")
    return _worker.check(start, raws)


def run_audit(auditor: Auditor, records: Iterable[bytes], run: AuditRun = AuditRun()) -> AuditReport:
    """Feed ``records`` (from :attr:`Auditor.position` on) and finish the audit."""
    workers, progress, save_state = run.workers, run.progress, run.save_state
    last_save = time.monotonic()

    def merged() -> None:
        nonlocal last_save
        if progress is not None:
            progress(auditor.position)
        if save_state is not None and time.monotonic() - last_save >= SAVE_EVERY_S:
            save_state(auditor.state())
            last_save = time.monotonic()

    it = iter(records)
    first = list(islice(it, SMALL))
    it = chain(first, it)
    if workers <= 1 or len(first) < SMALL:  # a small audit is done before workers would have started
        while chunk := list(islice(it, CHUNK)):
            for raw in chunk:
                auditor.add(raw)
            merged()
    else:
        with process_pool(workers, _init, (auditor.operator_key, auditor.key_events, auditor.verify_from)) as pool:
            pending: deque[Future[ChunkResult]] = deque()
            start = auditor.position
            while chunk := list(islice(it, CHUNK)):
                pending.append(pool.submit(_check, start, chunk))
                start += len(chunk)
                while len(pending) >= 2 * workers:
                    auditor.merge(pending.popleft().result())
                    merged()
            while pending:
                auditor.merge(pending.popleft().result())
                merged()
    report = auditor.finish()
    if save_state is not None:
        save_state(auditor.state())
    return report
