"""One set of transport options for every client command (member, ops, audit, pytx),
against a real exchange on 127.0.0.1:0 that requires mutual TLS.

The PKI is generated per module (``cryptography``); negative tests are named after
what a client gets wrong, and check the exit code and that the message names the fault.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from clients import ClientTls
from clients.threatexchange.api import TrustwireCollabConfig, TrustwireCredentials, TrustwireSignalExchangeAPI
from exchange.core.entries import OPERATOR
from exchange.core.errors import ConfigError, ExitCode
from exchange.core.records import Receipt
from exchange.pb.trustwire.v1 import entries_pb2 as pb
from exchange.server.tls import DemoPki, generate_demo_pki
from tests.conftest import MEMBERS, TaskForce, insecure_signer, start_taskforce
from exchange.program.cli import main

AUDITOR = "audit-firm"
PRINCIPALS = [OPERATOR, AUDITOR, *MEMBERS]


@pytest.fixture(scope="module")
def pkis(tmp_path_factory: pytest.TempPathFactory) -> dict[str, DemoPki]:
    """The task force's PKI, and a rogue CA nobody here trusts issuing for the same names."""
    hosts = ("127.0.0.1", "localhost")
    return {name: generate_demo_pki(tmp_path_factory.mktemp(name), hosts, PRINCIPALS) for name in ("pki", "rogue")}


@pytest.fixture(scope="module")
def pki(pkis: dict[str, DemoPki]) -> DemoPki:
    return pkis["pki"]


@pytest.fixture(scope="module")
def rogue(pkis: dict[str, DemoPki]) -> DemoPki:
    return pkis["rogue"]


@pytest.fixture(scope="module")
def tf(tmp_path_factory: pytest.TempPathFactory, pki: DemoPki) -> Iterator[TaskForce]:
    task_force = start_taskforce(
        tmp_path_factory.mktemp("tf"),
        tls=lambda p: ClientTls.from_files(pki.ca_cert, pki.client_certs[p], pki.client_keys[p]),
        tls_cert_file=pki.server_cert,
        tls_key_file=pki.server_key,
        tls_client_ca_file=pki.ca_cert,
    )
    op = task_force.operator_client()
    outcomes = op.publish([
        op.enrol(AUDITOR, "Audit Firm", [], role=pb.ROLE_AUDITOR),
        op.add_key(AUDITOR, insecure_signer(AUDITOR).public_key, 1_700_000_000_000),
    ])
    op.close()
    assert all(isinstance(o, Receipt) for o in outcomes), outcomes
    try:
        yield task_force
    finally:
        task_force.close()


def _key_file(tmp: Path, name: str) -> Path:
    path = tmp / f"{name}.key"
    seed = insecure_signer(name).seed if name != OPERATOR else insecure_signer("operator").seed
    path.write_text(seed.hex())
    return path


def _tls_flags(pki: DemoPki, principal: str, ca: Path | None = None) -> list[str]:
    return ["--tls-ca-file", str(ca or pki.ca_cert),
            "--tls-cert-file", str(pki.client_certs[principal]), "--tls-key-file", str(pki.client_keys[principal])]


def _ops(tf: TaskForce, tmp: Path, *extra: str) -> list[str]:
    return ["ops", "directory", "--json", "--exchange", tf.target, "--origin", tf.origin,
            "--operator-key-file", str(_key_file(tmp, OPERATOR)),
            *extra]


def _member(tf: TaskForce, tmp: Path, name: str) -> list[str]:
    return ["--exchange", tf.target, "--member-id", name, "--key-file", str(_key_file(tmp, name)),
            "--operator-public-key", tf.operator.public_key.hex(), "--log-key", tf.log_key,
            "--state", str(tmp / f"{name}.db")]


def _expired_pair(tmp: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "alice")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=30)).not_valid_after(now - datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp / "expired.pem", tmp / "expired-key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ))
    return cert_file, key_file


# -- every client command, over mutual TLS --------------------------------------------------


def test_ops_takes_tls_flags(tf: TaskForce, pki: DemoPki, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_ops(tf, tmp_path, *_tls_flags(pki, OPERATOR))) == 0
    members = {m["id"] for m in json.loads(capsys.readouterr().out)["members"]}
    assert set(MEMBERS) <= members


def test_ops_takes_tls_from_the_environment(
    tf: TaskForce, pki: DemoPki, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRUSTWIRE_TLS_CA_FILE", str(pki.ca_cert))
    monkeypatch.setenv("TRUSTWIRE_TLS_CERT_FILE", str(pki.client_certs[OPERATOR]))
    monkeypatch.setenv("TRUSTWIRE_TLS_KEY_FILE", str(pki.client_keys[OPERATOR]))
    assert main(_ops(tf, tmp_path)) == 0
    assert json.loads(capsys.readouterr().out)["members"]


def test_member_sync_takes_tls_from_its_config_file(
    tf: TaskForce, pki: DemoPki, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "member.toml"
    config.write_text(
        f'tls_ca_file = "{pki.ca_cert}"\ntls_cert_file = "{pki.client_certs["bob"]}"\n'
        f'tls_key_file = "{pki.client_keys["bob"]}"\n'
    )
    assert main(["member", "sync", "--config", str(config), "--json", *_member(tf, tmp_path, "bob")]) == 0
    assert "verified" in json.loads(capsys.readouterr().out)


def test_audit_checkpoint_takes_tls_flags(
    tf: TaskForce, pki: DemoPki, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["audit", "checkpoint", "--json", "--exchange", tf.target, "--principal", AUDITOR,
            "--key-file", str(_key_file(tmp_path, AUDITOR)), "--operator-public-key", tf.operator.public_key.hex(),
            "--log-key", tf.log_key, *_tls_flags(pki, AUDITOR)]
    assert main(argv) == 0
    assert capsys.readouterr().out.strip()


def test_pytx_extension_presents_a_client_certificate(tf: TaskForce, pki: DemoPki) -> None:
    collab = TrustwireCollabConfig(
        name="tf", exchange=tf.target, member_id="carol", operator_public_key=tf.operator.public_key.hex(),
        log_key=tf.log_key, tls_ca_file=str(pki.ca_cert), tls_cert_file=str(pki.client_certs["carol"]),
        tls_key_file=str(pki.client_keys["carol"]),
    )
    creds = TrustwireCredentials(seed_hex=insecure_signer("carol").seed.hex())
    api = TrustwireSignalExchangeAPI.for_collab(collab, creds)
    try:
        from clients.threatexchange import FileMD5Signal

        list(api.fetch_iter([FileMD5Signal], None))  # connects over mutual TLS; no error
    finally:
        api.close()


# -- what a client gets wrong: a clear error, exit code and no connection attempt ------------


def test_client_without_certificate_is_told_mtls_is_required(
    tf: TaskForce, pki: DemoPki, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_ops(tf, tmp_path, "--tls-ca-file", str(pki.ca_cert))) == ExitCode.UNAVAILABLE
    err = capsys.readouterr().err
    assert "tls_cert_file" in err and "Traceback" not in err


def test_plaintext_client_is_told_to_use_tls(tf: TaskForce, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_ops(tf, tmp_path)) == ExitCode.UNAVAILABLE
    assert "set tls_ca_file" in capsys.readouterr().err


def test_impostor_exchange_certificate_is_refused(
    tf: TaskForce, pki: DemoPki, rogue: DemoPki, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The client trusts another CA than the one that issued the exchange's certificate."""
    assert main(_ops(tf, tmp_path, *_tls_flags(pki, OPERATOR, ca=rogue.ca_cert))) == ExitCode.UNAVAILABLE
    assert "not issued by tls_ca_file" in capsys.readouterr().err


def test_stolen_certificate_without_its_key_is_rejected_before_connecting(
    tf: TaskForce, pki: DemoPki, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """alice's certificate with bob's key: caught locally, named, nothing sent."""
    flags = ["--tls-ca-file", str(pki.ca_cert), "--tls-cert-file", str(pki.client_certs["alice"]),
             "--tls-key-file", str(pki.client_keys["bob"])]
    assert main(["member", "sync", *_member(tf, tmp_path, "alice"), *flags]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert "is not the private key of tls_cert_file" in err


def test_expired_client_certificate_is_named(tmp_path: Path) -> None:
    cert, key = _expired_pair(tmp_path)
    with pytest.raises(ConfigError, match="expired at"):
        ClientTls.from_files(cert, cert, key)


def test_not_a_certificate_is_named(pki: DemoPki, tmp_path: Path) -> None:
    junk = tmp_path / "ca.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(ConfigError, match="tls_ca_file .* does not hold a PEM certificate"):
        ClientTls.from_files(junk)
    with pytest.raises(ConfigError, match="does not exist"):
        ClientTls.from_files(tmp_path / "missing.pem")
    with pytest.raises(ConfigError, match="does not hold a PEM private key"):
        ClientTls.from_files(pki.ca_cert, pki.client_certs["alice"], junk)


def test_client_certificate_without_ca_is_a_usage_error(
    tf: TaskForce, pki: DemoPki, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = _ops(tf, tmp_path, "--tls-cert-file", str(pki.client_certs[OPERATOR]),
                "--tls-key-file", str(pki.client_keys[OPERATOR]))
    assert main(argv) == ExitCode.USAGE
    assert "need tls_ca_file" in capsys.readouterr().err
