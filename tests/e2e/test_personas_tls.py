"""Operator, member and auditor drive the real CLIs as separate processes against a
`trustwire serve` process under mutual TLS, with a PKI made by the openssl CLI (tests/e2e/pki.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from exchange.core.entries import OPERATOR
from tests.conftest import insecure_signer
from tests.e2e.pki import Pki, openssl_pki
from tests.e2e.serve_process import spawn_serve

ORIGIN = "personas.test.invalid/log"


def _cli(*args: str, env: dict[str, str] | None = None, ok: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "exchange.program", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=120)
    if ok:
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    return proc


@pytest.fixture
def exchange_mtls(tmp_path: Path) -> Iterator[tuple[str, str, Pki, list[str]]]:
    pki = openssl_pki(tmp_path / "pki", [OPERATOR, "northwind", "audit-firm"])
    operator = insecure_signer("persona-operator")
    (tmp_path / "ops.key").write_text(operator.seed.hex())
    proc, target, banner = spawn_serve(
        tmp_path, operator.public_key.hex(), ORIGIN, "--metrics-listen", "127.0.0.1:0",
        "--tls-cert-file", str(pki.cert("exchange")), "--tls-key-file", str(pki.key("exchange")),
        "--tls-client-ca-file", str(pki.ca), banner_lines=3,
    )
    try:
        vkey = banner[1].split("log verifier key: ")[1].strip()
        yield target, vkey, pki, banner
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0


def test_operator_member_and_auditor_over_mutual_tls(
    exchange_mtls: tuple[str, str, Pki, list[str]], tmp_path: Path
) -> None:
    target, vkey, pki, banner = exchange_mtls
    assert "mutual TLS on" in banner[2]
    op_key = insecure_signer("persona-operator").public_key.hex()
    # the operator's TLS from the environment, the others' from flags and member.toml
    ops_env = {"TRUSTWIRE_TLS_CA_FILE": str(pki.ca), "TRUSTWIRE_TLS_CERT_FILE": str(pki.cert(OPERATOR)),
               "TRUSTWIRE_TLS_KEY_FILE": str(pki.key(OPERATOR))}
    ops = ["--exchange", target, "--origin", ORIGIN, "--operator-key-file", str(tmp_path / "ops.key"), "--json"]

    # member: init (config + policy + key), hand the public key to the operator
    made = json.loads(_cli("member", "init", "--member-id", "northwind", "--exchange", target,
                           "--operator-public-key", op_key, "--log-key", vkey, "--dir", str(tmp_path / "nw"), "--json",
                           "--tls-ca-file", str(pki.ca), "--tls-cert-file", str(pki.cert("northwind")),
                           "--tls-key-file", str(pki.key("northwind"))).stdout)
    auditor = json.loads(_cli("member", "keygen", "--out", str(tmp_path / "audit.key"), "--json").stdout)

    # operator: a group, the member and the auditor
    _cli("ops", "create-group", "all-members", "--name", "Everyone", "--max-tlp", "amber", *ops, env=ops_env)
    _cli("ops", "enrol", "northwind", "--name", "Northwind", "--groups", "all-members",
         "--public-key", made["public_key"], "--valid-from", "2020-01-01T00:00:00Z", *ops, env=ops_env)
    _cli("ops", "enrol", "audit-firm", "--name", "Audit Firm", "--role", "auditor",
         "--public-key", auditor["public_key"], "--valid-from", "2020-01-01T00:00:00Z", *ops, env=ops_env)
    directory = json.loads(_cli("ops", "directory", *ops, env=ops_env).stdout)
    assert {m["id"] for m in directory["members"]} == {"northwind", "audit-firm"}
    assert all(k["status"] == "valid" for m in directory["members"] for k in m["keys"])
    # without its certificate the operator is told why, in JSON, exit 7
    refused = _cli("ops", "directory", *ops, ok=False)
    assert refused.returncode == 7 and "set tls_ca_file" in json.loads(refused.stdout)["error"]["message"]

    # member: publish a JSONL file twice (idempotent), sync
    signals = tmp_path / "signals.jsonl"
    signals.write_text(json.dumps({"id": "nw-1", "type": "md5", "value": "a" * 32, "groups": ["all-members"]}) + "\n")
    first = json.loads(_cli("member", "publish", str(signals), "--config", made["config"], "--json").stdout)
    again = json.loads(_cli("member", "publish", str(signals), "--config", made["config"], "--json").stdout)
    assert first["accepted"] == 1 and again["results"] == first["results"]
    _cli("member", "sync", "--config", made["config"], "--json")

    # auditor: online over mutual TLS
    audit = ["--exchange", target, "--principal", "audit-firm", "--key-file", str(tmp_path / "audit.key"),
             "--operator-public-key", op_key, "--log-key", vkey, "--json", "--tls-ca-file", str(pki.ca),
             "--tls-cert-file", str(pki.cert("audit-firm")), "--tls-key-file", str(pki.key("audit-firm"))]
    report = json.loads(_cli("audit", "verify", *audit).stdout)
    assert report["ok"] and report["entries"] == 6  # group, 2 × (enrolment + key), the signal
