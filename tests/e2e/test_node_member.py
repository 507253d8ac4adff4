"""The second implementation (interop/node, written from PROTOCOL.md) against a real exchange.

The Node member checks every conformance vector, publishes a signal it signed itself,
and reads the whole stream a member sees, verifying every checkpoint, consistency
proof, batch and single inclusion proof and record. It must agree, entry for entry,
with the Python SDK. Node and its npm dependencies (``npm ci`` in interop/node, done
by .ci/run) are required: a missing tool fails these tests.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from clients.accounts import account_value
from exchange.core import callauth, signals
from exchange.core.errors import TrustwireError
from exchange.core.note import NoteSigner
from exchange.pb.trustwire.v1 import entries_pb2 as pb
from tests.conftest import GROUP_ALL, GROUP_NCII, REPO, TaskForce, accepted, insecure_signer, start_taskforce

NODE_DIR = REPO / "interop" / "node"
TIMEOUT_S = 120


def node() -> str:
    """The node binary, with interop/node's locked dependencies installed (``npm ci`` once)."""
    path = shutil.which("node")
    assert path, "node (v20+) and npm are required: install them (see the README's test command)"
    if not (NODE_DIR / "node_modules" / "@grpc" / "grpc-js").is_dir():
        npm = shutil.which("npm")
        assert npm, "npm is required to install interop/node's dependencies"
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True, timeout=600)
    return path


def call_auth() -> str:
    """The call-auth version the exchange in this checkout speaks (v2 is temporary)."""
    return str(getattr(callauth, "VERSION", "trustwire-call-v3")).removeprefix("trustwire-call-")


def run_member(
    tf: TaskForce, tmp: Path, principal: str, *args: str, log_key: str = "", operator_key: bytes = b""
) -> tuple[int, dict[str, Any], str]:
    """Run interop/node/bin/member.js; (exit code, its JSON report, stderr)."""
    seed = tmp / f"{principal}.seed"
    seed.write_text(tf.signers[principal].seed.hex())
    proc = subprocess.run(
        [node(), str(NODE_DIR / "bin" / "member.js"), *args, "--target", tf.target, "--principal", principal,
         "--seed-file", str(seed), "--operator-public-key", (operator_key or tf.operator.public_key).hex(),
         "--log-key", log_key or tf.log_key, "--call-auth", call_auth()],
        capture_output=True, text=True, timeout=TIMEOUT_S, check=False,
    )
    out = json.loads(proc.stdout) if proc.stdout.strip() else {}
    return proc.returncode, out, proc.stderr


@pytest.fixture
def taskforce_ledger(tmp_path: Path) -> Any:
    """An exchange holding every entry kind: signals of several types, a hidden one,
    an opinion, a retraction, a key rotation and a compromised key."""
    tf = start_taskforce(tmp_path / "exchange")
    try:
        alice, bob, carol = tf.client("alice"), tf.client("bob"), tf.client("carol")
        secret = b"task-force-secret-INSECURE"
        accepted(alice.publish([
            alice.signal("md5", "d41d8cd98f00b204e9800998ecf8427e", groups=[GROUP_ALL], signal_id="a-md5"),
            alice.signal("url", "https://example.com/a%20b?q=1", groups=[GROUP_ALL], signal_id="a-url"),
            alice.signal("domain", "xn--bcher-kva.example", groups=[GROUP_ALL], signal_id="a-domain"),
            alice.signal("text", "buy cheap followers", groups=[GROUP_ALL], signal_id="a-text"),
            alice.signal("account", account_value("examplechat", "email", "Someone@Example.com", secret),
                         groups=[GROUP_ALL], signal_id="a-account"),
            alice.signal("md5", "0cc175b9c0f1b6a831c399e269772661", groups=[GROUP_NCII], signal_id="a-hidden",
                         tlp="amber+strict"),
        ]))
        accepted(bob.publish([bob.signal("sha256", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                                         groups=[GROUP_ALL], signal_id="b-1")]))
        accepted(carol.publish([carol.opinion("alice", "a-md5", "true_positive")]))
        accepted(alice.publish([alice.retraction("a-text", "false_positive")]))
        op = tf.operator_client()
        new_alice = insecure_signer("alice-rotated")
        accepted(op.publish(op.rotate_key("alice", tf.signers["alice"].keyid, new_alice.public_key, overlap_ms=0)))
        tf.signers["alice"] = new_alice
        accepted(tf.client("alice").publish([tf.client("alice").signal(
            "md5", "92eb5ffee6ae2fec3ad71c777531578f", groups=[GROUP_ALL], signal_id="a-after-rotation")]))
        (stolen,) = accepted(carol.publish([carol.signal("sha1", "da39a3ee5e6b4b0d3255bfef95601890afd80709",
                                                         groups=[GROUP_ALL], signal_id="c-1")]))
        accepted(op.publish([op.revoke_key("carol", tf.signers["carol"].keyid, compromised_since_index=stolen.index)]))
        op.close()
        yield tf
    finally:
        tf.close()


def python_view(tf: TaskForce, principal: str) -> tuple[list[int], list[int]]:
    """(verified indices, untrusted indices) as the Python SDK sees the stream."""
    untrusted: list[int] = []
    client = tf.client(principal)
    verified = [v.index for v in client.subscribe(0, follow=False,
                                                  on_untrusted=lambda e: untrusted.append(_index_of(e)))]
    return verified, untrusted


def _index_of(e: TrustwireError) -> int:
    text = str(e)
    return int(text.split("entry ", 1)[1].split(":", 1)[0]) if "entry " in text else -1


def test_node_checks_every_conformance_vector() -> None:
    proc = subprocess.run([node(), str(NODE_DIR / "bin" / "verify-vectors.js")], capture_output=True, text=True,
                          timeout=TIMEOUT_S, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["failures"] == [] and len(summary["files"]) >= 10


def test_node_member_verifies_the_stream_like_the_python_sdk(taskforce_ledger: TaskForce, tmp_path: Path) -> None:
    tf = taskforce_ledger
    for principal in ("bob", "alice"):
        code, report, err = run_member(tf, tmp_path, principal, "verify")
        assert code == 0, err
        verified, untrusted = python_view(tf, principal)
        assert report["verified"] == verified, (report, verified)
        assert [u["index"] for u in report["untrusted"]] == untrusted == []
        head = tf.server.ledger.head()
        assert report["checkpoint"]["size"] == head
        assert report["checkpoint"]["root"] == tf.server.checkpoints.tree.root(head).hex()
        assert report["inclusion_proofs"] == len(verified) and report["checkpoints"] >= 1
        assert report["keydir_checks"] >= 1 and "keydir_error" not in report  # the trustwire-keydir line
        assert report["tainted"] == [i for i in verified if i == _carol_stolen_index(tf)]
    hidden = _index_of_signal(tf, "a-hidden")
    assert hidden in run_member(tf, tmp_path, "alice", "verify")[1]["verified"]
    assert hidden not in run_member(tf, tmp_path, "bob", "verify")[1]["verified"]


def test_node_member_publishes_and_waits_for_coverage(taskforce_ledger: TaskForce, tmp_path: Path) -> None:
    tf = taskforce_ledger
    code, receipt, err = run_member(tf, tmp_path, "bob", "publish", "--signal-id", "node-1", "--type", "md5",
                                    "--value", "9e107d9d372bb6826bd81d3542a419d6", "--group", GROUP_ALL,
                                    "--tlp", "2")
    assert code == 0, err
    assert receipt["checkpoint_size"] > receipt["index"]
    record = tf.server.ledger.read(receipt["index"], 1)[0].record
    from exchange.core.records import leaf_hash

    assert leaf_hash(record).hex() == receipt["leaf_hash"]
    verified = {v.index: v.entry for v in tf.client("alice").subscribe(0, follow=False)}
    signal = verified[receipt["index"]]  # the Python SDK verifies what Node signed
    assert isinstance(signal, pb.Signal) and signal.signal_id == "node-1"


def test_node_publish_of_a_non_normalized_value_is_refused(taskforce_ledger: TaskForce, tmp_path: Path) -> None:
    tf = taskforce_ledger
    before = tf.ledger_snapshot()
    code, out, _ = run_member(tf, tmp_path, "bob", "publish", "--signal-id", "node-2", "--type", "md5",
                              "--value", "9E107D9D372BB6826BD81D3542A419D6", "--group", GROUP_ALL)
    assert code == 1 and out["error"] == "non-normalized-value"
    assert tf.ledger_snapshot() == before


def _index_of_signal(tf: TaskForce, signal_id: str) -> int:
    return next(v.index for v in tf.client("alice").subscribe(0, follow=False)
                if getattr(v.entry, "signal_id", None) == signal_id)


def _carol_stolen_index(tf: TaskForce) -> int:
    return next(v.index for v in tf.client("bob").subscribe(0, follow=False)
                if getattr(v.entry, "signal_id", None) == "c-1")


def _corpus(seed: int) -> list[tuple[str, str]]:
    """Seeded awkward inputs: URL pieces, case-folding and whitespace traps, IDNA labels."""
    rng = random.Random(seed)
    url_parts = [*"abcXYZ019-._~:/?[]@!$&'()*+,;=% ", "%2f", "%7E", "%41", "%e4", "%zz", "ä", "ß", "例", "..",
                 "./", "//", "%2B", "+", "&&", "\\", "\t", "。", "ﬁ"]
    hosts = ["example.com", "EXAMPLE.com", "ex_ample.com", "xn--bcher-kva.example", "bücher.example", "1.2.3.4",
             "[::1]", "[2001:DB8::1]", "例え.jp", "trail.com.", "user:pw@x.com", "x.com:8080", "x.com:443", "10"]
    text_chars = [*"aAßẞİıΣσς ǅﬁＡ\u00a0\u2003\t\n\x1c\x85é\u0301ꭰᏸ①⅓", "ﷺ"]
    domain_chars = [*"abcXYZ019-._", "ä", "ß", "例", "ﬁ", "Ⅸ", "İ", "。", "xn--"]
    cases = []
    for _ in range(600):
        scheme = rng.choice(["http", "https", "HTTP", "hTTps"])
        path = "".join(rng.choice(url_parts) for _ in range(rng.randint(0, 12)))
        cases.append(("url", f"{scheme}://{rng.choice(hosts)}{'/' if rng.random() < 0.7 else ''}{path}"))
        cases.append(("text", "".join(rng.choice(text_chars) for _ in range(rng.randint(0, 8)))))
        cases.append(("domain", "".join(rng.choice(domain_chars) for _ in range(rng.randint(1, 14)))))
    return cases


def test_node_normalization_agrees_on_a_random_corpus() -> None:
    """What the exchange accepts, the Node verifier accepts; text and accepted values agree exactly.

    The Node side may accept inputs the reference implementation refuses (PROTOCOL.md
    §5.2, §5.3: a more permissive IDNA library); it must never refuse a canonical value.
    """
    cases = _corpus(13)
    expected: list[dict[str, Any]] = []
    for type_name, raw in cases:
        try:
            expected.append({"valid": True, "normalized": signals.normalize(type_name, raw)})
        except TrustwireError as exc:
            expected.append({"valid": False, "reason": exc.reason})
    canonical = [(t, e["normalized"]) for (t, _), e in zip(cases, expected, strict=True) if e["valid"]]
    payload = json.dumps([{"type": t, "input": i} for t, i in cases + canonical])
    proc = subprocess.run([node(), str(NODE_DIR / "bin" / "normalize.js")], input=payload, capture_output=True,
                          text=True, timeout=TIMEOUT_S, check=False)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    for (type_name, raw), want, have in zip(cases, expected, got, strict=False):
        if want["valid"] or type_name == "text":
            assert have == want, (type_name, raw)
    for (type_name, value), have in zip(canonical, got[len(cases):], strict=True):
        assert have == {"valid": True, "normalized": value}, (type_name, value)


def test_node_member_refuses_a_log_key_it_does_not_trust(taskforce_ledger: TaskForce, tmp_path: Path) -> None:
    """forged-checkpoint: checkpoints not signed by the pinned log key end the stream (exit 8)."""
    tf = taskforce_ledger
    impostor = NoteSigner(tf.log_key.split("+", 1)[0], insecure_signer("impostor-log").signing_key).verifier_key()
    assert impostor != tf.log_key
    code, report, err = run_member(tf, tmp_path, "bob", "verify", log_key=impostor)
    assert code == 8 and "bad-checkpoint" in err and report == {}, err


def test_node_member_flags_entries_under_a_wrong_operator_key(taskforce_ledger: TaskForce, tmp_path: Path) -> None:
    """forged-key-event: with another operator key pinned, no key event verifies, so nothing does."""
    tf = taskforce_ledger
    code, report, _ = run_member(tf, tmp_path, "bob", "verify",
                                 operator_key=insecure_signer("not-the-operator").public_key)
    assert code == 8 and report["verified"] == []
    assert {u["reason"] for u in report["untrusted"]} == {"unknown-key"}
    assert "withheld or altered a key event" in report["keydir_error"]  # it verified none of them
