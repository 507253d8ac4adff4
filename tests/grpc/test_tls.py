"""TLS and mutual TLS, next to the per-call signatures, on a real exchange on 127.0.0.1:0.

Certificates come from exchange.server.tls.generate_demo_pki (INSECURE demo material).
Negative tests check the status code, the reason or message, and that the ledger is
byte-for-byte unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from exchange.program.cli import main
from clients.transport import ClientTls, connect, rpc_error
from exchange.core.entries import OPERATOR
from exchange.core.errors import CertificateMismatch, ConfigError, Unavailable
from exchange.core.records import Receipt
from exchange.pb.trustwire.v1 import exchange_pb2 as xpb
from exchange.pb.trustwire.v1 import exchange_pb2_grpc as xgrpc
from exchange.server.tls import DemoPki, bind_principal, generate_demo_pki
from tests.conftest import GROUP_ALL, MEMBERS, TaskForce, start_taskforce
from tests.grpc.conftest import MD5_A, MD5_B, RPC_TIMEOUT_S, assert_rpc_error, publish_raw, sign

PRINCIPALS = [OPERATOR, *MEMBERS]
TlsFor = Callable[[str], ClientTls | None]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DemoPki:
    return generate_demo_pki(tmp_path_factory.mktemp("pki"), ("127.0.0.1", "localhost"), PRINCIPALS)


@pytest.fixture(scope="module")
def rogue_pki(tmp_path_factory: pytest.TempPathFactory) -> DemoPki:
    """Another CA issuing certificates for the same names: trusted by nobody here."""
    return generate_demo_pki(tmp_path_factory.mktemp("rogue"), ("127.0.0.1", "localhost"), PRINCIPALS)


def server_only(pki: DemoPki) -> ClientTls:
    return ClientTls.from_files(pki.ca_cert)


def client_cert(pki: DemoPki, principal: str, ca: DemoPki | None = None) -> ClientTls:
    """``principal``'s certificate from ``pki``, trusting the exchange's CA ``ca`` (default: the same)."""
    return ClientTls.from_files((ca or pki).ca_cert, pki.client_certs[principal], pki.client_keys[principal])


@pytest.fixture
def tls_taskforce(tmp_path: Path, pki: DemoPki) -> Iterator[TaskForce]:
    """TLS only: clients verify the exchange; no client certificates."""
    tf = start_taskforce(
        tmp_path, tls=lambda principal: server_only(pki), tls_cert_file=pki.server_cert, tls_key_file=pki.server_key
    )
    try:
        yield tf
    finally:
        tf.close()


@pytest.fixture
def mtls_taskforce(tmp_path: Path, pki: DemoPki) -> Iterator[TaskForce]:
    """Mutual TLS: every principal (the operator too) presents its own certificate."""
    tf = start_taskforce(
        tmp_path,
        tls=lambda principal: client_cert(pki, principal),
        tls_cert_file=pki.server_cert,
        tls_key_file=pki.server_key,
        tls_client_ca_file=pki.ca_cert,
    )
    try:
        yield tf
    finally:
        tf.close()


@pytest.fixture
def channels() -> Iterator[list[grpc.Channel]]:
    opened: list[grpc.Channel] = []
    try:
        yield opened
    finally:
        for c in opened:
            c.close()


def _stub(tf: TaskForce, channels: list[grpc.Channel], principal: str, tls: ClientTls | None) -> xgrpc.ExchangeServiceStub:
    channel = connect(tf.target, tf.signers[principal], principal, tls=tls, origin=tf.origin)
    channels.append(channel)
    return xgrpc.ExchangeServiceStub(channel)


def _signal_of(tf: TaskForce, name: str, value: str = MD5_A) -> bytes:
    c = tf.client(name)
    return sign(c.signal("md5", value, groups=[GROUP_ALL], signal_id=f"{name}-{value[:6]}"), tf.signers[name])


# -- TLS (server authentication only) --------------------------------------------------------


def test_tls_client_trusting_the_ca_works(tls_taskforce: TaskForce) -> None:
    tf = tls_taskforce
    alice = tf.client("alice")
    (receipt,) = alice.publish([alice.signal("md5", MD5_A, groups=[GROUP_ALL], signal_id="a1")])
    assert isinstance(receipt, Receipt)
    report = tf.client("bob", state=True).sync()
    assert report.signals == 1 and report.quarantined == 0


def test_tls_plaintext_client_is_refused(tls_taskforce: TaskForce, channels: list[grpc.Channel]) -> None:
    tf = tls_taskforce
    envelope = _signal_of(tf, "alice")
    before = tf.ledger_snapshot()
    with pytest.raises(grpc.RpcError) as info:
        publish_raw(_stub(tf, channels, "alice", None), [envelope])
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
    assert isinstance(rpc_error(info.value), Unavailable)
    assert tf.ledger_snapshot() == before


def test_tls_client_verifies_the_exchange(
    tls_taskforce: TaskForce, rogue_pki: DemoPki, pki: DemoPki, channels: list[grpc.Channel]
) -> None:
    tf = tls_taskforce
    envelope = _signal_of(tf, "alice")
    before = tf.ledger_snapshot()
    # a client trusting another CA refuses the exchange's certificate
    with pytest.raises(grpc.RpcError) as info:
        publish_raw(_stub(tf, channels, "alice", server_only(rogue_pki)), [envelope])
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
    # the certificate names 127.0.0.1 and localhost; a client expecting another name refuses it
    wrong_name = ClientTls(root_certificates=pki.ca_cert.read_bytes(), server_name="exchange.example.invalid")
    with pytest.raises(grpc.RpcError) as info:
        publish_raw(_stub(tf, channels, "alice", wrong_name), [envelope])
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
    assert tf.ledger_snapshot() == before
    # the override accepts a name the certificate does carry
    right_name = ClientTls(root_certificates=pki.ca_cert.read_bytes(), server_name="localhost")
    (result,) = publish_raw(_stub(tf, channels, "alice", right_name), [envelope])
    assert result.WhichOneof("result") == "receipt"


# -- mutual TLS ------------------------------------------------------------------------------


def test_mtls_publish_and_subscribe(mtls_taskforce: TaskForce) -> None:
    tf = mtls_taskforce
    alice, bob = tf.client("alice"), tf.client("bob")
    outcomes = alice.publish([
        alice.signal("md5", MD5_A, groups=[GROUP_ALL], signal_id="a1"),
        alice.signal("md5", MD5_B, groups=[GROUP_ALL], signal_id="a2"),
    ])
    assert all(isinstance(o, Receipt) for o in outcomes)
    (opinion,) = bob.publish([bob.opinion("alice", "a1", "true_positive")])
    assert isinstance(opinion, Receipt)
    head, records = tf.ledger_snapshot()
    entries = list(tf.client("carol").subscribe(from_index=0, follow=False))
    assert [v.record for v in entries] == records and len(entries) == head
    report = tf.client("bob", state=True).sync()
    assert report.signals == 2 and report.opinions == 1 and report.quarantined == 0


def test_mtls_health_check_needs_a_certificate_but_no_call_signature(
    mtls_taskforce: TaskForce, pki: DemoPki, channels: list[grpc.Channel]
) -> None:
    creds = grpc.ssl_channel_credentials(
        pki.ca_cert.read_bytes(), pki.client_keys["carol"].read_bytes(), pki.client_certs["carol"].read_bytes()
    )
    channel = grpc.secure_channel(mtls_taskforce.target, creds)  # no call signer at all
    channels.append(channel)
    reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=RPC_TIMEOUT_S)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize("case", ["other-ca", "other-principal", "no-client-cert"])
def test_mtls_wrong_client_cert(
    case: str, mtls_taskforce: TaskForce, pki: DemoPki, rogue_pki: DemoPki, channels: list[grpc.Channel]
) -> None:
    """Negative vector ``mtls-wrong-client-cert``: a call signed as bob with the wrong
    certificate (or none) is refused and the ledger does not change."""
    tf = mtls_taskforce
    envelope = _signal_of(tf, "bob")
    before = tf.ledger_snapshot()
    tls = {
        "other-ca": client_cert(rogue_pki, "bob", ca=pki),  # right name, CA the exchange does not trust
        "other-principal": client_cert(pki, "carol"),  # valid certificate, but for carol
        "no-client-cert": server_only(pki),
    }[case]
    stub = _stub(tf, channels, "bob", tls)
    with pytest.raises(grpc.RpcError) as info:
        publish_raw(stub, [envelope])
    if case == "other-principal":
        assert_rpc_error(info.value, grpc.StatusCode.UNAUTHENTICATED, "certificate-mismatch", "certificate mismatch")
        details = info.value.details()  # type: ignore[attr-defined]
        assert "'carol'" in details and "'bob'" in details, details
        assert isinstance(rpc_error(info.value), CertificateMismatch)
        # reads are bound the same way
        with pytest.raises(grpc.RpcError) as read:
            list(stub.Subscribe(xpb.SubscribeRequest(stop_at_head=True), timeout=RPC_TIMEOUT_S))
        assert_rpc_error(read.value, grpc.StatusCode.UNAUTHENTICATED, "certificate-mismatch", "certificate mismatch")
    else:
        # the TLS handshake fails: no call reaches the exchange
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE, info.value.details()  # type: ignore[attr-defined]
        assert isinstance(rpc_error(info.value), Unavailable)
    assert tf.ledger_snapshot() == before
    # bob with his own certificate is still served
    (result,) = publish_raw(_stub(tf, channels, "bob", client_cert(pki, "bob")), [envelope])
    assert result.WhichOneof("result") == "receipt"


def test_mtls_certificate_binding_accepts_cn_or_dns_san() -> None:
    bind_principal({"x509_common_name": [b"bob"], "peer_dns": [b"bob"]}, "bob")
    bind_principal({"x509_common_name": [b"Bob Ltd"], "peer_dns": [b"bob-ops", b"bob"]}, "bob")
    with pytest.raises(CertificateMismatch, match="'carol'.*'bob'"):
        bind_principal({"x509_common_name": [b"carol"], "peer_dns": [b"carol"]}, "bob")
    with pytest.raises(CertificateMismatch, match="no client certificate"):
        bind_principal({}, "bob")
    # only CN and DNS SANs count, not other SAN kinds grpc lists
    with pytest.raises(CertificateMismatch):
        bind_principal({"x509_common_name": [b"carol"], "x509_subject_alternative_name": [b"bob"]}, "bob")


def test_member_cli_over_mtls(mtls_taskforce: TaskForce, pki: DemoPki, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tf = mtls_taskforce
    alice = tf.client("alice")
    assert all(isinstance(o, Receipt) for o in alice.publish([alice.signal("md5", MD5_A, groups=[GROUP_ALL])]))
    key = tmp_path / "bob.key"
    key.write_text(tf.signers["bob"].seed.hex())
    common = [
        "--exchange", tf.target, "--member-id", "bob", "--key-file", str(key),
        "--operator-public-key", tf.operator.public_key.hex(), "--log-key", tf.log_key,
        "--state", str(tmp_path / "bob.db"), "--json", "--tls-ca-file", str(pki.ca_cert),
    ]
    mtls = ["--tls-cert-file", str(pki.client_certs["bob"]), "--tls-key-file", str(pki.client_keys["bob"])]
    assert main(["member", "sync", *common, *mtls]) == 0
    assert json.loads(capsys.readouterr().out)["signals"] == 1
    # carol's certificate for bob's calls: refused with the mismatch, exit code UNAUTHENTICATED
    carol = ["--tls-cert-file", str(pki.client_certs["carol"]), "--tls-key-file", str(pki.client_keys["carol"])]
    assert main(["member", "sync", *common, *carol]) == 4
    assert "certificate mismatch" in capsys.readouterr().err


# -- configuration errors --------------------------------------------------------------------


def test_tls_config_errors_name_the_setting(tmp_path: Path, pki: DemoPki) -> None:
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello\n")
    cases: list[tuple[dict[str, object], str]] = [
        ({"tls_cert_file": pki.server_cert}, "tls_cert_file and tls_key_file go together"),
        ({"tls_client_ca_file": pki.ca_cert}, "needs tls_cert_file and tls_key_file"),
        ({"tls_cert_file": tmp_path / "nope.pem", "tls_key_file": pki.server_key}, "nope.pem does not exist"),
        ({"tls_cert_file": not_pem, "tls_key_file": pki.server_key}, "does not hold a PEM certificate"),
        ({"tls_cert_file": pki.server_cert, "tls_key_file": pki.client_keys["bob"]}, "is not the private key of"),
        (
            {"tls_cert_file": pki.server_cert, "tls_key_file": pki.server_key, "tls_client_ca_file": not_pem},
            "tls_client_ca_file",
        ),
    ]
    for i, (settings, message) in enumerate(cases):
        with pytest.raises(ConfigError, match=message):
            start_taskforce(tmp_path / f"case-{i}", **settings)
    with pytest.raises(ConfigError, match="go together"):
        ClientTls(root_certificates=pki.ca_cert.read_bytes(), certificate_chain=pki.client_certs["bob"].read_bytes())
    with pytest.raises(ConfigError, match="tls_ca_file .* does not exist"):
        ClientTls.from_files(tmp_path / "missing-ca.pem")
    with pytest.raises(ConfigError, match="tls_key_file .* does not hold a PEM private key"):
        ClientTls.from_files(pki.ca_cert, pki.client_certs["bob"], pki.client_certs["bob"])


def test_demo_pki_is_marked_insecure_and_keys_are_private(pki: DemoPki) -> None:
    assert "INSECURE" in (pki.directory / "README-INSECURE.txt").read_text()
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(pki.client_certs["bob"].read_bytes())
    assert "INSECURE" in cert.subject.rfc4514_string() and "CN=bob" in cert.subject.rfc4514_string()
    for key in (pki.server_key, *pki.client_keys.values()):
        assert key.stat().st_mode & 0o077 == 0, key
