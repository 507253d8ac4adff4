"""Audit-log figures: tree appends/s and proofs served/s at N entries (default 1M).

Baseline, measured in the same run: raw SHA-256 node hashes per second (hashlib,
65-byte inputs), since an append costs ~2 node hashes amortised and a proof reads
~log2(N) stored hashes. Prints a table and writes JSON to bench/results/.

    python bench/bench_audit.py [--entries 1000000] [--proofs 20000]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from exchange.core import merkle  # noqa: E402
from exchange.server.tree import TreeStore  # noqa: E402


def rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def baseline_hashes(n: int = 1_000_000) -> float:
    left, right = os.urandom(32), os.urandom(32)
    t = time.perf_counter()
    for _ in range(n):
        hashlib.sha256(b"\x01" + left + right).digest()
    return rate(n, time.perf_counter() - t)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--proofs", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=1000, help="leaves per append (one ledger batch)")
    args = parser.parse_args()

    hashes_per_s = baseline_hashes()
    leaves = [hashlib.sha256(i.to_bytes(8, "big")).digest() for i in range(args.entries)]
    with tempfile.TemporaryDirectory() as tmp:
        tree = TreeStore(Path(tmp) / "tree")
        t = time.perf_counter()
        for start in range(0, args.entries, args.batch):
            tree.append(leaves[start : start + args.batch])
        appends_per_s = rate(args.entries, time.perf_counter() - t)
        size = tree.size
        root = tree.root()

        rng = random.Random(7)
        indices = [rng.randrange(size) for _ in range(args.proofs)]
        t = time.perf_counter()
        proofs = [tree.inclusion_proof(i, size) for i in indices]
        inclusion_per_s = rate(args.proofs, time.perf_counter() - t)
        for i, proof in zip(indices[:100], proofs[:100], strict=True):
            merkle.verify_inclusion(leaves[i], i, size, proof, root)  # the figures are of real proofs

        olds = [rng.randrange(1, size) for _ in range(args.proofs // 4)]
        t = time.perf_counter()
        for old in olds:
            tree.consistency_proof(old, size)
        consistency_per_s = rate(len(olds), time.perf_counter() - t)

        t = time.perf_counter()
        reopened = TreeStore(Path(tmp) / "tree")
        reopen_s = time.perf_counter() - t
        if reopened.root() != root:
            raise SystemExit("reopened tree disagrees with the one just built")
        disk = sum(f.stat().st_size for f in (Path(tmp) / "tree").iterdir())
        tree.close()
        reopened.close()

    result = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "entries": args.entries,
        "baseline_sha256_node_hashes_per_s": round(hashes_per_s),
        "tree_appends_per_s": round(appends_per_s),
        "inclusion_proofs_per_s": round(inclusion_per_s),
        "consistency_proofs_per_s": round(consistency_per_s),
        "appends_vs_baseline": round(appends_per_s / hashes_per_s, 3),
        "reopen_seconds": round(reopen_s, 3),
        "tree_bytes_per_entry": round(disk / args.entries, 1),
    }
    print(f"audit log at {args.entries:,} entries ({os.cpu_count()} cpus)")
    for key in ("baseline_sha256_node_hashes_per_s", "tree_appends_per_s", "inclusion_proofs_per_s",
                "consistency_proofs_per_s", "appends_vs_baseline", "reopen_seconds", "tree_bytes_per_entry"):
        print(f"  {key:<36} {result[key]:>14,}")
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    (out / f"audit-{int(time.time())}.json").write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
