"""``trustwire member import | export | taxii | taxii-token``: the threat-intel world's formats.

    trustwire member import hashes.csv --type md5 --groups hash-sharing --labels csam --config m.toml
    trustwire member import feed.stix.json --format stix --groups hash-sharing --config m.toml
    trustwire member export --format stix --out bank.json --config m.toml
    trustwire member taxii --listen 127.0.0.1:9500 --users taxii-users.toml --config m.toml
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from clients.bulk import (
    DEFAULT_BATCH, EXPORT_FORMATS, FORMATS, CsvMapping, Journal, check_rows, export_bank, publish_rows, read_rows,
)
from clients.cli.member_config import load_config, open_client, stateful_client
from clients.cli.output import emit
from clients.jsonl import parse_time_ms
from clients.stix.objects import checkpoint_of
from exchange.core.errors import ExitCode, InvalidInput, Unavailable

__all__ = ["add_parsers"]

log = logging.getLogger(__name__)

_SHOWN_PROBLEMS = 50


def add_parsers(msub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    im = msub.add_parser("import", help="publish a CSV, JSONL or STIX file in bulk (validated, resumable)")
    common(im)
    im.add_argument("file", type=Path)
    im.add_argument("--format", choices=FORMATS, help="default: from the file name (.csv, .jsonl, .json)")
    im.add_argument("--map", action="append", default=[], metavar="FIELD=COLUMN", help="CSV column of a field")
    im.add_argument("--type", help="signal type of every row without one (CSV)")
    im.add_argument("--groups", help="sharing groups (;-separated) for rows without them")
    im.add_argument("--labels", help="labels (;-separated) for rows without them")
    im.add_argument("--tlp", help="TLP for rows without one")
    im.add_argument("--confidence", type=int, help="confidence for rows without one")
    im.add_argument("--severity", help="severity for rows without one")
    im.add_argument("--id-prefix", default="imp-", help="prefix of ids derived from rows without an id (CSV)")
    im.add_argument("--created-at", help="ISO time for rows without created_at (default: pinned by the first run)")
    im.add_argument("--skip-bad", action="store_true", help="publish the good rows even if some are bad")
    im.add_argument("--check", action="store_true", help="validate only; publish nothing")
    im.add_argument("--batch-size", type=int, default=DEFAULT_BATCH, help="envelopes per call (the exchange's max)")
    im.add_argument("--journal", type=Path, help="progress file (default: FILE.twimport.json)")
    im.set_defaults(run=import_file)

    ex = msub.add_parser("export", help="write the verified bank as CSV, JSONL or a STIX 2.1 bundle")
    common(ex)
    ex.add_argument("--format", choices=EXPORT_FORMATS, required=True)
    ex.add_argument("--group", help="only this sharing group")
    ex.add_argument("--out", default="-", help="file, or - for stdout")
    ex.add_argument("--no-sync", dest="sync", action="store_false", help="export the bank as it is")
    ex.set_defaults(run=export)

    tx = msub.add_parser("taxii", help="serve the verified bank to TAXII 2.1 clients (read-only), syncing")
    common(tx)
    tx.add_argument("--listen", default="127.0.0.1:9500", help="host:port (port 0 picks one)")
    tx.add_argument("--users", type=Path, required=True, help="TOML users file (see clients/taxii/auth.py)")
    tx.add_argument("--https-cert-file", type=Path, help="PEM certificate to serve HTTPS")
    tx.add_argument("--https-key-file", type=Path)
    tx.add_argument("--api-root", default="trustwire")
    tx.set_defaults(run=taxii)

    tk = msub.add_parser("taxii-token", help="make a TAXII user's token and the line for the users file")
    tk.add_argument("user")
    tk.add_argument("--json", action="store_true")
    tk.set_defaults(run=taxii_token)


def _format_of(path: Path, given: str | None) -> str:
    if given:
        return given
    suffix = path.suffix.lower()
    found = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "stix"}.get(suffix)
    if found is None:
        raise InvalidInput(f"cannot tell the format of {path.name}; pass --format ({', '.join(FORMATS)})")
    return found


def _split(text: str | None) -> list[str] | None:
    return None if text is None else [p.strip() for p in text.replace("|", ";").split(";") if p.strip()]


@contextmanager
def _bar(label: str, total: int, enabled: bool) -> Iterator[Callable[[int], None]]:
    """A progress bar on a terminal (stderr), nothing otherwise."""
    if not enabled or total == 0:
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


def import_file(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    config = load_config(args, env)
    fmt = _format_of(args.file, args.format)
    text = sys.stdin.read() if str(args.file) == "-" else args.file.read_text()
    if args.batch_size < 1:
        raise InvalidInput("--batch-size must be at least 1")
    defaults = {
        "type": args.type, "groups": _split(args.groups), "labels": _split(args.labels), "tlp": args.tlp,
        "confidence": args.confidence, "severity": args.severity,
    }
    mapping = CsvMapping.parse(args.map, defaults, args.id_prefix)
    secret = config.account_secret_file.read_bytes().strip() if config.account_secret_file else None
    digest = hashlib.sha256(text.encode()).hexdigest()
    journal_path = args.journal or (None if str(args.file) == "-" else args.file.with_name(args.file.name + ".twimport.json"))
    journal = Journal.open(journal_path, digest, int(time.time() * 1000))
    if args.created_at:
        journal.created_at_ms = parse_time_ms(args.created_at)
    with open_client(config) as client:
        checked = check_rows(client, read_rows(fmt, text, mapping=mapping, member_id=client.member_id), secret,
                             journal.created_at_ms)
        try:
            if args.check or (checked.report.problems and not args.skip_bad):
                return _import_result(args, checked.report, published=False)
            todo = max(checked.report.good - journal.rows_done, 0)
            with _bar("importing", todo, sys.stderr.isatty() and not args.json) as advance:
                report = publish_rows(client, checked, journal, batch_size=args.batch_size, progress=advance)
        finally:
            checked.close()
    return _import_result(args, report, published=True)


def _import_result(args: argparse.Namespace, report: Any, published: bool) -> int:
    data = report.as_dict()
    data["published_anything"] = published and report.published > 0
    lines = [str(p) for p in report.problems[:_SHOWN_PROBLEMS]]
    if len(report.problems) > _SHOWN_PROBLEMS:
        lines.append(f"… and {len(report.problems) - _SHOWN_PROBLEMS} more bad rows")
    for r in report.rejected[:_SHOWN_PROBLEMS]:
        lines.append(f"line {r['line']}: REJECTED {r['error']}: {r['message']}")
    if not published:
        verdict = "checked only" if args.check else "nothing published (fix the rows or pass --skip-bad)"
        lines.append(f"{report.rows} rows: {report.good} good, {len(report.problems)} bad, "
                     f"{report.duplicates} repeated; {verdict}")
    else:
        lines.append(f"{report.rows} rows: {report.good} good, {len(report.problems)} bad skipped, "
                     f"{report.duplicates} repeated; published {report.published} in {report.batches} batches "
                     f"(after {report.resumed_after} done before): {report.accepted} accepted, "
                     f"{len(report.rejected)} rejected")
    if args.json:
        emit(args, data, "")
    else:
        for line in lines[:-1]:  # each bad or rejected row, on stderr
            print(line, file=sys.stderr)
        print(lines[-1])
    if report.problems and not (published and args.skip_bad):
        return int(ExitCode.INVALID_INPUT)
    return int(ExitCode.FAILURE if report.rejected else ExitCode.OK)


def export(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    with stateful_client(args, env) as client:
        if client.bank is None:
            raise InvalidInput("export needs a state file")
        if args.sync:
            client.sync()
        cm: Any = nullcontext(sys.stdout) if args.out == "-" else open(args.out, "w", encoding="utf-8")
        with cm as out:
            n = export_bank(client.bank, args.format, out, group=args.group, now_ms=int(time.time() * 1000),
                            checkpoint=checkpoint_of(client.log_view.trusted))
    if args.out != "-":
        emit(args, {"format": args.format, "objects": n, "out": args.out},
              f"wrote {n} {'objects' if args.format == 'stix' else 'signals'} to {args.out}")
    return int(ExitCode.OK)


def taxii(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from clients.bank import Bank
    from clients.taxii import TaxiiSettings, create_app, load_users, serve_in_thread

    users = load_users(args.users)
    host, _, port = args.listen.rpartition(":")
    if not host or not port.isdigit():
        raise InvalidInput(f"--listen takes host:port, got {args.listen!r}")
    if (args.https_cert_file is None) != (args.https_key_file is None):
        raise InvalidInput("--https-cert-file and --https-key-file go together")
    with stateful_client(args, env) as client:
        if client.store is None:
            raise InvalidInput("the TAXII server needs a state file")
        client.sync()
        bank = Bank.reader(client.store.path)  # the server's own connection; sync writes through the client's
        app = create_app(bank, users, TaxiiSettings(member_id=client.member_id, api_root=args.api_root),
                         checkpoint=lambda: checkpoint_of(client.log_view.trusted), member_groups=client.groups)
        running = serve_in_thread(app, host, int(port), args.https_cert_file, args.https_key_file)
        print(f"TAXII 2.1 discovery at {running.url}", flush=True)
        stop = threading.Event()
        failure: list[BaseException] = []

        def on_signal(signum: int, frame: object) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        follower = threading.Thread(target=_follow, args=(client, stop, failure), name="taxii-sync", daemon=True)
        follower.start()
        try:
            # poll, as `trustwire serve` does: a signal only runs its handler when this thread runs bytecode
            while not stop.wait(0.5) and follower.is_alive():
                pass
        finally:
            stop.set()
            running.stop()
        if failure:  # the bank could not be kept verified (a forked log, say): stop serving it
            raise failure[0]
    return int(ExitCode.OK)


def _follow(client: Any, stop: threading.Event, failure: list[BaseException], max_wait_s: float = 30.0) -> None:
    """Keep the bank following the exchange until ``stop``; an outage is waited out (the
    TAXII server goes on serving what is verified), anything else ends the service."""
    wait = 0.5
    while not stop.is_set():
        try:
            client.sync(follow=True, stop=stop.is_set)
            wait = 0.5
        except Unavailable as exc:
            log.warning("exchange unavailable, TAXII keeps serving the verified bank: %s", exc.message)
            stop.wait(wait)
            wait = min(wait * 2, max_wait_s)
        except Exception as exc:  # noqa: BLE001 - reported by the main thread
            if not stop.is_set():
                failure.append(exc)
            return


def taxii_token(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from clients.taxii import new_token

    token, digest = new_token()
    line = f'[users.{args.user}]\ntoken_sha256 = "{digest}"'
    emit(args, {"user": args.user, "token": token, "token_sha256": digest},
          f"token (give it to {args.user}; shown once): {token}\nusers file entry:\n{line}")
    return int(ExitCode.OK)


