"""Offline audit rate: ``trustwire audit verify`` entries per CPU second ÷ raw Ed25519
verifies per CPU second, with one worker and with one per core.

Grows a real ledger (``--entries``, through the engine as ``bench_scale.py --direct``
does) once, then audits it with the tree this file sits in and with every ``--tree``
given (another checkout of the project, its protobuf code generated: say ``main``),
all in the same run against the same raw-verify baseline. CPU is the audit process's
and its workers'; an audit of an empty ledger (start-up, imports, spawning workers) is
measured per tree and taken off. Prints one line per tree and the load average.

    python bench/bench_audit_verify.py --entries 50000 --tree /tmp/main-copy
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import bench_scale  # noqa: E402
from reliability.harness import ExchangeProcess  # noqa: E402


def rates(ex: ExchangeProcess, empty: ExchangeProcess, workers: int, tree: Path) -> float:
    """Audit entries per CPU second with ``workers`` workers, running ``tree``'s code."""
    bench_scale.ROOT = tree  # the audit subprocess runs from (and imports) this tree
    e = bench_scale.audit(empty, workers)
    return bench_scale.audit(ex, workers, (e["seconds"], e["cpu_s"]))["entries_per_cpu_s"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=50_000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--tree", type=Path, action="append", default=[], help="another checkout to audit with")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    trees = [ROOT, *(t.resolve() for t in args.tree)]
    with tempfile.TemporaryDirectory() as tmp:
        empty = ExchangeProcess(Path(tmp) / "empty")
        empty.start()
        empty.stop()
        ex = ExchangeProcess(Path(tmp) / "ledger")
        ex.start()
        group = bench_scale.GROUP
        signers = ex.enrol({"pub0": [group], "pub1": [group], "reader": [group]}, [(group, "amber")])
        bench_scale.grow_direct(ex, signers, args.entries, 1000, "a")
        ex.stop()
        raw = bench_scale.raw_verify_rate()
        for _ in range(args.rounds):
            for tree in trees:
                one = rates(ex, empty, 1, tree)
                many = rates(ex, empty, args.workers, tree)
                print(f"{tree}: audit of {args.entries} entries, per CPU second ÷ raw verify:"
                      f" 1 worker {one / raw:.3f}, {args.workers} workers {many / raw:.3f}"
                      f" (raw {raw:,.0f}/CPU-s)", flush=True)
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} ({os.cpu_count()} cpus)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
