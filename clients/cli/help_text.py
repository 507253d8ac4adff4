"""Every subcommand's ``--help``: a description and an example.

The examples live here, one table, and :func:`finish_help` puts them on the parsers;
a test parses each example with the real parser, so none can name a flag that is gone.
``M`` stands for the settings a member command takes from ``--config member.toml``.
"""

from __future__ import annotations

import argparse

__all__ = ["EXAMPLES", "finish_help", "leaf_parsers"]

_M = "--config member.toml"
_O = "--config ops.toml"
_A = "--config auditor.toml"

EXAMPLES: dict[str, str] = {
    "serve": "trustwire serve --config exchange.toml --tls-cert-file server.pem --tls-key-file server-key.pem",
    "demo": "trustwire demo --tls",
    "member keygen": "trustwire member keygen --out northwind.key",
    "member init": "trustwire member init --member-id northwind --exchange exchange.example:7443 "
                   "--operator-public-key HEX --log-key VKEY --tls-ca-file ca.pem",
    "member publish": f"trustwire member publish signals.jsonl {_M}",
    "member sync": f"trustwire member sync {_M} --json",
    "member match": f"trustwire member match uploads/ {_M} --json",
    "member queue list": f"trustwire member queue list {_M} --state-filter pending",
    "member queue claim": f"trustwire member queue claim 12 --reviewer ana {_M}",
    "member queue decide": f"trustwire member queue decide 12 --reviewer ana --decision actioned {_M}",
    "member queue release": f"trustwire member queue release 12 --reviewer ana {_M}",
    "member queue history": f"trustwire member queue history 12 {_M} --json",
    "member feedback": f"trustwire member feedback {_M}",
    "member bank": f"trustwire member bank {_M} --json",
    "member console serve": f"trustwire member console serve {_M} --accounts console.db",
    "member console account add": "trustwire member console account add ana --accounts console.db --password-stdin",
    "member console account passwd": "trustwire member console account passwd ana --accounts console.db",
    "member console account role": "trustwire member console account role ana lead --accounts console.db",
    "member console account disable": "trustwire member console account disable ana --accounts console.db",
    "member console account enable": "trustwire member console account enable ana --accounts console.db",
    "member console account list": "trustwire member console account list --accounts console.db --json",
    "member hash": "trustwire member hash upload.jpg --json",
    "member lookup": f"trustwire member lookup domain login.example.com {_M}",
    "member public-key": "trustwire member public-key --key-file northwind.key",
    "member rebuild-bank": f"trustwire member rebuild-bank {_M}",
    "member compact": f"trustwire member compact {_M} --drop-history --json",
    "member serve-match": f"trustwire member serve-match {_M} --token-file match.token",
    "member allow-list add": f"trustwire member allow-list add md5 0123456789abcdef0123456789abcdef --reason logo {_M}",
    "member allow-list remove": f"trustwire member allow-list remove md5 0123456789abcdef0123456789abcdef {_M}",
    "member allow-list list": f"trustwire member allow-list list {_M}",
    "member import": f"trustwire member import hashes.csv --type md5 --groups all-members {_M}",
    "member export": f"trustwire member export --format stix --out bank.json {_M}",
    "member taxii": f"trustwire member taxii {_M} --users taxii-users.toml",
    "member taxii-token": "trustwire member taxii-token misp",
    "audit verify": "trustwire audit verify --ledger snapshot/ledger.db --operator-public-key HEX --log-key VKEY",
    "audit prove": f"trustwire audit prove --index 1234 {_A}",
    "audit consistency": f"trustwire audit consistency --old old.note {_A} --json",
    "audit checkpoint": f"trustwire audit checkpoint {_A} --json",
    "audit witness": "trustwire audit witness --config witness.toml",
    "ops enrol": f"trustwire ops enrol northwind --name Northwind --groups all-members --public-key HEX {_O}",
    "ops add-key": f"trustwire ops add-key northwind --public-key HEX {_O}",
    "ops rotate-key": f"trustwire ops rotate-key northwind --old-keyid KEYID --public-key HEX --overlap 7d {_O}",
    "ops revoke-key": f"trustwire ops revoke-key northwind --keyid KEYID --compromised-since 2026-11-30T00:00:00Z {_O}",
    "ops suspend": f"trustwire ops suspend northwind {_O}",
    "ops reinstate": f"trustwire ops reinstate northwind {_O}",
    "ops set-groups": f"trustwire ops set-groups northwind all-members,ncii-response {_O}",
    "ops create-group": f"trustwire ops create-group ncii-response --name 'NCII response' --max-tlp amber {_O}",
    "ops retire-group": f"trustwire ops retire-group ncii-response {_O}",
    "ops directory": f"trustwire ops directory {_O} --json",
    "ops top": f"trustwire ops top {_O}",
    "ops status": f"trustwire ops status {_O}",
    "ops rejects": f"trustwire ops rejects {_O}",
    "ops snapshot": "trustwire ops snapshot --ledger /var/lib/trustwire/ledger.db --out ledger-2026-12-01",
}


def leaf_parsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> list[tuple[str, argparse.ArgumentParser, str]]:
    """Every runnable subcommand: (its path, its parser, its one-line help)."""
    out: list[tuple[str, argparse.ArgumentParser, str]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {c.dest: c.help or "" for c in action._choices_actions}
            for name, sub in action.choices.items():
                deeper = leaf_parsers(sub, (*path, name))
                out.extend(deeper or [(" ".join((*path, name)), sub, helps.get(name, ""))])
    return out


def finish_help(parser: argparse.ArgumentParser) -> None:
    """Give every subcommand a description (its help line when it has none) and its example."""
    for name, sub, help_line in leaf_parsers(parser):
        if not sub.description and help_line:
            sub.description = help_line[0].upper() + help_line[1:] + "."
        example = EXAMPLES.get(name)
        if example and example not in (sub.epilog or ""):
            sub.epilog = "\n\n".join(filter(None, (sub.epilog, f"example:\n  {example}")))
            sub.formatter_class = argparse.RawDescriptionHelpFormatter
