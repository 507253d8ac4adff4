"""Restart at scale: grow a ledger fast and measure restart to SERVING at each size.

    python bench/bench_restart.py                                  # 100k, 200k, 400k
    python bench/bench_restart.py --sizes 1000000,2000000          # the 1M-2M run
    python bench/bench_restart.py --dir /data/scale --reuse --sizes 10000000   # grow across runs to 10M

The ledger is grown through the engine with the exchange stopped (``bench_scale.grow_direct``:
envelopes signed for real on every core, the engine's own append), then, at each size:

- restart       clean stop, start to SERVING (the port line), sealed start (the default):
                wall seconds, and the CPU seconds the exchange process spent until then
                (load-proof: a shared machine stretches the wall clock, not the CPU)
- after crash   kill -9, start to SERVING (the seal is gone: the background full
                verification follows, serving starts first)
- checks CPU    CPU seconds of the sealed start-up checks alone (ledger and audit log
                opened in this process): immune to the machine's load

Baseline measured in the same run: the start of an empty exchange (interpreter,
imports, an empty ledger). Each figure is fitted to its growth law and projected to
--project entries (default 10M). Not a test; JSON goes to bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_scale import (  # noqa: E402
    GROUP, _head, emit, grow_direct, laws_of, machine, save, startup_cpu, timed_start,
)
from reliability.harness import ExchangeProcess, insecure_signer  # noqa: E402


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a running process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start(ex: ExchangeProcess) -> tuple[float, float]:
    """Start to SERVING: (wall seconds, CPU seconds of the exchange process)."""
    wall = timed_start(ex)
    return wall, _cpu_s(ex.pid)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000,200000,400000", help="ledger sizes (comma-separated)")
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3, help="restarts per size (the median is reported)")
    parser.add_argument("--project", type=int, default=10_000_000)
    parser.add_argument("--dir", type=Path, help="work directory (default: a temporary one, removed)")
    parser.add_argument("--reuse", action="store_true",
                        help="continue from the ledger a previous run left in --dir (grow once, measure many times)")
    args = parser.parse_args()
    if args.reuse and not args.dir:
        parser.error("--reuse needs --dir")
    sizes = sorted(int(s) for s in args.sizes.split(","))

    def median(values: list[float]) -> float:
        return sorted(values)[len(values) // 2]

    with tempfile.TemporaryDirectory() as tmp:
        base = args.dir or Path(tmp)
        empty = ExchangeProcess(base / "empty")
        empty_starts, empty_cpu = [], []
        for _ in range(args.repeat):
            wall, cpu = start(empty)
            empty_starts.append(wall)
            empty_cpu.append(cpu)
            empty.stop()
        ex = ExchangeProcess(base / "restart")
        reusing = args.reuse and ex.ledger.exists()
        ex.start(timeout=3600)
        members = {"pub0": [GROUP], "pub1": [GROUP]}
        signers = ({m: insecure_signer(f"campaign-member:{m}") for m in members} if reusing
                   else ex.enrol(members, [(GROUP, "amber")]))
        rows: list[dict[str, Any]] = []
        try:
            for step, size in enumerate(sizes):
                t = time.perf_counter()
                tag = f"r{step}h{_head(ex)}"  # signal ids stay new when a reused ledger grows again
                grow_rate = grow_direct(ex, signers, size, args.batch, tag)
                grow_s = time.perf_counter() - t
                head = _head(ex)
                assert ex.stop() == 0
                checks = startup_cpu(ex, full=False)
                sealed, sealed_cpu, crashed = [], [], []
                for _ in range(args.repeat):
                    wall, cpu = start(ex)
                    sealed.append(wall)
                    sealed_cpu.append(cpu)
                    ex.stop()
                for _ in range(args.repeat):
                    ex.start()
                    ex.kill9()
                    crashed.append(timed_start(ex))
                    ex.stop()
                ex.start()  # serving again for the next size's growth
                row = {
                    "entries": head,
                    "grow_per_s": round(grow_rate), "grow_s": round(grow_s, 1),
                    "restart_s": round(median(sealed), 3),
                    "restart_after_crash_s": round(median(crashed), 3),
                    "restart_minus_empty_s": round(median(sealed) - median(empty_starts), 3),
                    "restart_cpu_s": round(median(sealed_cpu), 3),
                    "restart_cpu_minus_empty_s": round(median(sealed_cpu) - median(empty_cpu), 3),
                    "startup_checks_cpu_s": round(checks, 4),
                }
                emit(rows, row, ex)
        finally:
            if ex.alive():
                ex.stop()
    laws = laws_of(rows, ("restart_s", "restart_after_crash_s", "restart_minus_empty_s", "restart_cpu_s",
                          "restart_cpu_minus_empty_s", "startup_checks_cpu_s"), args.project)
    result = {
        "machine": machine(),
        "baseline": {"empty_exchange_start_s": round(median(empty_starts), 3),
                     "empty_exchange_start_cpu_s": round(median(empty_cpu), 3)},
        "project": args.project, "rows": rows, "growth_laws": laws,
    }
    print(json.dumps({"baseline": result["baseline"], "growth_laws": laws}, indent=2))
    save("restart", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
