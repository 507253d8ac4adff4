"""`trustwire member init`: a commented member.toml that names every setting, a starter
policy under which a match reaches the queue, and a key to hand to the operator."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import stat
from pathlib import Path

import pytest

from clients.config import MemberConfig
from exchange.core.errors import ExitCode
from exchange.core.settings import load_settings
from tests.conftest import GROUP_ALL, TaskForce, accepted
from exchange.program.cli import main


def _init(tf: TaskForce, out: Path, *extra: str) -> list[str]:
    return ["member", "init", "--member-id", "dave", "--exchange", tf.target, "--operator-public-key",
            tf.operator.public_key.hex(), "--log-key", tf.log_key, "--dir", str(out), "--json", *extra]


def test_init_then_a_match_reaches_the_queue(
    taskforce: TaskForce, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tf = taskforce
    out = tmp_path / "dave"
    assert main(_init(tf, out)) == 0
    made = json.loads(capsys.readouterr().out)
    assert made["created_key"] and stat.S_IMODE(os.stat(made["key_file"]).st_mode) == 0o600

    config_text = Path(made["config"]).read_text()
    for field in dataclasses.fields(MemberConfig):  # every setting is documented in the file
        assert field.name in config_text, field.name
    config = load_settings(MemberConfig, file=Path(made["config"]), env={})
    assert config.member_id == "dave" and config.policy == Path(made["policy"])

    op = tf.operator_client()
    accepted(op.publish([op.enrol("dave", "Dave", [GROUP_ALL]),
                         op.add_key("dave", bytes.fromhex(made["public_key"]), 1_700_000_000_000)]))
    op.close()
    media = tmp_path / "upload.bin"
    media.write_bytes(b"known bad bytes")
    alice = tf.client("alice")
    accepted(alice.publish([alice.signal("md5", hashlib.md5(media.read_bytes()).hexdigest(), groups=[GROUP_ALL],
                                         signal_id="bad-1")]))

    assert main(["member", "sync", "--config", made["config"], "--json"]) == 0
    capsys.readouterr()

    # everyday commands: hash a file, look its hash up, print the key's public key
    assert main(["member", "hash", str(media), "--json"]) == 0
    (hashed,) = json.loads(capsys.readouterr().out)
    md5 = next(h["value"] for h in hashed["hashes"] if h["type"] == "md5")
    assert md5 == hashlib.md5(media.read_bytes()).hexdigest()
    assert main(["member", "lookup", "md5", md5.upper(), "--config", made["config"], "--json"]) == 0
    (found,) = json.loads(capsys.readouterr().out)["matches"]
    assert (found["publisher"], found["signal_id"]) == ("alice", "bad-1")
    assert main(["member", "lookup", "md5", "0" * 32, "--config", made["config"], "--json"]) == ExitCode.NOT_FOUND
    assert json.loads(capsys.readouterr().out)["matches"] == []
    assert main(["member", "public-key", "--key-file", made["key_file"], "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["public_key"] == made["public_key"]
    assert main(["member", "match", str(media), "--config", made["config"], "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["results"]
    assert {m["severity"] for m in row["matches"]} == {"medium"}  # a name, as published, not a number
    assert main(["member", "queue", "list", "--config", made["config"], "--json"]) == 0
    (item,) = json.loads(capsys.readouterr().out)
    assert item["signal_id"] == "bad-1" and item["state"] == "pending"
    assert main(["member", "queue", "history", str(item["id"]), "--config", made["config"], "--json"]) == 0
    (event,) = json.loads(capsys.readouterr().out)
    assert event["at"].endswith("Z") and event["at"][:2] == "20"  # ISO 8601 UTC, not epoch milliseconds


def test_init_does_not_overwrite_a_config(
    taskforce: TaskForce, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "dave"
    assert main(_init(taskforce, out)) == 0
    key = json.loads(capsys.readouterr().out)["key_file"]
    before = (out / "member.toml").read_text(), Path(key).read_text()
    assert main(_init(taskforce, out)) == ExitCode.INVALID_INPUT
    assert "use --force" in json.loads(capsys.readouterr().out)["error"]["message"]
    assert main(_init(taskforce, out, "--force")) == 0
    assert not json.loads(capsys.readouterr().out)["created_key"]  # an existing key is never replaced
    assert Path(key).read_text() == before[1]


def test_init_rejects_a_bad_operator_key(taskforce: TaskForce, tmp_path: Path) -> None:
    argv = _init(taskforce, tmp_path / "x")
    argv[argv.index("--operator-public-key") + 1] = "zz"
    assert main(argv) != 0
    assert not (tmp_path / "x").exists()
