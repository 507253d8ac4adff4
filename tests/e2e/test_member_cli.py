"""`trustwire serve` as a process, members driving it through `trustwire member …`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from exchange.program.cli import main
from clients.operator import OperatorClient
from exchange.core.keys import Signer
from tests.conftest import KEYS_VALID_FROM_MS


def test_member_cli_round_trip(served: tuple[str, Signer, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target, operator, vkey = served
    key = tmp_path / "m.key"
    assert main(["member", "keygen", "--out", str(key), "--json"]) == 0
    public = bytes.fromhex(json.loads(capsys.readouterr().out)["public_key"])
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    op = OperatorClient(target, operator, origin="cli.test.invalid/log")
    op.publish([
        op.create_group("everyone", "Everyone", "amber"),
        op.enrol("member-one", "Member One", ["everyone"]),
        op.add_key("member-one", public, KEYS_VALID_FROM_MS),
    ])
    op.close()

    rng = np.random.default_rng(7)
    image = tmp_path / "upload.png"
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).resize((256, 256)).save(image)
    from clients.media import hash_file

    h = hash_file(image)
    signals = tmp_path / "signals.jsonl"
    signals.write_text(
        json.dumps({"id": "s1", "type": "md5", "value": h.md5.upper(), "labels": ["csam"], "confidence": 90,
                    "groups": ["everyone"], "tlp": "amber", "created_at": "2026-02-01T00:00:00Z"}) + "\n"
        + json.dumps({"id": "s2", "type": "url", "value": "HTTPS://Example.INVALID/a", "groups": ["everyone"],
                    "created_at": "2026-02-01T00:00:00Z"}) + "\n"
    )
    policy = tmp_path / "policy.toml"
    policy.write_text('default = "enqueue"\n[[rule]]\nname = "csam"\nlabels_any = ["csam"]\npriority = 0\n')
    common = ["--exchange", target, "--member-id", "member-one", "--key-file", str(key),
              "--operator-public-key", operator.public_key.hex(), "--log-key", vkey, "--state", str(tmp_path / "m.db"),
              "--policy", str(policy), "--json"]

    assert main(["member", "publish", *common, str(signals)]) == 0
    published = json.loads(capsys.readouterr().out)
    assert published["accepted"] == 2 and [r["index"] for r in published["results"]] == [3, 4]
    assert main(["member", "publish", *common, str(signals)]) == 0  # same bytes: idempotent
    assert [r["index"] for r in json.loads(capsys.readouterr().out)["results"]] == [3, 4]

    assert main(["member", "sync", *common]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["verified"] == 5 and report["signals"] == 2 and report["next_index"] == 5

    assert main(["member", "match", *common, str(image)]) == 0
    matched = json.loads(capsys.readouterr().out)
    assert matched["matched"] == 1 and matched["results"][0]["matches"][0]["signal_id"] == "s1"

    assert main(["member", "queue", "list", *common]) == 0
    items = json.loads(capsys.readouterr().out)
    assert len(items) == 1 and items[0]["priority"] == 0 and items[0]["state"] == "pending"
    assert main(["member", "queue", "claim", str(items[0]["id"]), "--reviewer", "ana", *common]) == 0
    capsys.readouterr()
    assert main(["member", "queue", "decide", str(items[0]["id"]), "--reviewer", "ana",
                 "--decision", "actioned", *common]) == 0
    assert json.loads(capsys.readouterr().out)["state"] == "actioned"


def test_member_cli_bad_input_is_one_line_and_exit_code(served: tuple[str, Signer, str], tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    target, operator, vkey = served
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "type": "md5", "value": "nothex", "groups": ["g1"]}\n')
    key = tmp_path / "k"
    assert main(["member", "keygen", "--out", str(key)]) == 0
    capsys.readouterr()
    code = main(["member", "publish", "--exchange", target, "--member-id", "nobody", "--key-file", str(key),
                 "--operator-public-key", operator.public_key.hex(), "--log-key", vkey, "--state", str(tmp_path / "s.db"),
                 str(bad)])
    err = capsys.readouterr().err.strip()
    assert code == 3 and err.count("\n") == 0 and "bad.jsonl:1" in err and "md5" in err
    code = main(["member", "sync", "--exchange", target, "--member-id", "nobody", "--key-file", str(tmp_path / "missing"),
                 "--operator-public-key", operator.public_key.hex(), "--log-key", vkey])
    assert code == 2 and "does not exist" in capsys.readouterr().err
