"""Lookups during a full compaction of the PDQ index: they go on, they do not wait.

    python bench/bench_pdq_compaction.py                 # 1M hashes (~1 minute)
    python bench/bench_pdq_compaction.py --size 200000

Builds an index of --size random hashes, removes a third (a compaction is now due),
then measures single lookups, one after another on this thread:

- baseline, in the same run: the same lookups with no maintenance running;
- during: a search finds the compaction due and starts it in the background thread;
  lookups continue until it has swapped its result in.

Prints lookups/s and p50/p99/max latency of both, their ratios, the compaction's own
duration (what the first lookup waited before lookups stopped compacting inline) and
the machine load. Not a test: it asserts nothing except that answers match brute force.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from clients.pdq_index import PdqIndex  # noqa: E402


def _lookups(index: PdqIndex, queries: np.ndarray, until: object = None) -> list[float]:
    """Latencies (s) of single searches: all of ``queries``, or until ``until()`` is true."""
    lat: list[float] = []
    i = 0
    while True:
        q = queries[i % len(queries)]
        t = time.perf_counter()
        index.search(q)
        lat.append(time.perf_counter() - t)
        i += 1
        if until is None and i == len(queries):
            return lat
        if until is not None and until():  # type: ignore[operator]
            return lat


def _summary(lat: list[float]) -> dict[str, float]:
    q = statistics.quantiles(lat, n=100)
    return {"lookups": len(lat), "per_s": len(lat) / sum(lat), "p50_ms": q[49] * 1e3, "p99_ms": q[98] * 1e3,
            "max_ms": max(lat) * 1e3}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=1_000_000)
    args = p.parse_args()
    rng = np.random.default_rng(7)
    codes = rng.integers(0, 2**64, size=(args.size, 4), dtype=np.uint64)
    index = PdqIndex()
    index.add_many(np.arange(args.size), codes)
    index.fold(force=True)
    queries = codes[rng.integers(1, args.size, 3_000) | 1].copy()  # odd ids: they stay
    queries[:, 0] ^= np.uint64(0b111)
    base = _summary(_lookups(index, queries))
    index.remove_many(range(0, args.size, 3))
    started = time.perf_counter()
    during = _lookups(index, queries, until=lambda: index.stats()["dead"] == 0)
    index.wait_maintenance()
    took = time.perf_counter() - started
    for q in queries[:20]:
        assert index.search(q) == index.brute_force_search(q)
    d = _summary(during)
    print(f"size {args.size:,}; load {os.getloadavg()}")
    print(f"compaction (background, lookups going on): {took:.2f} s")
    for name, s in (("baseline", base), ("during compaction", d)):
        print(f"  {name:18} {s['lookups']:6,} lookups  {s['per_s']:8,.0f}/s  p50 {s['p50_ms']:.3f} ms"
              f"  p99 {s['p99_ms']:.3f} ms  max {s['max_ms']:.1f} ms")
    print(f"ratios during/baseline: lookups/s {d['per_s'] / base['per_s']:.2f}, p99 {d['p99_ms'] / base['p99_ms']:.2f},"
          f" max lookup {d['max_ms'] / 1e3 / took:.3f} of the compaction's duration")


if __name__ == "__main__":
    main()
