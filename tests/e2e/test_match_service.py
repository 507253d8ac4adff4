"""`trustwire member serve-match` as a process, following a real exchange on 127.0.0.1."""

from __future__ import annotations

import io
import json
import re
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from PIL import Image

from clients.cli.main import main
from clients.media import pdq_distance
from exchange.pb.trustwire.v1 import match_pb2 as mpb
from exchange.pb.trustwire.v1 import match_pb2_grpc as mgrpc
from tests.conftest import GROUP_ALL, TaskForce, accepted, start_taskforce, wait_until

TOKEN = "pipeline-token-INSECURE-for-tests-0123456789"
MD5 = "0123456789abcdef0123456789abcdef"
REASON = "tw-reason"
PDQ = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"


@dataclass
class Svc:
    proc: subprocess.Popen[str]
    http: str
    grpc_target: str
    state: Path

    def call(self, method: str, path: str, body: bytes | None = None, token: str | None = TOKEN,
             content_type: str = "application/json") -> tuple[int, dict[str, str], Any]:
        req = urllib.request.Request(self.http + path, data=body, method=method)
        if token is not None:
            req.add_header("Authorization", f"Bearer {token}")
        if body is not None:
            req.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                raw = r.read()
                return r.status, dict(r.headers), json.loads(raw) if raw else None
        except urllib.error.HTTPError as e:
            raw = e.read()
            return e.code, dict(e.headers), json.loads(raw) if raw else None

    def lookup(self, type_: str, value: str) -> dict[str, Any]:
        status, _, body = self.call("GET", f"/v1/lookup/{type_}?value={value}")
        assert status == 200, body
        return body  # type: ignore[no-any-return]

    def ready(self) -> bool:
        try:
            return self.call("GET", "/v1/ready", token=None)[0] == 200
        except urllib.error.URLError:
            return False


def _start(tf_target: str, log_key: str, operator_hex: str, tmp: Path, member: str, seed_hex: str,
           *extra: str) -> Svc:
    key = tmp / f"{member}.key"
    key.write_text(seed_hex)
    tokens = tmp / "tokens"
    tokens.write_text(f"# the upload pipeline\n{TOKEN}\n")
    state = tmp / f"{member}-match.db"
    proc, http, grpc_port = spawn(tf_target, log_key, operator_hex, key, state, "--token-file", str(tokens), *extra)
    return Svc(proc, f"http://127.0.0.1:{http}", f"127.0.0.1:{grpc_port}", state)


def spawn(tf_target: str, log_key: str, operator_hex: str, key: Path, state: Path,
          *extra: str) -> tuple[subprocess.Popen[str], int, int]:
    """A serve-match process on 127.0.0.1:0 (HTTP or HTTPS, and gRPC): (process, http port, grpc port)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "clients.cli.main", "member", "serve-match", "--exchange", tf_target,
         "--member-id", key.stem, "--key-file", str(key), "--operator-public-key", operator_hex,
         "--log-key", log_key, "--state", str(state),
         "--http-listen", "127.0.0.1:0", "--grpc-listen", "127.0.0.1:0", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None
    http = re.search(r"https? port (\d+)", proc.stdout.readline())  # bounded by pytest-timeout
    grpc_port = re.search(r"grpc port (\d+)", proc.stdout.readline())
    assert http and grpc_port, proc.stderr.read() if proc.poll() is not None else "no ports printed"
    return proc, int(http.group(1)), int(grpc_port.group(1))


def _stop(svc: Svc) -> None:
    svc.proc.send_signal(signal.SIGTERM)
    assert svc.proc.wait(timeout=30) == 0, svc.proc.stderr.read() if svc.proc.stderr else ""


def start_for(tf: TaskForce, tmp: Path, member: str = "bob", *extra: str) -> Svc:
    return _start(tf.target, tf.log_key, tf.operator.public_key.hex(), tmp, member,
                  tf.signers[member].seed.hex(), *extra)


@pytest.fixture
def svc(tf: TaskForce, tmp_path: Path) -> Iterator[Svc]:
    s = start_for(tf, tmp_path)
    try:
        wait_until(s.ready, timeout=30)
        yield s
    finally:
        _stop(s)


def _png(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).resize((256, 256)).save(buf, "PNG")
    return buf.getvalue()


def test_published_signal_becomes_matchable_then_a_retraction_stops_it(tf: TaskForce, svc: Svc) -> None:
    alice = tf.client("alice")
    near = "%064x" % (int(PDQ, 16) ^ 0b1011)  # 3 bits away
    image = _png(5)
    _, _, got_hashes = svc.call("POST", "/v1/hash?filename=upload.png", image, content_type="application/octet-stream")
    hashed = {h["type"]: h["value"] for h in got_hashes["hashes"]}
    assert set(hashed) == {"md5", "sha256", "pdq"}
    receipts = accepted(alice.publish([
        alice.signal("md5", MD5.upper(), signal_id="m1", labels=["csam"], confidence=90, severity="high",
                     groups=[GROUP_ALL]),
        alice.signal("pdq", PDQ, signal_id="p1", labels=["ncii"], groups=[GROUP_ALL]),
        alice.signal("sha256", hashed["sha256"], signal_id="f1", groups=[GROUP_ALL]),
        alice.signal("domain", "bad.example", signal_id="d1", groups=[GROUP_ALL]),
    ]))
    wait_until(lambda: svc.lookup("md5", MD5)["matches"], timeout=20)
    m = svc.lookup("md5", MD5.upper())["matches"][0]  # the service normalizes the value
    assert m["publisher"] == "alice" and m["signal_id"] == "m1" and m["ledger_index"] == receipts[0].index
    assert m["labels"] == ["csam"] and m["confidence"] == 90 and m["severity"] == "high"
    assert m["distance"] == 0 and m["opinions"] == {} and m["decision"]["action"] == "ignore"

    p = svc.lookup("pdq", near)["matches"]
    assert [(x["signal_id"], x["distance"]) for x in p] == [("p1", pdq_distance(PDQ, near))]
    assert [x["signal_id"] for x in svc.lookup("url", "https://www.bad.example/x")["matches"]] == ["d1"]
    assert svc.lookup("md5", "f" * 32)["matches"] == []

    status, _, batch = svc.call("POST", "/v1/lookup", json.dumps(
        {"queries": [{"type": "md5", "value": MD5}, {"type": "pdq", "value": near}, {"type": "md5", "value": "0" * 32}]}
    ).encode())
    assert status == 200 and [len(r["matches"]) for r in batch["results"]] == [1, 1, 0]
    # the GET fast path (raw ASGI, orjson) answers exactly as the routed batch call
    assert [svc.lookup("md5", MD5), svc.lookup("pdq", near)] == batch["results"][:2]
    assert svc.call("GET", f"/v1/lookup/md5?value={'0' * 32}&value={MD5}")[2] == batch["results"][0]  # last wins
    # concurrent PDQ lookups are searched together: each still gets its own answer or error
    queries = [near, "nothex", "0" * 64, "%064x" % (int(PDQ, 16) ^ 0xFFFF)] * 4
    with ThreadPoolExecutor(len(queries)) as pool:
        got = list(pool.map(lambda q: svc.call("GET", f"/v1/lookup/pdq?value={q}"), queries))
    expected = [(200, ["p1"]), (400, None), (200, []), (200, ["p1"])] * 4
    assert [(s, [x["signal_id"] for x in b["matches"]] if s == 200 else None) for s, _, b in got] == expected
    assert all(h["tw-reason"] == "invalid-value" for s, h, _ in got if s == 400)
    with pytest.raises(urllib.error.HTTPError) as missing:  # not a lookup path: the routes answer (plain text)
        urllib.request.urlopen(svc.http + f"/v1/lookup/md5/x?value={MD5}", timeout=10)
    assert missing.value.code == 404

    status, _, content = svc.call("POST", "/v1/content", image, content_type="application/octet-stream")
    without_name = {h["type"]: h["value"] for h in content["hashes"]}  # a PNG by its magic number
    assert status == 200 and without_name == hashed
    assert [(r["type"], [x["signal_id"] for x in r["matches"]]) for r in content["results"] if r["matches"]] == [
        ("sha256", ["f1"])
    ]
    assert sorted(r["type"] for r in content["results"]) == ["md5", "pdq", "sha256"]

    with grpc.insecure_channel(svc.grpc_target) as ch:
        stub = mgrpc.MatchServiceStub(ch)
        md = (("authorization", f"Bearer {TOKEN}"),)
        reply = stub.Lookup(mpb.LookupRequest(type="md5", value=MD5), metadata=md, timeout=10)
        assert [(x.publisher, x.signal_id, x.ledger_index) for x in reply.matches] == [("alice", "m1", receipts[0].index)]
        assert reply.matches[0].decision.action == "ignore" and list(reply.matches[0].labels) == ["csam"]
        got = stub.LookupContent(mpb.LookupContentRequest(content=image), metadata=md, timeout=10)
        assert {h.type: h.value for h in got.hashes}["sha256"] == hashed["sha256"]
        assert any(r.matches for r in got.results)

    accepted(alice.publish([alice.retraction("m1"), alice.retraction("p1")]))
    wait_until(lambda: not svc.lookup("md5", MD5)["matches"], timeout=20)
    assert svc.lookup("pdq", near)["matches"] == []
    text = urllib.request.urlopen(svc.http + "/metrics", timeout=10).read().decode()
    assert 'trustwire_match_lookups_total{outcome="match",type="md5"}' in text
    assert "trustwire_match_lag_entries 0.0" in text and "trustwire_match_ready 1.0" in text


def test_allow_listed_hash_never_matches(tf: TaskForce, svc: Svc, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, added = svc.call("POST", "/v1/allow-list", json.dumps(
        {"type": "md5", "value": MD5.upper(), "reason": "our own logo"}).encode())
    assert status == 201 and added["value"] == MD5
    # and one through the CLI, editing the same allow-list while the service runs
    assert main(["member", "allow-list", "add", "pdq", PDQ, "--reason", "stock photo",
                 "--state", str(svc.state), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["type"] == "pdq"
    alice = tf.client("alice")
    accepted(alice.publish([
        alice.signal("md5", MD5, signal_id="m1", groups=[GROUP_ALL]),
        alice.signal("pdq", PDQ, signal_id="p1", groups=[GROUP_ALL]),
        alice.signal("md5", "a" * 32, signal_id="m2", groups=[GROUP_ALL]),
    ]))
    wait_until(lambda: svc.lookup("md5", "a" * 32)["matches"], timeout=20)  # caught up with all three
    wait_until(lambda: svc.lookup("pdq", PDQ)["suppressed"], timeout=5)  # the CLI's edit is seen within ~1 s
    got = svc.lookup("md5", MD5)
    assert got["matches"] == [] and got["suppressed"][0]["signal_id"] == "m1"
    assert got["suppressed"][0]["suppressed_by"] == "allow-list: our own logo"
    near = "%064x" % (int(PDQ, 16) ^ 0b111)
    assert svc.lookup("pdq", near)["matches"] == []  # near an allow-listed PDQ: suppressed too
    status, _, _ = svc.call("DELETE", f"/v1/allow-list/md5?value={MD5}")
    assert status == 204
    assert [m["signal_id"] for m in svc.lookup("md5", MD5)["matches"]] == ["m1"]
    assert main(["member", "allow-list", "list", "--state", str(svc.state), "--json"]) == 0
    assert [e["type"] for e in json.loads(capsys.readouterr().out)] == ["pdq"]


def test_false_positive_opinions_suppress_when_the_policy_says_so(tf: TaskForce, tmp_path: Path) -> None:
    s = start_for(tf, tmp_path, "bob", "--suppress-false-positives", "2")
    try:
        wait_until(s.ready, timeout=30)
        alice, carol = tf.client("alice"), tf.client("carol")
        bob = tf.client("bob")
        accepted(alice.publish([alice.signal("md5", MD5, signal_id="m1", groups=[GROUP_ALL])]))
        accepted(carol.publish([carol.opinion("alice", "m1", "false_positive")]))
        wait_until(lambda: s.lookup("md5", MD5)["matches"] and s.lookup("md5", MD5)["matches"][0]["opinions"], 20)
        assert s.lookup("md5", MD5)["matches"][0]["opinions"] == {"false_positive": 1}  # one is not enough
        accepted(bob.publish([bob.opinion("alice", "m1", "false_positive")]))
        wait_until(lambda: s.lookup("md5", MD5)["suppressed"], timeout=20)
        got = s.lookup("md5", MD5)
        assert got["matches"] == [] and got["suppressed"][0]["suppressed_by"].startswith("false-positive opinions: 2")
    finally:
        _stop(s)


def test_compromised_key_signals_stop_matching(tf: TaskForce, svc: Svc) -> None:
    alice = tf.client("alice")
    stolen = accepted(alice.publish([alice.signal("md5", MD5, signal_id="m1", groups=[GROUP_ALL])]))[0]
    wait_until(lambda: svc.lookup("md5", MD5)["matches"], timeout=20)
    op = tf.operator_client()
    accepted(op.publish([op.revoke_key("alice", alice.signer.keyid, compromised_since_index=stolen.index)]))
    op.close()
    wait_until(lambda: not svc.lookup("md5", MD5)["matches"], timeout=20)
    assert svc.lookup("md5", MD5)["suppressed"] == []  # gone, not merely withheld


def test_missing_credentials_are_refused(svc: Svc) -> None:
    for method, path, body in [("GET", f"/v1/lookup/md5?value={MD5}", None),
                               ("POST", "/v1/lookup", b'{"queries": []}'),
                               ("POST", "/v1/content", b"bytes"),
                               ("GET", "/v1/allow-list", None)]:
        status, headers, body_ = svc.call(method, path, body, token=None)
        assert status == 401 and headers["tw-reason"] == "missing-credentials", (path, body_)
    with grpc.insecure_channel(svc.grpc_target) as ch:
        with pytest.raises(grpc.RpcError) as exc:
            mgrpc.MatchServiceStub(ch).Lookup(mpb.LookupRequest(type="md5", value=MD5), timeout=10)
    assert exc.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert ("tw-reason", "missing-credentials") in exc.value.trailing_metadata()


def test_forged_token_is_refused(svc: Svc) -> None:
    status, headers, _ = svc.call("GET", f"/v1/lookup/md5?value={MD5}", token=TOKEN[:-1] + "X")
    assert status == 401 and headers["tw-reason"] == "unauthenticated"
    status, headers, _ = svc.call("POST", "/v1/allow-list", b'{"type":"md5","value":"%s","reason":"x"}' % MD5.encode(),
                                  token="Basic " + TOKEN)
    assert status == 401
    with grpc.insecure_channel(svc.grpc_target) as ch:
        with pytest.raises(grpc.RpcError) as exc:
            mgrpc.MatchServiceStub(ch).Lookup(mpb.LookupRequest(type="md5", value=MD5),
                                              metadata=(("authorization", "Bearer " + "x" * 40),), timeout=10)
    assert exc.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert svc.call("GET", "/v1/allow-list")[2]["entries"] == []  # nothing was added


def test_bad_input_is_a_clear_error(svc: Svc) -> None:
    cases = [
        ("GET", "/v1/lookup/md5?value=nothex", None, 400, "invalid-value"),
        ("GET", "/v1/lookup/Not-A-Type?value=x", None, 400, "invalid-value"),
        ("GET", "/v1/lookup/no_such_type?value=x", None, 400, "invalid-value"),
        ("GET", "/v1/lookup/md5", None, 400, "invalid-input"),
        ("POST", "/v1/lookup", b"{not json", 400, "invalid-input"),
        ("POST", "/v1/lookup", b'{"queries": [{"type": "md5"}]}', 400, "invalid-input"),
        ("POST", "/v1/lookup", json.dumps({"queries": [{"type": "md5", "value": MD5}] * 1001}).encode(), 413,
         "oversized-batch"),
        ("POST", "/v1/lookup", b"[" + b" " * (1 << 20) + b"]", 413, "oversized-batch"),
        ("POST", "/v1/allow-list", b'{"type": "text", "value": "x", "reason": "r"}', 400, "invalid-value"),
        ("POST", "/v1/allow-list", b'{"type": "md5", "value": "%s", "reason": ""}' % MD5.encode(), 400,
         "invalid-value"),
        ("DELETE", f"/v1/allow-list/md5?value={MD5}", None, 404, "not-found"),
    ]
    for method, path, body, code, reason in cases:
        status, headers, got = svc.call(method, path, body)
        assert (status, headers.get("tw-reason")) == (code, reason), (path, got)
        assert got["error"]["reason"] == reason
    assert svc.call("GET", "/v1/allow-list")[2]["entries"] == []  # no side effect
    md = (("authorization", f"Bearer {TOKEN}"),)
    with grpc.insecure_channel(svc.grpc_target) as ch:
        garbage = ch.unary_unary("/trustwire.v1.MatchService/Lookup")  # raw bytes in, raw bytes out
        for call, code, reason in [
            (lambda: garbage(b"\xff\xff\xff", metadata=md, timeout=10), "INVALID_ARGUMENT", "invalid-input"),
            (lambda: mgrpc.MatchServiceStub(ch).Lookup(mpb.LookupRequest(type="md5", value="nothex"), metadata=md,
                                                      timeout=10), "INVALID_ARGUMENT", "invalid-value"),
            (lambda: mgrpc.MatchServiceStub(ch).LookupBatch(
                mpb.LookupBatchRequest(queries=[mpb.LookupRequest(type="md5", value=MD5)] * 1001), metadata=md,
                timeout=10), "RESOURCE_EXHAUSTED", "oversized-batch"),
        ]:
            with pytest.raises(grpc.RpcError) as exc:
                call()
            assert exc.value.code() == getattr(grpc.StatusCode, code)
            assert (REASON, reason) in exc.value.trailing_metadata()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_service_behind_the_exchange_is_not_ready(tf: TaskForce, tmp_path: Path) -> None:
    # nothing listens where this service looks for the exchange: it cannot be caught up
    s = _start(f"127.0.0.1:{_free_port()}", tf.log_key, tf.operator.public_key.hex(), tmp_path, "bob",
               tf.signers["bob"].seed.hex())
    try:
        status, _, body = s.call("GET", "/v1/ready", token=None)
        assert status == 503 and body["ready"] is False
        assert s.call("GET", "/v1/health", token=None)[0] == 200  # alive, just not ready
        status, headers, _ = s.call("GET", f"/v1/lookup/md5?value={MD5}")
        assert status == 503 and headers["tw-reason"] == "not-ready"
        with grpc.insecure_channel(s.grpc_target) as ch:
            with pytest.raises(grpc.RpcError) as exc:
                mgrpc.MatchServiceStub(ch).Lookup(mpb.LookupRequest(type="md5", value=MD5),
                                                  metadata=(("authorization", f"Bearer {TOKEN}"),), timeout=10)
        assert exc.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        _stop(s)


def test_a_service_that_loses_the_exchange_stops_being_ready(tmp_path: Path) -> None:
    tf = start_taskforce(tmp_path / "exchange")
    s = start_for(tf, tmp_path)
    try:
        wait_until(s.ready, timeout=30)
    finally:
        tf.close()  # the exchange goes away
    try:
        wait_until(lambda: not s.ready(), timeout=20)
        status, headers, _ = s.call("GET", f"/v1/lookup/md5?value={MD5}")
        assert status == 503 and headers["tw-reason"] == "not-ready"
    finally:
        _stop(s)


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", *args], check=True, timeout=120)


def test_a_video_matches_frame_by_frame(tf: TaskForce, svc: Svc, tmp_path: Path) -> None:
    from exchange.core.signals import signal_type

    original, copy, other = tmp_path / "original.mp4", tmp_path / "copy.mp4", tmp_path / "other.mp4"
    _ffmpeg("-f", "lavfi", "-i", "testsrc=duration=6:size=320x240:rate=10", "-pix_fmt", "yuv420p", str(original))
    _ffmpeg("-i", str(original), "-c:v", "libx264", "-crf", "28", str(copy))  # re-encoded: other bytes
    _ffmpeg("-f", "lavfi", "-i", "mandelbrot=size=320x240:rate=10", "-t", "6", "-pix_fmt", "yuv420p", str(other))
    hashed = signal_type("vpdq").hash_media(original)
    assert hashed is not None, "the vpdq package must be installed"
    alice = tf.client("alice")
    receipt = accepted(alice.publish([alice.signal("vpdq", hashed.value, signal_id="v1", labels=["terrorism"],
                                                   groups=[GROUP_ALL])]))[0]
    wait_until(lambda: svc.lookup("vpdq", hashed.value)["matches"], timeout=20)

    status, _, got = svc.call("POST", "/v1/content?filename=copy.mp4", copy.read_bytes(),
                              content_type="application/octet-stream")
    assert status == 200
    assert {h["type"] for h in got["hashes"]} == {"md5", "sha256", "video_md5", "vpdq"}
    [video] = [r for r in got["results"] if r["type"] == "vpdq"]
    [m] = video["matches"]
    assert (m["signal_id"], m["ledger_index"], m["labels"]) == ("v1", receipt.index, ["terrorism"])
    assert m["video"] == {"query_match_percent": 100.0, "compared_match_percent": 100.0}
    assert [r for r in got["results"] if r["type"] in ("md5", "video_md5") and r["matches"]] == []

    status, _, got = svc.call("POST", "/v1/content", other.read_bytes(),  # an MP4 by its magic number
                              content_type="application/octet-stream")
    assert status == 200 and all(not r["matches"] for r in got["results"])
