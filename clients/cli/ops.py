"""``trustwire ops …``: the operator's membership and key commands.

Every change is a KeyEvent signed with the operator key on this machine and
published to the ledger, so the key directory itself is auditable. The exchange
never holds the operator key.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from clients.cli import ops_view
from clients.cli.tls_options import add_tls_arguments
from clients.cli.ops_config import OpsConfig, duration_ms, operator_credentials  # noqa: F401 - OpsConfig re-exported
from clients.cli.output import emit
from clients.jsonl import format_time_ms, parse_time_ms
from clients.snapshot import snapshot_ledger
from clients.operator import OperatorClient
from exchange.core.errors import ExitCode, InvalidInput
from exchange.core.keydir import KeyInfo
from exchange.core.records import Receipt
from exchange.core.keyfiles import public_key_from_hex
from exchange.pb.trustwire.v1 import entries_pb2 as pb

ROLES = {"member": pb.ROLE_MEMBER, "auditor": pb.ROLE_AUDITOR, "witness": pb.ROLE_WITNESS}


def add_parser(sub: Any) -> None:
    p = sub.add_parser("ops", help="operator commands", description=__doc__.split("\n\n")[0])
    osub = p.add_subparsers(dest="ops_command", required=True, metavar="COMMAND")

    def cmd(name: str, help: str, run: Any) -> argparse.ArgumentParser:
        q = osub.add_parser(name, help=help)
        q.add_argument("--config", type=Path, help="operator TOML settings")
        q.add_argument("--exchange", help="exchange host:port")
        q.add_argument("--origin", help="the exchange's name (log origin) the calls are signed for")
        q.add_argument("--operator-key-file", type=Path, help="hex seed of the operator key")
        q.add_argument("--json", action="store_true", help="machine-readable output")
        add_tls_arguments(q)
        q.set_defaults(run=run)
        return q

    q = cmd("enrol", "enrol a member (or an auditor / witness) with its first key", enrol)
    q.add_argument("member")
    q.add_argument("--name", required=True)
    q.add_argument("--groups", default="", help="comma-separated sharing groups")
    q.add_argument("--role", choices=sorted(ROLES), default="member")
    q.add_argument("--public-key", required=True, help="hex Ed25519 public key")
    q.add_argument("--valid-from", help="ISO 8601 (default now)")
    q = cmd("add-key", "add a key to a member", add_key)
    q.add_argument("member")
    q.add_argument("--public-key", required=True)
    q.add_argument("--valid-from", help="ISO 8601 (default now)")
    q = cmd("rotate-key", "add a new key and retire the old one after an overlap", rotate_key)
    q.add_argument("member")
    q.add_argument("--old-keyid", required=True)
    q.add_argument("--public-key", required=True, help="the new key")
    q.add_argument("--overlap", default="7d", help="how long both keys sign, e.g. 12h, 7d")
    q = cmd("revoke-key", "retire a key, or revoke it as compromised", revoke_key)
    q.add_argument("member")
    q.add_argument("--keyid", required=True)
    q.add_argument("--at", help="retire at this ISO 8601 time (default now)")
    q.add_argument("--compromised-since-index", type=int, help="flag what it signed from this ledger index")
    q.add_argument("--compromised-since", help="flag what it signed from this ISO 8601 time")
    q = cmd("suspend", "suspend a member (it can neither publish nor read)", suspend)
    q.add_argument("member")
    q = cmd("reinstate", "reinstate a suspended member", reinstate)
    q.add_argument("member")
    q = cmd("set-groups", "replace a member's sharing groups", set_groups)
    q.add_argument("member")
    q.add_argument("groups", help="comma-separated")
    q = cmd("create-group", "create a sharing group", create_group)
    q.add_argument("group")
    q.add_argument("--name", required=True)
    q.add_argument("--max-tlp", required=True, choices=["clear", "green", "amber", "amber+strict", "red"])
    q = cmd("retire-group", "retire a sharing group", retire_group)
    q.add_argument("group")
    cmd("directory", "print the key directory, verified from the ledger", directory)
    ops_view.add_commands(cmd)  # top, status, rejects: the operator's live view
    sn = osub.add_parser(
        "snapshot", help="copy the ledger and its checkpoints for an auditor, consistently, while it serves",
        description="Copy an embedded-engine ledger (WAL included, via SQLite's backup API) and its signed "
        "checkpoints into a new directory, laid out as `trustwire audit verify --ledger DIR/ledger.db` expects. "
        "Runs on the exchange's host; needs no key.",
    )
    sn.add_argument("--ledger", type=Path, required=True, help="the exchange's ledger file (ledger_path)")
    sn.add_argument("--audit-dir", type=Path, help="the exchange's audit_dir (default: LEDGER.audit)")
    sn.add_argument("--out", type=Path, required=True, help="a new (or empty) directory for the copy")
    sn.add_argument("--json", action="store_true", help="machine-readable output")
    sn.set_defaults(run=snapshot)


def _client(args: argparse.Namespace, env: Mapping[str, str]) -> OperatorClient:
    target, signer, tls, origin = operator_credentials(args, env)
    return OperatorClient(target, signer, tls=tls, origin=origin)


def _public_key(text: str) -> bytes:
    return public_key_from_hex(text, "--public-key", error=InvalidInput)


def _groups(text: str) -> list[str]:
    return [g.strip() for g in text.split(",") if g.strip()]


def _publish(args: argparse.Namespace, env: Mapping[str, str], build: Any) -> int:
    client = _client(args, env)
    try:
        events = build(client)
        events = events if isinstance(events, list) else [events]
        outcomes = client.publish(events)
    finally:
        client.close()
    rows = []
    for event, o in zip(events, outcomes, strict=True):
        what = event.WhichOneof("event")
        if isinstance(o, Receipt):
            rows.append({"event": what, "index": o.index})
        else:
            rows.append({"event": what, "error": o.reason, "message": o.message})
    failed = [r for r in rows if "error" in r]
    human = "\n".join(
        f"{r['event']}: " + (f"ledger index {r['index']}" if "index" in r else f"REJECTED {r['error']}: {r['message']}")
        for r in rows
    )
    print(json.dumps(rows, indent=2) if args.json else human)
    return int(ExitCode.INVALID_INPUT if failed else ExitCode.OK)


def _valid_from(args: argparse.Namespace, client: OperatorClient) -> int:
    return parse_time_ms(args.valid_from) if args.valid_from else client.now_ms()


def enrol(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    key = _public_key(args.public_key)
    return _publish(args, env, lambda c: [
        c.enrol(args.member, args.name, _groups(args.groups), role=ROLES[args.role]),
        c.add_key(args.member, key, _valid_from(args, c)),
    ])


def add_key(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    key = _public_key(args.public_key)
    return _publish(args, env, lambda c: c.add_key(args.member, key, _valid_from(args, c)))


def rotate_key(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    key, overlap = _public_key(args.public_key), duration_ms(args.overlap)
    return _publish(args, env, lambda c: c.rotate_key(args.member, args.old_keyid, key, overlap))


def revoke_key(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    since_ms = parse_time_ms(args.compromised_since) if args.compromised_since else None
    at_ms = parse_time_ms(args.at) if args.at else None
    return _publish(args, env, lambda c: c.revoke_key(
        args.member, args.keyid, at_ms=at_ms,
        compromised_since_index=args.compromised_since_index, compromised_since_ms=since_ms,
    ))


def suspend(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    return _publish(args, env, lambda c: c.suspend(args.member))


def reinstate(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    return _publish(args, env, lambda c: c.reinstate(args.member))


def set_groups(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    return _publish(args, env, lambda c: c.set_groups(args.member, _groups(args.groups)))


def create_group(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    return _publish(args, env, lambda c: c.create_group(args.group, args.name, args.max_tlp))


def retire_group(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    return _publish(args, env, lambda c: c.retire_group(args.group))


def snapshot(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    s = snapshot_ledger(args.ledger, args.out, args.audit_dir)
    data = {"ledger": str(s.ledger), "checkpoints": str(s.checkpoints), "entries": s.entries,
            "checkpoint_count": s.checkpoint_count}
    emit(args, data, f"{s.entries} entries and {s.checkpoint_count} signed checkpoints copied to {args.out}\n"
         f"verify with: trustwire audit verify --ledger {s.ledger} --operator-public-key HEX --log-key VKEY")
    return int(ExitCode.OK)


def _validity(k: KeyInfo, now_ms: int) -> dict[str, Any]:
    """When a key may sign (ISO 8601 UTC) and what it is now: pending, valid, retiring, retired, compromised."""
    if k.compromised:
        status = "compromised"
    elif now_ms < k.valid_from_ms:
        status = "pending"
    elif k.revoked_index is None:
        status = "valid"
    elif k.revoked_at_ms is not None and now_ms < k.revoked_at_ms:
        status = "retiring"
    else:
        status = "retired"
    until = format_time_ms(k.revoked_at_ms) if k.revoked_at_ms is not None else None
    return {"valid_from": format_time_ms(k.valid_from_ms), "valid_until": until, "status": status}


def directory(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    client = _client(args, env)
    try:
        d = client.directory()
    finally:
        client.close()
    tlp = {v: k for k, v in {"clear": 1, "green": 2, "amber": 3, "amber+strict": 4, "red": 5}.items()}
    now_ms = int(time.time() * 1000)
    data = {
        "groups": [
            {"id": g.group_id, "name": g.display_name, "max_tlp": tlp.get(g.max_tlp, "?"), "retired": g.retired}
            for g in d.groups.values()
        ],
        "members": [
            {
                "id": m.member_id, "name": m.display_name, "role": pb.Role.Name(m.role).removeprefix("ROLE_").lower(),
                "groups": sorted(m.groups), "suspended": m.suspended,
                "keys": [
                    {"keyid": k.keyid, "added_index": k.added_index, "revoked_index": k.revoked_index,
                     "compromised": k.compromised, **_validity(k, now_ms)}
                    for k in d.keys.values() if k.member_id == m.member_id
                ],
            }
            for m in d.members.values()
        ],
    }
    human = "\n".join(
        f"{m['id']:<20} {m['role']:<8} {'SUSPENDED ' if m['suspended'] else ''}groups={','.join(m['groups'])} "
        f"keys={len([k for k in m['keys'] if k['revoked_index'] is None])} live"
        + "".join(f"\n    key {k['keyid'][:16]} {k['status']:<11} from {k['valid_from']} until {k['valid_until'] or '-'}"
                  for k in m["keys"])
        for m in data["members"]
    )
    print(json.dumps(data, indent=2) if args.json else human)
    return int(ExitCode.OK)
