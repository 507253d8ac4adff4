"""Member consume: CPU the member's own process spends per entry of a sync, A/B.

One ``trustwire serve`` (this tree) holds ``--entries`` md5 signals; each round a fresh
member syncs them all, once per tree given with ``--tree`` (alternating, so both see
the same machine load). The member runs in a child process with that tree first on
``sys.path``; it reports the CPU µs per entry of its own process (decoding, checks,
bank and queue writes; signatures are verified on worker processes) and of its
workers, and entries/s. Ratios are to raw Ed25519 verify CPU measured in the same
child. The workers are started (spawned, their imports done) before the sync is
timed: their start-up CPU is reported on its own (``start-up``), not spread over the
entries, and the sync's wall time does not include it. On a shared machine the wall
clock ratio falls with the load while the CPU figures hold: ``CPU ceiling`` is the
ratio the member would reach with its cores to itself and the workers' checks fully
overlapped with its own work (raw verify CPU over the larger of the member's CPU per
entry and the workers' per worker). ``per CPU-s`` is entries per CPU second of the member and its workers over raw
verifies per CPU second (what ``bench_scale.py`` reports for a catch-up). ``exchange serving`` is the CPU the exchange process
spent per entry while the member synced (it shares the machine's cores with the member).

    python bench/bench_consume.py --tree /tmp/main-export --tree . --entries 20000 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _warm() -> int:
    """A worker's first task: import the verification code (what the first page would)."""
    import exchange.core.verify  # noqa: F401

    time.sleep(0.2)  # bounded: held so that every worker gets one
    return os.getpid()


def _start_workers(member: object) -> float:
    """Spawn the member's verification workers and let each import its code; their CPU (s)."""
    import psutil

    pool = member.exchange.verify_pool  # type: ignore[attr-defined]
    executor = pool._started()
    if executor is None:
        return 0.0
    for _ in range(5):  # bounded: until every worker has run one task
        if len({f.result() for f in [executor.submit(_warm) for _ in range(pool.workers)]}) >= pool.workers:
            break
    kids = psutil.Process().children(recursive=True)
    return float(sum(c.cpu_times().user + c.cpu_times().system for c in kids))


def child(target: str, log_key: str, state: Path) -> None:
    """Sync one fresh member; print its figures as JSON."""
    import psutil

    from clients.member import MemberClient  # first: from the tree on PYTHONPATH
    from exchange.core.keys import Signer

    sys.path.insert(0, str(ROOT / "bench"))
    from run import verify_cpu_rate

    raw = verify_cpu_rate()
    sub = Signer.from_seed(bytes([1 + 20]) * 32)  # bench/run.py's Exchange: "sub", the operator
    member = MemberClient(target, member_id="sub", signer=sub, operator_key=Signer.from_seed(b"\x0a" * 32).public_key,
                          log_key=log_key, state=state)
    me = psutil.Process()
    startup = _start_workers(member)
    start, cpu0 = time.perf_counter(), time.process_time()
    report = member.sync()
    wall, own = time.perf_counter() - start, time.process_time() - cpu0
    workers = sum(c.cpu_times().user + c.cpu_times().system for c in me.children(recursive=True)) - startup
    member.close()
    n = report.verified
    print(json.dumps({"entries": n, "per_s": n / wall, "own_us": own / n * 1e6, "workers_us": workers / n * 1e6,
                      "startup_s": startup, "workers": member.exchange.verify_pool.workers,
                      "raw_verify_us": 1e6 / raw, "ratio": n / wall / raw}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", action="append", required=True, help="a source tree to run the member from")
    parser.add_argument("--entries", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], Path(args.child[2]))
        return 0
    sys.path.insert(0, str(ROOT / "bench"))
    from run import Exchange, signed

    results: dict[str, list[dict[str, float]]] = {t: [] for t in args.tree}
    with tempfile.TemporaryDirectory() as tmp:
        ex = Exchange(Path(tmp) / "ex", verify_workers=2)
        try:
            pub = ex.client("pub")
            envelopes = signed(pub, args.entries, "c")
            for i in range(0, len(envelopes), 1000):
                pub.publish_envelopes(envelopes[i : i + 1000], batch_size=500)
            pub.close()
            time.sleep(1.5)  # bounded: the next checkpoint covers the last batch (interval 1 s)
            for r in range(args.rounds):
                for tree in args.tree:
                    state = Path(tmp) / f"m-{r}-{len(results[tree])}-{abs(hash(tree))}.db"
                    env = {**os.environ, "PYTHONPATH": str(Path(tree).resolve())}
                    served = ex.cpu_s()
                    out = subprocess.run(
                        [sys.executable, __file__, "--tree", tree, "--child", ex.target, ex.log_key, str(state)],
                        env=env, cwd=Path(tree).resolve(), capture_output=True, text=True, timeout=600, check=True,
                    ).stdout
                    figures = json.loads(out.strip().splitlines()[-1])
                    figures["exchange_us"] = (ex.cpu_s() - served) / figures["entries"] * 1e6
                    results[tree].append(figures)
        finally:
            ex.stop()
    load = os.getloadavg()
    for tree, runs in results.items():
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print(f"{tree}: {int(med['entries'])} entries, {med['per_s']:.0f}/s (ratio {med['ratio']:.3f}),"
              f" member {med['own_us']:.1f} µs/entry ({med['own_us'] / med['raw_verify_us']:.2f}× raw verify),"
              f" workers {med['workers_us']:.1f} µs/entry ({med['workers_us'] / med['raw_verify_us']:.2f}× raw;"
              f" start-up {med['startup_s']:.2f} CPU-s apart); raw verify {med['raw_verify_us']:.1f} µs;"
              f" CPU ceiling {med['raw_verify_us'] / max(med['own_us'], med['workers_us'] / med['workers']):.2f};"
              f" per CPU-s of member and workers {med['raw_verify_us'] / (med['own_us'] + med['workers_us']):.3f}× raw;"
              f" exchange serving {med['exchange_us']:.1f} µs/entry;"
              f" rounds own_us={[round(r['own_us'], 1) for r in runs]}")
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
