"""Handing a Kafka-engine ledger to an auditor: a replica's view is an SQLite ledger
file, so `ops snapshot` copies it (with the replica's checkpoints) while the replica
serves, and `audit verify` checks the copy offline."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from exchange.core.records import Receipt
from exchange.program.cli import main
from tests.conftest import GROUP_ALL, TaskForce, wait_until
from tests.kafka.test_exchange_on_kafka import MD5S, checkpoint_size, kafka_taskforce  # noqa: F401 - fixture

__all__ = ["kafka_taskforce"]


def test_snapshot_of_a_kafka_replica_audits_offline(
    kafka_taskforce: TaskForce, capsys: pytest.CaptureFixture[str], tmp_path: Path  # noqa: F811
) -> None:
    tf = kafka_taskforce
    alice = tf.client("alice")
    outcomes = alice.publish([alice.signal("md5", v, groups=[GROUP_ALL], signal_id=f"k{i}") for i, v in enumerate(MD5S[:6])])
    assert all(isinstance(o, Receipt) for o in outcomes), outcomes
    head = tf.server.ledger.head()
    wait_until(lambda: checkpoint_size(tf.server) == head)

    view = Path(str(tf.tmp / "ledger.db") + ".kafka-view")
    out = tmp_path / "snap"
    assert main(["ops", "snapshot", "--ledger", str(view), "--audit-dir", str(tf.tmp / "ledger.db.audit"),
                 "--out", str(out), "--json"]) == 0
    snap = json.loads(capsys.readouterr().out)
    assert snap["entries"] == head and snap["checkpoint_count"] >= 1

    anchors = ["--operator-public-key", tf.operator.public_key.hex(), "--log-key", tf.log_key]
    assert main(["audit", "verify", "--ledger", str(out / "ledger.db"), *anchors, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["entries"] == head

    # The copy is the auditor's: damaging it is caught, the replica's view is untouched.
    conn = sqlite3.connect(out / "ledger.db")
    (record,) = conn.execute("SELECT record FROM records WHERE idx = ?", (head - 1,)).fetchone()
    conn.execute("UPDATE records SET record = ? WHERE idx = ?", (record[:-1] + bytes([record[-1] ^ 1]), head - 1))
    conn.commit()
    conn.close()
    assert main(["audit", "verify", "--ledger", str(out / "ledger.db"), *anchors, "--json"]) == 8
    capsys.readouterr()
    assert tf.server.ledger.head() == head
