"""CPU per entry of the Kafka engine's sequencer and of a replica's view, and the
cluster ceiling that follows; the embedded SQLite engine's append in the same run is
the baseline.

- sequencer: one KafkaLedger (tansu on 127.0.0.1, or TRUSTWIRE_KAFKA_BOOTSTRAP);
  P threads append pre-signed signals in batches of B (several batches in flight);
  the sequencing thread's CPU (``time.thread_time`` around each round) per entry.
- view: a second replica with an empty view catches up with the whole topic; its
  tailing thread's CPU per entry, and the whole process's CPU per entry over the
  catch-up (librdkafka's fetch threads included).
- baseline: SqliteLedger.append of the same submissions, whole-process CPU per entry.

One partition carries at most 1e6 / max(sequencer µs, view µs) entries/s: every
entry passes the sequencer once and each replica's view once.

With ``--cluster N`` it also publishes the same pre-signed workload through N real
``trustwire serve --engine kafka`` processes (members spread over them) and through
one ``trustwire serve`` on the embedded engine, in the same run: entries/s of each
and the ratio.

With ``--latency-rate R`` it also times publish → verified delivery to a follower
(bench/run.py's probe) at R entries/s: one embedded exchange, then two Kafka replicas
(publish on one, follow on the other), checkpoints every ``--latency-checkpoint-ms``.

    python bench/bench_kafka_cpu.py [--entries 6000] [--batch 250] [--threads 4] [--cluster 3] [--latency-rate 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.bench_engines import run_threads  # noqa: E402
from exchange.core.records import Receipt  # noqa: E402
from exchange.server.kafka import KafkaLedger, KafkaSettings  # noqa: E402
from exchange.server.ledger import SqliteLedger, Submission  # noqa: E402
from tests.kafka.broker import session_broker  # noqa: E402
from tests.conftest import GROUP_ALL, MEMBERS  # noqa: E402
from tests.kafka.cluster import Cluster, member_signer, wait_for  # noqa: E402
from tests.ledger_contract import G1, as_admitted, signal, task_force  # noqa: E402


def submissions(n: int) -> list[Submission]:
    """Pre-signed signals as admission hands them to the ledger (decoded, key id named)."""
    return [as_admitted(signal("alice", f"cpu-{i}", [G1], value=f"{i:032x}")) for i in range(n)]


def settings(bootstrap: str, prefix: str, view: Path) -> KafkaSettings:
    return KafkaSettings(bootstrap=bootstrap, topic_prefix=prefix, view_path=view, allow_unreplicated=True,
                         publish_deadline_s=60.0)


def drive(append: Any, batches: list[list[Submission]], threads: int) -> None:
    """Append every batch, ``threads`` at a time; every outcome must be a receipt."""
    todo = list(batches)
    lock = threading.Lock()
    bad: list[object] = []

    def worker() -> None:
        while True:
            with lock:
                if not todo:
                    return
                batch = todo.pop(0)
            bad.extend(o for o in append(batch) if not isinstance(o, Receipt))

    run_threads([threading.Thread(target=worker) for _ in range(threads)])
    if bad:
        raise RuntimeError(f"{len(bad)} appends failed: {bad[:3]}")


def publish_through(
    cluster: Cluster, targets: list[str], entries: int, batch: int, threads: int
) -> tuple[float, int]:
    """Entries/s of pre-signed signals published by every member over ``targets``, and
    how many were published."""
    names = list(MEMBERS)
    work: list[tuple[str, list[bytes]]] = []
    per = entries // (len(names) * threads)
    for n, name in enumerate(names):
        signer = cluster.member(name, targets[0])
        try:
            for t in range(threads):
                envs = [signer.sign(signer.signal("md5", f"{n:04x}{t:04x}{i:024x}", groups=[GROUP_ALL],
                                                  signal_id=f"c-{name}-{t}-{i}")) for i in range(per)]
                work.append((name, envs))
        finally:
            signer.close()
    errors: list[object] = []

    def run(k: int, name: str, envs: list[bytes]) -> None:
        client = cluster.member(name, targets[k % len(targets)])
        try:
            for i in range(0, len(envs), batch):
                errors.extend(o for o in client.publish_envelopes(envs[i:i + batch]) if not isinstance(o, Receipt))
        finally:
            client.close()

    wall = run_threads([threading.Thread(target=run, args=(k, name, envs)) for k, (name, envs) in enumerate(work)])
    if errors:
        raise RuntimeError(f"{len(errors)} publishes failed: {errors[:3]}")
    total = sum(len(e) for _, e in work)
    return total / wall, total


def _cpu_s(pid: int) -> float:
    """CPU seconds of a serve process and its children (verification workers)."""
    import psutil

    proc = psutil.Process(pid)
    times = [proc.cpu_times(), *(c.cpu_times() for c in proc.children(recursive=True))]
    return float(sum(t.user + t.system for t in times))


def _cpu_per_entry(cluster: Cluster, publish: Any) -> tuple[float, list[float]]:
    """Run ``publish`` (→ entries/s, entries) and return the rate and each serve process's
    CPU µs per published entry over it."""
    pids = [x.proc.pid for x in cluster.exchanges]
    before = [_cpu_s(p) for p in pids]
    rate, entries = publish()
    return rate, [(_cpu_s(p) - b) / entries * 1e6 for p, b in zip(pids, before, strict=True)]


def clusters(bootstrap: str, tmp: Path, replicas: int, args: argparse.Namespace) -> dict[str, Any]:
    """The same workload through one embedded exchange and through ``replicas`` Kafka replicas."""
    out: dict[str, Any] = {}
    embedded = Cluster(bootstrap=bootstrap, prefix="unused", workdir=tmp / "embedded")
    try:
        solo = embedded.start("solo", engine="sqlite")
        embedded.enrol(solo.target)
        out["embedded_serve_per_s"], out["embedded_cpu_us_per_entry"] = _cpu_per_entry(
            embedded, lambda: publish_through(embedded, [solo.target], args.entries, args.batch, args.threads))
    finally:
        embedded.stop()
    kafka = Cluster(bootstrap=bootstrap, prefix=f"bench-cl-{uuid.uuid4().hex[:8]}", workdir=tmp / "kafka",
                    publish_deadline_s=60.0)
    try:
        started = [kafka.start(f"r{i}") for i in range(replicas)]
        kafka.enrol(started[0].target)
        out[f"kafka_{replicas}_replicas_per_s"], out[f"kafka_{replicas}_cpu_us_per_entry"] = _cpu_per_entry(
            kafka, lambda: publish_through(kafka, [x.target for x in started], args.entries, args.batch, args.threads))
    finally:
        kafka.stop()
    out[f"kafka_{replicas}_over_embedded"] = out[f"kafka_{replicas}_replicas_per_s"] / out["embedded_serve_per_s"]
    return out


class _Replicas:
    """bench/run.py's latency probe on a cluster: it publishes as alice through one
    exchange and follows as bob through another (the same one on the embedded engine)."""

    def __init__(self, cluster: Cluster, publish_to: str, follow_on: str) -> None:
        self._cluster, self._publish_to, self._follow_on = cluster, publish_to, follow_on

    def client(self, role: str) -> Any:
        if role == "sub":
            return self._cluster.member("bob", self._follow_on)
        return self._cluster.member("alice", self._publish_to)

    def follower_spec(self) -> tuple[str, str, bytes, bytes, str]:
        """The follower (bob, on ``follow_on``) as the probe starts it in its own process."""
        c = self._cluster
        return self._follow_on, "bob", member_signer("bob").seed, c.operator.public_key, c.log_vkey or c.vkey()


def latencies(bootstrap: str, tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    """publish → verified delivery at ``--latency-rate`` on the embedded engine and on two
    Kafka replicas (publish on one, follow on the other), same run, same probe."""
    import bench.run as probe

    probe.GROUP = GROUP_ALL  # the cluster's task force shares this group
    os.environ["TRUSTWIRE_CHECKPOINT_INTERVAL_MS"] = str(args.latency_checkpoint_ms)
    out: dict[str, Any] = {}
    embedded = Cluster(bootstrap=bootstrap, prefix="unused", workdir=tmp / "lat-embedded")
    try:
        solo = embedded.start("solo", engine="sqlite")
        embedded.enrol(solo.target)
        probe_on: Any = _Replicas(embedded, solo.target, solo.target)  # what delivery_latency uses of an Exchange
        out["latency_embedded"] = probe.delivery_latency(probe_on, args.latency_seconds, args.latency_rate)
    finally:
        embedded.stop()
    kafka = Cluster(bootstrap=bootstrap, prefix=f"bench-lat-{uuid.uuid4().hex[:8]}", workdir=tmp / "lat-kafka",
                    fetch_wait_ms=args.fetch_wait_ms)
    try:
        a, b = kafka.start("a"), kafka.start("b")
        kafka.enrol(a.target)
        wait_for(lambda: a.sequencing() or b.sequencing(), 60, "a sequencer")
        probe_on = _Replicas(kafka, a.target, b.target)
        out["latency_kafka"] = probe.delivery_latency(probe_on, args.latency_seconds, args.latency_rate)
    finally:
        kafka.stop()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=6000)
    parser.add_argument("--batch", type=int, default=250)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--cluster", type=int, default=0, help="also compare N serve replicas with one embedded")
    parser.add_argument("--latency-rate", type=int, default=0,
                        help="also time publish → subscriber at this many entries/s (embedded and Kafka)")
    parser.add_argument("--latency-seconds", type=float, default=10.0)
    parser.add_argument("--latency-checkpoint-ms", type=int, default=20)
    parser.add_argument("--fetch-wait-ms", type=int, default=100,
                        help="the latency replicas' kafka_fetch_wait_ms (a broker that does not answer a waiting"
                             " fetch as data arrives, such as tansu, adds up to this per hop)")
    args = parser.parse_args(argv)
    os.environ.setdefault("TRUSTWIRE_PUBLISH_RATE", "1000000")  # the serve processes: no rate limit in a bench
    os.environ.setdefault("TRUSTWIRE_PUBLISH_BURST", "10000000")
    entries = submissions(args.entries)
    batches = [entries[i:i + args.batch] for i in range(0, len(entries), args.batch)]
    out: dict[str, Any] = {"entries": args.entries, "batch": args.batch, "threads": args.threads,
                           "load_before": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="tw-bench-cpu-") as tmp_s:
        tmp = Path(tmp_s)
        # the baseline: the embedded engine, same submissions, same threads
        sqlite = SqliteLedger(tmp / "embedded.db")
        sqlite.append(task_force())
        c0, t0 = time.process_time(), time.perf_counter()
        drive(sqlite.append, batches, args.threads)
        out["sqlite_append_cpu_us"] = (time.process_time() - c0) / args.entries * 1e6
        out["sqlite_append_per_s"] = args.entries / (time.perf_counter() - t0)
        sqlite.close()

        broker = session_broker(tmp / "tansu.log")
        try:
            prefix = f"bench-cpu-{uuid.uuid4().hex[:8]}"
            a = KafkaLedger(settings(broker.bootstrap, prefix, tmp / "a.db"))
            try:
                a.append(task_force())
                seq0, tail0 = a.sequencer.cpu_s, a.tailer.cpu_s
                t0 = time.perf_counter()
                drive(a.append, batches, args.threads)
                wall = time.perf_counter() - t0
                out["kafka_one_replica_per_s"] = args.entries / wall
                out["sequencer_cpu_us"] = (a.sequencer.cpu_s - seq0) / args.entries * 1e6
                out["sequencer_view_cpu_us"] = (a.tailer.cpu_s - tail0) / args.entries * 1e6
                head = a.head()
                b = KafkaLedger(settings(broker.bootstrap, prefix, tmp / "b.db"))
                try:
                    wait_for(lambda: b.head() == head, 120, "the new view to catch up")
                    out["view_catch_up_cpu_us"] = b.tailer.cpu_s / head * 1e6
                finally:
                    b.close()
                c0 = time.process_time()
                c = KafkaLedger(settings(broker.bootstrap, prefix, tmp / "c.db"))
                try:
                    wait_for(lambda: c.head() == head, 120, "the new view to catch up")
                    out["view_catch_up_process_cpu_us"] = (time.process_time() - c0) / head * 1e6
                finally:
                    c.close()
            finally:
                a.close()
            if args.cluster:
                out.update(clusters(broker.bootstrap, tmp, args.cluster, args))
            if args.latency_rate:
                out.update(latencies(broker.bootstrap, tmp, args))
        finally:
            broker.stop()
    worst = max(out["sequencer_cpu_us"], out["view_catch_up_cpu_us"])
    out["partition_ceiling_entries_per_s"] = 1e6 / worst
    out["sequencer_over_sqlite_cpu"] = out["sequencer_cpu_us"] / out["sqlite_append_cpu_us"]
    out["view_over_sqlite_cpu"] = out["view_catch_up_cpu_us"] / out["sqlite_append_cpu_us"]
    out["load_after"] = os.getloadavg()
    for k, v in out.items():
        print(f"{k:34} {v:.1f}" if isinstance(v, float) else f"{k:34} {v}")  # lists: one per serve process
    results = REPO / "bench" / "results"
    results.mkdir(exist_ok=True)
    (results / f"kafka_cpu_{int(time.time())}.json").write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
