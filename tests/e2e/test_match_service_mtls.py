"""The match service under mutual TLS: `trustwire member serve-match` as a process,
following a real exchange, with a generated PKI (exchange.server.tls.generate_demo_pki)."""

from __future__ import annotations

import json
import signal
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from clients.cli.main import main
from exchange.core.errors import ExitCode
from exchange.pb.trustwire.v1 import match_pb2 as mpb
from exchange.pb.trustwire.v1 import match_pb2_grpc as mgrpc
from exchange.server.tls import DemoPki, generate_demo_pki
from tests.conftest import GROUP_ALL, TaskForce, accepted, wait_until
from tests.e2e.test_match_service import spawn

TOKEN = "pipeline-token-INSECURE-for-tests-0123456789"
MD5 = "0123456789abcdef0123456789abcdef"
PIPELINE = "upload-pipeline"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DemoPki:
    return generate_demo_pki(tmp_path_factory.mktemp("pki"), ("127.0.0.1", "localhost"), [PIPELINE])


@pytest.fixture(scope="module")
def rogue(tmp_path_factory: pytest.TempPathFactory) -> DemoPki:
    """Another CA issuing a certificate for the same name: the service does not trust it."""
    return generate_demo_pki(tmp_path_factory.mktemp("rogue"), ("127.0.0.1", "localhost"), [PIPELINE])


@dataclass
class Svc:
    proc: subprocess.Popen[str]
    https: str
    grpc_target: str
    pki: DemoPki

    def context(self, cert_from: DemoPki | None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.pki.ca_cert))
        if cert_from is not None:
            ctx.load_cert_chain(str(cert_from.client_certs[PIPELINE]), str(cert_from.client_keys[PIPELINE]))
        return ctx

    def get(self, path: str, cert_from: DemoPki | None, token: str | None = None) -> tuple[int, Any]:
        req = urllib.request.Request(self.https + path)
        if token is not None:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=10, context=self.context(cert_from)) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def channel(self, cert_from: DemoPki | None) -> grpc.Channel:
        key = cert = None
        if cert_from is not None:
            key = cert_from.client_keys[PIPELINE].read_bytes()
            cert = cert_from.client_certs[PIPELINE].read_bytes()
        creds = grpc.ssl_channel_credentials(self.pki.ca_cert.read_bytes(), key, cert)
        return grpc.secure_channel(self.grpc_target, creds)


def _start(tf: TaskForce, tmp: Path, pki: DemoPki, *extra: str) -> Svc:
    key = tmp / "bob.key"
    key.write_text(tf.signers["bob"].seed.hex())
    proc, https, grpc_port = spawn(
        tf.target, tf.log_key, tf.operator.public_key.hex(), key, tmp / "bob-match.db",
        "--serve-tls-cert-file", str(pki.server_cert), "--serve-tls-key-file", str(pki.server_key),
        "--client-ca-file", str(pki.ca_cert), *extra,
    )
    svc = Svc(proc, f"https://127.0.0.1:{https}", f"127.0.0.1:{grpc_port}", pki)
    wait_until(lambda: svc.get("/v1/ready", pki)[0] == 200, timeout=30)
    return svc


@pytest.fixture
def svc(tf: TaskForce, tmp_path: Path, pki: DemoPki) -> Iterator[Svc]:
    s = _start(tf, tmp_path, pki)  # client certificates only, no token file
    try:
        yield s
    finally:
        s.proc.send_signal(signal.SIGTERM)
        assert s.proc.wait(timeout=30) == 0


def _publish_md5(tf: TaskForce) -> None:
    alice = tf.client("alice")
    accepted(alice.publish([alice.signal("md5", MD5, signal_id="m1", labels=["csam"], groups=[GROUP_ALL])]))


def test_pipeline_certificate_alone_matches_over_https_and_grpc(tf: TaskForce, svc: Svc, pki: DemoPki) -> None:
    _publish_md5(tf)
    wait_until(lambda: svc.get(f"/v1/lookup/md5?value={MD5}", pki)[1]["matches"], timeout=20)
    status, body = svc.get(f"/v1/lookup/md5?value={MD5}", pki)
    assert status == 200 and body["matches"][0]["signal_id"] == "m1"
    with svc.channel(pki) as ch:
        reply = mgrpc.MatchServiceStub(ch).Lookup(mpb.LookupRequest(type="md5", value=MD5), timeout=10)
    assert [m.signal_id for m in reply.matches] == ["m1"]
    spec = svc.get("/v1/openapi.json", pki)[1]
    assert spec["components"]["securitySchemes"]["mtls"]["type"] == "mutualTLS"


def test_caller_without_a_client_certificate_is_refused(svc: Svc) -> None:
    with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
        svc.get(f"/v1/lookup/md5?value={MD5}", None)
    with svc.channel(None) as ch, pytest.raises(grpc.RpcError) as exc:
        mgrpc.MatchServiceStub(ch).Lookup(mpb.LookupRequest(type="md5", value=MD5), timeout=10)
    assert exc.value.code() == grpc.StatusCode.UNAVAILABLE


def test_certificate_from_another_ca_is_refused(svc: Svc, rogue: DemoPki) -> None:
    with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
        svc.get(f"/v1/lookup/md5?value={MD5}", rogue)
    with svc.channel(rogue) as ch, pytest.raises(grpc.RpcError) as exc:
        mgrpc.MatchServiceStub(ch).Lookup(mpb.LookupRequest(type="md5", value=MD5), timeout=10)
    assert exc.value.code() == grpc.StatusCode.UNAVAILABLE


def test_with_tokens_too_a_stolen_certificate_without_the_token_is_refused(
    tf: TaskForce, tmp_path: Path, pki: DemoPki
) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text(TOKEN + "\n")
    s = _start(tf, tmp_path, pki, "--token-file", str(tokens))
    try:
        status, body = s.get(f"/v1/lookup/md5?value={MD5}", pki)
        assert status == 401, body
        assert s.get(f"/v1/lookup/md5?value={MD5}", pki, token=TOKEN)[0] == 200
        with s.channel(pki) as ch, pytest.raises(grpc.RpcError) as exc:
            mgrpc.MatchServiceStub(ch).Lookup(mpb.LookupRequest(type="md5", value=MD5), timeout=10)
        assert exc.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        s.proc.send_signal(signal.SIGTERM)
        assert s.proc.wait(timeout=30) == 0


def test_serve_match_never_starts_open(tmp_path: Path, pki: DemoPki, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["member", "serve-match", "--exchange", "127.0.0.1:1", "--member-id", "bob",
            "--state", str(tmp_path / "s.db"), "--http-listen", "127.0.0.1:0"]
    assert main(base) == ExitCode.USAGE
    assert "never open" in capsys.readouterr().err
    # TLS without a client CA authenticates nobody: still a token is needed
    assert main([*base, "--serve-tls-cert-file", str(pki.server_cert),
                 "--serve-tls-key-file", str(pki.server_key)]) == ExitCode.USAGE
    assert "never open" in capsys.readouterr().err
    assert main([*base, "--client-ca-file", str(pki.ca_cert)]) == ExitCode.USAGE
    assert "--client-ca-file (mutual TLS) also needs" in capsys.readouterr().err
    assert main([*base, "--serve-tls-cert-file", str(pki.server_cert), "--serve-tls-key-file",
                 str(pki.ca_cert), "--client-ca-file", str(pki.ca_cert)]) == ExitCode.USAGE
    assert not (tmp_path / "s.db").exists()  # no side effect
