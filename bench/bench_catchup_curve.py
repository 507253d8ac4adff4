"""Catch-up as the bank fills: one new member syncs a large ledger, measured window by window.

    python bench/bench_catchup_curve.py                                   # grows 120k entries, syncs them
    python bench/bench_catchup_curve.py --dir /data/scale --reuse --limit 2000000   # on a grown 10M ledger

"Does catch-up slow down as the bank fills?" is answered per window of ``--window``
entries: the member process's CPU microseconds per entry (load-proof; the workers'
verification cost does not depend on the bank's size, the member's apply does), the
wall entries/s (read with the load), and the state file's bytes per entry so far.
A flat CPU-per-entry curve means no slowdown; the growth law of the windows is fitted
(a + b·N and N^k). The whole catch-up's entries/s is also given as a ratio to raw
Ed25519 verifications per CPU second on one core, measured in the same run. The ledger is either grown here (``bench_scale.grow_direct``) or
reused from ``--dir`` (a ledger left by ``bench_restart.py --dir ... --reuse``; its
members' keys are the deterministic campaign keys). Not a test; JSON to bench/results/.
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

from bench.bench_scale import GROUP, _member, grow_direct, law, machine, raw_verify_rate, save  # noqa: E402
from reliability.harness import ExchangeProcess, insecure_signer  # noqa: E402


def curve(ex: ExchangeProcess, state: Path, limit: int, window: int) -> list[dict[str, Any]]:
    """Sync a fresh member until ``limit`` entries; one row per window crossed."""
    client = _member(ex, "pub0", insecure_signer("campaign-member:pub0"), state)
    rows: list[dict[str, Any]] = []
    mark: dict[str, float] = {}

    def progress() -> bool:  # called by sync between pages: the window's figures, then stop or go on
        at = client.store.cursor if client.store else 0
        if not mark:  # windows start after the first page: start-up (imports, workers) is not catch-up
            mark.update(at=at, wall=time.perf_counter(), cpu=time.process_time())
        elif at - mark["at"] >= window or at >= limit:
            wall, cpu = time.perf_counter(), time.process_time()
            n = at - mark["at"]
            rows.append({
                "entries": at, "window_entries": n, "window_s": round(wall - mark["wall"], 3),
                "member_cpu_us_per_entry": round((cpu - mark["cpu"]) / max(n, 1) * 1e6, 1),
                "entries_per_s": round(n / max(wall - mark["wall"], 1e-9)),
                "state_bytes_per_entry": round(_state_bytes(state) / max(at, 1), 1),
                "load": round(os.getloadavg()[0], 2),
            })
            print(json.dumps(rows[-1]), flush=True)
            mark.update(at=at, wall=wall, cpu=cpu)
        return at >= limit

    try:
        client.sync(stop=progress)
    finally:
        client.close()
    return rows


def _state_bytes(state: Path) -> int:
    """The member's state on disk: the database and its write-ahead log."""
    return sum(p.stat().st_size for p in (state, state.with_name(state.name + "-wal")) if p.exists())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=120_000, help="entries the member syncs")
    parser.add_argument("--window", type=int, default=20_000, help="entries per measured window")
    parser.add_argument("--dir", type=Path, help="work directory (default: a temporary one, removed)")
    parser.add_argument("--reuse", action="store_true", help="sync the ledger a previous run left in --dir/restart")
    parser.add_argument("--project", type=int, default=10_000_000)
    args = parser.parse_args()
    if args.reuse and not args.dir:
        parser.error("--reuse needs --dir")
    with tempfile.TemporaryDirectory() as tmp:
        base = args.dir or Path(tmp)
        raw_before = raw_verify_rate()  # on a machine with nothing of ours running yet
        ex = ExchangeProcess(base / "restart")
        reusing = args.reuse and ex.ledger.exists()
        ex.start(timeout=3600)
        try:
            if not reusing:
                signers = ex.enrol({"pub0": [GROUP], "pub1": [GROUP]}, [(GROUP, "amber")])
                grow_direct(ex, signers, args.limit, 1000, "curve")
            state = Path(tmp) / "member.db"
            rows = curve(ex, state, args.limit, args.window)
        finally:
            ex.stop(timeout=120)
    # the baseline before and after the run; the higher one counts (the lower ratio): a
    # baseline taken while the exchange still starts up would flatter the ratio
    raw_after = raw_verify_rate()
    raw = max(raw_before, raw_after)
    sizes = [r["entries"] for r in rows]
    laws = {key: law(sizes, [float(r[key]) for r in rows], args.project)
            for key in ("member_cpu_us_per_entry", "state_bytes_per_entry")} if len(rows) > 1 else {}
    synced = sum(r["window_entries"] for r in rows)
    wall = sum(r["window_s"] for r in rows)
    overall = {"entries_per_s": round(synced / wall) if wall else 0,
               "ratio_to_raw_verify": round(synced / wall / raw, 3) if wall else 0.0}
    baseline = {"raw_verify_per_cpu_s": round(raw), "before": round(raw_before), "after": round(raw_after)}
    result = {"machine": machine(), "baseline": baseline, "rows": rows, "catch_up": overall, "growth_laws": laws}
    print(json.dumps({"baseline": result["baseline"], "catch_up": overall, "growth_laws": laws}, indent=2))
    save("catchup_curve", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
