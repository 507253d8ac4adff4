"""``trustwire member console …``: serve the reviewer console, manage its accounts.

    trustwire member console serve --config member.toml --accounts console.db --media-root uploads/
    trustwire member console account add ana --role reviewer --accounts console.db --password-stdin
    trustwire member console account disable ana --accounts console.db
"""

from __future__ import annotations

import argparse
import getpass
import signal
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from exchange.core.errors import ExitCode, InvalidInput

__all__ = ["add_parser"]


def add_parser(msub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    from clients.console.accounts import Role

    c = msub.add_parser("console", help="the reviewer console (web) and its accounts")
    csub = c.add_subparsers(dest="console_command", required=True, metavar="COMMAND")

    s = csub.add_parser("serve", help="serve the console for the member's queue")
    common(s)
    s.add_argument("--accounts", type=Path, required=True, help="the console's account file (SQLite)")
    s.add_argument("--listen", default="127.0.0.1:8765", help="HOST:PORT (loopback unless HTTPS)")
    s.add_argument("--media-root", type=Path, action="append", default=[], help="folder whose images may be previewed")
    s.add_argument("--https-cert-file", type=Path, help="PEM certificate to serve HTTPS")
    s.add_argument("--https-key-file", type=Path, help="PEM private key of --https-cert-file")
    s.add_argument("--sync-interval", type=float, default=30.0, help="seconds between syncs (0: never)")
    s.set_defaults(run=serve)

    a = csub.add_parser("account", help="create, disable, enable and list console accounts")
    asub = a.add_subparsers(dest="account_command", required=True, metavar="COMMAND")

    def acc(name: str, help: str, run: Callable[..., int], named: bool = True) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = asub.add_parser(name, help=help)
        p.add_argument("--accounts", type=Path, required=True, help="the console's account file (SQLite)")
        p.add_argument("--json", action="store_true", help="machine-readable output")
        if named:
            p.add_argument("name")
        p.set_defaults(run=run)
        return p

    add = acc("add", "create an account (password from --password-stdin or a prompt)", account_add)
    add.add_argument("--role", choices=[r.value for r in Role], default=Role.REVIEWER.value)
    add.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    pw = acc("passwd", "set an account's password (ends its sessions)", account_passwd)
    pw.add_argument("--password-stdin", action="store_true")
    role = acc("role", "change an account's role", account_role)
    role.add_argument("role", choices=[r.value for r in Role])
    acc("disable", "disable an account (ends its sessions at once)", account_disable)
    acc("enable", "enable a disabled account", account_enable)
    acc("list", "list accounts", account_list, named=False)


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise InvalidInput("no terminal to ask for a password: pass --password-stdin")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise InvalidInput("the two passwords differ")
    return first


def _store(args: argparse.Namespace) -> Any:
    from clients.console.accounts import AccountStore

    return AccountStore(args.accounts)


def _show(args: argparse.Namespace, account: Any) -> int:
    import json

    data = {"name": account.name, "role": account.role.value, "disabled": account.disabled}
    state = "disabled" if account.disabled else "active"
    print(json.dumps(data, sort_keys=True) if args.json else f"{account.name}: {account.role.value}, {state}")
    return int(ExitCode.OK)


def _on_account(act: Callable[[Any, argparse.Namespace], Any]) -> Callable[[argparse.Namespace, Mapping[str, str]], int]:
    """A command that changes one account in the store and shows it."""

    def run(args: argparse.Namespace, env: Mapping[str, str]) -> int:
        store = _store(args)
        try:
            return _show(args, act(store, args))
        finally:
            store.close()

    return run


def _passwd(store: Any, args: argparse.Namespace) -> Any:
    store.set_password(args.name, _password(args))
    return store.get(args.name)


account_add = _on_account(lambda store, args: store.create(args.name, _password(args), args.role))
account_passwd = _on_account(_passwd)
account_role = _on_account(lambda store, args: store.set_role(args.name, args.role))
account_disable = _on_account(lambda store, args: store.set_disabled(args.name, True))
account_enable = _on_account(lambda store, args: store.set_disabled(args.name, False))


def account_list(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    import json

    store = _store(args)
    try:
        rows = [{"name": a.name, "role": a.role.value, "disabled": a.disabled} for a in store.all()]
    finally:
        store.close()
    if args.json:
        print(json.dumps(rows, indent=2, sort_keys=True))
    else:
        print("\n".join(f"{r['name']}: {r['role']}, {'disabled' if r['disabled'] else 'active'}" for r in rows)
              or "no accounts")
    return int(ExitCode.OK)


def serve(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from clients.cli.member_config import load_config, open_client
    from clients.console import AccountStore, Gateway, HttpsFiles, MediaRoots, start_console
    from exchange.core.errors import ConfigError

    if (args.https_cert_file is None) != (args.https_key_file is None):
        raise ConfigError("--https-cert-file and --https-key-file go together")
    https = HttpsFiles(cert_file=args.https_cert_file, key_file=args.https_key_file) if args.https_cert_file else None
    config = load_config(args, env)
    if config.state is None:
        raise ConfigError("the console needs the member's state file (--state or `state` in the config)")
    with open_client(config) as client:
        gateway = Gateway(client)
        accounts = AccountStore(args.accounts)
        running = start_console(gateway, accounts, MediaRoots(args.media_root), args.listen, https)
        if args.sync_interval > 0:
            gateway.start_sync(args.sync_interval)
        print(f"console listening on {running.url}", flush=True)
        signal.signal(signal.SIGTERM, lambda *_: setattr(running.server, "should_exit", True))
        try:
            while running.thread.is_alive():
                running.thread.join(0.5)
        finally:
            running.stop()
            gateway.close()
            accounts.close()
    return int(ExitCode.OK)
