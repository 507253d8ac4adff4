"""Bytes per signal and start-up time of the match service's in-memory view.

    python bench/bench_matchsvc_memory.py --size 1000000
    python bench/bench_matchsvc_memory.py --size 1000000 --baseline /tmp/old_index.py
    python bench/bench_matchsvc_memory.py --state /tmp/member-10m.db

Generates a member state file (bench/gen_member_state.py), then, each in a fresh
process: opens the member's bank and loads it into a ``MatchIndex`` (the service's
start-up), reporting the load time and the resident memory it added per signal. With
``--baseline FILE`` (e.g. ``git show main:clients/matchsvc/index.py > FILE``) the same is
measured for that implementation in the same run. The current implementation is
measured twice: a cold start (no saved PDQ index: built, then saved) and a warm one
(the saved index, still current). It asserts nothing.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _rss() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


def measure(state: Path, module: str | None) -> dict[str, float]:
    """Child: load the bank into a MatchIndex (``module``: another implementation's file)."""
    from clients.bank import Bank
    from clients.store import MemberStore

    if module:
        spec = importlib.util.spec_from_file_location("baseline_index", module)
        assert spec and spec.loader  # noqa: S101 - a bench
        mod = importlib.util.module_from_spec(spec)
        sys.modules["baseline_index"] = mod
        spec.loader.exec_module(mod)
        index_cls = mod.MatchIndex
    else:
        from clients.matchsvc.index import MatchIndex as index_cls
    bank = Bank(MemberStore(state))
    bank._store.conn.execute("PRAGMA cache_size=-2048")  # SQLite's page cache is not the index's memory
    gc.collect()
    before = _rss()
    started = time.monotonic()
    index = index_cls(pdq_threshold=bank.pdq_threshold)
    if hasattr(index, "load_bank"):
        n = index.load_bank(bank)
    else:  # an older implementation
        n = index.load(bank.iter_signals(), bank.all_opinion_counts())
    gc.collect()
    load_s = time.monotonic() - started
    added = _rss() - before
    return {"signals": n, "load_s": load_s, "pdq_from_saved": bool(getattr(index, "pdq_from_saved", False)), "rss_added_mib": added / 2**20, "bytes_per_signal": added / max(n, 1),
            "rss_total_mib": _rss() / 2**20}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=1_000_000)
    p.add_argument("--state", type=Path, help="an existing generated state file")
    p.add_argument("--baseline", help="another MatchIndex implementation (a .py file)")
    p.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--module", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.module)))
        return
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        state = args.state
        if state is None:
            from bench.gen_member_state import generate

            state = Path(tmp) / "member.db"
            print("generated:", json.dumps(generate(state, args.size)))
        report = {}
        shutil.rmtree(state.with_name(state.name + ".pdq"), ignore_errors=True)  # the first run starts cold
        for name, module in (("baseline", args.baseline), ("cold", None), ("warm", None)):
            if name == "baseline" and not module:
                continue
            cmd = [sys.executable, __file__, "--child", str(state)] + (["--module", module] if module else [])
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            report[name] = json.loads(out.strip().splitlines()[-1])
            r = report[name]
            print(f"{name:>12}: {r['signals']:,} signals loaded in {r['load_s']:.1f}s, "
                  f"+{r['rss_added_mib']:.0f} MiB = {r['bytes_per_signal']:.0f} B/signal "
                  f"(process {r['rss_total_mib']:.0f} MiB; PDQ index {'saved' if r['pdq_from_saved'] else 'built'})")
    print(f"load average {load[0]:.2f} at start, {os.getloadavg()[0]:.2f} at end")


if __name__ == "__main__":
    main()
