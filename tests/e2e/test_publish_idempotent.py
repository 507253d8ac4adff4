"""Publishing the same JSONL file twice adds nothing: lines without created_at get the
time pinned by the first run, so the second run signs the same bytes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import GROUP_ALL, TaskForce
from exchange.program.cli import main


def _member(tf: TaskForce, tmp: Path) -> list[str]:
    key = tmp / "alice.key"
    key.write_text(tf.signers["alice"].seed.hex())
    return ["--exchange", tf.target, "--member-id", "alice", "--key-file", str(key),
            "--operator-public-key", tf.operator.public_key.hex(), "--log-key", tf.log_key, "--json"]


def _lines(n: int) -> str:
    return "".join(json.dumps({"id": f"s{i}", "type": "md5", "value": f"{i + 1:032x}", "groups": [GROUP_ALL]}) + "\n"
                   for i in range(n))


def test_same_file_twice_adds_no_entries(taskforce: TaskForce, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tf = taskforce
    signals = tmp_path / "signals.jsonl"
    signals.write_text(_lines(3))
    assert main(["member", "publish", str(signals), *_member(tf, tmp_path)]) == 0
    first = json.loads(capsys.readouterr().out)["results"]
    head = tf.server.ledger.head()
    assert main(["member", "publish", str(signals), *_member(tf, tmp_path)]) == 0
    second = json.loads(capsys.readouterr().out)["results"]
    assert second == first and tf.server.ledger.head() == head

    # an appended line is new; the unchanged ones keep their receipts
    signals.write_text(_lines(4))
    assert main(["member", "publish", str(signals), *_member(tf, tmp_path)]) == 0
    third = json.loads(capsys.readouterr().out)["results"]
    assert third[:3] == first and tf.server.ledger.head() == head + 1


def test_bad_created_at_is_refused_before_anything_is_sent(
    taskforce: TaskForce, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tf = taskforce
    head = tf.server.ledger.head()
    signals = tmp_path / "one.jsonl"
    signals.write_text(_lines(1))
    assert main(["member", "publish", str(signals), "--created-at", "not a time", *_member(tf, tmp_path)]) == 3
    assert "ISO 8601" in capsys.readouterr().err
    assert tf.server.ledger.head() == head and not Path(str(signals) + ".twpublish.json").exists()
