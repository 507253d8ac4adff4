"""``trustwire member init``: a commented ``member.toml``, a starter policy and a key.

The written config names every setting of :class:`clients.config.MemberConfig` (the
ones not given are commented out with their meaning), so it doubles as the reference
for the file. The starter policy enqueues every match: with no policy a member's
matches are ``ignore`` and the queue stays empty.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from clients.cli.output import emit
from clients.cli.tls_options import add_tls_arguments
from exchange.core.errors import ExitCode, InvalidInput
from exchange.core.keyfiles import public_key_from_hex
from exchange.core.keys import Signer

__all__ = ["add_parser"]

STARTER_POLICY = """\
# Starter policy (written by `trustwire member init`): every match becomes a queue
# item for a reviewer. Rules are tried in order; the first whose conditions all hold
# decides. Reference: clients/policy.py and README "Member SDK".
default = "enqueue"
default_priority = 3          # 0 = most urgent … 3

[[rule]]
name = "high-confidence-csam-or-ncii"
labels_any = ["csam", "ncii"]
min_confidence = 70
action = "enqueue"
priority = 0

[[rule]]
name = "disputed"             # two or more members said false_positive
min_false_positive = 2
action = "ignore"

[feedback]
publish_on_decision = false   # true: a reviewer's verdict is published as a signed opinion
publish_seen_on_match = false
"""

_TEMPLATE = """\
# Trustwire member settings (written by `trustwire member init`).
# Every key can also come from the environment (TRUSTWIRE_<KEY>, e.g. TRUSTWIRE_EXCHANGE)
# or a flag (--exchange); flags win over the environment, which wins over this file.
# Relative paths are relative to the directory you run trustwire in.

# Your member id, as the operator enrolled it.
member_id = {member_id}
# File holding your Ed25519 signing seed, hex (mode 0600; `trustwire member keygen`).
key_file = {key_file}
# The operator's Ed25519 public key, hex: the trust anchor for the key directory.
operator_public_key = {operator_public_key}
# The log's verifier key (printed by `trustwire serve`): the trust anchor for checkpoints.
log_key = {log_key}
# host:port of the exchange.
exchange = {exchange}
# Local state: the verified bank, the moderation queue and the sync cursor (SQLite).
state = {state}
# Match policy: what a match becomes (queue item, auto-action or nothing).
policy = {policy}

# Transport: TLS is on when tls_ca_file is set (plaintext is for loopback only).
# tls_ca_file = "ca.pem"            # CA of the exchange's certificate
# tls_cert_file = "{member}.pem"    # your client certificate (mutual TLS), naming member_id
# tls_key_file = "{member}-key.pem" # its unencrypted private key (0600)
{tls_lines}
# The task force's shared secret (a file, 0600) for account indicators: email, phone
# and username accounts are shared as HMAC-SHA256(secret, "kind:identifier"), never
# in the clear. Every member uses the same file (the operator hands it out).
# account_secret_file = "accounts.secret"

# Witnesses whose cosignatures count, and how many a checkpoint needs.
# witnesses = ["witness.example/w1+01234567+AbC…"]
# witness_quorum = 0
"""


def add_parser(msub: Any) -> None:
    p = msub.add_parser(
        "init", help="write a commented member.toml, a starter policy and (if missing) a signing key",
        description="Write DIR/member.toml naming every setting, DIR/policy.toml (enqueues every match) "
        "and DIR/MEMBER.key if there is none; prints the public key to give the operator.",
    )
    p.add_argument("--member-id", required=True, help="your member id, as the operator enrols it")
    p.add_argument("--exchange", default="127.0.0.1:7443", help="exchange host:port")
    p.add_argument("--operator-public-key", required=True, help="hex operator public key (trust anchor)")
    p.add_argument("--log-key", required=True, help="the log's verifier key (trust anchor)")
    p.add_argument("--dir", type=Path, default=Path("."), help="where to write the files (default: here)")
    p.add_argument("--force", action="store_true", help="overwrite an existing member.toml and policy.toml")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    add_tls_arguments(p)
    p.set_defaults(run=init)


def _toml(value: str) -> str:
    return json.dumps(value)  # a TOML basic string: JSON's escapes are TOML's


def _write_key(path: Path) -> Signer:
    signer = Signer.generate()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(signer.seed.hex() + "\n")
    return signer


def init(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    public_key_from_hex(args.operator_public_key)  # a clear error now, not at the first sync
    directory = args.dir.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    config, policy, key = directory / "member.toml", directory / "policy.toml", directory / f"{args.member_id}.key"
    for path in (config, policy):
        if path.exists() and not args.force:
            raise InvalidInput(f"{path} exists; use --force to overwrite")
    tls = [f"{name} = {_toml(str(Path(value).resolve()))}" for name, value in
           (("tls_ca_file", args.tls_ca_file), ("tls_cert_file", args.tls_cert_file),
            ("tls_key_file", args.tls_key_file)) if value is not None]
    created_key = not key.exists()
    signer = _write_key(key) if created_key else None
    config.write_text(_TEMPLATE.format(
        member_id=_toml(args.member_id), key_file=_toml(str(key)), member=args.member_id,
        operator_public_key=_toml(args.operator_public_key), log_key=_toml(args.log_key),
        exchange=_toml(args.exchange), state=_toml(str(directory / f"{args.member_id}.db")),
        policy=_toml(str(policy)), tls_lines="\n".join(tls),
    ))
    policy.write_text(STARTER_POLICY)
    data: dict[str, Any] = {"config": str(config), "policy": str(policy), "key_file": str(key),
                            "created_key": created_key}
    lines = [f"wrote {config}", f"wrote {policy}"]
    if signer is not None:
        data["public_key"] = signer.public_key.hex()
        lines += [f"wrote {key} (0600)", f"public key {data['public_key']}  (give it to the operator to enrol you)"]
    else:
        lines.append(f"kept  {key}")
    emit(args, data, "\n".join(lines))
    return int(ExitCode.OK)
