"""Verification on every core: worker processes for the stateless half of the rule.

A member's sync and an audit both spend most of their time on Ed25519 checks and
entry validation, which need no state but the key directory's keys. :class:`VerifyPool`
runs :func:`exchange.core.verify.signed_verdicts` on pages split across worker
processes and hands back one byte per record and the compact facts of the
member entries shown passing (so the caller does not parse them again); the in-order half of the rule
(key validity at the index, sharing, key events) stays with the caller's verifier.

The workers start on the first page big enough to be worth it and are kept until
:meth:`close`. Starting one (a new interpreter importing the verifier) takes a good
part of a second, so pages are checked in the caller's process until every worker has
answered a first, empty task: a follower that falls a page behind for the first time
never waits for processes to start (issue 18: that wait was an 0.8 s stall in the
publish → subscriber latency at 5k entries/s).

Workers are spawned (never forked from a process holding gRPC threads), and a spawned
worker imports the program's main script again: a script whose entry point is not
guarded by ``if __name__ == "__main__":`` would run twice, so for such a script the
pages are checked in its own process instead (logged once).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from exchange.core.verify import Passes, Verdicts, signed_verdicts

__all__ = ["VerifyPool", "main_is_importable", "process_pool", "MIN_PAGE", "MIN_SHARE"]

log = logging.getLogger(__name__)

MIN_PAGE = 256  # pages with fewer records are checked in the caller's process
MIN_SHARE = 64  # records per worker, at least
_START_TIMEOUT_S = 120.0  # a worker not started by then: the pool is broken, pages stay in-process


def process_pool(
    workers: int, initializer: Callable[..., None] | None = None, initargs: tuple[Any, ...] = ()
) -> ProcessPoolExecutor:
    """Worker processes for verification, spawned: never fork a process holding gRPC threads."""
    return ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("spawn"), initializer=initializer, initargs=initargs
    )


def main_is_importable() -> bool:
    """True if a spawned worker may import ``__main__`` again: a module run with ``-m``,
    an interactive session, or a script with a ``__name__ == "__main__"`` guard."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if main is None or getattr(main, "__spec__", None) is not None or path is None:
        return True
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return False
    return "__name__ ==" in text or "__name__==" in text


class VerifyPool:
    """A :class:`exchange.core.verify.Prechecker` over ``workers`` processes (default:
    one per core)."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = max(1, workers if workers is not None else (os.cpu_count() or 1))
        self._pool: ProcessPoolExecutor | None = None
        self._starting: list[Future[None]] = []  # each worker's first task: done once it runs
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, operator_key: bytes, keys: dict[str, tuple[str, bytes]], raws: Sequence[bytes]) -> Passes | None:
        """Start checking ``raws`` on the workers (None: too few to be worth it, no
        workers, or workers still starting: the caller checks them itself)."""
        if self.workers < 2 or len(raws) < MIN_PAGE:
            return None
        pool = self._started()
        if pool is None:
            return None
        shares = min(self.workers, max(1, len(raws) // MIN_SHARE))
        size = -(-len(raws) // shares)
        starts = range(0, len(raws), size)
        futures = [pool.submit(signed_verdicts, operator_key, keys, list(raws[i : i + size])) for i in starts]

        def result() -> Verdicts | None:
            try:
                shares = [f.result() for f in futures]
            except BrokenProcessPool:
                log.warning("a verification worker died; checking in this process")
                return None
            facts = shares[0].facts  # positions are within each share: moved to the page's
            for start, share in zip(starts[1:], shares[1:], strict=True):
                facts.update((start + p, fact) for p, fact in share.facts.items())
            return Verdicts(b"".join(s.flags for s in shares), facts)

        return result

    def passes(self, operator_key: bytes, keys: dict[str, tuple[str, bytes]], raws: Sequence[bytes]) -> Verdicts | None:
        """:meth:`submit` and wait."""
        pending = self.submit(operator_key, keys, raws)
        return pending() if pending is not None else None

    def _started(self) -> ProcessPoolExecutor | None:
        """The pool once every worker runs; on the first call, start them (and None)."""
        with self._lock:
            if self._closed:
                return None
            if self._pool is None:
                if not main_is_importable():
                    log.info("signatures checked in this process: guard the script's entry point with"
                             " `if __name__ == \"__main__\":` to check them on every core")
                    self._closed = True
                    return None
                # each worker waits at the barrier for the others, so the first tasks are
                # done only once every worker runs (one task per worker: a spawn-context
                # pool starts a process for each)
                barrier = multiprocessing.get_context("spawn").Barrier(self.workers)
                self._pool = process_pool(self.workers, _meet, (barrier, _START_TIMEOUT_S))
                self._starting = [self._pool.submit(_ready) for _ in range(self.workers)]
            if not all(f.done() for f in self._starting):
                return None
            if any(f.exception() is not None for f in self._starting):
                log.warning("the verification workers did not start; checking pages in this process")
                self._closed = True
                return None
            return self._pool

    def wait_started(self, timeout: float) -> bool:
        """Start the workers if needed and wait until they run (False: not in ``timeout``)."""
        self._started()
        with self._lock:
            starting = list(self._starting)
        if not starting:
            return False
        try:
            for f in starting:
                f.result(timeout=timeout)
        except (TimeoutError, BrokenProcessPool):
            return False
        return self._started() is not None

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


def _meet(barrier: Any, timeout: float) -> None:
    """A worker's initializer: wait until every worker of the pool has started."""
    barrier.wait(timeout)


def _ready() -> None:
    """A worker's first task: nothing (done once every worker runs)."""
