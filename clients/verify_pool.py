"""Verification on every core: worker processes for the stateless half of the rule.

A member's sync and an audit both spend most of their time on Ed25519 checks and
entry validation, which need no state but the key directory's keys. :class:`VerifyPool`
runs :func:`exchange.core.verify.signed_passes` on pages split across worker
processes (started on the first page big enough to be worth it, kept until
:meth:`close`) and hands back one byte per record; the in-order half of the rule
(key validity at the index, sharing, key events) stays with the caller's verifier.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from exchange.core.verify import signed_passes

__all__ = ["VerifyPool", "process_pool", "MIN_PAGE", "MIN_SHARE"]

MIN_PAGE = 256  # pages with fewer records are checked in the caller's process
MIN_SHARE = 64  # records per worker, at least


def process_pool(
    workers: int, initializer: Callable[..., None] | None = None, initargs: tuple[Any, ...] = ()
) -> ProcessPoolExecutor:
    """Worker processes for verification, spawned: never fork a process holding gRPC threads."""
    return ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("spawn"), initializer=initializer, initargs=initargs
    )


class VerifyPool:
    """A :class:`exchange.core.verify.Prechecker` over ``workers`` processes (default:
    one per core)."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = max(1, workers if workers is not None else (os.cpu_count() or 1))
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._closed = False

    def passes(self, operator_key: bytes, keys: dict[str, tuple[str, bytes]], raws: Sequence[bytes]) -> bytes | None:
        if self.workers < 2 or len(raws) < MIN_PAGE:
            return None
        pool = self._started()
        if pool is None:
            return None
        shares = min(self.workers, max(1, len(raws) // MIN_SHARE))
        size = -(-len(raws) // shares)
        chunks = [list(raws[i : i + size]) for i in range(0, len(raws), size)]
        n = len(chunks)
        return b"".join(pool.map(signed_passes, [operator_key] * n, [keys] * n, chunks))

    def _started(self) -> ProcessPoolExecutor | None:
        with self._lock:
            if self._closed:
                return None
            if self._pool is None:
                self._pool = process_pool(self.workers)
            return self._pool

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
