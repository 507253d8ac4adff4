"""The audit log as auditors use it: `trustwire audit`, tampering, equivocation."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from exchange.program.cli import main
from clients.witness import Witness, serve_witness
from exchange.core import note as notes
from exchange.core.dsse import sign_envelope
from exchange.core.entries import EntryKind
from exchange.core.errors import SecurityError
from exchange.core.logview import LogForked
from exchange.core.records import Receipt, encode_record
from exchange.pb.trustwire.v1 import entries_pb2 as pb
from exchange.server.witnesses import WitnessClient
from tests.conftest import GROUP_ALL, TaskForce, insecure_signer, start_taskforce, wait_until

MD5S = [f"{i:032x}" for i in range(1, 9)]


def _populate(tf: TaskForce) -> None:
    alice, bob = tf.client("alice"), tf.client("bob")
    assert all(isinstance(o, Receipt) for o in alice.publish(
        [alice.signal("md5", m, groups=[GROUP_ALL], signal_id=f"a{i}") for i, m in enumerate(MD5S[:4])]
    ))
    assert all(isinstance(o, Receipt) for o in bob.publish(
        [bob.signal("md5", m, groups=[GROUP_ALL], signal_id=f"b{i}") for i, m in enumerate(MD5S[4:])]
        + [bob.opinion("alice", "a0", "true_positive")]
    ))
    head = tf.server.ledger.head()
    wait_until(lambda: (tf.server.checkpoints.latest() or Receipt).size == head)  # type: ignore[union-attr]


@pytest.fixture
def ledger_copy(tmp_path: Path) -> tuple[Path, list[str]]:
    """A finished ledger file (and its audit dir) plus the CLI trust anchors."""
    tf = start_taskforce(tmp_path / "live")
    try:
        _populate(tf)
        anchors = ["--operator-public-key", tf.operator.public_key.hex(), "--log-key", tf.log_key]
    finally:
        tf.close()
    return tmp_path / "live" / "ledger.db", anchors


def _audit(ledger: Path, anchors: list[str], capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, dict]:
    code = main(["audit", "verify", "--ledger", str(ledger), *anchors, "--json", *extra])
    return code, json.loads(capsys.readouterr().out)


def _tampered(ledger: Path, tmp_path: Path, name: str) -> Path:
    target = tmp_path / name / "ledger.db"
    target.parent.mkdir()
    shutil.copy(ledger, target)
    shutil.copytree(Path(str(ledger) + ".audit"), Path(str(target) + ".audit"))
    return target


def test_untouched_ledger_verifies(ledger_copy: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]) -> None:
    ledger, anchors = ledger_copy
    code, report = _audit(ledger, anchors, capsys)
    assert code == 0 and report["ok"] and report["entries"] == 17 and report["verified_signatures"] == 17
    assert report["checkpoints"] >= 2 and report["findings"] == []


def test_flipped_byte_is_found(ledger_copy: tuple[Path, list[str]], tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    ledger, anchors = ledger_copy
    bad = _tampered(ledger, tmp_path, "flip")
    with sqlite3.connect(bad) as db:
        (record,) = db.execute("SELECT record FROM records WHERE idx = 10").fetchone()
        at = record.find(MD5S[2].encode()) + 5
        db.execute("UPDATE records SET record = ? WHERE idx = 10",
                   (record[:at] + bytes([record[at] ^ 1]) + record[at + 1:],))
    code, report = _audit(bad, anchors, capsys)
    assert code == 8 and not report["ok"]
    assert {(f["index"], f["reason"]) for f in report["findings"] if f["index"] is not None} == {(10, "forged-signature")}
    assert any(f["reason"] == "checkpoint-mismatch" for f in report["findings"])


def test_deleted_entry_is_found(ledger_copy: tuple[Path, list[str]], tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    ledger, anchors = ledger_copy
    bad = _tampered(ledger, tmp_path, "delete")
    with sqlite3.connect(bad) as db:
        db.execute("DELETE FROM records WHERE idx = 12")
    code, report = _audit(bad, anchors, capsys)
    assert code == 8
    first = report["findings"][0]
    assert first["index"] == 12 and first["reason"] == "ledger-gap" and "found entry 13" in first["message"]


def test_swapped_entries_are_found(ledger_copy: tuple[Path, list[str]], tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    ledger, anchors = ledger_copy
    bad = _tampered(ledger, tmp_path, "swap")
    with sqlite3.connect(bad) as db:
        (r9,), (r11,) = (db.execute("SELECT record FROM records WHERE idx = ?", (i,)).fetchone() for i in (9, 11))
        db.execute("UPDATE records SET record = ? WHERE idx = 9", (r11,))
        db.execute("UPDATE records SET record = ? WHERE idx = 11", (r9,))
    code, report = _audit(bad, anchors, capsys)
    assert code == 8
    gaps = [(f["index"], f["reason"]) for f in report["findings"] if f["index"] is not None]
    assert gaps[0] == (9, "ledger-gap") and (11, "ledger-gap") in gaps


def test_unsigned_appended_entry_is_found(ledger_copy: tuple[Path, list[str]], tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    ledger, anchors = ledger_copy
    bad = _tampered(ledger, tmp_path, "append")
    signal = pb.Signal(signal_id="ghost", member_id="alice", type="md5", value=MD5S[7], confidence=99,
                       sharing=pb.Sharing(groups=[GROUP_ALL], tlp=pb.TLP_AMBER))
    signal.created_at.GetCurrentTime()
    env = sign_envelope(EntryKind.SIGNAL.payload_type, signal.SerializeToString(), insecure_signer("alice"))
    from exchange.pb.trustwire.v1 import envelope_pb2

    unsigned = envelope_pb2.Envelope(payload=env.payload, payload_type=env.payload_type)
    with sqlite3.connect(bad) as db:
        record = encode_record(17, 1_800_000_000_000, unsigned.SerializeToString(deterministic=True))
        db.execute("INSERT INTO records VALUES (17, ?, ?, 'signal', 'alice', ?, 0, ?)",
                   (record, b"x" * 32, GROUP_ALL, b"y" * 32))
    code, report = _audit(bad, anchors, capsys)
    assert code == 8
    assert [(f["index"], f["reason"]) for f in report["findings"]] == [(17, "malformed-envelope")]
    assert "exactly one signature" in report["findings"][0]["message"]


def test_online_audit_prove_consistency_and_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tf = start_taskforce(tmp_path)
    try:
        op = tf.operator_client()
        auditor = insecure_signer("auditor")
        assert all(isinstance(o, Receipt) for o in op.publish([
            op.enrol("audit-firm", "Audit Firm", [], role=pb.ROLE_AUDITOR),
            op.add_key("audit-firm", auditor.public_key, 1_700_000_000_000),
        ]))
        op.close()
        _populate(tf)
        key_file = tmp_path / "auditor.key"
        key_file.write_text(auditor.seed.hex())
        common = ["--exchange", tf.target, "--principal", "audit-firm", "--key-file", str(key_file),
                  "--operator-public-key", tf.operator.public_key.hex(), "--log-key", tf.log_key, "--json"]
        assert main(["audit", "checkpoint", *common]) == 0
        old_note = json.loads(capsys.readouterr().out)["note"]
        (tmp_path / "old.note").write_text(old_note)

        assert main(["audit", "verify", *common]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["ok"] and report["entries"] == tf.server.ledger.head() == 19

        assert main(["audit", "prove", *common, "--index", "12"]) == 0
        proof = json.loads(capsys.readouterr().out)
        assert proof["verified"] and proof["index"] == 12 and proof["tree_size"] == 19 and proof["proof"]

        bob = tf.client("bob")
        bob.publish([bob.signal("md5", "f" * 32, groups=[GROUP_ALL], signal_id="late")])
        wait_until(lambda: tf.server.checkpoints.latest().size == 20)  # type: ignore[union-attr]
        assert main(["audit", "consistency", *common, "--old", str(tmp_path / "old.note")]) == 0
        result = json.loads(capsys.readouterr().out)
        assert result["consistent"] and (result["old_size"], result["new_size"]) == (19, 20)

        # members cannot read the whole ledger, nor prove what they cannot see
        member_key = tmp_path / "carol.key"
        member_key.write_text(tf.signers["carol"].seed.hex())
        as_carol = [a if a != "audit-firm" else "carol" for a in common]
        as_carol[as_carol.index(str(key_file))] = str(member_key)
        assert main(["audit", "verify", *as_carol]) == 5
        assert "only auditors" in capsys.readouterr().err
    finally:
        tf.close()


def test_equivocation_is_caught_by_the_sdk_and_by_a_witness(tmp_path: Path) -> None:
    """Two exchanges with the same log key and origin but different histories (a fork)."""
    honest, forked = start_taskforce(tmp_path / "a"), start_taskforce(tmp_path / "b")
    try:
        assert honest.log_key == forked.log_key
        _populate(honest)
        bob_state = tmp_path / "bob.db"
        bob = honest.client("bob")
        bob.close()
        from clients.member import MemberClient

        def bob_on(tf: TaskForce) -> MemberClient:
            return MemberClient(tf.target, member_id="bob", signer=tf.signers["bob"],
                                operator_key=tf.operator.public_key, log_key=tf.log_key, state=bob_state)

        first = bob_on(honest)
        assert first.sync().verified == 17
        trusted = first.log_view.trusted
        first.close()
        assert trusted is not None and trusted.size == 17

        # the forked log grows past the size bob trusts, with other entries
        carol = forked.client("carol")
        carol.publish([carol.signal("md5", m, groups=[GROUP_ALL], signal_id=f"c{i}") for i, m in enumerate(MD5S)]
                      + [carol.signal("md5", "e" * 32, groups=[GROUP_ALL], signal_id="c-extra")] * 1)
        wait_until(lambda: forked.server.checkpoints.latest().size == 17)  # type: ignore[union-attr]
        second = bob_on(forked)
        with pytest.raises(LogForked) as info:
            second.sync()
        assert trusted.note in info.value.message  # the evidence names both checkpoints
        assert forked.server.checkpoints.latest().note.splitlines()[0] in info.value.message  # type: ignore[union-attr]
        assert second.store is not None and second.store.cursor == 17  # nothing from the fork was delivered
        second.close()

        # a witness that cosigned the honest checkpoint refuses the forked one
        witness_key = insecure_signer("witness")
        log_vkey = honest.log_key
        origin = notes.NoteVerifier.from_string(log_vkey).name
        w = Witness("witness.test/w1", witness_key.signing_key, {origin: [notes.NoteVerifier.from_string(log_vkey)]},
                    tmp_path / "witness.db")
        running = serve_witness(w)
        try:
            client = WitnessClient(running.url, w.verifier_key)
            h = honest.server.checkpoints
            assert client.cosign(h.latest().note, 17, lambda old: h.tree.consistency_proof(old, 17))  # type: ignore[union-attr]
            f = forked.server.checkpoints
            with pytest.raises(SecurityError):
                client.cosign(f.latest().note, 17, lambda old: f.tree.consistency_proof(old, 17))  # type: ignore[union-attr]
            assert w.state.conflicts(origin), "the refused fork is kept as evidence"
        finally:
            running.stop()
    finally:
        honest.close()
        forked.close()
