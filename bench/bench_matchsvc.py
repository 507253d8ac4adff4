"""The match service under HTTP load: lookups/s per core and p50/p99 latency.

    python bench/bench_matchsvc.py                       # a 300k-signal bank (~2 minutes)
    python bench/bench_matchsvc.py --sizes 1000000 --seconds 10
    python bench/bench_matchsvc.py --state /tmp/member-10m.db --sizes 10000000

For each size a member state file is generated (bench/gen_member_state.py: 40% md5,
20% sha256, 40% PDQ signals, written straight into the bank's tables) unless --state
names one, and a real `MatchService` + uvicorn process is started on it, pinned to one
core: its start-up (the bank loaded into the in-memory index) and RSS are reported. The
load generator runs in this process on the other core, over keep-alive HTTP/1.1
connections:

- closed loop, --clients connections: exact (md5, 10% hits), pdq (random hashes and
  planted neighbours at distance 1..31), upload (what an upload pipeline sends: per
  upload an md5, a sha256 and a PDQ lookup, one third PDQ) and pdq_heavy (per upload
  an md5 and three PDQ lookups) → lookups/s, p50, p99;
- open loop at --rate lookups/s (upload and pdq_heavy) → p50/p99 (issue target: p99 <=
  10 ms at 1k/s on 10M hashes);
- the baseline, measured in the same run: GET /v1/health over the same connections
  (the HTTP floor of this stack on this machine); lookups are reported as a ratio to it;
- in-process, same data, same core: our MatchIndex against python-threatexchange's
  PDQ (faiss) index and its dict-based exact index, when installed.

Not a test: it asserts nothing. Results go to bench/results/matchsvc-<time>.json.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import statistics
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

RESULTS = REPO / "bench" / "results"
TOKEN = "bench-token-INSECURE-0123456789abcdef0123"


def _pin(core: int) -> None:
    try:
        cores = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cores[core % len(cores)]})
    except (AttributeError, OSError):
        pass


def _hexes(codes: np.ndarray) -> list[str]:
    raw = codes.astype(">u8").tobytes().hex()
    return [raw[i : i + 64] for i in range(0, len(raw), 64)]


def make_queries(size: int, n: int, seed: int = 12) -> dict[str, list[str]]:
    """Lookups per type against a generated bank of ``size``: 10% exact hits; PDQ: a
    quarter random, the rest planted neighbours of banked hashes at distance 1..31."""
    from bench.gen_member_state import values

    rng = np.random.default_rng(seed)
    out: dict[str, list[str]] = {}
    for t, width in (("md5", 16), ("sha256", 32)):
        banked = values(size, t)
        out[t] = [banked[int(rng.integers(len(banked)))] if i % 10 == 0 else rng.bytes(width).hex() for i in range(n)]
    pdqs = values(size, "pdq")
    pdq = []
    for i in range(n):
        if i % 4 == 0:
            pdq.append(_hexes(rng.integers(0, 2**64, size=(1, 4), dtype=np.uint64))[0])
            continue
        v = int(pdqs[int(rng.integers(len(pdqs)))], 16)
        for bit in rng.choice(256, int(rng.integers(1, 32)), replace=False):
            v ^= 1 << int(bit)
        pdq.append("%064x" % v)
    out["pdq"] = pdq
    return out


# -- the server process -------------------------------------------------------------------


def serve(state: Path, port_file: Path) -> None:
    """Child: a MatchService on the member state file ``state``, served over HTTP."""
    import gc
    import socket

    import psutil
    import uvicorn

    from clients.matchsvc.auth import PipelineAuth, TokenSet
    from clients.matchsvc.http_api import build_app
    from clients.matchsvc.service import MatchService, MatchSettings
    from clients.member import MemberClient
    from exchange.core.keys import Signer
    from exchange.core.note import NoteVerifier

    _pin(0)
    client = MemberClient(
        "127.0.0.1:9", member_id="bench", signer=Signer.generate(), operator_key=bytes(32),
        log_key=NoteVerifier("bench.invalid/log", bytes(Signer.generate().public_key)).verifier_key(),
        state=state,
    )
    service = MatchService(client, MatchSettings(stale_after_s=1e9))
    started = time.monotonic()
    n = service.index.load(service.bank.iter_signals(), service.bank.all_opinion_counts())  # as start() does
    gc.freeze()
    load_s = time.monotonic() - started
    # bench only: no exchange to follow, so declare the (just loaded) view caught up
    service._head, service._connected, service._last_heard = 0, True, time.monotonic()
    rss = psutil.Process().memory_info().rss
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # TCP_NODELAY, as the CLI
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    port_file.write_text(json.dumps({"port": sock.getsockname()[1], "load_s": load_s, "rss": rss, "signals": n,
                                     "memory": service.index.memory()}))
    app = build_app(service, PipelineAuth(TokenSet([TOKEN]), client_certificates=False))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning",
                                           access_log=False, lifespan="off"))
    server.run(sockets=[sock])


# -- the load generator -------------------------------------------------------------------


def _closed_loop(port: int, paths: list[str], clients: int, seconds: float) -> dict[str, float]:
    lat: list[list[float]] = [[] for _ in range(clients)]
    stop = time.monotonic() + seconds

    def run(k: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        i = k
        while time.monotonic() < stop:
            t0 = time.perf_counter()
            conn.request("GET", paths[i % len(paths)], headers=headers)
            r = conn.getresponse()
            r.read()
            lat[k].append(time.perf_counter() - t0)
            if r.status != 200:
                raise RuntimeError(f"HTTP {r.status}")
            i += clients
        conn.close()

    started = time.monotonic()
    _run_all(run, clients)
    elapsed = time.monotonic() - started
    return _summary([x for xs in lat for x in xs], elapsed)


def _open_loop(port: int, paths: list[str], rate: float, seconds: float, clients: int = 4) -> dict[str, float]:
    """``rate`` lookups/s spread over ``clients`` connections, each paced on a fixed schedule;
    latency counts from the scheduled send time (no coordinated omission)."""
    lat: list[list[float]] = [[] for _ in range(clients)]
    per = rate / clients
    start = time.perf_counter() + 0.05

    def run(k: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        n = int(per * seconds)
        for j in range(n):
            due = start + (j + k / clients) / per
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            conn.request("GET", paths[(j * clients + k) % len(paths)], headers=headers)
            r = conn.getresponse()
            r.read()
            lat[k].append(time.perf_counter() - due)
        conn.close()

    _run_all(run, clients)
    return _summary([x for xs in lat for x in xs], seconds)


def _run_all(run: Any, clients: int) -> None:
    threads = [threading.Thread(target=run, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _summary(lat: list[float], elapsed: float) -> dict[str, float]:
    lat.sort()
    return {
        "requests": len(lat),
        "per_s": len(lat) / elapsed,
        "p50_ms": 1000 * lat[len(lat) // 2],
        "p99_ms": 1000 * lat[min(len(lat) - 1, int(len(lat) * 0.99))],
        "mean_ms": 1000 * statistics.fmean(lat),
    }


def _rate(fn: Any, queries: list[str]) -> float:
    """Calls per second of ``fn`` over ``queries``."""
    t0 = time.perf_counter()
    for q in queries:
        fn(q)
    return len(queries) / (time.perf_counter() - t0)


def in_process(state: Path, size: int, queries: dict[str, list[str]]) -> dict[str, Any]:
    """Our MatchIndex against pytx's indexes, same data, one core, no HTTP."""
    _pin(1)
    from bench.gen_member_state import values
    from clients.bank import Bank
    from clients.matchsvc.index import MatchIndex
    from clients.store import MemberStore

    bank = Bank(MemberStore(state))
    index = MatchIndex()
    index.load_bank(bank)  # as the service starts (one column scan, the saved PDQ index)
    out: dict[str, Any] = {}
    for t in ("md5", "pdq"):
        out[f"ours_{t}_per_s"] = _rate(lambda q, t=t: index.lookup(t, q), queries[t])
    del index
    md5s, pdqs = values(size, "md5"), values(size, "pdq")
    try:
        from threatexchange.signal_type.pdq.pdq_index import PDQIndex
        from threatexchange.signal_type.signal_base import TrivialSignalTypeIndex

        try:
            import faiss

            faiss.omp_set_num_threads(1)
        except ImportError:
            pass
        pidx = PDQIndex.build([(p, i) for i, p in enumerate(pdqs)])
        out["pytx_pdq_per_s"] = _rate(pidx.query, queries["pdq"])
        eidx = TrivialSignalTypeIndex.build([(m, i) for i, m in enumerate(md5s)])
        out["pytx_md5_per_s"] = _rate(eidx.query, queries["md5"])
    except ImportError as exc:
        out["pytx"] = f"not installed ({exc.name})"
    return out


MIXES = {"upload": ("md5", "sha256", "pdq"), "pdq_heavy": ("md5", "pdq", "pdq", "pdq")}


def run_size(size: int, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    state = args.state
    generated: dict[str, float] = {}
    if state is None:
        from bench.gen_member_state import generate

        state = tmp / f"member-{size}.db"
        generated = generate(state, size)
    port_file = tmp / f"port-{size}"
    child = subprocess.Popen([sys.executable, __file__, "--serve", str(state), "--port-file", str(port_file)])
    try:
        deadline = time.monotonic() + 3600
        while not port_file.exists() or not port_file.read_text():
            if child.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the service process did not start")
            time.sleep(0.2)
        info = json.loads(port_file.read_text())
        port = int(info["port"])
        _pin(1)
        queries = make_queries(size, 20_000)
        paths = {t: [f"/v1/lookup/{t}?value={q}" for q in qs] for t, qs in queries.items()}
        mixes = {name: [paths[t][i] for i in range(20_000) for t in types] for name, types in MIXES.items()}
        res: dict[str, Any] = {"size": size, "signals": info["signals"], "generated": generated,
                               "load_s": info["load_s"], "service_rss_mib": info["rss"] / 2**20,
                               "index_bytes": info["memory"], "loadavg_before": os.getloadavg()}
        res["baseline_health"] = _closed_loop(port, ["/v1/health"], args.clients, args.seconds)
        res["exact"] = _closed_loop(port, paths["md5"], args.clients, args.seconds)
        res["pdq"] = _closed_loop(port, paths["pdq"], args.clients, args.seconds)
        for name, mix in mixes.items():
            res[name] = _closed_loop(port, mix, args.clients, args.seconds)
        for name, mix in mixes.items():
            res[f"open_loop_{name}_{int(args.rate)}"] = _open_loop(port, mix, args.rate, args.seconds)
        base = res["baseline_health"]["per_s"]
        for k in ("exact", "pdq", *MIXES):
            res[k]["ratio_to_health"] = res[k]["per_s"] / base
        res["loadavg_after"] = os.getloadavg()
    finally:
        child.terminate()
        child.wait(timeout=60)
    if args.in_process:
        res["in_process"] = in_process(state, size, queries)
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[300_000], help="signals in the bank (all types)")
    p.add_argument("--state", type=Path, help="a state file from gen_member_state.py (one size)")
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--rate", type=float, default=1000.0)
    p.add_argument("--no-in-process", dest="in_process", action="store_false")
    p.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--port-file", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve is not None:
        serve(args.serve, args.port_file)
        return
    load = os.getloadavg()
    report: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "loadavg_at_start": load},
        "runs": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            r = run_size(size, args, Path(tmp))
            report["runs"].append(r)
            print(f"\n== {r['signals']:,} signals, 40% md5 20% sha256 40% PDQ (service RSS "
                  f"{r['service_rss_mib']:.0f} MiB = {r['service_rss_mib'] * 2**20 / r['signals']:.0f} B/signal, "
                  f"started in {r['load_s']:.1f}s; index arrays {r['index_bytes']})")
            print(f"  baseline GET /v1/health: {r['baseline_health']['per_s']:,.0f}/s")
            for k in ("exact", "pdq", *MIXES):
                x = r[k]
                print(f"  {k:<6} {x['per_s']:>8,.0f} lookups/s ({x['ratio_to_health']:.2f}x health)"
                      f"  p50 {x['p50_ms']:.2f} ms  p99 {x['p99_ms']:.2f} ms")
            for name in MIXES:
                o = r[f"open_loop_{name}_{int(args.rate)}"]
                print(f"  open loop {args.rate:,.0f}/s {name}: p50 {o['p50_ms']:.2f} ms  p99 {o['p99_ms']:.2f} ms")
            print(f"  load average {r['loadavg_before'][0]:.2f} before, {r['loadavg_after'][0]:.2f} after")
            if "in_process" in r:
                print("  in process, one core: " + ", ".join(
                    f"{k} {v:,.0f}" if isinstance(v, float) else f"{k} {v}" for k, v in r["in_process"].items()))
    report["machine"]["loadavg_at_end"] = os.getloadavg()
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"matchsvc-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(report, indent=2))
    print(f"\nload average {load[0]:.2f} at start, {report['machine']['loadavg_at_end'][0]:.2f} at end; wrote {out}")


if __name__ == "__main__":
    main()
