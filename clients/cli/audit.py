"""``trustwire audit …``: verify the ledger, prove inclusion and consistency, run a witness."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clients.audit_pool import AuditRun
from clients.cli.tls_options import add_tls_arguments, tls_overrides
from clients.transport import client_tls
from clients.auditor import (
    AuditClient, audit_offline, ledger_size, read_checkpoint_file, read_ledger_file, split_notes,
)
from clients.offline_proofs import consistency_offline, latest_checkpoint, prove_offline
from exchange.core.audit import AuditReport
from exchange.core.errors import ConfigError, ExitCode, InvalidInput
from exchange.core.keyfiles import public_key_from_hex, read_seed_file
from exchange.core.settings import load_settings


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditConfig:
    operator_public_key: str
    log_key: str
    exchange: str = "127.0.0.1:7443"
    principal: str | None = None
    key_file: Path | None = None
    tls_ca_file: Path | None = None
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None


def add_parser(sub: Any) -> None:
    p = sub.add_parser("audit", help="auditor commands", description="Verify the ledger and its audit log.")
    asub = p.add_subparsers(dest="audit_command", required=True, metavar="COMMAND")

    def common(q: argparse.ArgumentParser, online: bool = True) -> None:
        q.add_argument("--config", type=Path, help="auditor TOML settings")
        q.add_argument("--operator-public-key", help="hex operator public key (trust anchor)")
        q.add_argument("--log-key", help="the log's verifier key (trust anchor)")
        if online:
            q.add_argument("--exchange", help="exchange host:port")
            q.add_argument("--principal", help="your enrolled auditor (or member) id")
            q.add_argument("--key-file", type=Path, help="your hex Ed25519 seed")
            add_tls_arguments(q)
        q.add_argument("--json", action="store_true", help="machine-readable output")

    v = asub.add_parser("verify", help="verify every entry and every signed checkpoint")
    common(v)
    v.add_argument("--ledger", type=Path, help="verify a ledger file offline instead of asking the exchange")
    v.add_argument("--checkpoints", type=Path, help="checkpoints.db or a file of signed notes (offline mode)")
    v.add_argument("--from", dest="start", type=int, default=0, help="first index whose signatures are checked")
    v.add_argument("--to", dest="stop", type=int, default=None, help="stop before this index")
    v.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help="verification worker processes (default: one per core)")
    v.add_argument("--state", type=Path,
                   help="resumable progress: saved here every few seconds and at the end; an existing file is resumed")
    v.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="report progress on stderr (default: when stderr is a terminal)")
    v.set_defaults(run=verify)

    def offline(q: argparse.ArgumentParser, ledger: bool = True) -> None:
        if ledger:
            q.add_argument("--ledger", type=Path,
                           help="work offline on a ledger file (e.g. from `trustwire ops snapshot`)")
        q.add_argument("--checkpoints", type=Path,
                       help="checkpoints.db or a file of signed notes (offline; default: LEDGER.audit/checkpoints.db)")

    pr = asub.add_parser("prove", help="inclusion proof of one entry (JSON)")
    common(pr)
    offline(pr)
    pr.add_argument("--index", type=int, required=True)
    pr.set_defaults(run=prove)

    c = asub.add_parser("consistency", help="prove that one checkpoint extends another")
    common(c)
    offline(c)
    c.add_argument("--old", type=Path, required=True, help="file holding the older signed checkpoint")
    c.add_argument("--new", type=Path, help="file holding the newer one (default: the latest)")
    c.set_defaults(run=consistency)

    cp = asub.add_parser("checkpoint", help="print the latest signed checkpoint (verified)")
    common(cp)
    offline(cp, ledger=False)
    cp.set_defaults(run=checkpoint)

    w = asub.add_parser("witness", help="run a C2SP tlog-witness")
    w.add_argument("--config", type=Path, required=True, help="witness TOML (name, key_file, state, listen, [logs])")
    w.set_defaults(run=witness)


def _config(args: argparse.Namespace, env: Mapping[str, str]) -> AuditConfig:
    overrides = {
        "operator_public_key": args.operator_public_key,
        "log_key": args.log_key,
        "exchange": getattr(args, "exchange", None),
        "principal": getattr(args, "principal", None),
        "key_file": getattr(args, "key_file", None),
        **tls_overrides(args),
    }
    return load_settings(AuditConfig, file=args.config, env=env, overrides=overrides)


def _operator_key(config: AuditConfig) -> bytes:
    return public_key_from_hex(config.operator_public_key)


def _client(config: AuditConfig) -> AuditClient:
    if not config.principal or not config.key_file:
        raise ConfigError("online audit commands need --principal and --key-file")
    signer = read_seed_file(config.key_file)
    return AuditClient(
        config.exchange, principal=config.principal, signer=signer,
        operator_key=_operator_key(config), log_key=config.log_key,
        tls=client_tls(config.tls_ca_file, config.tls_cert_file, config.tls_key_file),
    )


def _print(args: argparse.Namespace, data: Any, human: str) -> None:
    print(json.dumps(data, indent=2, sort_keys=True) if args.json else human)


def _report_dict(report: AuditReport) -> dict[str, Any]:
    return {
        "ok": report.ok,
        "entries": report.entries,
        "verified_signatures": report.verified_signatures,
        "checkpoints": report.checkpoints,
        "tree_size": report.tree_size,
        "root": report.root.hex(),
        "findings": [
            {"index": f.index, "checkpoint_size": f.checkpoint_size, "reason": f.reason, "message": f.message,
             "severity": str(f.severity)}
            for f in report.findings
        ],
    }


def _load_state(path: Path | None) -> dict[str, Any] | None:
    if path is None or not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"audit state {path} is unreadable ({exc})") from exc
    if not isinstance(data, dict):
        raise InvalidInput(f"audit state {path} is not an audit state")
    return data


def _saver(path: Path | None) -> Callable[[dict[str, Any]], None] | None:
    if path is None:
        return None

    def save(state: dict[str, Any]) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, path)

    return save


def _progress(enabled: bool | None, total: int | None) -> Callable[[int], None] | None:
    if not (sys.stderr.isatty() if enabled is None else enabled):
        return None
    began, last = time.monotonic(), [0.0]

    def show(done: int) -> None:
        now = time.monotonic()
        if now - last[0] < 2.0:
            return
        last[0] = now
        of = f"/{total}" if total else ""
        print(f"audited {done}{of} entries ({done / max(now - began, 1e-9):,.0f}/s)", file=sys.stderr, flush=True)

    return show


def verify(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    config = _config(args, env)
    if args.workers < 1:
        raise InvalidInput("--workers must be at least 1")
    offline = args.ledger is not None
    total = args.stop if args.stop is not None or not offline else ledger_size(args.ledger)
    run = AuditRun(verify_from=args.start, stop=args.stop, workers=args.workers, resume=_load_state(args.state),
                   progress=_progress(args.progress, total), save_state=_saver(args.state))
    if offline:
        report = audit_offline(args.ledger, read_checkpoint_file(_checkpoints_of(args)), _operator_key(config), config.log_key, run)
    else:
        client = _client(config)
        try:
            report = client.verify(run)
        finally:
            client.close()
    lines = [f.line() for f in report.findings]
    summary = (
        f"{'OK' if report.ok else 'FAILED'}: {report.entries} entries, {report.verified_signatures} signatures, "
        f"{report.checkpoints} checkpoints; tree size {report.tree_size}, root {report.root.hex()}"
    )
    _print(args, _report_dict(report), "\n".join([*lines, summary]))
    return int(ExitCode.OK if report.ok else ExitCode.SECURITY)


def _checkpoints_of(args: argparse.Namespace) -> Path:
    return args.checkpoints or Path(str(args.ledger) + ".audit") / "checkpoints.db"


def _reader(ledger: Path) -> Callable[[int], Iterator[bytes]]:
    return lambda n: read_ledger_file(ledger, 0, n)


def prove(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    config = _config(args, env)
    if args.ledger is not None:
        note = latest_checkpoint(read_checkpoint_file(_checkpoints_of(args)), config.log_key)
        proof = prove_offline(_reader(args.ledger), note, config.log_key, args.index)
    else:
        client = _client(config)
        try:
            proof = client.prove(args.index)
        finally:
            client.close()
    print(json.dumps(proof, indent=2, sort_keys=True))
    return int(ExitCode.OK)


def _one_note(path: Path) -> str:
    notes = split_notes(path.read_text())
    if len(notes) != 1:
        raise InvalidInput(f"{path} must hold exactly one signed checkpoint")
    return notes[0]


def consistency(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    config = _config(args, env)
    if args.ledger is not None:
        new = _one_note(args.new) if args.new else latest_checkpoint(
            read_checkpoint_file(_checkpoints_of(args)), config.log_key)
        result = consistency_offline(_reader(args.ledger), _one_note(args.old), new, config.log_key)
    else:
        client = _client(config)
        try:
            new = _one_note(args.new) if args.new else client.checkpoint()
            result = client.consistency(_one_note(args.old), new)
        finally:
            client.close()
    _print(args, result, f"consistent: size {result['old_size']} → {result['new_size']}")
    return int(ExitCode.OK)


def checkpoint(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    config = _config(args, env)
    if args.checkpoints is not None:
        note = latest_checkpoint(read_checkpoint_file(args.checkpoints), config.log_key)
    else:
        client = _client(config)
        try:
            note = client.checkpoint()
        finally:
            client.close()
    _print(args, {"note": note}, note.rstrip("\n"))
    return int(ExitCode.OK)


def witness(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from clients import witness as w

    return w.main(["--config", str(args.config)])
