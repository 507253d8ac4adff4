"""A/B: the member and admission paths of this tree against a baseline tree, same run.

    python bench/bench_ab.py                      # baseline: `main`, exported to a temp dir
    python bench/bench_ab.py --base HEAD~3 --entries 5000 --rounds 3

For a refactoring (issue 19) the question is "no slower": each round runs the same
probe (``bench/ab_probe.py``) once per tree, alternating, each in its own process
with that tree first on ``sys.path``: an in-process exchange on 127.0.0.1:0 (SQLite,
one verification worker), one member publishing ``--entries`` md5 signals in
batches of 500, a fresh member syncing them into a state file (verify → bank →
queue), then ``match_files`` over 200 small files. It prints entries/s for each
tree and the ratio this/base per path (median of the rounds); read ratios, not
seconds: the machine is shared. The baseline gets this tree's generated protobuf
modules (the same messages; only their import layout moved).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROBE = ROOT / "bench" / "ab_probe.py"


def export(rev: str, into: Path) -> Path:
    """``rev`` of this repository as a plain tree, with this tree's generated code."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    shutil.copytree(ROOT / "exchange" / "pb", into / "exchange" / "pb", dirs_exist_ok=True)
    return into


def probe(tree: Path, entries: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(tree), "TRUSTWIRE_METRICS_LISTEN": "off"}
    out = subprocess.run(
        [sys.executable, str(PROBE), str(entries)], cwd=tree, env=env, check=True, capture_output=True, text=True
    ).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="main", help="git revision of the baseline tree")
    parser.add_argument("--entries", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tw-ab-") as tmp:
        base = export(args.base, Path(tmp))
        runs: dict[str, list[dict[str, float]]] = {"base": [], "this": []}
        for _ in range(args.rounds):
            runs["base"].append(probe(base, args.entries))
            runs["this"].append(probe(ROOT, args.entries))
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; {args.entries} entries, "
          f"{args.rounds} rounds; baseline {args.base}")
    print(f"{'path':<12}{'base /s':>12}{'this /s':>12}{'this/base':>11}")
    for path in runs["base"][0]:
        b = statistics.median(r[path] for r in runs["base"])
        t = statistics.median(r[path] for r in runs["this"])
        print(f"{path:<12}{b:>12.0f}{t:>12.0f}{t / b:>11.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
