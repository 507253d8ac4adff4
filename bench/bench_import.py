"""Bulk import speed against the exchange's own publish rate, measured in the same run.

    python bench/bench_import.py                  # 20k hashes (about a minute on 2 cores)
    python bench/bench_import.py --size 1000000   # the issue's 1M (tens of minutes here)

A `trustwire serve` process (embedded SQLite engine, quotas lifted) takes:
- baseline: pre-signed md5 signals (``--baseline``, default size/2 up to 100k)
  published in batches of 1000 on two connections, i.e. the exchange's publish rate
  with no client-side work at all, measured before and after the import (the mean
  is the baseline);
- import: a CSV of ``--size`` md5 hashes (one column, NCMEC style) through
  ``trustwire member import``'s path: read, validate every row, then build, sign and
  publish its canonical bytes in batches of 1000, signing while two calls are in flight.

Reports rows/s and the ratio import / baseline (target ≥ 0.5), and the machine's
load average; writes bench/results/import-<time>.json. Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "bench")]

from run import Exchange, publish_rate, signed  # noqa: E402

from clients.bulk import CsvMapping, Journal, check_rows, publish_rows, read_rows  # noqa: E402

RESULTS = REPO / "bench" / "results"


def import_rate(ex: Exchange, size: int, workdir: Path) -> tuple[float, dict[str, float]]:
    csv_text = "md5\n" + "".join(f"{i:032X}\n" for i in range(10**9, 10**9 + size))
    client = ex.client("sub")
    mapping = CsvMapping.parse(["value=md5"], {"type": "md5", "groups": ["everyone"], "labels": ["csam"]})
    start = time.perf_counter()
    journal = Journal.open(workdir / "import.journal", "bench", 1_800_000_000_000)
    checked = check_rows(client, read_rows("csv", csv_text, mapping=mapping), None, journal.created_at_ms)
    checked_at = time.perf_counter()
    report = publish_rows(client, checked, journal)
    checked.close()
    elapsed = time.perf_counter() - start
    client.close()
    if report.accepted != size or report.problems:
        raise SystemExit(f"import incomplete: {report.as_dict()}")
    return size / elapsed, {"check_s": checked_at - start, "publish_s": elapsed - (checked_at - start)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=20_000)
    p.add_argument("--baseline", type=int, help="pre-signed entries per baseline run (default: size/2, at most 100k)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="tw-bench-import-") as tmp:
        ex = Exchange(Path(tmp) / "ex", verify_workers=0)
        try:
            pub = ex.client("pub")
            half = args.baseline or max(min(args.size // 2, 100_000), 2000)
            before = publish_rate(ex, signed(pub, half, "b"), batch=1000)
            rate, phases = import_rate(ex, args.size, Path(tmp))
            after = publish_rate(ex, signed(pub, half, "a"), batch=1000)
            pub.close()
        finally:
            ex.stop()
    baseline = (before + after) / 2
    result = {
        "size": args.size, "baseline_entries": half, "baseline_publish_per_s": round(baseline), "baseline_before": round(before),
        "baseline_after": round(after), "import_rows_per_s": round(rate), "ratio": round(rate / baseline, 3),
        "target": 0.5, **{k: round(v, 2) for k, v in phases.items()},
        "load_avg_1m": os.getloadavg()[0], "cpus": os.cpu_count(), "python": platform.python_version(),
    }
    print(f"exchange publish (pre-signed)  {baseline:10.0f} entries/s   (before {before:.0f}, after {after:.0f})")
    print(f"import CSV → exchange          {rate:10.0f} rows/s      ratio {rate / baseline:.2f}  (target ≥ 0.5)")
    print(f"  validate {phases['check_s']:.1f}s, sign+publish {phases['publish_s']:.1f}s; load {result['load_avg_1m']:.1f}"
          f" on {result['cpus']} cores")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"import-{time.strftime('%Y%m%dT%H%M%S')}.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
