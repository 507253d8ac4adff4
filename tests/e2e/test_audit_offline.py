"""Handing the ledger to an auditor: `ops snapshot` while the exchange serves, then
`audit verify|prove|consistency|checkpoint` offline on the copy; a hand-made copy
without the WAL fails with one clear line, never a traceback."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from exchange.core.errors import ExitCode
from exchange.core.records import Receipt
from tests.conftest import GROUP_ALL, TaskForce, wait_until
from exchange.program.cli import main


def _publish(tf: TaskForce, prefix: str, n: int) -> None:
    alice = tf.client("alice")
    outcomes = alice.publish([alice.signal("md5", f"{prefix}{i:031x}", groups=[GROUP_ALL], signal_id=f"{prefix}{i}")
                              for i in range(n)])
    assert all(isinstance(o, Receipt) for o in outcomes), outcomes
    head = tf.server.ledger.head()
    wait_until(lambda: (tf.server.checkpoints.latest() or Receipt).size == head)  # type: ignore[union-attr]


def _anchors(tf: TaskForce) -> list[str]:
    return ["--operator-public-key", tf.operator.public_key.hex(), "--log-key", tf.log_key]


def test_snapshot_of_a_serving_exchange_audits_offline(
    tf: TaskForce, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _publish(tf, "a", 4)
    assert main(["audit", "checkpoint", "--checkpoints", str(tmp_path / "exchange" / "ledger.db.audit" / "checkpoints.db"),
                 *_anchors(tf), "--json"]) == 0
    old_note = json.loads(capsys.readouterr().out)["note"]
    (tmp_path / "old.note").write_text(old_note)
    _publish(tf, "b", 5)

    out = tmp_path / "snap"
    assert main(["ops", "snapshot", "--ledger", str(tmp_path / "exchange" / "ledger.db"), "--out", str(out), "--json"]) == 0
    snap = json.loads(capsys.readouterr().out)
    assert snap["entries"] == tf.server.ledger.head() and snap["checkpoint_count"] >= 2
    ledger = out / "ledger.db"

    assert main(["audit", "verify", "--ledger", str(ledger), *_anchors(tf), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["entries"] == snap["entries"]

    assert main(["audit", "verify", "--ledger", str(ledger), *_anchors(tf), "--json", "--to", "3"]) == 0
    assert json.loads(capsys.readouterr().out)["findings"] == []

    assert main(["audit", "checkpoint", "--checkpoints", snap["checkpoints"], *_anchors(tf), "--json"]) == 0
    latest = json.loads(capsys.readouterr().out)["note"]
    assert f"\n{snap['entries']}\n" in latest

    assert main(["audit", "prove", "--ledger", str(ledger), *_anchors(tf), "--index", "5"]) == 0
    proof = json.loads(capsys.readouterr().out)
    assert proof["verified"] and proof["tree_size"] == snap["entries"] and proof["checkpoint"] == latest

    assert main(["audit", "consistency", "--ledger", str(ledger), *_anchors(tf), "--old", str(tmp_path / "old.note"),
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["consistent"] and result["new_size"] == snap["entries"] > result["old_size"]


def test_tampered_snapshot_fails_the_offline_proof(
    tf: TaskForce, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _publish(tf, "c", 4)
    out = tmp_path / "snap"
    assert main(["ops", "snapshot", "--ledger", str(tmp_path / "exchange" / "ledger.db"), "--out", str(out)]) == 0
    capsys.readouterr()
    conn = sqlite3.connect(out / "ledger.db")
    (record,) = conn.execute("SELECT record FROM records WHERE idx = 2").fetchone()
    conn.execute("UPDATE records SET record = ? WHERE idx = 2", (record[:-1] + bytes([record[-1] ^ 1]),))
    conn.commit()
    conn.close()
    code = main(["audit", "prove", "--ledger", str(out / "ledger.db"), *_anchors(tf), "--index", "2"])
    assert code == ExitCode.SECURITY
    assert "Traceback" not in capsys.readouterr().err


def test_snapshot_refuses_a_non_empty_directory(tf: TaskForce, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "busy"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["ops", "snapshot", "--ledger", str(tmp_path / "exchange" / "ledger.db"), "--out", str(out)]) != 0
    assert "not empty" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_copy_without_its_wal_is_one_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A WAL-mode file whose data is all in the WAL: copying the main file alone gives a stub."""
    live = tmp_path / "ledger.db"
    conn = sqlite3.connect(live)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute("CREATE TABLE records (idx INTEGER PRIMARY KEY, kind TEXT, record BLOB)")
    conn.commit()
    stub = tmp_path / "copy" / "ledger.db"
    stub.parent.mkdir()
    shutil.copy(live, stub)  # the WAL stays behind
    conn.close()
    (tmp_path / "notes.txt").write_text("")
    code = main(["audit", "verify", "--ledger", str(stub), "--checkpoints", str(tmp_path / "notes.txt"),
                 "--operator-public-key", "00" * 32, "--log-key", "x+00000000+AA"])
    err = capsys.readouterr().err
    assert code != 0 and "Traceback" not in err
    assert "ops snapshot" in err and len(err.strip().splitlines()) == 1
