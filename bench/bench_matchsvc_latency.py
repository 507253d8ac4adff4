"""Publish → matchable through the match service, at a steady publish rate.

    python bench/bench_matchsvc_latency.py                  # 1,000 signals/s for 10 s
    python bench/bench_matchsvc_latency.py --rate 1000 --seconds 30

A real exchange (embedded SQLite engine) runs on 127.0.0.1 in this process; a real
`trustwire member serve-match` process follows it; a publisher sends md5 signals in
signed batches every 50 ms. A checker asks the service (POST /v1/lookup, batches of
the signals not yet seen, in publish order) until each one matches: the latency covers
publish, admission, the ledger commit, the stream, full verification, the bank
transaction, the in-memory index update and the HTTP lookup.

Baseline, measured in the same run: the publish call's own round trip (signed batch →
exchange acknowledgement). Reported: p50/p99 of both and their ratio. Results go to
bench/results/matchsvc-latency-<time>.json. Issue target: p99 well under HMA's
10 minutes; the exchange's own target for publish → matchable in a bank is p99 <= 1 s.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.bench_bank import GROUP, _client, _start, paced_batches  # noqa: E402

RESULTS = REPO / "bench" / "results"
TOKEN = "bench-token-INSECURE-0123456789abcdef0123"


def run(rate: int, seconds: float, tmp: Path) -> dict[str, Any]:
    server, operator, members = _start(tmp)
    (tmp / "sub.key").write_text(members["sub"].seed.hex())
    (tmp / "tokens").write_text(TOKEN + "\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "clients.cli.main", "member", "serve-match", "--exchange", server.target,
         "--member-id", "sub", "--key-file", str(tmp / "sub.key"), "--operator-public-key", operator.public_key.hex(),
         "--log-key", server.checkpoints.verifier_key, "--state", str(tmp / "sub.db"), "--token-file",
         str(tmp / "tokens"), "--http-listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE, text=True, cwd=REPO,
    )
    assert proc.stdout is not None
    port = int(re.search(r"http port (\d+)", proc.stdout.readline()).group(1))  # type: ignore[union-attr]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}

    def ready() -> bool:
        conn.request("GET", "/v1/ready")
        r = conn.getresponse()
        r.read()
        return r.status == 200

    deadline = time.monotonic() + 60
    while not ready():
        if time.monotonic() > deadline:
            raise RuntimeError("the match service never became ready")
        time.sleep(0.05)

    publisher = _client(server, operator, "pub", members["pub"], None)
    rng = np.random.default_rng(2)
    total = int(rate * seconds)
    values = [rng.bytes(16).hex() for _ in range(total)]
    published_at: dict[int, float] = {}
    acked: list[float] = []
    matchable_at: dict[int, float] = {}
    lock = threading.Lock()
    done = threading.Event()

    def checker() -> None:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while not (done.is_set() and len(matchable_at) == total):
            with lock:
                waiting = sorted(i for i in published_at if i not in matchable_at)[:500]
            if not waiting:
                time.sleep(0.001)
                continue
            body = json.dumps({"queries": [{"type": "md5", "value": values[i]} for i in waiting]})
            c.request("POST", "/v1/lookup", body=body, headers=headers)
            r = c.getresponse()
            results = json.loads(r.read())["results"]
            now = time.perf_counter()
            for i, res in zip(waiting, results, strict=True):
                if res["matches"]:
                    matchable_at[i] = now

    thread = threading.Thread(target=checker, daemon=True)
    thread.start()
    for ids in paced_batches(total, rate):
        entries = [publisher.signal("md5", values[i], groups=[GROUP], signal_id=f"s{i}") for i in ids]
        envelopes = [publisher.sign(e) for e in entries]
        sent = time.perf_counter()
        with lock:
            for i in ids:
                published_at[i] = sent
        publisher.publish_envelopes(envelopes)
        acked.append(time.perf_counter() - sent)
    done.set()
    thread.join(timeout=seconds + 120)
    publisher.close()
    conn.close()
    proc.terminate()
    proc.wait(timeout=60)
    server.stop(grace=0.5)
    lat = np.array([matchable_at[i] - published_at[i] for i in sorted(matchable_at)])
    ack = np.array(acked)
    out = {
        "rate_per_s": rate,
        "seconds": seconds,
        "signals": total,
        "matchable": len(lat),
        "publish_ack_p50_ms": round(1000 * float(np.percentile(ack, 50)), 2),
        "publish_ack_p99_ms": round(1000 * float(np.percentile(ack, 99)), 2),
        "matchable_p50_ms": round(1000 * float(np.percentile(lat, 50)), 2),
        "matchable_p99_ms": round(1000 * float(np.percentile(lat, 99)), 2),
        "matchable_max_ms": round(1000 * float(lat.max()), 2),
    }
    out["p99_ratio_to_publish_ack"] = round(out["matchable_p99_ms"] / max(out["publish_ack_p99_ms"], 1e-9), 2)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rate", type=int, default=1000)
    p.add_argument("--seconds", type=float, default=10.0)
    args = p.parse_args()
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        r = run(args.rate, args.seconds, Path(tmp))
    r["loadavg_at_start"], r["loadavg_at_end"] = load, os.getloadavg()
    print(f"{r['signals']:,} md5 signals at {r['rate_per_s']:,}/s: {r['matchable']:,} matchable through the service")
    print(f"  publish → acknowledged (baseline): p50 {r['publish_ack_p50_ms']} ms  p99 {r['publish_ack_p99_ms']} ms")
    print(f"  publish → matchable over HTTP:     p50 {r['matchable_p50_ms']} ms  p99 {r['matchable_p99_ms']} ms"
          f"  ({r['p99_ratio_to_publish_ack']}x the baseline's p99)")
    print(f"  load average {load[0]:.2f} at start, {r['loadavg_at_end'][0]:.2f} at end")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"matchsvc-latency-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(r, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
