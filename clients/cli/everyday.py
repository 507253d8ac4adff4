"""Everyday member commands: hash a file, look a value up in the bank, print a key's
public key. None of them talks to the exchange."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from clients.cli.output import emit
from exchange.core.errors import ExitCode
from exchange.core.keyfiles import read_seed_file

__all__ = ["add_parser"]


def add_parser(msub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    h = msub.add_parser("hash", help="print the hashes of files (md5, sha256, PDQ with its quality, video_md5)")
    h.add_argument("paths", nargs="+", help="files or directories")
    h.add_argument("--json", action="store_true", help="machine-readable output")
    h.set_defaults(run=hash_files)

    lk = msub.add_parser("lookup", help="look a value (hash, url, domain, account, text) up in the local bank")
    common(lk)
    lk.add_argument("type", help="signal type: md5, sha256, pdq, url, domain, account, text, …")
    lk.add_argument("value", help="the value, as you have it (it is normalized first)")
    lk.set_defaults(run=lookup)

    pk = msub.add_parser("public-key", help="print the public key and key id of a key file")
    pk.add_argument("--key-file", type=Path, required=True, help="hex Ed25519 seed file")
    pk.add_argument("--json", action="store_true", help="machine-readable output")
    pk.set_defaults(run=public_key)


def hash_files(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from clients.media import hash_file, iter_files

    rows: list[dict[str, Any]] = []
    for path in iter_files(args.paths):
        h = hash_file(path)
        rows.append({"path": h.path, "hashes": [
            {"type": c.type, "value": c.value, **({"quality": c.quality} if c.quality is not None else {})}
            for c in h.hashes
        ]})
    human = "\n".join(
        "\n".join(f"{c['type']:<10} {c['value']}" + (f"  (quality {c['quality']})" if "quality" in c else "")
                  + f"  {r['path']}" for c in r["hashes"])
        for r in rows
    )
    emit(args, rows, human)
    return int(ExitCode.OK)


def lookup(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from clients.cli.signal_rows import signal_row
    from clients.cli.member_config import load_config, open_client

    with open_client(load_config(args, env)) as client:
        if client.bank is None:
            from exchange.core.errors import ConfigError

            raise ConfigError("lookup needs a state file (--state or `state` in the config)")
        matches = client.bank.match_value(args.type, args.value, "lookup")
        rows = [signal_row(client, m) for m in matches]
    human = "\n".join(
        f"{r['publisher']}/{r['signal_id']} ({r['type']} d={r['distance']} #{r['index']} [{','.join(r['labels'])}] "
        f"confidence {r['confidence']}, {r['severity']})" for r in rows
    ) or "not in the bank"
    emit(args, {"type": args.type, "matches": rows}, human)
    return int(ExitCode.OK if rows else ExitCode.NOT_FOUND)


def public_key(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    signer = read_seed_file(args.key_file, "key file")
    data = {"public_key": signer.public_key.hex(), "keyid": signer.keyid}
    emit(args, data, f"public key {data['public_key']}\nkeyid      {data['keyid']}")
    return int(ExitCode.OK)
