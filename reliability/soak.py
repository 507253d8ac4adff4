"""Soak: an exchange process and N member processes publishing and subscribing at once.

    python -m reliability.soak --seconds 600 --members 10        # documented run
    python -m reliability.soak --seconds 60                       # what CI runs (tests/soak)

The exchange is a ``trustwire serve`` subprocess (SQLite engine) on 127.0.0.1:0. Each
member is its own process: a publisher thread signs batches of md5 signals at
``--rate`` entries/s (most shared with every member, some with the even-numbered
members only) and records every receipt; the main thread runs ``MemberClient.sync``
in follow mode into the member's bank and moderation queue, with a policy that
enqueues every md5 match. Before the run each member pre-hashes a content set (the
md5 values three in four signals will carry), so a banked signal becomes a queue item
exactly when its value is in that set.

When publishing stops, the campaign waits (bounded) until every member has synced to
the final head, then checks, member by member: every acknowledged entry the member is
eligible to see is in its bank exactly once (none missing, none it may not see), every
one whose value is in the content set is in its queue exactly once (one item, one
creation event), and no entry was ingested twice. The exchange's RSS (VmRSS of
/proc/PID/status) is sampled every second; "flat" means the median of the last third
of the samples after warm-up is within ``--rss-tolerance`` of the median of the first
third. Prints a JSON report; exit code 0 when delivery was exact (and RSS flat, unless
``--no-rss-check``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from reliability.harness import ExchangeProcess, insecure_signer, rss_kib  # noqa: E402
from clients.content import ContentStore  # noqa: E402
from exchange.core.signals import ContentHash  # noqa: E402

GROUP_ALL = "soak-all"
GROUP_EVEN = "soak-even"


def member_names(n: int) -> list[str]:
    return [f"m{i:02d}" for i in range(n)]


def groups_of(name: str) -> list[str]:
    return [GROUP_ALL, GROUP_EVEN] if int(name[1:]) % 2 == 0 else [GROUP_ALL]


def value_of(publisher: str, seq: int) -> str:
    return hashlib.md5(f"soak:{publisher}:{seq}".encode()).hexdigest()  # noqa: S324 - sample content hash


def matches_content(seq: int) -> bool:
    """Three signals in four carry a value from the pre-hashed content set."""
    return seq % 4 != 3


def sharing_of(publisher: str, seq: int) -> list[str]:
    """Even members share one signal in five with the even members only."""
    return [GROUP_EVEN] if int(publisher[1:]) % 2 == 0 and seq % 5 == 0 else [GROUP_ALL]


# -- a member process --------------------------------------------------------------------------


def worker(args: argparse.Namespace) -> int:
    from clients.member import MemberClient
    from clients.policy import Action, Policy, Rule
    from exchange.core.errors import QuotaExceeded, TrustwireError, Unavailable
    from exchange.core.records import Receipt

    work = Path(args.dir)
    name = args.name
    signer = insecure_signer(f"campaign-member:{name}")
    policy = Policy(rules=(Rule(name="soak-md5", action=Action.ENQUEUE, types=frozenset({"md5"})),))
    operator = insecure_signer("campaign-operator")
    client = MemberClient(
        args.target, member_id=name, signer=signer, operator_key=operator.public_key, log_key=args.log_key,
        state=work / f"{name}.db", policy=policy,
    )
    store = client.store
    assert store is not None
    # the content this member has already hashed: every value any member may publish that matches
    max_seq = int(args.rate * args.seconds * 2) + 100
    now = int(time.time() * 1000)
    ContentStore(store).put_many(
        (
            (f"content:{p}:{s}", [ContentHash("md5", value_of(p, s)),
                                  ContentHash("sha256", hashlib.sha256(f"{p}:{s}".encode()).hexdigest())])
            for p in member_names(args.members)
            for s in range(max_seq)
            if matches_content(s)
        ),
        now,
    )
    acked_path = work / f"{name}.acked.jsonl"
    publish_errors: dict[str, int] = {}
    done_publishing = threading.Event()

    def publish() -> None:
        seq = 0
        interval = args.batch / args.rate
        deadline = time.monotonic() + args.seconds
        next_at = time.monotonic()
        with acked_path.open("w") as out:
            while time.monotonic() < deadline:
                entries = []
                for _ in range(args.batch):
                    entries.append(
                        client.signal(
                            "md5", value_of(name, seq), groups=sharing_of(name, seq), signal_id=f"{name}-{seq}",
                            labels=["soak"], confidence=80,
                        )
                    )
                    seq += 1
                envelopes = [client.sign(e) for e in entries]
                for attempt in range(30):  # same envelopes again: publishing is idempotent
                    try:
                        outcomes = client.publish_envelopes(envelopes, batch_size=len(envelopes))
                        break
                    except (Unavailable, QuotaExceeded) as exc:
                        publish_errors[exc.reason] = publish_errors.get(exc.reason, 0) + 1
                        time.sleep(min(2.0, 0.1 * (attempt + 1)))
                else:
                    raise RuntimeError("publishing kept failing")
                for entry, outcome in zip(entries, outcomes):
                    if isinstance(outcome, Receipt):
                        out.write(json.dumps({
                            "publisher": name, "signal_id": entry.signal_id, "index": outcome.index,
                            "groups": list(entry.sharing.groups), "value": entry.value,
                        }) + "\n")
                    else:
                        publish_errors[outcome.reason] = publish_errors.get(outcome.reason, 0) + 1
                out.flush()
                next_at += interval
                time.sleep(max(0.0, next_at - time.monotonic()))
        (work / f"{name}.published").write_text(str(seq))
        done_publishing.set()

    publisher = threading.Thread(target=publish, name="publisher", daemon=True)
    publisher.start()
    final_head_file = work / "final_head"
    totals = {"verified": 0, "signals": 0, "queued": 0, "quarantined": 0, "key_events": 0, "sync_calls": 0}
    sync_errors: dict[str, int] = {}
    caught_up_at = None

    def stop() -> bool:
        if not final_head_file.exists():
            return False
        return store.cursor >= int(final_head_file.read_text())

    hard_deadline = time.monotonic() + args.seconds + args.drain_timeout
    while time.monotonic() < hard_deadline:
        try:
            report = client.sync(follow=True, stop=stop)
            totals["sync_calls"] += 1
            for key in ("verified", "signals", "queued", "quarantined", "key_events"):
                totals[key] += getattr(report, key)
        except TrustwireError as exc:
            sync_errors[exc.reason] = sync_errors.get(exc.reason, 0) + 1
            time.sleep(0.5)
            continue
        if stop():
            caught_up_at = time.time()
            break
    publisher.join(timeout=30)
    (work / f"{name}.report.json").write_text(json.dumps({
        "name": name, "totals": totals, "cursor": store.cursor, "publish_errors": publish_errors,
        "sync_errors": sync_errors, "caught_up_at": caught_up_at, "content_rows": max_seq,
    }))
    client.close()
    return 0 if caught_up_at is not None else 1


# -- the campaign ------------------------------------------------------------------------------


def rss_flat(samples: list[tuple[float, int]], warmup_s: float, tolerance: float) -> dict[str, object]:
    after = [kib for t, kib in samples if t >= warmup_s]
    if len(after) < 6:
        return {"flat": None, "reason": "too few samples after warm-up", "samples": len(after)}
    third = len(after) // 3
    first, last = statistics.median(after[:third]), statistics.median(after[-third:])
    growth = (last - first) / first
    return {
        "flat": growth <= tolerance, "first_third_median_kib": first, "last_third_median_kib": last,
        "growth": round(growth, 4), "tolerance": tolerance, "min_kib": min(after), "max_kib": max(after),
        "samples_after_warmup": len(after),
    }


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def check_delivery(work: Path, names: list[str]) -> dict[str, object]:
    acked: list[dict[str, object]] = []
    for name in names:
        path = work / f"{name}.acked.jsonl"
        if path.exists():
            acked.extend(json.loads(line) for line in path.read_text().splitlines() if line)
    by_index = {a["index"]: a for a in acked}
    if len(by_index) != len(acked):
        raise AssertionError("two acknowledged entries share a ledger index")
    problems: list[str] = []
    per_member = {}
    for name in names:
        mine = set(groups_of(name))
        eligible = {
            (a["publisher"], a["signal_id"])
            for a in acked
            if a["publisher"] == name or mine & set(a["groups"])  # type: ignore[arg-type]
        }
        wanted_in_queue = {
            (a["publisher"], a["signal_id"]) for a in acked
            if (a["publisher"], a["signal_id"]) in eligible and matches_content(int(str(a["signal_id"]).rsplit("-", 1)[1]))
        }
        db = sqlite3.connect(work / f"{name}.db")
        try:
            banked = db.execute("SELECT publisher, signal_id FROM signals").fetchall()
            queue = db.execute("SELECT publisher, signal_id, COUNT(*) FROM queue GROUP BY publisher, signal_id").fetchall()
            events = db.execute("SELECT COUNT(*) FROM queue_events").fetchone()[0]
            items = db.execute("SELECT COUNT(*) FROM queue").fetchone()[0]
            quarantined = db.execute("SELECT COUNT(*) FROM quarantine").fetchone()[0]
        finally:
            db.close()
        bank = {(p, s) for p, s in banked}
        queued = {(p, s): n for p, s, n in queue}
        report = json.loads((work / f"{name}.report.json").read_text())
        missing = eligible - bank
        extra = bank - eligible
        dup_queue = {k: n for k, n in queued.items() if n != 1}
        missing_queue = wanted_in_queue - set(queued)
        extra_queue = set(queued) - wanted_in_queue
        ingested_twice = report["totals"]["signals"] - len(eligible)
        for what, bad in (
            ("missing from the bank", missing), ("banked but not eligible", extra), ("queued more than once", dup_queue),
            ("missing from the queue", missing_queue), ("queued without a content match", extra_queue),
        ):
            if bad:
                problems.append(f"{name}: {len(bad)} {what}, e.g. {sorted(bad)[:3]}")
        if ingested_twice != 0:
            problems.append(f"{name}: ingested {report['totals']['signals']} signal entries for {len(eligible)} signals")
        if events != items:
            problems.append(f"{name}: {events} queue events for {items} items (an item was created twice)")
        if quarantined:
            problems.append(f"{name}: {quarantined} entries quarantined")
        per_member[name] = {
            "eligible": len(eligible), "banked": len(bank), "queued": len(queued), "expected_in_queue": len(wanted_in_queue),
            "ingested_signal_entries": report["totals"]["signals"], "sync_calls": report["totals"]["sync_calls"],
            "sync_errors": report["sync_errors"], "publish_errors": report["publish_errors"],
        }
    return {
        "acked_entries": len(acked),
        "eligible_deliveries": sum(m["eligible"] for m in per_member.values()),  # type: ignore[misc]
        "queue_items": sum(m["queued"] for m in per_member.values()),  # type: ignore[misc]
        "problems": problems,
        "exact": not problems,
        "members": per_member,
    }


def campaign(args: argparse.Namespace) -> dict[str, object]:
    work = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="tw-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    names = member_names(args.members)
    ex = ExchangeProcess(work / "exchange").start()
    workers: list[subprocess.Popen[bytes]] = []
    samples: list[tuple[float, int]] = []
    try:
        ex.enrol({n: groups_of(n) for n in names}, [(GROUP_ALL, "amber"), (GROUP_EVEN, "amber")])
        t0 = time.monotonic()
        cpu0 = _cpu_seconds(ex.pid)
        logs = []
        for n in names:
            log = (work / f"{n}.log").open("wb")
            logs.append(log)
            workers.append(subprocess.Popen(
                [sys.executable, "-m", "reliability.soak", "--worker", "--name", n, "--target", ex.target,
                 "--log-key", ex.log_key, "--dir", str(work), "--seconds", str(args.seconds), "--rate", str(args.rate),
                 "--batch", str(args.batch), "--members", str(args.members), "--drain-timeout", str(args.drain_timeout)],
                cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
            ))
        final_head_written = False
        deadline = t0 + args.seconds + args.drain_timeout + 60
        while time.monotonic() < deadline:
            samples.append((time.monotonic() - t0, rss_kib(ex.pid)))
            if not final_head_written and all((work / f"{n}.published").exists() for n in names):
                head = len(ex.all_records())
                (work / "final_head").write_text(str(head))
                final_head_written = True
                published_at = time.monotonic() - t0
            if all(w.poll() is not None for w in workers):
                break
            time.sleep(1.0)
        cpu = _cpu_seconds(ex.pid) - cpu0
        elapsed = time.monotonic() - t0
        codes = [w.poll() for w in workers]
        if any(c is None for c in codes):
            for w in workers:
                if w.poll() is None:
                    w.kill()
            raise AssertionError("member processes did not finish in time")
        for log in logs:
            log.close()
        if any(codes):
            tails = {n: (work / f"{n}.log").read_text()[-1500:] for n, c in zip(names, codes) if c}
            raise AssertionError(f"member processes failed: {tails}")
        delivery = check_delivery(work, names)
        records = len(ex.all_records())
        code = ex.stop()
        warmup = min(10.0, args.seconds / 5)
        return {
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
            "members": args.members,
            "seconds_publishing": args.seconds,
            "rate_per_member": args.rate,
            "offered_load_per_s": args.rate * args.members,
            "ledger_entries": records,
            "achieved_publish_rate_per_s": round(delivery["acked_entries"] / args.seconds, 1),  # type: ignore[operator]
            "drain_s": round(elapsed - published_at, 1) if final_head_written else None,
            "exchange_cpu_s": round(cpu, 1),
            "exchange_cpu_share": round(cpu / elapsed, 3),
            "rss": rss_flat(samples, warmup, args.rss_tolerance),
            "rss_samples_kib": [kib for _, kib in samples],
            "delivery": delivery,
            "exchange_exit_code": code,
        }
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
        if ex.alive():
            ex.kill9()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reliability.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="how long members publish (CI 60; documented 600+)")
    parser.add_argument("--members", type=int, default=10)
    parser.add_argument("--rate", type=float, default=20.0, help="entries/s each member publishes (default 20)")
    parser.add_argument("--batch", type=int, default=10, help="entries per Publish call (default 10)")
    parser.add_argument("--drain-timeout", type=float, default=120.0, help="bound on the catch-up after publishing")
    parser.add_argument("--rss-tolerance", type=float, default=0.25, help="allowed last/first-third RSS growth")
    parser.add_argument("--no-rss-check", action="store_true", help="report RSS but do not fail on it")
    parser.add_argument("--dir", type=Path, help="work directory (default: a fresh temporary one)")
    parser.add_argument("--json-out", type=Path)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--name", help=argparse.SUPPRESS)
    parser.add_argument("--target", help=argparse.SUPPRESS)
    parser.add_argument("--log-key", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args)
    try:
        report = campaign(args)
    except AssertionError as exc:
        print(json.dumps({"ok": False, "failure": str(exc)}, indent=2))
        return 1
    report["ok"] = bool(report["delivery"]["exact"]) and (  # type: ignore[index]
        args.no_rss_check or report["rss"]["flat"] is not False  # type: ignore[index]
    )
    text = json.dumps({k: v for k, v in report.items() if k != "rss_samples_kib"}, indent=2)
    print(text)
    if args.json_out:
        args.json_out.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
