"""Member-state bytes per entry before and after ``trustwire member compact`` (issue 20).

    python bench/bench_compaction.py                  # 20k signals, half retracted, a quarter superseded
    python bench/bench_compaction.py --signals 100000
    python bench/bench_compaction.py --growth          # 20k live + 0/20k/60k retracted or superseded
    python bench/bench_compaction.py --growth --tree /path/to/other/checkout   # the same on other code

A ``trustwire serve`` process; a publisher sends ``--signals`` labelled signals (md5,
sha256, pdq, url) over gRPC in batches of 1000, a newer version of every 4th and
retracts every other one; a reader syncs them into a real state file. Then the state
is compacted twice on copies of that file: the default rule and ``--drop-history``.
The baseline is the same state before compaction, measured in the same run; figures
are bytes per ledger entry and per banked signal, and the ratio after/before. Not a
test: it asserts nothing. JSON goes to bench/results/.

``--growth`` (issue 20: the state grows with live signals, not with the ledger): one
ledger grows in stages; ``--signals`` live signals first, then at each stage more
history: half signals published and retracted, half newer versions of live signals
(superseded versions). A reader syncs incrementally; at each stage copies of its state
are measured as synced, compacted by default, compacted with ``history_days=0``, and
also with ``tombstone_days=0`` (where the tree has these policies).
Figures are bytes per LIVE signal, so a flat row means the state does not grow with the
history; ``--tree`` runs the same on another checkout's code (e.g. main) for the
before/after, in the same session.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if "--tree" in sys.argv:  # the code under measurement: another checkout (its own bench/ helpers too)
    ROOT = Path(sys.argv[sys.argv.index("--tree") + 1]).resolve()
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_scale import TYPES, _member, _value  # noqa: E402
from clients.compaction import compact  # noqa: E402
from exchange.core.records import Receipt  # noqa: E402
from reliability.harness import ExchangeProcess  # noqa: E402

GROUP = "compact"
LABELS = ["campaign-2026-q4", "reported-by-partner", "high-confidence"]


def _publish(client: Any, entries: list[Any]) -> int:
    outcomes = client.publish(entries, batch_size=len(entries))
    if not all(isinstance(o, Receipt) for o in outcomes):
        raise RuntimeError("publish refused")
    return len(entries)


def build(ex: ExchangeProcess, signers: dict[str, Any], n: int, batch: int) -> int:
    """Publish the mix; return the ledger entries written."""
    pub = _member(ex, "pub", signers["pub"])
    sent = 0
    try:
        for start in range(0, n, batch):
            ids = range(start, min(n, start + batch))
            sent += _publish(pub, [pub.signal(TYPES[i % 4], _value(TYPES[i % 4], f"v{i}"), groups=[GROUP],
                                              signal_id=f"s{i}", labels=LABELS) for i in ids])
        newer = list(range(0, n, 4))
        for start in range(0, len(newer), batch):
            sent += _publish(pub, [pub.signal(TYPES[i % 4], _value(TYPES[i % 4], f"v{i}"), groups=[GROUP],
                                              signal_id=f"s{i}", labels=LABELS[:1])
                                   for i in newer[start:start + batch]])
        retracted = list(range(1, n, 2))
        for start in range(0, len(retracted), batch):
            sent += _publish(pub, [pub.retraction(f"s{i}") for i in retracted[start:start + batch]])
    finally:
        pub.close()
    return sent


def by_object(path: Path) -> dict[str, int]:
    """Bytes of each table and index of a state file (SQLite's dbstat), largest first."""
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC").fetchall()
    finally:
        conn.close()
    return {str(name): int(size) for name, size in rows}


@contextmanager
def _exchange(base: Path) -> Iterator[tuple[ExchangeProcess, dict[str, Any]]]:
    """A ``trustwire serve`` process with a publisher and a reader enrolled."""
    ex = ExchangeProcess(base / "ex")
    ex.start()
    try:
        yield ex, ex.enrol({"pub": [GROUP], "reader": [GROUP]}, [(GROUP, "amber")])
    finally:
        ex.stop()


def _grow_history(pub: Any, live: int, start: int, count: int, batch: int) -> int:
    """``count`` more history: half signals published then retracted, half newer versions
    of live signals; return the ledger entries written."""
    sent = 0
    dead = [f"x{i}" for i in range(start, start + count // 2)]
    for lo in range(0, len(dead), batch):
        chunk = dead[lo:lo + batch]
        sent += _publish(pub, [pub.signal(TYPES[i % 4], _value(TYPES[i % 4], sid), groups=[GROUP], signal_id=sid,
                                          labels=LABELS) for i, sid in enumerate(chunk)])
        sent += _publish(pub, [pub.retraction(sid) for sid in chunk])
    newer = [(start + j) % live for j in range(count - count // 2)]
    for lo in range(0, len(newer), batch):
        sent += _publish(pub, [pub.signal(TYPES[i % 4], _value(TYPES[i % 4], f"v{i}-{start + lo + j}"), groups=[GROUP],
                                          signal_id=f"s{i}", labels=LABELS)
                               for j, i in enumerate(newer[lo:lo + batch])])
    return sent


def growth(args: argparse.Namespace) -> None:
    """State bytes per live signal as the history grows (``--growth``)."""
    import inspect

    knobs = inspect.signature(compact).parameters
    stages = [int(x) for x in args.stages.split(",")]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        with _exchange(base) as (ex, signers):
            pub = _member(ex, "pub", signers["pub"])
            state = base / "reader.db"
            entries, history = 0, 0
            for lo in range(0, args.signals, args.batch):
                entries += _publish(pub, [pub.signal(TYPES[i % 4], _value(TYPES[i % 4], f"v{i}"), groups=[GROUP],
                                                     signal_id=f"s{i}", labels=LABELS)
                                          for i in range(lo, min(args.signals, lo + args.batch))])
            for target in stages:
                entries += _grow_history(pub, args.signals, history, target - history, args.batch)
                history = target
                reader = _member(ex, "reader", signers["reader"], state)
                reader.sync()
                reader.close()
                row: dict[str, Any] = {"history": history, "entries": entries}
                for mode, kwargs in (("synced", None), ("default", {}), ("no_history", {"drop_history": True}),
                                     ("bounded", {"drop_history": True, "tombstone_days": 0})):
                    if kwargs and not set(kwargs) <= set(knobs):
                        continue  # a tree without this policy
                    copy = base / f"{mode}.db"
                    shutil.copy(state, copy)
                    if kwargs is not None:
                        compact(copy, **{k: v for k, v in kwargs.items() if k in knobs})
                    else:
                        conn = sqlite3.connect(copy)
                        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                        conn.close()
                    size = sum(by_object(copy).values())
                    row[mode] = size / args.signals
                    if mode == "bounded":
                        row["objects_bounded"] = {k: v / args.signals for k, v in by_object(copy).items()}
                rows.append(row)
                print(f"{args.signals} live + {history:>6} history ({entries} entries): bytes per live signal"
                      f" synced {row['synced']:.0f}, compacted {row['default']:.0f},"
                      f" no history {row['no_history']:.0f}, no tombstones {row.get('bounded', float('nan')):.0f}",
                      flush=True)
            pub.close()
    load = os.getloadavg()
    print(f"tree {ROOT}; load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    results = ROOT / "bench" / "results"
    results.mkdir(exist_ok=True)
    (results / "compaction_growth.json").write_text(json.dumps({"tree": str(ROOT), "live": args.signals,
                                                                "load": load, "stages": rows}, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--signals", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--growth", action="store_true", help="bytes per live signal as the history grows")
    parser.add_argument("--stages", default="0,20000,60000", help="history sizes of --growth, ascending")
    parser.add_argument("--tree", help="measure another checkout's code (its path)")
    args = parser.parse_args()
    if args.growth:
        growth(args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        with _exchange(base) as (ex, signers):
            entries = build(ex, signers, args.signals, args.batch)
            state = base / "reader.db"
            reader = _member(ex, "reader", signers["reader"], state)
            reader.sync()
            reader.close()
        rows: dict[str, Any] = {}
        for mode, drop in (("default", False), ("drop_history", True)):
            copy = base / f"{mode}.db"
            shutil.copy(state, copy)
            before = by_object(copy)
            t0 = time.process_time()
            r = compact(copy, drop_history=drop)
            rows[mode] = {"bytes_before": r.bytes_before, "bytes_after": r.bytes_after,
                          "per_entry_before": r.bytes_before / entries, "per_entry_after": r.bytes_after / entries,
                          "per_signal_before": r.bytes_per_signal_before, "per_signal_after": r.bytes_per_signal_after,
                          "ratio_after_to_before": r.bytes_after / r.bytes_before, "cpu_s": time.process_time() - t0,
                          "tombstoned_retracted": r.tombstoned_retracted, "versions_dropped": r.versions_dropped,
                          "objects_before": before, "objects_after": by_object(copy)}
        load = os.getloadavg()
    out = {"signals": args.signals, "entries": entries, "load": load, "modes": rows}
    for mode, r in rows.items():
        print(f"{mode:<13} {r['per_entry_before']:.0f} -> {r['per_entry_after']:.0f} bytes/entry,"
              f" {r['per_signal_before']:.0f} -> {r['per_signal_after']:.0f} bytes/signal"
              f" (x{r['ratio_after_to_before']:.2f}; {r['cpu_s']:.1f} CPU s)")
        top = list(r["objects_after"].items())[:6]
        print("  after, largest: " + ", ".join(f"{name} {size / args.signals:.0f} B/signal" for name, size in top))
    print(f"{entries} entries, {args.signals} signals; load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    results = ROOT / "bench" / "results"
    results.mkdir(exist_ok=True)
    (results / "compaction.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
