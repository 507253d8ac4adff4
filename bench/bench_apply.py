"""The member's apply path alone: CPU µs per entry of ``Ingester.apply_page``, A/B (issue 18).

A real SQLite ledger holds ``--entries`` signed md5 signals (the property test's set-up:
an operator, two enrolled members); each round a fresh member state verifies them in
pages of 1000 (not measured) and applies the verified pages with ``apply_page`` inside
one transaction per page, as sync does (measured: process CPU). Trees alternate (``--tree``,
each run in a child process with that tree first on ``sys.path``) so both see the same
load. ``bench/bench_consume.py`` measures the whole member (verification included).

    python bench/bench_apply.py --tree /tmp/main-export --tree . --entries 20000 --rounds 3
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HARNESS = Path(__file__).resolve().parents[1] / "tests" / "unit" / "test_compromise_property.py"


def child(n: int) -> None:
    """Apply ``n`` verified signals to a fresh member; print CPU µs per entry as JSON."""
    from clients.ingest import SyncReport
    from exchange.core.entries import ms_to_timestamp
    from exchange.pb.trustwire.v1 import entries_pb2 as pb
    from exchange.server.ledger import SqliteLedger, Submission
    # the harness of this checkout's property test, over the code of the tree under measurement
    spec = importlib.util.spec_from_file_location("apply_harness", HARNESS)
    assert spec is not None and spec.loader is not None
    harness = sys.modules["apply_harness"] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(harness)
    SIGNERS, T, Member, _env, setup_events = (harness.SIGNERS, harness.T, harness.Member, harness._env,
                                              harness.setup_events)

    with tempfile.TemporaryDirectory() as tmp:
        ledger = SqliteLedger(Path(tmp) / "ledger.db", clock_ms=lambda: T + 5000)
        envs = setup_events()
        envs += [_env(pb.Signal(signal_id=f"s{i}", member_id="alice", type="md5", value=f"{i:032x}", confidence=50,
                                severity=pb.SEVERITY_MEDIUM, labels=["campaign-x", "spam"],
                                sharing=pb.Sharing(groups=["all"], tlp=pb.TLP_AMBER),
                                created_at=ms_to_timestamp(T + 1000 + i), value_rule=2), SIGNERS["alice"])
                 for i in range(n)]
        for i in range(0, len(envs), 2000):
            ledger.append([Submission(envelope=e, digest=hashlib.sha256(e).digest()) for e in envs[i:i + 2000]])
        records = [s.record for s in ledger.read(0, ledger.head())]
        ledger.close()
        member = Member(Path(tmp) / "member.db")
        pages = [list(zip(records[i:i + 1000], member.verifier.verify_many(records[i:i + 1000]), strict=True))
                 for i in range(0, len(records), 1000)]
        cpu0 = time.process_time()
        for results in pages:
            with member.store.transaction():
                member.ingester.apply_page(results, member.verifier, SyncReport(), member.admit)
        cpu = time.process_time() - cpu0
        member.store.close()
    print(json.dumps({"entries": len(records), "apply_us": cpu / len(records) * 1e6}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", action="append", required=True, help="a source tree to run the member from")
    parser.add_argument("--entries", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return 0
    results: dict[str, list[float]] = {t: [] for t in args.tree}
    for _ in range(args.rounds):
        for tree in args.tree:
            root = str(Path(tree).resolve())
            out = subprocess.run([sys.executable, __file__, "--tree", tree, "--child", str(args.entries)],
                                 env={**os.environ, "PYTHONPATH": root}, cwd=root, capture_output=True, text=True,
                                 timeout=900, check=True)
            results[tree].append(json.loads(out.stdout.strip().splitlines()[-1])["apply_us"])
    load = os.getloadavg()
    for tree, us in results.items():
        print(f"{tree}: apply_page {statistics.median(us):.1f} µs/entry CPU (rounds {[round(u, 1) for u in us]})")
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
