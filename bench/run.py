"""The benchmark harness: one command, a table of ratios against baselines taken in the same run.

    python bench/run.py                 # quick: ~5 minutes on 2 cores
    python bench/run.py --catchup 1000000 --full
    python bench/run.py --only publish,latency   # some parts only (see --help)

Baseline: raw Ed25519 verifications per second (libsodium via PyNaCl) on one core,
and on two threads, measured first. Every path is reported as entries/s and as a
ratio to the one-core baseline (targets from issue 8):

- publish    PublishBatch → verify → ledger ack on one exchange *process*
             (`trustwire serve`), 1 verification worker vs 2         target ≥ 0.6, 2w/1w ≥ 1.7
             (1 worker: one verification process beside the exchange's own)
- consume    Subscribe → verify (signature, key, batch inclusion, checkpoint
             consistency) → bank → queue, a fresh member's sync       target ≥ 0.6
- catch-up   the same over --catchup entries                         target ≥ 0.6 (issue 18; 0.5 in issue 8)
- latency    --latency-rate entries/s (5k) for --latency-seconds, signed beforehand:
             publish → delivered to a following, verifying subscriber in a process of its
             own (--latency-follower; p50/p99, target
             p99 ≤ 50 ms on the embedded engine), on an exchange signing checkpoints every
             --latency-checkpoint-ms (20; the default 1 s is the delivery floor), split at the
             receipt: send → receipt (the publish call) and receipt → follower (the exchange's
             commit → checkpoint → stream, and the follower's checks); publish → matchable in a member's
             bank at 1k/s (bench_bank.py, target p99 ≤ 1 s)
- streams    1,000 concurrent follow-mode Subscribe streams from 100 members on one exchange
             process (bench/streams.py): p99 publish→delivery against a single stream's
             p99 measured in the same run, and the exchange's RSS per open stream
- engines    SQLite vs Kafka on the real broker (bench_engines.py)
- audit log  tree appends/s and proofs/s (bench_audit.py)

Absolute numbers and the machine are printed too; everything is written as JSON to
bench/results/run-<time>.json so runs can be compared over time. Not a test: it
asserts nothing, and the machine is shared, so read ratios, not seconds.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import multiprocessing.process
import os
import platform
import queue
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import nacl.bindings
import nacl.signing
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from clients.member import MemberClient  # noqa: E402
from clients.operator import OperatorClient  # noqa: E402
from exchange.core.errors import TrustwireError  # noqa: E402
from exchange.core.keys import Signer  # noqa: E402
from exchange.core.records import Receipt  # noqa: E402

RESULTS = ROOT / "bench" / "results"
PARTS = ("publish", "consume", "latency", "catchup", "streams", "subbenches")
GROUP = "everyone"


def verify_cpu_rate(count: int = 20_000) -> float:
    """Raw Ed25519 verifications per CPU second of this thread (robust to a busy machine)."""
    key = nacl.signing.SigningKey(b"\x01" * 32)
    message = b"x" * 300
    signed = key.sign(message).signature + message
    public = bytes(key.verify_key)
    start = time.thread_time()
    for _ in range(count):
        nacl.bindings.crypto_sign_open(signed, public)
    return count / (time.thread_time() - start)


def verify_rate(seconds: float = 2.0, threads: int = 1) -> float:
    """Raw Ed25519 verifications/s of a 300-byte message."""
    key = nacl.signing.SigningKey(b"\x01" * 32)
    message = b"x" * 300
    signed = key.sign(message).signature + message
    public = bytes(key.verify_key)

    def loop(deadline: float) -> int:
        n = 0
        while time.perf_counter() < deadline:
            for _ in range(200):
                nacl.bindings.crypto_sign_open(signed, public)
            n += 200
        return n

    deadline = time.perf_counter() + seconds
    with ThreadPoolExecutor(threads) as pool:
        total = sum(pool.map(loop, [deadline] * threads))
    return total / seconds


class Exchange:
    """`trustwire serve` in its own process, with a small task force enrolled."""

    def __init__(self, workdir: Path, verify_workers: int, checkpoint_interval_ms: int = 1000,
                 root: Path = ROOT) -> None:
        """``root``: the source tree the exchange runs from (A/B runs against another checkout)."""
        self.operator = Signer.from_seed(b"\x0a" * 32)
        self.members = {name: Signer.from_seed(bytes([i + 20]) * 32) for i, name in enumerate(("pub", "sub", "lat"))}
        workdir.mkdir(parents=True, exist_ok=True)
        log_key = workdir / "log.key"
        log_key.write_text(Signer.from_seed(b"\x0b" * 32).seed.hex())
        env = {**os.environ, "TRUSTWIRE_VERIFY_WORKERS": str(verify_workers), "TRUSTWIRE_METRICS_LISTEN": "off",
               "TRUSTWIRE_PUBLISH_RATE": "1000000", "TRUSTWIRE_PUBLISH_BURST": "10000000"}
        if checkpoint_interval_ms != 1000:  # (set only when changed: older trees lack the setting)
            env["TRUSTWIRE_CHECKPOINT_INTERVAL_MS"] = str(checkpoint_interval_ms)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "exchange.program", "serve", "--listen", "127.0.0.1:0",
             "--ledger-path", str(workdir / "ledger.db"), "--operator-public-key", self.operator.public_key.hex(),
             "--log-key-file", str(log_key), "--name", "bench.trustwire.invalid/log"],
            stdout=subprocess.PIPE, text=True, env={**env, "PYTHONPATH": str(root)}, cwd=root,
        )
        assert self.proc.stdout is not None
        port = re.search(r"port (\d+)", self.proc.stdout.readline())
        if port is None:
            raise SystemExit("the exchange did not start")
        self.target = f"127.0.0.1:{port.group(1)}"
        self.log_key = self.proc.stdout.readline().split("log verifier key: ")[1].strip()
        op = OperatorClient(self.target, self.operator, origin="bench.trustwire.invalid/log")
        events = [op.create_group(GROUP, "Everyone", "amber")]
        for name, signer in self.members.items():
            events += [op.enrol(name, name, [GROUP]), op.add_key(name, signer.public_key, 1_700_000_000_000)]
        outcomes = op.publish(events)
        op.close()
        if not all(isinstance(o, Receipt) for o in outcomes):
            raise SystemExit(f"enrolment failed: {outcomes}")
        self.workdir = workdir

    def cpu_s(self) -> float:
        """CPU seconds the exchange process and its verification workers used so far."""
        proc = psutil.Process(self.proc.pid)
        times = [proc.cpu_times()] + [c.cpu_times() for c in proc.children(recursive=True)]
        return float(sum(t.user + t.system for t in times))

    def cpu_split_s(self) -> tuple[float, float]:
        """CPU seconds so far of the exchange process itself, and of its verification workers."""
        proc = psutil.Process(self.proc.pid)
        own = proc.cpu_times()
        kids = [c.cpu_times() for c in proc.children(recursive=True)]
        return own.user + own.system, sum(t.user + t.system for t in kids)

    def follower_spec(self) -> FollowerSpec:
        """How the latency probe's follower (member "sub") connects from its own process."""
        return self.target, "sub", self.members["sub"].seed, self.operator.public_key, self.log_key

    def client(self, name: str, state: Path | None = None) -> MemberClient:
        return MemberClient(self.target, member_id=name, signer=self.members[name],
                            operator_key=self.operator.public_key, log_key=self.log_key, state=state)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def signed(client: MemberClient, count: int, prefix: str) -> list[bytes]:
    return [client.sign(client.signal("md5", f"{i:032x}", groups=[GROUP], signal_id=f"{prefix}{i}",
                                      created_at_ms=1_800_000_000_000)) for i in range(count)]


def publish_rate(ex: Exchange, envelopes: list[bytes], callers: int = 2, batch: int = 500,
                 cpu: dict[str, float] | None = None, profile: Path | None = None) -> float:
    """Entries/s published; ``cpu`` (if given) gets the exchange's CPU µs per entry (in
    all, and its own process and its verification workers apart); ``profile``: a py-spy
    raw profile of the exchange and its workers over the timed part, written there."""
    clients = [ex.client("pub") for _ in range(callers)]
    chunks = [envelopes[i : i + batch] for i in range(0, len(envelopes), batch)]
    clients[0].publish_envelopes(chunks.pop(0))  # warm-up (workers start, connections open)
    sent = sum(len(c) for c in chunks)
    lock = threading.Lock()

    def worker(client: MemberClient) -> None:
        while True:
            with lock:
                if not chunks:
                    return
                chunk = chunks.pop(0)
            outcomes = client.publish_envelopes(chunk, batch_size=batch)
            if not all(isinstance(o, Receipt) for o in outcomes):
                raise SystemExit("publish refused entries")

    spy = None
    if profile is not None:
        profile.parent.mkdir(parents=True, exist_ok=True)
        spy = subprocess.Popen(
            [str(Path(sys.executable).parent / "py-spy"), "record", "-p", str(ex.proc.pid), "--subprocesses",
             "--nonblocking", "-f", "raw", "-o", str(profile), "-r", "200"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
    start, cpu_start, split_start = time.perf_counter(), ex.cpu_s(), ex.cpu_split_s()
    with ThreadPoolExecutor(callers) as pool:
        list(pool.map(worker, clients))
    rate = sent / (time.perf_counter() - start)
    if cpu is not None:
        split = ex.cpu_split_s()
        cpu["us_per_entry"] = (ex.cpu_s() - cpu_start) / sent * 1e6
        cpu["server_us"] = (split[0] - split_start[0]) / sent * 1e6
        cpu["workers_us"] = (split[1] - split_start[1]) / sent * 1e6
    if spy is not None:
        spy.send_signal(2)
        spy.wait(timeout=60)
    for c in clients:
        c.close()
    return rate


def consume_rate(ex: Exchange, state: Path) -> tuple[float, int]:
    member = ex.client("sub", state=state)
    start = time.perf_counter()
    report = member.sync()
    rate = report.verified / (time.perf_counter() - start)
    member.close()
    return rate, report.verified


FollowerSpec = tuple[str, str, bytes, bytes, str]
"""What a follower process needs to connect: (target, member id, key seed, operator
public key, log verifier key); every probed exchange gives one (``follower_spec()``)."""


def _follow(spec: FollowerSpec, head: int, total: int, out: Any, ready: Any) -> None:
    """The following member (in its own process unless asked otherwise): each entry's
    arrival time (``time.perf_counter``, CLOCK_MONOTONIC: comparable across processes),
    sent back a page at a time until ``total`` arrived or the stream ends."""
    if threading.current_thread() is threading.main_thread():  # its own process: a terminate closes the client
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    target, member_id, seed, operator_key, log_key = spec
    client = MemberClient(target, member_id=member_id, signer=Signer.from_seed(seed), operator_key=operator_key,
                          log_key=log_key)
    got: list[tuple[str, float]] = []
    seen = 0
    client.exchange.verify_pool.wait_started(120)  # a long-running member's workers are up (their start
    # is a second of CPU on the machine the exchange runs on)
    try:
        stream = client.subscribe(from_index=head, follow=True)
        ready.set()
        for v in stream:
            got.append((v.entry.signal_id, time.perf_counter()))  # type: ignore[union-attr]
            seen += 1
            if len(got) >= 100 or seen >= total:
                out.put(got)
                got = []
            if seen >= total:
                break
    except TrustwireError as exc:  # reported: the run's `delivered` then falls short
        print(f"the follower's stream ended: {exc!r}", file=sys.stderr)
    finally:
        out.put(got)
        out.put(None)
        client.close()


class _Follower:
    """The verifying subscriber of :func:`delivery_latency`: by default a process of its
    own, as a member's would be (in the bench's process it shares one GIL with the
    publishing callers, and the bench then times itself); ``in_process``: a thread."""

    def __init__(self, ex: Exchange, head: int, total: int, in_process: bool) -> None:
        args = (ex.follower_spec(), head, total)
        if in_process:
            self._out: Any = queue.Queue()
            self._ready: Any = threading.Event()
            self._runner: Any = threading.Thread(target=_follow, args=(*args, self._out, self._ready), daemon=True)
        else:
            ctx = multiprocessing.get_context("spawn")
            self._out, self._ready = ctx.Queue(), ctx.Event()
            # not a daemon: a big page goes to the member's own verification processes
            self._runner = ctx.Process(target=_follow, args=(*args, self._out, self._ready))
        self._runner.start()
        if not self._ready.wait(60):
            raise SystemExit("the follower did not start")

    def collect(self, timeout: float) -> dict[str, float]:
        """Arrival times of what arrived, waiting up to ``timeout`` s for the rest."""
        got: dict[str, float] = {}
        deadline = time.perf_counter() + timeout
        while (left := deadline - time.perf_counter()) > 0:
            try:
                part = self._out.get(timeout=left)
            except queue.Empty:
                break
            if part is None:
                break
            got.update(part)
        self._runner.join(timeout=10)  # it closes its client (and its verification processes) itself
        if isinstance(self._runner, multiprocessing.process.BaseProcess) and self._runner.is_alive():
            self._runner.terminate()  # a follower still waiting for entries that never came
            self._runner.join(timeout=5)
        return got


def delivery_latency(ex: Exchange, seconds: float, rate: int = 5000, callers: int = 4,
                     follower_in_process: bool = False) -> dict[str, float]:
    """Publish ``rate`` entries/s in batches of 1/100 s (signed beforehand, so the run
    times the exchange, not the publisher's signing), up to ``callers`` calls at once;
    time each entry from its scheduled send (or later, when every caller was busy) to its
    arrival at a following, verifying subscriber (its own process unless
    ``follower_in_process``)."""
    sent: dict[str, float] = {}
    acked: dict[str, float] = {}  # when the publish call that carried it returned its receipt
    got: dict[str, float] = {}
    publisher = ex.client("lat")
    head = consume_rate_head(ex)
    batch = max(10, rate // 100)
    total = int(seconds * rate) // batch * batch
    ids = [f"lat{i}" for i in range(total)]
    envs = [publisher.sign(publisher.signal("md5", f"{i:032x}", groups=[GROUP], signal_id=s)) for i, s in enumerate(ids)]
    follower = _Follower(ex, head, total, in_process=follower_in_process)
    senders = [ex.client("lat") for _ in range(callers)]  # calls overlap, as many publishers' would
    free: queue.Queue[MemberClient] = queue.Queue()
    for c in senders:
        free.put(c)

    def send(chunk: list[bytes], chunk_ids: list[str], client: MemberClient) -> None:
        try:
            client.publish_envelopes(chunk)
            acked.update(dict.fromkeys(chunk_ids, time.perf_counter()))
        finally:
            free.put(client)

    start = time.perf_counter()
    with ThreadPoolExecutor(callers) as pool:
        for n in range(0, total, batch):
            time.sleep(max(0.0, start + n / rate - time.perf_counter()))
            client = free.get()  # at most `callers` calls in flight; later batches wait (and count the wait)
            t = start + n / rate  # the scheduled send: falling behind the rate shows as latency
            for s in ids[n : n + batch]:
                sent[s] = t
            pool.submit(send, envs[n : n + batch], ids[n : n + batch], client)
    published_s = time.perf_counter() - start
    got.update(follower.collect(timeout=30))
    publisher.close()
    for c in senders:
        c.close()
    delays = sorted((got[s] - t) * 1000 for s, t in sent.items() if s in got)
    to_receipt = sorted((acked[s] - t) * 1000 for s, t in sent.items() if s in acked)
    to_follower = sorted((got[s] - acked[s]) * 1000 for s in got if s in acked)
    return {
        "rate": rate, "achieved_rate": round(len(sent) / published_s) if sent else 0,
        "entries": len(sent), "delivered": len(delays),
        "p50_ms": round(statistics.median(delays), 1),
        "receipt_p50_ms": _quantile(to_receipt, 0.5), "receipt_p99_ms": _quantile(to_receipt, 0.99),
        "receipt_to_follower_p50_ms": _quantile(to_follower, 0.5),
        "receipt_to_follower_p99_ms": _quantile(to_follower, 0.99),
        "p99_ms": round(delays[int(0.99 * (len(delays) - 1))], 1),
    }


def _quantile(sorted_ms: list[float], q: float) -> float:
    return round(sorted_ms[int(q * (len(sorted_ms) - 1))], 1) if sorted_ms else float("nan")


def consume_rate_head(ex: Exchange) -> int:
    c = ex.client("sub")
    head = max((v.index for v in c.subscribe(follow=False)), default=0) + 1
    c.close()
    return head


def sub_bench(script: str, *args: str) -> dict[str, Any] | None:
    """Run another bench script and return the JSON it just wrote (None if it failed)."""
    before = set(RESULTS.glob("*.json"))
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / script), *args], cwd=ROOT, capture_output=True, text=True)
    new = sorted(set(RESULTS.glob("*.json")) - before)
    if proc.returncode != 0 or not new:
        print(f"  {script} failed: {proc.stderr.strip().splitlines()[-1:] if proc.stderr else proc.returncode}")
        return None
    return dict(json.loads(new[-1].read_text()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=40_000, help="publish/consume workload")
    parser.add_argument("--catchup", type=int, default=100_000, help="entries a new member syncs (1000000 documented)")
    parser.add_argument("--latency-seconds", type=float, default=15.0)
    parser.add_argument("--full", action="store_true", help="also run the engine, bank and audit benches at full size")
    parser.add_argument("--skip-subbenches", action="store_true")
    parser.add_argument("--stream-members", type=int, default=100, help="members each holding 10 follow-mode streams")
    parser.add_argument("--only", default=",".join(PARTS),
                        help=f"comma-separated parts to run, of {', '.join(PARTS)} (default: all)")
    parser.add_argument("--latency-rate", type=int, default=5000, help="entries/s of the publish → subscriber run")
    parser.add_argument("--latency-follower", choices=("process", "thread"), default="process",
                        help="where the latency run's subscriber runs: its own process (as a member's would), or a"
                             " thread of the bench's process beside the publishing callers (one GIL for both)")
    parser.add_argument("--latency-checkpoint-ms", type=int, default=20,
                        help="the latency exchange's checkpoint_interval_ms (followers wait for a signed checkpoint)")
    args = parser.parse_args()
    parts = set(args.only.split(","))
    if parts - set(PARTS):
        parser.error(f"unknown parts: {', '.join(sorted(parts - set(PARTS)))}")
    RESULTS.mkdir(parents=True, exist_ok=True)

    raw1, raw2, raw_cpu = verify_rate(threads=1), verify_rate(threads=2), verify_cpu_rate()
    result: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "baseline": {"ed25519_verify_per_s_1_core": round(raw1), "ed25519_verify_per_s_2_threads": round(raw2),
                     "ed25519_verify_per_cpu_s": round(raw_cpu)},
    }
    with tempfile.TemporaryDirectory() as tmp:
        rates: dict[int, float] = {}
        cpus: dict[int, dict[str, float]] = {}
        for workers in (1, 2) if parts & {"publish", "consume"} else ():
            ex = Exchange(Path(tmp) / f"w{workers}", workers)
            try:
                if "publish" in parts or workers == 2:  # consume reads what the 2-worker run published
                    cpus[workers] = {}
                    rates[workers] = publish_rate(ex, signed(ex.client("pub"), args.entries, f"w{workers}-"),
                                                  cpu=cpus[workers])
                if workers == 2 and "consume" in parts:
                    consume, n = consume_rate(ex, Path(tmp) / "consume.db")
                    result["consume"] = {"entries": n, "per_s": round(consume), "ratio": round(consume / raw1, 3)}
            finally:
                ex.stop()
        if "latency" in parts:
            ex = Exchange(Path(tmp) / "latency", 2, checkpoint_interval_ms=args.latency_checkpoint_ms)
            try:
                result["latency_delivery"] = {
                    **delivery_latency(ex, args.latency_seconds, args.latency_rate,
                                       follower_in_process=args.latency_follower == "thread"),
                    "checkpoint_interval_ms": args.latency_checkpoint_ms, "follower": args.latency_follower,
                }
            finally:
                ex.stop()
        if "publish" in parts:
            result["publish"] = {
                "per_s_1_worker": round(rates[1]), "per_s_2_workers": round(rates[2]),
                "ratio_1_worker": round(rates[1] / raw1, 3), "ratio_2_workers": round(rates[2] / raw1, 3),
                "parallel_speedup": round(rates[2] / rates[1], 2),
                # contention-proof: raw verify CPU per entry / the exchange's CPU per entry
                "cpu_us_per_entry_1_worker": round(cpus[1]["us_per_entry"], 1),
                "cpu_us_per_entry_2_workers": round(cpus[2]["us_per_entry"], 1),
                "cpu_ratio_1_worker": round(1e6 / raw_cpu / cpus[1]["us_per_entry"], 3),
                "cpu_ratio_2_workers": round(1e6 / raw_cpu / cpus[2]["us_per_entry"], 3),
                # the exchange's process and its one worker apart (they overlap on two cores): raw verify
                # CPU per entry / the larger of the two, the ratio with the two fully overlapped
                "server_us_per_entry_1_worker": round(cpus[1]["server_us"], 1),
                "worker_us_per_entry_1_worker": round(cpus[1]["workers_us"], 1),
                "cpu_ceiling_1_worker": round(1e6 / raw_cpu / max(cpus[1]["server_us"], cpus[1]["workers_us"]), 3),
            }
        if "catchup" in parts:
            ex = Exchange(Path(tmp) / "catchup", 2)
            try:
                publish_rate(ex, signed(ex.client("pub"), args.catchup, "c-"))
                catchup, n = consume_rate(ex, Path(tmp) / "catchup.db")
                result["catchup"] = {"entries": n, "per_s": round(catchup), "ratio": round(catchup / raw1, 3)}
            finally:
                ex.stop()
        if "streams" in parts:
            from bench.streams import measure

            result["streams"] = measure(Path(tmp) / "streams", members=args.stream_members)
    if "subbenches" in parts and not args.skip_subbenches:
        quick = [] if args.full else ["--entries", "10000", "--repeat", "1", "--failover-rounds", "1"]
        result["latency_matchable"] = sub_bench("bench_bank.py", "--rate", "1000", "--seconds", str(args.latency_seconds))
        result["engines"] = sub_bench("bench_engines.py", *quick)
        result["audit"] = sub_bench("bench_audit.py", *([] if args.full else ["--entries", "1000000"]))

    result["load_average"] = os.getloadavg()
    print(f"machine: {os.cpu_count()} cpus, load average {result['load_average'][0]:.2f}; baseline Ed25519 verify/s:"
          f" {raw1:,.0f} (1 core), {raw2:,.0f} (2 threads), {raw_cpu:,.0f} per CPU second"
          f" ({1e6 / raw_cpu:.0f} µs; the (cpu) rows' ratio is this over the exchange's CPU per entry)")
    rows = []
    if "publish" in result:
        pub = result["publish"]
        rows += [
            ("publish, 1 verification worker", pub["per_s_1_worker"], pub["ratio_1_worker"], "≥ 0.6"),
            ("publish, 2 verification workers", pub["per_s_2_workers"], pub["ratio_2_workers"], "≥ 0.6"),
            ("  2 workers / 1 worker", "", pub["parallel_speedup"], "≥ 1.7"),
            ("  exchange CPU µs/entry, 1 worker", pub["cpu_us_per_entry_1_worker"], pub["cpu_ratio_1_worker"], "(cpu)"),
            ("  exchange CPU µs/entry, 2 workers", pub["cpu_us_per_entry_2_workers"], pub["cpu_ratio_2_workers"], "(cpu)"),
            ("  1 worker: exchange / worker µs, ceiling",
             f"{pub['server_us_per_entry_1_worker']}/{pub['worker_us_per_entry_1_worker']}",
             pub["cpu_ceiling_1_worker"], "≥ 0.6 (cpu)"),
        ]
    if "consume" in result:
        rows.append(("consume (sync into bank + queue)", result["consume"]["per_s"], result["consume"]["ratio"], "≥ 0.6"))
    if "catchup" in result:
        cu = result["catchup"]
        rows.append((f"catch-up of {cu['entries']:,}", cu["per_s"], cu["ratio"], "≥ 0.6"))
    print(f"{'path':<36} {'entries/s':>10} {'ratio':>7}  target")
    for name, per_s, ratio, target in rows:
        print(f"{name:<36} {per_s!s:>10} {ratio!s:>7}  {target}")
    lat = result.get("latency_delivery")
    if lat:
        print(f"publish → subscriber at {lat['rate']:,}/s (achieved {lat['achieved_rate']:,}/s, checkpoint every"
              f" {lat['checkpoint_interval_ms']} ms): p50 {lat['p50_ms']} ms, p99 {lat['p99_ms']} ms"
              f" ({lat['delivered']}/{lat['entries']} delivered; target p99 ≤ 50 ms at 5k/s)")
        print(f"  split at the receipt: send → receipt p50 {lat['receipt_p50_ms']} / p99 {lat['receipt_p99_ms']} ms,"
              f" receipt → follower p50 {lat['receipt_to_follower_p50_ms']} / p99"
              f" {lat['receipt_to_follower_p99_ms']} ms")
    st = result.get("streams")
    if st:
        print(f"{st['open_streams']} follow streams from {st['members']} members: publish → all delivered p99"
              f" {st['p99_ms']:.0f} ms = {st['p99_ratio']:.2f} × one stream's p99 ({st['baseline_p99_ms']:.0f} ms);"
              f" RSS {st['rss_per_stream_kib']:.0f} KiB per stream")
    bank = result.get("latency_matchable")
    if bank:
        print(f"publish → matchable in bank: {json.dumps({k: v for k, v in bank.items() if 'p' in k and 'ms' in k})}")
    out = RESULTS / f"run-{int(time.time())}.json"
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
