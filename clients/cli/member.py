"""``trustwire member …``: what a member's T&S team runs by hand or from cron."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from clients.config import MemberConfig
from clients.member import MemberClient
from clients.policy import Policy
from clients.queue import State
from clients.transport import ClientTls
from exchange.core.errors import ConfigError, ExitCode, InvalidInput, TrustwireError
from exchange.core.keys import Signer, parse_public_key
from exchange.core.records import Receipt
from exchange.core.settings import load_settings


def add_parser(sub: Any) -> None:
    p = sub.add_parser("member", help="member SDK commands", description="Member-side commands.")
    msub = p.add_subparsers(dest="member_command", required=True, metavar="COMMAND")

    k = msub.add_parser("keygen", help="create an Ed25519 signing key")
    k.add_argument("--out", type=Path, required=True, help="file for the private seed (written 0600)")
    k.add_argument("--force", action="store_true", help="overwrite an existing file")
    k.add_argument("--json", action="store_true")
    k.set_defaults(run=keygen)

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("--config", type=Path, help="member TOML settings")
        q.add_argument("--exchange", help="exchange host:port")
        q.add_argument("--member-id")
        q.add_argument("--key-file", type=Path)
        q.add_argument("--operator-public-key")
        q.add_argument("--log-key", help="the log's verifier key (printed by `trustwire serve`)")
        q.add_argument("--state", type=Path, help="local state file (bank, queue, cursor)")
        q.add_argument("--policy", type=Path)
        q.add_argument("--tls-ca-file", type=Path, help="PEM CA of the exchange's certificate (enables TLS)")
        q.add_argument("--tls-cert-file", type=Path, help="PEM client certificate for mutual TLS")
        q.add_argument("--tls-key-file", type=Path, help="PEM private key of --tls-cert-file")
        q.add_argument("--json", action="store_true", help="machine-readable output")

    pub = msub.add_parser("publish", help="sign and publish entries from a JSON Lines file")
    common(pub)
    pub.add_argument("file", type=Path, help="JSONL file, or - for stdin")
    pub.add_argument("--batch-size", type=int, default=500)
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
    qd.set_defaults(run=queue_decide)


def _emit(args: argparse.Namespace, data: Any, human: str) -> None:
    print(json.dumps(data, indent=2, sort_keys=True) if args.json else human)


def keygen(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    if args.out.exists() and not args.force:
        raise InvalidInput(f"{args.out} exists; use --force to overwrite")
    signer = Signer.generate()
    fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(signer.seed.hex() + "\n")
    data = {"public_key": signer.public_key.hex(), "keyid": signer.keyid, "key_file": str(args.out)}
    _emit(args, data, f"public key {data['public_key']}\nkeyid      {data['keyid']}\nwrote      {args.out}")
    return int(ExitCode.OK)


def load_config(args: argparse.Namespace, env: Mapping[str, str]) -> MemberConfig:
    overrides = {
        "exchange": args.exchange,
        "member_id": args.member_id,
        "key_file": args.key_file,
        "operator_public_key": args.operator_public_key,
        "log_key": args.log_key,
        "state": args.state,
        "policy": args.policy,
        "tls_ca_file": args.tls_ca_file,
        "tls_cert_file": args.tls_cert_file,
        "tls_key_file": args.tls_key_file,
    }
    return load_settings(MemberConfig, file=args.config, env=env, overrides=overrides)


def read_seed(path: Path) -> Signer:
    try:
        seed = bytes.fromhex(path.read_text().strip())
    except FileNotFoundError as exc:
        raise ConfigError(f"key file {path} does not exist (create one with `trustwire member keygen`)") from exc
    except ValueError as exc:
        raise ConfigError(f"key file {path} must hold a hex Ed25519 seed") from exc
    return Signer.from_seed(seed)


def open_client(config: MemberConfig) -> MemberClient:
    try:
        operator_key = parse_public_key(bytes.fromhex(config.operator_public_key))
    except ValueError as exc:
        raise ConfigError("operator_public_key must be 64 hex characters") from exc
    policy = Policy.load(config.policy) if config.policy else None
    tls = None
    if config.tls_ca_file is not None:
        tls = ClientTls.from_files(config.tls_ca_file, config.tls_cert_file, config.tls_key_file)
    elif config.tls_cert_file is not None or config.tls_key_file is not None:
        raise ConfigError("tls_cert_file/tls_key_file need tls_ca_file (the CA of the exchange's certificate)")
    return MemberClient(
        config.exchange,
        member_id=config.member_id,
        signer=read_seed(config.key_file),
        operator_key=operator_key,
        log_key=config.log_key,
        witnesses=config.witnesses,
        witness_quorum=config.witness_quorum,
        state=config.state,
        policy=policy,
        tls=tls,
    )


def publish(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from clients.jsonl import entries_from_jsonl

    config = load_config(args, env)
    secret = config.account_secret_file.read_bytes().strip() if config.account_secret_file else None
    lines = sys.stdin.read().splitlines() if str(args.file) == "-" else args.file.read_text().splitlines()
    with open_client(config) as client:
        entries = entries_from_jsonl(client, lines, secret=secret, source=str(args.file))
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
    _emit(args, {"accepted": len(rows) - len(rejected), "rejected": len(rejected), "results": rows}, human)
    return int(ExitCode.FAILURE if rejected else ExitCode.OK)


def sync(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    with open_client(load_config(args, env)) as client:
        report = client.sync(follow=args.follow)
    data = asdict(report)
    _emit(
        args,
        data,
        f"verified {report.verified} entries ({report.signals} signals, {report.retractions} retractions, "
        f"{report.opinions} opinions, {report.key_events} key events); quarantined {report.quarantined}; "
        f"queued {report.queued}; withdrawn {report.withdrawn}; cursor {report.next_index}/{report.head}",
    )
    return int(ExitCode.SECURITY if report.quarantined else ExitCode.OK)


def match(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from rich.progress import Progress

    config = load_config(args, env)
    with open_client(config) as client:
        if sys.stderr.isatty() and not args.json:
            with Progress(transient=True) as bar:
                task = bar.add_task("hashing", total=None)
                results = client.match_files(args.paths, progress=lambda p: bar.advance(task))
        else:
            results = client.match_files(args.paths)
    rows = [
        {
            "path": r.hashes.path,
            "pdq_quality": r.hashes.pdq_quality,
            "matches": [
                {
                    "publisher": m.signal.publisher,
                    "signal_id": m.signal.signal_id,
                    "type": m.signal.type,
                    "distance": m.distance,
                    "labels": list(m.signal.labels),
                    "index": m.signal.index,
                    "action": d.action.value,
                    "priority": d.priority,
                    "rule": d.rule,
                }
                for m, d in r.matches
            ],
        }
        for r in results
    ]
    human = "\n".join(
        f"{r['path']}: "
        + (
            ", ".join(
                f"{m['publisher']}/{m['signal_id']} ({m['type']} d={m['distance']}, {m['action']} P{m['priority']})"
                for m in r["matches"]
            )
            or "no match"
        )
        for r in rows
    )
    _emit(args, {"files": len(rows), "matched": sum(bool(r["matches"]) for r in rows), "results": rows}, human)
    return int(ExitCode.OK)


def _item_dict(item: Any) -> dict[str, Any]:
    d = asdict(item)
    d["state"] = item.state.value
    return d


def queue_list(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    with open_client(load_config(args, env)) as client:
        if client.queue is None:
            raise ConfigError("no state file")
        states = tuple(State(s) for s in args.states) if args.states else None
        items = client.queue.items(states)
    human = "\n".join(
        f"#{i.id:<4} P{i.priority} {i.state.value:<13} {i.type:<8} d={i.distance:<3} {i.publisher}/{i.signal_id}"
        f"  {i.content_ref}  [{i.rule}]"
        for i in items
    ) or "queue is empty"
    _emit(args, [_item_dict(i) for i in items], human)
    return int(ExitCode.OK)


def queue_claim(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    with open_client(load_config(args, env)) as client:
        if client.queue is None:
            raise ConfigError("no state file")
        item = client.queue.claim(args.item, args.reviewer)
    _emit(args, _item_dict(item), f"#{item.id} claimed by {item.reviewer}")
    return int(ExitCode.OK)


def queue_decide(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    with open_client(load_config(args, env)) as client:
        if client.queue is None:
            raise ConfigError("no state file")
        item = client.queue.decide(args.item, args.reviewer, State(args.decision), args.reason)
    _emit(args, _item_dict(item), f"#{item.id} {item.state.value} by {item.reviewer}")
    return int(ExitCode.OK)


__all__ = ["add_parser", "TrustwireError"]
