"""Scale: grow a ledger by real gRPC publishing and measure, at each size, what grows.

    python bench/bench_scale.py                                   # small: 20k, 40k, 80k entries
    python bench/bench_scale.py --sizes 500000,1000000,2000000,10000000   # the documented 10M run

Two members publish batches of 1000 (a mix of md5, sha256, pdq and url signals)
into a ``trustwire serve`` process until the ledger holds the next size (``--direct``:
appended through the engine with the exchange stopped, signed for real on every core,
to reach 1M+ entries in minutes); then:

- restart     clean stop, start to SERVING (the port line): sealed start (the default),
              ``--full-verify`` (every page and record re-checked, the old cost), and
              after kill -9 (the background full verification follows); and the CPU
              seconds of the start-up checks alone, sealed and full (load-proof)
- catch-up    a third member syncs the new entries into its bank (pages verified on
              worker processes): entries/s per step (flat = no slowdown as the bank
              fills), per CPU second of the member and its workers, state bytes per entry
- audit       offline ``trustwire audit verify`` with 1 worker and one per core:
              entries/s, entries per CPU second as a ratio to raw Ed25519 verifications
              per CPU second (the "per core used" figure), peak memory
- checkpoints signed checkpoints stored (bounded by the cadence, not by batches)
- disk        ledger bytes per entry

Baselines measured in the same run: raw Ed25519 verifications per CPU second, and the
start of an empty exchange (interpreter and imports). Each figure is then fitted to
its growth law (a + b·N; and the exponent k of N^k between the first and last size)
and projected to --project entries (default 10M). Not a test: it asserts nothing;
the machine may be shared, so read ratios and laws. JSON goes to bench/results/.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from clients.member import MemberClient  # noqa: E402
from exchange.core.records import Receipt  # noqa: E402
from reliability.harness import ExchangeProcess  # noqa: E402

GROUP = "scale"
TYPES = ("md5", "sha256", "pdq", "url")


def raw_verify_rate(seconds: float = 1.5) -> float:
    import nacl.signing

    key = nacl.signing.SigningKey.generate()
    signed = key.sign(os.urandom(300))
    verify = key.verify_key.verify
    n, t0 = 0, time.process_time()  # CPU time: the machine may be shared
    while time.process_time() - t0 < seconds:
        for _ in range(200):
            verify(signed)
        n += 200
    return n / (time.process_time() - t0)


class FullVerifyExchange(ExchangeProcess):
    def command(self) -> list[str]:
        return [*super().command(), "--full-verify"]


def _value(kind: str, seq: str) -> str:
    h = hashlib.sha256(seq.encode()).hexdigest()
    if kind == "md5":
        return h[:32]
    if kind == "url":
        return f"https://scale.example/{h[:20]}"
    return h  # sha256 and pdq are 64 hex digits


def _member(ex: ExchangeProcess, name: str, signer: Any, state: Path | None = None) -> MemberClient:
    return MemberClient(ex.target, member_id=name, signer=signer, operator_key=ex.operator.public_key,
                        log_key=ex.log_key, state=state)


def grow(ex: ExchangeProcess, signers: dict[str, Any], target: int, batch: int, tag: str) -> float:
    """Publish from two members until the ledger holds ``target`` entries; entries/s."""
    head = _head(ex)
    need = max(0, target - head)
    share = [need // 2, need - need // 2]
    t0 = time.perf_counter()

    def publish(name: str, count: int) -> None:
        client = _member(ex, name, signers[name])
        try:
            for start in range(0, count, batch):
                n = min(batch, count - start)
                entries = [
                    client.signal(TYPES[(start + i) % 4], _value(TYPES[(start + i) % 4], f"{tag}-{name}-{start + i}"),
                                  groups=[GROUP], signal_id=f"{tag}-{name}-{start + i}")
                    for i in range(n)
                ]
                outcomes = client.publish(entries, batch_size=n)
                if not all(isinstance(o, Receipt) for o in outcomes):
                    raise RuntimeError(f"publish refused: {[o for o in outcomes if not isinstance(o, Receipt)][:1]}")
        finally:
            client.close()

    threads = [threading.Thread(target=publish, args=(name, n)) for name, n in zip(("pub0", "pub1"), share)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return need / max(time.perf_counter() - t0, 1e-9)


def grow_direct(ex: ExchangeProcess, signers: dict[str, Any], target: int, batch: int, tag: str) -> float:
    """As :func:`grow`, but the stopped exchange's ledger is appended to through the
    engine (``SqliteLedger.append``: the same stamp, key and visibility checks) with
    envelopes signed for real on every core; fast enough to reach 1M+ entries. The
    exchange is started again afterwards (its start-up hashes the new records into the
    audit log: that start is not one of the restarts measured). Entries/s."""
    from clients.verify_pool import process_pool
    from exchange.server.ledger import SqliteLedger, Submission

    head = _head(ex)
    ex.stop()
    need = max(0, target - head)
    seeds = {name: signers[name].seed for name in ("pub0", "pub1")}
    t0 = time.perf_counter()
    ledger = SqliteLedger(ex.ledger)
    try:
        jobs = [(seeds, tag, start, min(batch, need - start)) for start in range(0, need, batch)]
        with process_pool(os.cpu_count() or 1) as pool:
            for signed in pool.map(_signed_batch, jobs, chunksize=4):
                outcomes = ledger.append([Submission(envelope=env, digest=hashlib.sha256(env).digest())
                                          for env in signed])
                if not all(isinstance(o, Receipt) for o in outcomes):
                    raise RuntimeError(f"append refused: {[o for o in outcomes if not isinstance(o, Receipt)][:1]}")
    finally:
        ledger.close()
    rate = need / max(time.perf_counter() - t0, 1e-9)
    ex.start(timeout=3600)
    return rate


def _signed_batch(job: tuple[dict[str, bytes], str, int, int]) -> list[bytes]:
    """One batch of signals, alternating between the two publishers, signed (worker)."""
    from clients.builders import EntryBuilder
    from exchange.core.dsse import sign_envelope
    from exchange.core.entries import encode_entry
    from exchange.core.keys import Signer

    seeds, tag, start, n = job
    out = []
    for i in range(start, start + n):
        name = ("pub0", "pub1")[i % 2]
        kind = TYPES[i % 4]
        entry = EntryBuilder(name, lambda: int(time.time() * 1000)).signal(
            kind, _value(kind, f"{tag}-{i}"), groups=[GROUP], signal_id=f"{tag}-{name}-{i}")
        out.append(sign_envelope(*encode_entry(entry), Signer.from_seed(seeds[name])).raw)
    return out


def _head(ex: ExchangeProcess) -> int:
    from exchange.pb.trustwire.v1 import exchange_pb2 as xpb

    client = ex.audit_client()
    try:
        return int(client._exchange.GetKeyDirectory(xpb.GetKeyDirectoryRequest(), timeout=30).head)
    finally:
        client.close()


def timed_start(ex: ExchangeProcess) -> float:
    t0 = time.perf_counter()
    ex.start(timeout=600)
    return time.perf_counter() - t0


def startup_cpu(ex: ExchangeProcess, full: bool) -> float:
    """CPU seconds of the start-up checks alone (ledger open + audit log open), in this
    process on the stopped exchange's files: immune to the machine's load, unlike the
    wall-clock restart. ``full``: as ``--full-verify`` (no seal trusted)."""
    from exchange.core import note as notes
    from exchange.core.keys import Signer
    from exchange.server.checkpoints import CheckpointLog
    from exchange.server.integrity import forget_seals
    from exchange.server.ledger import SqliteLedger

    audit_dir = Path(str(ex.ledger) + ".audit")
    if full:
        forget_seals(ex.ledger, audit_dir)
    signer = notes.NoteSigner(ex.name, Signer.from_seed(bytes.fromhex(ex.log_key_file.read_text().strip())).signing_key)
    t0 = time.process_time()
    ledger = SqliteLedger(ex.ledger)
    log = CheckpointLog(ledger, audit_dir, signer, ex.name)
    seconds = time.process_time() - t0
    log.stop()
    ledger.close()
    return seconds


def _tree_rss_kib(pid: int) -> int:
    """Resident memory of a process and its children (verification workers), KiB."""
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            for task in Path(f"/proc/{p}/task").iterdir():
                stack.extend(int(c) for c in (task / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return total


def audit(ex: ExchangeProcess, workers: int, fixed: tuple[float, float] = (0.0, 0.0)) -> dict[str, float]:
    """Offline audit: entries per wall second and per CPU second (the audit process and
    its workers); ``fixed`` (wall, CPU seconds of the same audit of an empty ledger:
    start-up, imports, spawning workers) is taken off first."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    cmd = [sys.executable, "-m", "exchange.program", "audit", "verify", "--ledger", str(ex.ledger),
           "--operator-public-key", ex.operator.public_key.hex(), "--log-key", ex.log_key, "--json",
           "--workers", str(workers), "--no-progress"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _tree_rss_kib(proc.pid))
        time.sleep(0.1)
    out, err = proc.communicate()
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"audit failed ({proc.returncode}): {err[-2000:]} {out[-2000:]}")
    report = json.loads(out)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return {"entries_per_s": report["entries"] / max(seconds - fixed[0], 1e-3),
            "entries_per_cpu_s": report["entries"] / max(cpu - fixed[1], 1e-3),
            "peak_rss_mib": peak / 1024, "seconds": seconds, "cpu_s": cpu}


def sync_step(ex: ExchangeProcess, signer: Any, state: Path) -> tuple[float, float, int]:
    """A member's catch-up over the entries added since its last sync: entries per
    wall second and per CPU second of this process and its verification workers
    (counted once they have exited)."""
    import resource

    client = _member(ex, "reader", signer, state)
    try:
        before = client.store.cursor if client.store else 0
        kids0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0, c0 = time.perf_counter(), time.process_time()
        report = client.sync()
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        workers = client.exchange.verify_pool._pool
        if workers is not None:
            workers.shutdown(wait=True)  # reaped: their CPU time is in RUSAGE_CHILDREN now
        kids1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu += (kids1.ru_utime + kids1.ru_stime) - (kids0.ru_utime + kids0.ru_stime)
    finally:
        client.close()
    n = report.next_index - before
    return n / max(seconds, 1e-9), n / max(cpu, 1e-9), report.next_index


def _checkpoints(ex: ExchangeProcess) -> int:
    db = Path(str(ex.ledger) + ".audit") / "checkpoints.db"
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM checkpoints").fetchone()[0])
    finally:
        conn.close()


def law(sizes: list[int], values: list[float], project: int) -> dict[str, float]:
    """Least-squares a + b·N and the exponent k of N^k (first→last), each projected."""
    n = len(sizes)
    mx, my = sum(sizes) / n, sum(values) / n
    var = sum((x - mx) ** 2 for x in sizes)
    b = sum((x - mx) * (y - my) for x, y in zip(sizes, values)) / var if var else 0.0
    a = my - b * mx
    k = (math.log(values[-1] / values[0]) / math.log(sizes[-1] / sizes[0])
         if n > 1 and values[0] > 0 and values[-1] > 0 and sizes[-1] != sizes[0] else 0.0)
    power = values[-1] * (project / sizes[-1]) ** k if values[-1] > 0 else 0.0
    return {"a": a, "b_per_100k": b * 100_000, "linear_at_project": a + b * project,
            "exponent": k, "power_at_project": power}


def laws_of(rows: list[dict[str, Any]], keys: tuple[str, ...], project: int) -> dict[str, dict[str, float]]:
    """The growth law of each figure ``key`` over the rows' ``entries``."""
    if len(rows) < 2:
        return {}
    grown = [r["entries"] for r in rows]
    return {key: {k: round(v, 4) for k, v in law(grown, [float(r[key]) for r in rows], project).items()}
            for key in keys}


def emit(rows: list[dict[str, Any]], row: dict[str, Any], ex: ExchangeProcess) -> None:
    """Add the disk and load figures to a size's ``row`` (``entries`` set), keep and print it."""
    row["ledger_bytes_per_entry"] = round(ex.ledger.stat().st_size / max(row["entries"], 1), 1)
    row["load_avg_1m"] = round(os.getloadavg()[0], 2)
    rows.append(row)
    print(json.dumps(row), flush=True)


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "load_avg": os.getloadavg()}


def save(kind: str, result: dict[str, Any]) -> None:
    """Write ``result`` as bench/results/<kind>-<time>.json."""
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / f"{kind}-{int(time.time())}.json").write_text(json.dumps(result, indent=2))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="20000,40000,80000", help="ledger sizes to measure at (comma-separated)")
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--project", type=int, default=10_000_000, help="size to project the growth laws to")
    parser.add_argument("--dir", type=Path, help="work directory (default: a temporary one, removed)")
    parser.add_argument("--direct", action="store_true",
                        help="grow through the engine with the exchange stopped (fast; for 1M+), not over gRPC")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="audit workers for the parallel run")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))

    raw = raw_verify_rate()
    with tempfile.TemporaryDirectory() as tmp:
        base = args.dir or Path(tmp)
        empty = ExchangeProcess(base / "empty")
        empty_start = timed_start(empty)
        empty.stop()
        e1, en = audit(empty, 1), audit(empty, args.workers)
        fixed_1w, fixed_nw = (e1["seconds"], e1["cpu_s"]), (en["seconds"], en["cpu_s"])
        ex = ExchangeProcess(base / "scale")
        ex.start()
        signers = ex.enrol({"pub0": [GROUP], "pub1": [GROUP], "reader": [GROUP]}, [(GROUP, "amber")])
        state = base / "reader.db"
        rows: list[dict[str, Any]] = []
        try:
            for step, size in enumerate(sizes):
                publish_rate = (grow_direct if args.direct else grow)(ex, signers, size, args.batch, f"s{step}")
                sync_rate, sync_cpu_rate, synced = sync_step(ex, signers["reader"], state)
                assert ex.stop() == 0
                cpu_sealed = startup_cpu(ex, full=False)
                cpu_full = startup_cpu(ex, full=True)
                restart = timed_start(ex)
                ex.stop()
                full = FullVerifyExchange(ex.directory)
                full.log_key = ex.log_key
                restart_full = timed_start(full)
                full.stop()
                ex.start()
                ex.kill9()
                restart_crash = timed_start(ex)
                head = _head(ex)
                ex.stop()
                one = audit(ex, 1, fixed_1w)
                many = audit(ex, args.workers, fixed_nw)
                ex.start()
                row = {
                    "entries": head,
                    "publish_per_s": round(publish_rate),
                    "restart_s": round(restart, 3),
                    "restart_full_verify_s": round(restart_full, 3),
                    "restart_after_crash_s": round(restart_crash, 3),
                    "startup_checks_cpu_s": round(cpu_sealed, 4),
                    "startup_checks_full_cpu_s": round(cpu_full, 4),
                    "sync_step_per_s": round(sync_rate),
                    "sync_step_per_cpu_s": round(sync_cpu_rate),
                    "sync_step_per_cpu_s_vs_raw": round(sync_cpu_rate / raw, 3),
                    "sync_step_per_s_vs_raw": round(sync_rate / raw, 3),
                    "state_bytes_per_entry": round(state.stat().st_size / max(synced, 1), 1),
                    "audit_1w_per_s": round(one["entries_per_s"]),
                    "audit_1w_per_cpu_s_vs_raw": round(one["entries_per_cpu_s"] / raw, 3),
                    f"audit_{args.workers}w_per_s": round(many["entries_per_s"]),
                    f"audit_{args.workers}w_per_cpu_s_vs_raw": round(many["entries_per_cpu_s"] / raw, 3),
                    "audit_1w_peak_rss_mib": round(one["peak_rss_mib"], 1),
                    f"audit_{args.workers}w_peak_rss_mib": round(many["peak_rss_mib"], 1),
                    "checkpoints": _checkpoints(ex),
                }
                emit(rows, row, ex)
        finally:
            if ex.alive():
                ex.stop()
    laws = laws_of(rows, ("restart_s", "restart_full_verify_s", "restart_after_crash_s", "startup_checks_cpu_s",
                          "startup_checks_full_cpu_s", "sync_step_per_s", "sync_step_per_cpu_s",
                          "state_bytes_per_entry", "audit_1w_per_s", "audit_1w_per_cpu_s_vs_raw",
                          "audit_1w_peak_rss_mib", f"audit_{args.workers}w_peak_rss_mib", "checkpoints"), args.project)
    result = {
        "machine": machine(),
        "baseline": {"raw_ed25519_verify_per_cpu_s": round(raw), "empty_exchange_start_s": round(empty_start, 3),
                     "empty_audit_1w_s": round(fixed_1w[0], 3), f"empty_audit_{args.workers}w_s": round(fixed_nw[0], 3)},
        "project": args.project,
        "rows": rows,
        "growth_laws": laws,
    }
    print(json.dumps({"baseline": result["baseline"], "project": args.project, "growth_laws": laws}, indent=2))
    save("scale", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
