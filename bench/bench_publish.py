"""Publish A/B across source trees: CPU µs per entry of the exchange process and of its
verification workers, apart, against raw Ed25519 verify CPU measured in the same round.

    python bench/bench_publish.py --tree /tmp/main-export --tree . --entries 20000 --rounds 2
    python bench/bench_publish.py --tree . --profile /tmp/prof   # py-spy flat profiles too

Each round runs every tree once, in the order given (alternating across rounds), each on a
fresh `trustwire serve` started from that tree with ``--workers`` verification workers.
Printed per run: entries/s and its ratio to raw verifies/s on one core (wall, sensitive
to load), the server's and the workers' CPU µs per entry, and the CPU ceiling: raw
verify µs ÷ max(server µs, workers µs), the ratio the two sides would reach fully
overlapped on cores of their own. Not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import Exchange, publish_rate, signed, verify_cpu_rate, verify_rate  # noqa: E402


def one_run(tree: Path, workdir: Path, entries: int, workers: int, profile: Path | None) -> dict[str, float]:
    ex = Exchange(workdir, workers, root=tree)
    try:
        cpu: dict[str, float] = {}
        rate = publish_rate(ex, signed(ex.client("pub"), entries + 500, f"{workdir.name}-"), cpu=cpu,
                            profile=profile / f"{workdir.name}.txt" if profile else None)
        return {"rate": rate, **cpu}
    finally:
        ex.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", action="append", type=Path, help="a source tree (repeat for A/B); default: this one")
    parser.add_argument("--entries", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1, help="the exchange's verification workers")
    parser.add_argument("--profile", type=Path, help="write py-spy raw profiles here (one per run)")
    args = parser.parse_args()
    trees = [t.resolve() for t in (args.tree or [Path(__file__).resolve().parents[1]])]
    with tempfile.TemporaryDirectory() as tmp:
        for rnd in range(args.rounds):
            for i, tree in enumerate(trees if rnd % 2 == 0 else list(reversed(trees))):
                raw_cpu, raw_wall = verify_cpu_rate(), verify_rate(seconds=1.0)
                r = one_run(tree, Path(tmp) / f"r{rnd}t{trees.index(tree)}", args.entries, args.workers, args.profile)
                raw_us = 1e6 / raw_cpu
                print(f"round {rnd} {tree}: {r['rate']:,.0f}/s (wall ratio {r['rate'] / raw_wall:.3f}, raw"
                      f" {raw_wall:,.0f}/s), server {r['server_us']:.1f} µs/entry, workers {r['workers_us']:.1f},"
                      f" raw verify {raw_us:.1f} µs: CPU ceiling {raw_us / max(r['server_us'], r['workers_us']):.3f},"
                      f" load {os.getloadavg()[0]:.1f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
