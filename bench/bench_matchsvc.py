"""The match service under HTTP load: lookups/s per core and p50/p99 latency.

    python bench/bench_matchsvc.py                       # 100k md5 + 100k PDQ signals (~1 minute)
    python bench/bench_matchsvc.py --sizes 1000000 --seconds 10

For each size a real `MatchService` + Starlette/uvicorn process is started, pinned to
one core, with N md5 and N PDQ signals loaded into its in-memory index (loaded
directly, not through an exchange: this measures lookups, not ingestion; see
bench_bank.py and run.py for publish → matchable). The load generator runs in this
process on the other core, over keep-alive HTTP/1.1 connections:

- closed loop, --clients connections: exact (md5, 10% hits), pdq (random hashes and
  planted neighbours at distance 1..31) and mixed (half each) → lookups/s, p50, p99;
- open loop at --rate lookups/s (mixed) → p50/p99 (issue target: p99 <= 10 ms at 1k/s);
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


def make_data(size: int, seed: int = 11) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(seed)
    raw = rng.bytes(16 * size).hex()
    md5s = [raw[i : i + 32] for i in range(0, len(raw), 32)]
    pdqs = _hexes(rng.integers(0, 2**64, size=(size, 4), dtype=np.uint64))
    return md5s, pdqs


def make_queries(md5s: list[str], pdqs: list[str], n: int, seed: int = 12) -> dict[str, list[str]]:
    rng = np.random.default_rng(seed)
    exact = [md5s[int(rng.integers(len(md5s)))] if i % 10 == 0 else rng.bytes(16).hex() for i in range(n)]
    pdq = []
    for i in range(n):
        if i % 4 == 0:
            pdq.append(_hexes(rng.integers(0, 2**64, size=(1, 4), dtype=np.uint64))[0])
            continue
        v = int(pdqs[int(rng.integers(len(pdqs)))], 16)
        for bit in rng.choice(256, int(rng.integers(1, 32)), replace=False):
            v ^= 1 << int(bit)
        pdq.append("%064x" % v)
    return {"md5": exact, "pdq": pdq}


# -- the server process -------------------------------------------------------------------


def serve(size: int, port_file: Path, tmp: Path) -> None:
    """Child: a MatchService with ``size`` md5 and PDQ signals, served over HTTP."""
    import socket

    import uvicorn

    from clients.bank import BankSignal
    from clients.matchsvc.auth import PipelineAuth, TokenSet
    from clients.matchsvc.http_api import build_app
    from clients.matchsvc.service import MatchService, MatchSettings
    from clients.member import MemberClient
    from exchange.core.keys import Signer
    from exchange.core.note import NoteVerifier

    _pin(0)
    md5s, pdqs = make_data(size)
    client = MemberClient(
        "127.0.0.1:9", member_id="bench", signer=Signer.generate(), operator_key=bytes(32),
        log_key=NoteVerifier("bench.invalid/log", bytes(Signer.generate().public_key)).verifier_key(),
        state=tmp / f"bench-{size}.db",
    )
    service = MatchService(client, MatchSettings(stale_after_s=1e9))

    def signals() -> Any:
        for i, (m, p) in enumerate(zip(md5s, pdqs, strict=True)):
            for t, v in (("md5", m), ("pdq", p)):
                yield BankSignal(publisher="pub", signal_id=f"{t}-{i}", index=2 * i + (t == "pdq"), type=t, value=v,
                                 labels=("csam",), confidence=80, severity=3, groups=("g",), tlp=2,
                                 valid_from_ms=None, valid_until_ms=None, created_at_ms=0, retracted_index=None)

    started = time.monotonic()
    service.index.load(signals(), {})
    load_s = time.monotonic() - started
    # bench only: no exchange to follow, so declare the (directly loaded) view caught up
    service._head, service._connected, service._last_heard = 0, True, time.monotonic()
    import psutil

    rss = psutil.Process().memory_info().rss
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # TCP_NODELAY, as the CLI
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    port_file.write_text(json.dumps({"port": sock.getsockname()[1], "load_s": load_s, "rss": rss}))
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


def in_process(size: int, queries: dict[str, list[str]]) -> dict[str, Any]:
    """Our MatchIndex against pytx's indexes, same data, one core, no HTTP."""
    _pin(1)
    from clients.bank import BankSignal
    from clients.matchsvc.index import MatchIndex

    md5s, pdqs = make_data(size)
    index = MatchIndex()
    index.load((BankSignal(publisher="p", signal_id=f"{t}{i}", index=i, type=t, value=v, labels=(), confidence=50,
                           severity=2, groups=(), tlp=2, valid_from_ms=None, valid_until_ms=None, created_at_ms=0,
                           retracted_index=None)
                for i, (m, p) in enumerate(zip(md5s, pdqs, strict=True)) for t, v in (("md5", m), ("pdq", p))), {})
    out: dict[str, Any] = {}
    for t in ("md5", "pdq"):
        out[f"ours_{t}_per_s"] = _rate(lambda q, t=t: index.lookup(t, q), queries[t])
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


def run_size(size: int, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    port_file = tmp / f"port-{size}"
    child = subprocess.Popen([sys.executable, __file__, "--serve", str(size), "--port-file", str(port_file),
                              "--tmp", str(tmp)])
    try:
        deadline = time.monotonic() + 1800
        while not port_file.exists() or not port_file.read_text():
            if child.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the service process did not start")
            time.sleep(0.2)
        info = json.loads(port_file.read_text())
        port = int(info["port"])
        _pin(1)
        md5s, pdqs = make_data(size)
        queries = make_queries(md5s, pdqs, 20_000)
        del md5s, pdqs
        paths = {t: [f"/v1/lookup/{t}?value={q}" for q in qs] for t, qs in queries.items()}
        mixed = [p for pair in zip(paths["md5"], paths["pdq"], strict=True) for p in pair]
        res: dict[str, Any] = {"size": size, "load_s": info["load_s"], "service_rss_mib": info["rss"] / 2**20}
        res["baseline_health"] = _closed_loop(port, ["/v1/health"], args.clients, args.seconds)
        res["exact"] = _closed_loop(port, paths["md5"], args.clients, args.seconds)
        res["pdq"] = _closed_loop(port, paths["pdq"], args.clients, args.seconds)
        res["mixed"] = _closed_loop(port, mixed, args.clients, args.seconds)
        res[f"open_loop_{int(args.rate)}"] = _open_loop(port, mixed, args.rate, args.seconds)
        base = res["baseline_health"]["per_s"]
        for k in ("exact", "pdq", "mixed"):
            res[k]["ratio_to_health"] = res[k]["per_s"] / base
    finally:
        child.terminate()
        child.wait(timeout=60)
    if args.in_process:
        res["in_process"] = in_process(size, queries)
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--rate", type=float, default=1000.0)
    p.add_argument("--no-in-process", dest="in_process", action="store_false")
    p.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    p.add_argument("--port-file", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--tmp", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve is not None:
        serve(args.serve, args.port_file, args.tmp)
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
            print(f"\n== {size:,} md5 + {size:,} PDQ signals (service RSS {r['service_rss_mib']:.0f} MiB, "
                  f"loaded in {r['load_s']:.1f}s)")
            print(f"  baseline GET /v1/health: {r['baseline_health']['per_s']:,.0f}/s")
            for k in ("exact", "pdq", "mixed"):
                x = r[k]
                print(f"  {k:<6} {x['per_s']:>8,.0f} lookups/s ({x['ratio_to_health']:.2f}x health)"
                      f"  p50 {x['p50_ms']:.2f} ms  p99 {x['p99_ms']:.2f} ms")
            o = r[f"open_loop_{int(args.rate)}"]
            print(f"  open loop {args.rate:,.0f}/s mixed: p50 {o['p50_ms']:.2f} ms  p99 {o['p99_ms']:.2f} ms")
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
