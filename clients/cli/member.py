"""``trustwire member …``: what a member's T&S team runs by hand or from cron."""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from clients.cli import everyday, member_init
from clients.cli.signal_rows import signal_row
from clients.cli.output import emit
from clients.cli.tls_options import add_tls_arguments
from clients.cli.member_config import load_config, open_client, read_seed, stateful_client  # noqa: F401 - re-exported
from clients.jsonl import format_time_ms
from clients.member import MemberClient
from clients.queue import State
from exchange.core.errors import ExitCode, InvalidInput, TrustwireError
from exchange.core.keys import Signer
from exchange.core.records import Receipt


def add_parser(sub: Any) -> None:
    p = sub.add_parser("member", help="member SDK commands", description="Member-side commands.")
    msub = p.add_subparsers(dest="member_command", required=True, metavar="COMMAND")

    k = msub.add_parser("keygen", help="create an Ed25519 signing key")
    k.add_argument("--out", type=Path, required=True, help="file for the private seed (written 0600)")
    k.add_argument("--force", action="store_true", help="overwrite an existing file")
    k.add_argument("--json", action="store_true")
    k.set_defaults(run=keygen)
    member_init.add_parser(msub)

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("--config", type=Path, help="member TOML settings")
        q.add_argument("--exchange", help="exchange host:port")
        q.add_argument("--member-id")
        q.add_argument("--key-file", type=Path)
        q.add_argument("--operator-public-key")
        q.add_argument("--log-key", help="the log's verifier key (printed by `trustwire serve`)")
        q.add_argument("--state", type=Path, help="local state file (bank, queue, cursor)")
        q.add_argument("--policy", type=Path)
        add_tls_arguments(q)
        q.add_argument("--json", action="store_true", help="machine-readable output")

    pub = msub.add_parser("publish", help="sign and publish entries from a JSON Lines file")
    common(pub)
    pub.add_argument("file", type=Path, help="JSONL file, or - for stdin")
    pub.add_argument("--batch-size", type=int, default=500, help="entries per call")
    pub.add_argument("--created-at", help="ISO time for lines without created_at (default: pinned by the first run)")
    pub.add_argument("--journal", type=Path,
                     help="where the pinned time is kept (default: FILE.twpublish.json; none for stdin)")
    pub.set_defaults(run=publish)

    sy = msub.add_parser("sync", help="verify the stream into the local bank and queue")
    common(sy)
    sy.add_argument("--follow", action="store_true", help="keep following the head")
    sy.set_defaults(run=sync)

    ma = msub.add_parser("match", help="hash files and match them against the bank")
    common(ma)
    ma.add_argument("paths", nargs="+", help="files or directories")
    ma.set_defaults(run=match)

    qu = msub.add_parser("queue", help="the moderation queue")
    qsub = qu.add_subparsers(dest="queue_command", required=True, metavar="COMMAND")
    ql = qsub.add_parser("list", help="list queue items")
    common(ql)
    ql.add_argument("--state-filter", dest="states", action="append", choices=[s.value for s in State])
    ql.set_defaults(run=queue_list)
    qc = qsub.add_parser("claim", help="claim a pending item for review")
    common(qc)
    qc.add_argument("item", type=int)
    qc.add_argument("--reviewer", required=True)
    qc.set_defaults(run=queue_claim)
    qd = qsub.add_parser("decide", help="record a reviewer's decision")
    common(qd)
    qd.add_argument("item", type=int)
    qd.add_argument("--reviewer", required=True)
    qd.add_argument("--decision", required=True, choices=["actioned", "dismissed", "escalated"])
    qd.add_argument("--reason", default="")
    qd.add_argument(
        "--no-feedback", dest="feedback", action="store_false", default=None,
        help="do not publish the verdict as an opinion, whatever the policy says",
    )
    qd.set_defaults(run=queue_decide)
    qr = qsub.add_parser("release", help="give a claimed item back to the queue")
    common(qr)
    qr.add_argument("item", type=int)
    qr.add_argument("--reviewer", required=True)
    qr.add_argument("--force", action="store_true", help="take back another reviewer's claim (a lead's call)")
    qr.set_defaults(run=queue_release)
    qh = qsub.add_parser("history", help="every transition of a queue item")
    common(qh)
    qh.add_argument("item", type=int)
    qh.set_defaults(run=queue_history)

    fb = msub.add_parser(
        "feedback", help="what other members said about my signals (opinions per signal and verdict)"
    )
    common(fb)
    fb.add_argument("--no-sync", dest="sync", action="store_false", help="report from the bank as it is")
    fb.set_defaults(run=feedback)

    bk = msub.add_parser("bank", help="bank statistics (signals by type, PDQ index)")
    common(bk)
    bk.set_defaults(run=bank_stats)

    from clients.cli import console  # the reviewer console (issue 16): its own module

    console.add_parser(msub, common)

    rb = msub.add_parser("rebuild-bank", help="forget the bank and rebuild it by verifying the ledger from 0")
    common(rb)
    rb.set_defaults(run=rebuild_bank)

    cp = msub.add_parser("compact", help="shrink the local state: tombstone expired signals, drop old quarantine",
                         description="Compact the member state (clients/compaction.py has the rule) and vacuum it.")
    common(cp)
    cp.add_argument("--quarantine-days", type=int, default=30, help="drop quarantined records older than this")
    cp.add_argument("--closed-days", type=int, default=90,
                    help="delete withdrawn queue items no reviewer touched, and the envelopes of opinions sent,"
                         " older than this")
    cp.add_argument("--history-days", type=int, default=None,
                    help="policy: forget versions superseded, and tombstone signals retracted, more than this"
                         " many days ago: a compromise declared later can no longer restore their bodies"
                         " (default: keep all)")
    cp.add_argument("--tombstone-days", type=int, default=None,
                    help="policy: delete tombstones (retracted or expired signals) older than this: the STIX/TAXII"
                         " export no longer shows those revocations (default: keep all)")
    cp.add_argument("--drop-history", action="store_true",
                    help="--history-days 0: tombstone every retracted signal and forget every superseded version")
    cp.set_defaults(run=compact_state)

    from clients.matchsvc.cli import add_parsers as add_match_parsers  # the match service (issue 15)

    add_match_parsers(msub, common)

    from clients.cli import interop  # import, export, taxii (issue 17)

    interop.add_parsers(msub, common)
    everyday.add_parser(msub, common)


def keygen(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    if args.out.exists() and not args.force:
        raise InvalidInput(f"{args.out} exists; use --force to overwrite")
    signer = Signer.generate()
    fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(signer.seed.hex() + "\n")
    data = {"public_key": signer.public_key.hex(), "keyid": signer.keyid, "key_file": str(args.out)}
    emit(args, data, f"public key {data['public_key']}\nkeyid      {data['keyid']}\nwrote      {args.out}")
    return int(ExitCode.OK)


def publish(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from clients.jsonl import entries_from_jsonl

    config = load_config(args, env)
    secret = config.account_secret_file.read_bytes().strip() if config.account_secret_file else None
    stdin = str(args.file) == "-"
    text = sys.stdin.read() if stdin else args.file.read_text()
    with open_client(config) as client:
        created_at_ms = _pinned_created_at(args, text, client._clock_ms())
        entries = entries_from_jsonl(client, text.splitlines(), secret=secret, created_at_ms=created_at_ms,
                                     source=str(args.file))
        outcomes = client.publish(entries, batch_size=args.batch_size)
    rows = []
    for entry, o in zip(entries, outcomes, strict=True):
        ident = getattr(entry, "signal_id", "") or entry.signal.signal_id  # type: ignore[union-attr]
        if isinstance(o, Receipt):
            rows.append({"id": ident, "index": o.index, "leaf_hash": o.leaf_hash.hex()})
        else:
            rows.append({"id": ident, "error": o.reason, "status": o.status, "message": o.message})
    rejected = [r for r in rows if "error" in r]
    human = "\n".join(
        f"{r['id']}: " + (f"index {r['index']}" if "index" in r else f"REJECTED {r['error']}: {r['message']}")
        for r in rows
    )
    emit(args, {"accepted": len(rows) - len(rejected), "rejected": len(rejected), "results": rows}, human)
    return int(ExitCode.FAILURE if rejected else ExitCode.OK)


def _pinned_created_at(args: argparse.Namespace, text: str, now_ms: int) -> int:
    """``created_at`` of lines without one: --created-at, else the time pinned in the journal by
    the first run (so publishing the same file again signs the same bytes: same receipts)."""
    from clients.bulk.importer import Journal
    from clients.jsonl import parse_time_ms

    if args.created_at:
        return parse_time_ms(args.created_at)
    path = args.journal or (None if str(args.file) == "-" else Path(str(args.file) + ".twpublish.json"))
    journal = Journal.open(path, hashlib.sha256(text.encode()).hexdigest(), now_ms)
    journal.save()
    return journal.created_at_ms


def sync(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    with open_client(load_config(args, env)) as client:
        report = client.sync(follow=args.follow)
    data = {**asdict(report), "corrupt": report.corrupt}
    emit(
        args,
        data,
        f"verified {report.verified} entries ({report.signals} signals, {report.retractions} retractions, "
        f"{report.opinions} opinions, {report.key_events} key events); quarantined {report.quarantined} ({report.compromised} expected: compromised key); "
        f"queued {report.queued}; withdrawn {report.withdrawn}; cursor {report.next_index}/{report.head}",
    )
    return int(ExitCode.SECURITY if report.corrupt else ExitCode.OK)


def _match_row(client: MemberClient, m: Any, d: Any) -> dict[str, Any]:
    return {**signal_row(client, m), "action": d.action.value, "priority": d.priority, "rule": d.rule}


def match(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from clients.media import MIN_PDQ_QUALITY, iter_files

    config = load_config(args, env)
    files = list(iter_files(args.paths))
    with open_client(config) as client:
        if sys.stderr.isatty() and not args.json:
            columns = (TextColumn("hashing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
            with Progress(*columns, transient=True) as bar:
                task = bar.add_task("hashing", total=len(files))
                results = client.match_files(files, progress=lambda p: bar.advance(task))
        else:
            results = client.match_files(files)
        rows: list[dict[str, Any]] = [
            {
                "path": r.hashes.path,
                "md5": r.hashes.md5,
                "sha256": r.hashes.sha256,
                "pdq": r.hashes.pdq,
                "pdq_quality": r.hashes.pdq_quality,
                "pdq_low_quality": r.hashes.pdq is not None and (r.hashes.pdq_quality or 0) < MIN_PDQ_QUALITY,
                "is_video": r.hashes.is_video,
                "matches": [_match_row(client, m, d) for m, d in r.matches],
            }
            for r in results
        ]
    human = "\n".join(
        f"{r['path']}: "
        + (
            ", ".join(
                f"{m['publisher']}/{m['signal_id']} ({m['type']} d={m['distance']} #{m['index']}"
                f" [{','.join(m['labels'])}], {m['action']} P{m['priority']})"
                for m in r["matches"]
            )
            or "no match"
        )
        + (f"  (PDQ quality {r['pdq_quality']} < {MIN_PDQ_QUALITY}: not matched by PDQ)" if r["pdq_low_quality"] else "")
        for r in rows
    )
    emit(
        args,
        {
            "files": len(rows),
            "matched": sum(bool(r["matches"]) for r in rows),
            "low_quality": sum(bool(r["pdq_low_quality"]) for r in rows),
            "results": rows,
        },
        human,
    )
    return int(ExitCode.OK)


def _item_dict(item: Any) -> dict[str, Any]:
    d = asdict(item)
    d["state"] = item.state.value
    return d


def queue_list(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    with stateful_client(args, env) as client:
        states = tuple(State(s) for s in args.states) if args.states else None
        items = client.queue.items(states)
    human = "\n".join(
        f"#{i.id:<4} P{i.priority} {i.state.value:<13} {i.type:<8} d={i.distance:<3} {i.publisher}/{i.signal_id}"
        f"  {i.content_ref}  [{i.rule}]" + (f" +{len(i.evidence) - 1} more signals" if len(i.evidence) > 1 else "")
        for i in items
    ) or "queue is empty"
    emit(args, [_item_dict(i) for i in items], human)
    return int(ExitCode.OK)


def queue_claim(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    with stateful_client(args, env) as client:
        item = client.queue.claim(args.item, args.reviewer)
    emit(args, _item_dict(item), f"#{item.id} claimed by {item.reviewer}")
    return int(ExitCode.OK)


def queue_decide(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    with stateful_client(args, env) as client:
        item = client.decide(args.item, args.reviewer, State(args.decision), args.reason, publish=args.feedback)
        outbox = client.outbox
        rows = [outbox.get(p, sid) for p, sid in item.live_signals()] if outbox is not None else []
    sent = [r for r in rows if r is not None and r.item_id == item.id]  # one per signal of its evidence
    data = _item_dict(item)
    data["opinions"] = [
        {"publisher": r.publisher, "signal_id": r.signal_id, "verdict": r.verdict, "state": r.state.value,
         "index": r.ledger_index, "error": r.error}
        for r in sent
    ]
    own = [o for o in data["opinions"] if (o["publisher"], o["signal_id"]) == (item.publisher, item.signal_id)]
    data["feedback"] = {k: v for k, v in own[0].items() if k not in ("publisher", "signal_id")} if own else None
    human = f"#{item.id} {item.state.value} by {item.reviewer}" + "".join(
        f"; opinion {o['verdict']} on {o['publisher']}/{o['signal_id']} {o['state']}"
        + (f" at index {o['index']}" if o["index"] is not None else "")
        for o in data["opinions"]
    )
    emit(args, data, human)
    return int(ExitCode.OK)


def queue_release(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    with stateful_client(args, env) as client:
        item = client.queue.release(args.item, args.reviewer, force=args.force)
    emit(args, _item_dict(item), f"#{item.id} released by {args.reviewer}")
    return int(ExitCode.OK)


def queue_history(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    with stateful_client(args, env) as client:
        client.queue.get(args.item)
        events = client.queue.history(args.item)
    data = [{**asdict(e), "state": e.state.value, "at": format_time_ms(e.at_ms)} for e in events]
    human = "\n".join(
        f"{format_time_ms(e.at_ms)} {e.state.value:<13} {e.reviewer or '-':<12} {e.reason or ''}" for e in events
    )
    emit(args, data, human)
    return int(ExitCode.OK)


def feedback(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from clients.feedback import feedback_report

    with stateful_client(args, env) as client:
        if args.sync:
            client.sync()
        report: dict[str, Any] = feedback_report(client.bank, client.member_id)
    lines = []
    for s in report["signals"]:
        counts = ", ".join(f"{v} {n}" for v, n in sorted(s["counts"].items()))
        members = ", ".join(f"{m}={v}" for m, v in sorted(s["by_member"].items()))
        lines.append(f"{s['signal_id']:<24} {s['type'] or '?':<9} {counts:<40} ({members})")
    totals = ", ".join(f"{v} {n}" for v, n in sorted(report["totals"].items()))
    human = "\n".join(lines) + (f"\ntotal: {totals}" if lines else "no feedback on your signals yet")
    emit(args, report, human)
    return int(ExitCode.OK)


def bank_stats(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    with stateful_client(args, env) as client:
        data: dict[str, Any] = {
            "bank": client.bank.stats(),
            "by_type": client.bank.counts_by_type(),
            "pdq_index": client.bank.pdq_index().stats(),
            "pdq_threshold": client.bank.pdq_threshold,
        }
    b = data["bank"]
    human = (
        f"{b['signals']} signals ({b['live']} live, {b['retracted']} retracted, {b['expired']} expired, "
        f"{b['pdq_degenerate']} degenerate PDQ)\n"
        + "\n".join(f"  {t:<10} {n}" for t, n in data["by_type"].items())
        + f"\nPDQ index: {data['pdq_index']['live']} hashes, {data['pdq_index']['bytes'] / 1e6:.1f} MB,"
        f" threshold {data['pdq_threshold']}"
    )
    emit(args, data, human)
    return int(ExitCode.OK)


def rebuild_bank(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    with open_client(load_config(args, env)) as client:
        report = client.rebuild_bank()
    emit(args, {**asdict(report), "corrupt": report.corrupt}, f"rebuilt the bank from the ledger: verified {report.verified} entries, "
          f"{report.signals} signals; cursor {report.next_index}")
    return int(ExitCode.SECURITY if report.corrupt else ExitCode.OK)


def compact_state(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from clients.compaction import compact

    for name in ("quarantine_days", "closed_days", "history_days", "tombstone_days"):
        if (getattr(args, name) or 0) < 0:
            raise InvalidInput(f"--{name.replace('_', '-')} must be 0 or more")
    state = args.state if args.state is not None else load_config(args, env).state
    r = compact(state, quarantine_days=args.quarantine_days, drop_history=args.drop_history,
                history_days=args.history_days, closed_days=args.closed_days,
                tombstone_days=args.tombstone_days)
    data = {**asdict(r), "bytes_per_signal_before": round(r.bytes_per_signal_before, 1),
            "bytes_per_signal_after": round(r.bytes_per_signal_after, 1)}
    emit(args, data, f"compacted {state}: {r.bytes_before} -> {r.bytes_after} bytes ({r.signals} signals;"
         f" tombstoned {r.tombstoned_expired} expired, {r.tombstoned_retracted} retracted;"
         f" dropped {r.versions_dropped} superseded versions, {r.quarantine_dropped} quarantined records,"
         f" {r.tombstones_dropped} tombstones, {r.queue_dropped} withdrawn queue items,"
         f" {r.envelopes_dropped} sent envelopes)")
    return int(ExitCode.OK)


__all__ = ["add_parser", "TrustwireError"]
