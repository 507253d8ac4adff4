"""Offline audit rate: ``trustwire audit verify`` entries per CPU second ÷ raw Ed25519
verifies per CPU second, with one worker and with one per core.

Grows a real ledger (``--entries``, through the engine as ``bench_scale.py --direct``
does) once, then audits it with the tree this file sits in and with every ``--tree``
given (another checkout of the project, its protobuf code generated: say ``main``),
all in the same run against the same raw-verify baseline. CPU is the audit process's
and its workers' (resource usage of children). The per-entry rate is marginal: the
CPU of a whole audit less that of the same audit stopped at half the ledger (``--to``),
so start-up, imports and spawning workers (about 0.9 CPU s each) are taken off;
the whole audit's rate, with all of that, is printed beside it. Prints one line per
tree and the load average.

    python bench/bench_audit_verify.py --entries 50000 --tree /tmp/main-copy
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import bench_scale  # noqa: E402
from reliability.harness import ExchangeProcess  # noqa: E402


def _audit_cpu(ex: ExchangeProcess, workers: int, tree: Path, stop: int | None) -> tuple[int, float]:
    """(entries audited, CPU seconds of the audit process and its workers), ``tree``'s code."""
    cmd = [sys.executable, "-m", "exchange.program", "audit", "verify", "--ledger", str(ex.ledger),
           "--operator-public-key", ex.operator.public_key.hex(), "--log-key", ex.log_key, "--json",
           "--workers", str(workers), "--no-progress", *(["--to", str(stop)] if stop is not None else [])]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(cmd, cwd=tree, capture_output=True, text=True, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    report = json.loads(proc.stdout) if proc.stdout.strip() else {}
    if proc.returncode != 0 or not report.get("ok"):
        raise SystemExit(f"audit failed ({proc.returncode}): {proc.stderr[-2000:]} {proc.stdout[-2000:]}")
    return report["entries"], (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def rates(ex: ExchangeProcess, workers: int, tree: Path, entries: int) -> tuple[float, float]:
    """(marginal, whole) audit entries per CPU second with ``workers`` workers."""
    half, half_cpu = _audit_cpu(ex, workers, tree, entries // 2)
    whole, whole_cpu = _audit_cpu(ex, workers, tree, None)
    return (whole - half) / max(whole_cpu - half_cpu, 1e-3), whole / max(whole_cpu, 1e-3)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=50_000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--tree", type=Path, action="append", default=[], help="another checkout to audit with")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    trees = [ROOT, *(t.resolve() for t in args.tree)]
    with tempfile.TemporaryDirectory() as tmp:
        ex = ExchangeProcess(Path(tmp) / "ledger")
        ex.start()
        group = bench_scale.GROUP
        signers = ex.enrol({"pub0": [group], "pub1": [group], "reader": [group]}, [(group, "amber")])
        bench_scale.grow_direct(ex, signers, args.entries, 1000, "a")
        ex.stop()
        raw = bench_scale.raw_verify_rate()
        for _ in range(args.rounds):
            for tree in trees:
                for workers in sorted({1, args.workers}):
                    marginal, whole = rates(ex, workers, tree, args.entries)
                    print(f"{tree}: {workers} worker(s), audit entries per CPU second ÷ raw verifies per CPU"
                          f" second: {marginal / raw:.3f} (whole process {whole / raw:.3f}; raw {raw:,.0f}/CPU-s,"
                          f" load {os.getloadavg()[0]:.2f})", flush=True)
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} ({os.cpu_count()} cpus)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
