"""``trustwire demo``: the demo task force from seeds/, end to end, on the embedded engine.

1. start an exchange (SQLite ledger in a fresh work directory) on 127.0.0.1;
2. the operator enrols the groups, members and their INSECURE demo keys;
3. every member publishes its seed signals in batches, then its retractions and
   opinions; a few deliberate mistakes show what the exchange rejects and why;
4. every subscribing member verifies the whole stream into its bank, matches the
   demo media and fills its moderation queue according to its policy;
5. a summary. Entries carry fixed timestamps, so every run signs the same bytes and
   prints the same outcome.

With ``--tls`` the same run goes over mutual TLS: a throwaway INSECURE demo CA in
the work directory issues the exchange's certificate (127.0.0.1/localhost) and one
client certificate per principal (CN = principal); every client presents its own,
and the exchange binds each call's principal to it. Only the summary's
"transport" field differs.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import tomllib
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clients.jsonl import entries_from_jsonl, parse_time_ms
from clients.member import MemberClient
from clients.operator import OperatorClient
from clients.policy import Policy
from clients.transport import ClientTls
from exchange.core.dsse import Envelope
from exchange.core.entries import OPERATOR, Entry
from exchange.core.errors import ConfigError, ExitCode, TrustwireError
from exchange.core.keyfiles import signer_from_hex
from exchange.core.keys import Signer
from exchange.core.records import Receipt
from exchange.pb.trustwire.v1 import entries_pb2 as pb
from exchange.pb.trustwire.v1 import envelope_pb2
from exchange.server.config import ServerConfig
from exchange.server.grpc_server import build_server
from exchange.server.tls import generate_demo_pki

MARKER = ".trustwire-demo"


def seeds_dir() -> Path:
    """seeds/ of a source checkout (editable install), else the copy inside the wheel."""
    here = Path(__file__).resolve().parents[2] / "seeds"
    return here if here.is_dir() else Path(__file__).resolve().parent / "_seeds"


def add_parser(sub: Any) -> None:
    p = sub.add_parser("demo", help="run the demo task force end to end", description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=Path, default=None, help="seed directory (default: the bundled seeds/)")
    p.add_argument("--workdir", type=Path, default=None, help="keep ledger and member state here (wiped first)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument(
        "--tls", action="store_true",
        help="run over mutual TLS with generated INSECURE demo certificates (kept in the workdir under pki/)",
    )
    p.set_defaults(run=run)


@dataclass(frozen=True, slots=True)
class DemoMember:
    id: str
    name: str
    groups: list[str]
    signer: Signer
    signals: Path
    policy: Path
    subscribe: bool


def _prepare_workdir(path: Path | None) -> tuple[Path, bool]:
    if path is None:
        return Path(tempfile.mkdtemp(prefix="trustwire-demo-")), True
    if path.exists() and any(path.iterdir()):
        if not (path / MARKER).exists():
            raise ConfigError(f"{path} is not empty and was not made by `trustwire demo`; refusing to wipe it")
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / MARKER).touch()
    return path, False


def _mistake(client: MemberClient, row: dict[str, Any], created_at_ms: int, secret: bytes) -> bytes:
    """Sign an entry that breaks one admission rule on purpose."""
    mistake = row["mistake"]
    entry = entries_from_jsonl(client, [json.dumps(row["entry"])], secret, created_at_ms)[0]
    if not isinstance(entry, pb.Signal):
        raise ConfigError("demo mistakes are signals")
    if mistake == "non-normalized-value":
        entry.value = row["entry"]["value"]
    elif mistake == "wrong-member":
        entry.member_id = row["claims"]
    raw = client.sign(entry)
    if mistake == "forged-signature":
        env = envelope_pb2.Envelope.FromString(Envelope.decode(raw).raw)
        env.signatures[0].sig = bytes([env.signatures[0].sig[0] ^ 1]) + env.signatures[0].sig[1:]
        raw = env.SerializeToString(deterministic=True)
    return raw


def _ident(entry: Entry) -> str:
    if isinstance(entry, pb.Signal):
        return entry.signal_id
    if isinstance(entry, pb.Retraction | pb.Opinion):
        return entry.signal.signal_id
    return "key-event"


def run(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    seeds = args.seeds or seeds_dir()
    try:
        tf = tomllib.loads((seeds / "taskforce.toml").read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"no taskforce.toml in {seeds}") from exc
    created_at = parse_time_ms(tf["created_at"])
    valid_from = parse_time_ms(tf["keys_valid_from"])
    secret = tf["account_secret"].encode()
    operator = signer_from_hex(tf["operator_seed"])
    members = [
        DemoMember(
            id=m["id"], name=m["name"], groups=m["groups"], signer=signer_from_hex(m["seed"]),
            signals=seeds / m["signals"], policy=seeds / m["policy"], subscribe=bool(m.get("subscribe")),
        )
        for m in tf["member"]
    ]
    workdir, temporary = _prepare_workdir(args.workdir)
    log_key_file = workdir / "log.key"
    log_key_file.write_text(tf["log_seed"] + "\n")
    tls_settings: dict[str, Any] = {}
    tls: dict[str, ClientTls | None] = {}
    if args.tls:
        pki = generate_demo_pki(workdir / "pki", ("127.0.0.1", "localhost"), [OPERATOR, *(m.id for m in members)])
        tls_settings = dict(tls_cert_file=pki.server_cert, tls_key_file=pki.server_key, tls_client_ca_file=pki.ca_cert)
        tls = {p: ClientTls.from_files(pki.ca_cert, pki.client_certs[p], pki.client_keys[p]) for p in pki.client_certs}
    server = build_server(
        ServerConfig(
            operator_public_key=operator.public_key.hex(),
            log_key_file=log_key_file,
            listen="127.0.0.1:0",
            ledger_path=workdir / "ledger.db",
            name=tf["exchange"],
            **tls_settings,
        )
    )
    summary: dict[str, Any] = {
        "exchange": tf["exchange"],
        "workdir": None if temporary else str(workdir),
        "transport": "mtls" if args.tls else "plaintext",
    }
    rejections: list[dict[str, str]] = []
    tally: Counter[str] = Counter()

    def record(who: str, entries_or_ids: list[str], outcomes: list[Any]) -> None:
        for ident, o in zip(entries_or_ids, outcomes, strict=True):
            tally["published"] += 1
            if isinstance(o, Receipt):
                tally["accepted"] += 1
            else:
                tally["rejected"] += 1
                rejections.append({"member": who, "entry": ident, "reason": o.reason, "message": o.message})

    try:
        op = OperatorClient(server.target, operator, tls=tls.get(OPERATOR), origin=server.checkpoints.origin)
        events = [op.create_group(g["id"], g["name"], g["max_tlp"], created_at) for g in tf["group"]]
        for m in members:
            events.append(op.enrol(m.id, m.name, m.groups, created_at_ms=created_at))
            events.append(op.add_key(m.id, m.signer.public_key, valid_from, created_at_ms=created_at))
        outcomes = op.publish(events)
        record("operator", ["key-event"] * len(events), outcomes)
        op.close()

        clients = {
            m.id: MemberClient(
                server.target, member_id=m.id, signer=m.signer, operator_key=operator.public_key,
                log_key=server.checkpoints.verifier_key, state=workdir / f"{m.id}.db", policy=Policy.load(m.policy),
                tls=tls.get(m.id),
            )
            for m in members
        }
        # Round 1: signals. Round 2: retractions and opinions, which refer to round 1.
        parsed = {
            m.id: entries_from_jsonl(clients[m.id], m.signals.read_text().splitlines(), secret, created_at, str(m.signals))
            for m in members
        }
        for round_kinds in ((pb.Signal,), (pb.Retraction, pb.Opinion)):
            for m in members:
                batch = [e for e in parsed[m.id] if isinstance(e, round_kinds)]
                record(m.id, [_ident(e) for e in batch], clients[m.id].publish(batch, batch_size=8))
        mistakes_file = seeds / "signals" / "mistakes.jsonl"
        for line in mistakes_file.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                c = clients[row["as"]]
                record(row["as"], [row["entry"]["id"]], c.publish_envelopes([_mistake(c, row, created_at, secret)]))

        per_member: dict[str, Any] = {}
        for m in members:
            if not m.subscribe:
                continue
            c = clients[m.id]
            report = c.sync()
            files = c.match_files([seeds / "media"])
            assert c.queue is not None and c.bank is not None  # noqa: S101 - state= was given
            counts = c.queue.counts()
            per_member[m.id] = {
                "verified": report.verified,
                "quarantined": report.quarantined,
                "bank": c.bank.stats(),
                "files_scanned": len(files),
                "files_matched": sum(bool(f.matches) for f in files),
                "matches": sum(len(f.matches) for f in files),
                "queue_by_priority": {f"P{p}": n for p, n in sorted(counts.get("pending", {}).items())},
                "auto_actioned": sum(counts.get("auto_actioned", {}).values()),
            }
        for c in clients.values():
            c.close()
        summary.update(
            published=tally["published"],
            accepted=tally["accepted"],
            rejected=tally["rejected"],
            rejections=rejections,
            ledger_size=server.ledger.head(),
            members=per_member,
        )
        if args.tls:
            print(
                f"trustwire demo: the exchange ran with mutual TLS: the operator and {len(members)} members each "
                "presented a client certificate from a throwaway INSECURE demo CA"
                + ("" if temporary else f" (in {workdir / 'pki'})"),
                file=sys.stderr,
            )
    except TrustwireError:
        raise
    finally:
        server.stop(grace=0.5)
        if temporary:
            shutil.rmtree(workdir, ignore_errors=True)
    _print(summary, as_json=args.json)
    return int(ExitCode.OK)


def _print(summary: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(summary, indent=2, sort_keys=True))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False, width=None if Console().is_terminal else 120)
    console.print(
        f"[bold]Trustwire demo[/bold] — exchange {summary['exchange']}, ledger of {summary['ledger_size']} entries\n"
        f"entries published {summary['published']}, accepted {summary['accepted']}, "
        f"rejected {summary['rejected']}\n"
        f"transport {'mutual TLS (INSECURE demo certificates)' if summary['transport'] == 'mtls' else 'plaintext (loopback)'}"
    )
    if summary["rejections"]:
        t = Table(title="Rejected by the exchange", title_justify="left")
        for col in ("member", "entry", "reason", "message"):
            t.add_column(col)
        for r in summary["rejections"]:
            t.add_row(r["member"], r["entry"], r["reason"], r["message"])
        console.print(t)
    t = Table(title="Members", title_justify="left")
    for col in ("member", "verified", "quarantined", "live signals", "files matched", "matches", "queue by priority", "auto-actioned"):
        t.add_column(col)
    for name, m in summary["members"].items():
        queue = ", ".join(f"{p}: {n}" for p, n in m["queue_by_priority"].items()) or "empty"
        t.add_row(
            name, str(m["verified"]), str(m["quarantined"]), str(m["bank"]["live"]),
            f"{m['files_matched']}/{m['files_scanned']}", str(m["matches"]), queue, str(m["auto_actioned"]),
        )
    console.print(t)
    if summary.get("workdir"):
        console.print(f"state kept in {summary['workdir']}")
