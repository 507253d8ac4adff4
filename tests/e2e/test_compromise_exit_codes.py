"""After a correct compromise revocation, `member sync`, `member rebuild-bank` and
`audit verify` list the compromised key's entries as expected findings and exit 0
(issue 12); corruption still exits 8 (tests/e2e/test_audit.py tampering tests)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from clients.cli.main import main
from exchange.core.records import Receipt
from tests.conftest import GROUP_ALL, start_taskforce, wait_until
from tests.e2e.test_bulk import cli


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    code = main(list(argv))
    return code, json.loads(capsys.readouterr().out)


def test_compromise_revocation_is_not_reported_as_corruption(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tf = start_taskforce(tmp_path / "live")
    try:
        bob = tf.client("bob")
        clean = bob.publish([bob.signal("md5", "1" * 32, groups=[GROUP_ALL], signal_id="clean")])
        upload = tmp_path / "upload.bin"
        upload.write_bytes(b"content the thief flagged")
        md5 = hashlib.md5(upload.read_bytes()).hexdigest()
        stolen = bob.publish([bob.signal("md5", md5, groups=[GROUP_ALL], signal_id="stolen")])
        assert all(isinstance(o, Receipt) for o in clean + stolen)
        policy = tmp_path / "policy.toml"
        policy.write_text('default = "enqueue"\n')
        carol = [*cli(tf, "carol", tmp_path), "--policy", str(policy)]
        code, report = _run(capsys, "member", "sync", *carol)
        assert code == 0 and report["quarantined"] == 0
        code, matched = _run(capsys, "member", "match", str(upload), *carol)
        assert code == 0 and matched["matched"] == 1
        op = tf.operator_client()
        (revoked,) = op.publish([op.revoke_key("bob", bob.signer.keyid, compromised_since_index=stolen[0].index)])
        op.close()
        assert isinstance(revoked, Receipt)

        code, report = _run(capsys, "member", "sync", *carol)
        assert code == 0, report
        assert (report["quarantined"], report["compromised"], report["corrupt"]) == (1, 1, 0)
        assert report["withdrawn"] == 1  # the stolen signal's queue item, counted
        code, items = _run(capsys, "member", "queue", "list", *carol)
        assert [(i["signal_id"], i["state"], i["reason"]) for i in items] == [
            ("stolen", "withdrawn", "signal signed by a compromised key")]
        code, report = _run(capsys, "member", "rebuild-bank", *carol)
        assert code == 0 and (report["compromised"], report["corrupt"]) == (1, 0)
        code, report = _run(capsys, "member", "sync", *carol)
        assert code == 0 and report["corrupt"] == 0
        head = tf.server.ledger.head()
        wait_until(lambda: (tf.server.checkpoints.latest() or Receipt).size == head)  # type: ignore[union-attr]
        anchors = ["--operator-public-key", tf.operator.public_key.hex(), "--log-key", tf.log_key]
    finally:
        tf.close()
    code, audit = _run(capsys, "audit", "verify", "--ledger", str(tmp_path / "live" / "ledger.db"), *anchors, "--json")
    assert code == 0 and audit["ok"]
    assert [(f["index"], f["reason"], f["severity"]) for f in audit["findings"]] == [
        (stolen[0].index, "compromised-key", "expected")
    ]
