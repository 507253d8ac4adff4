"""`trustwire ops …` against a running exchange, as an operator runs it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from exchange.program.cli import main
from exchange.core.keys import Signer


def _op(served: tuple[str, Signer, str], tmp_path: Path) -> list[str]:
    target, operator, _ = served
    key = tmp_path / "operator.key"
    key.write_text(operator.seed.hex())
    return ["--exchange", target, "--origin", "cli.test.invalid/log", "--operator-key-file", str(key), "--json"]


def test_operator_manages_the_task_force(served: tuple[str, Signer, str], tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    op = _op(served, tmp_path)
    member_key, rotated = Signer.from_seed(b"\x11" * 32), Signer.from_seed(b"\x12" * 32)
    assert main(["ops", "create-group", "hashes", "--name", "Hash sharing", "--max-tlp", "amber", *op]) == 0
    assert main(["ops", "enrol", "acme", "--name", "Acme", "--groups", "hashes",
                 "--public-key", member_key.public_key.hex(), *op]) == 0
    assert main(["ops", "rotate-key", "acme", "--old-keyid", member_key.keyid,
                 "--public-key", rotated.public_key.hex(), "--overlap", "1h", *op]) == 0
    assert main(["ops", "suspend", "acme", *op]) == 0
    capsys.readouterr()
    assert main(["ops", "directory", *op]) == 0
    directory = json.loads(capsys.readouterr().out)
    (acme,) = directory["members"]
    assert acme["suspended"] and acme["groups"] == ["hashes"] and len(acme["keys"]) == 2
    # key validity: the rotated-out key signs until the overlap ends, the new one from now
    assert sorted(k["status"] for k in acme["keys"]) == ["retiring", "valid"]
    assert all(k["valid_from"].endswith("Z") for k in acme["keys"])
    assert [k["valid_until"] is None for k in acme["keys"]].count(True) == 1
    assert directory["groups"] == [{"id": "hashes", "name": "Hash sharing", "max_tlp": "amber", "retired": False}]

    # contradictory events are refused with a reason, and nothing changes
    assert main(["ops", "suspend", "acme", *op]) == 3
    refused = json.loads(capsys.readouterr().out)
    assert refused == [{"event": "member_suspended", "error": "invalid-key-event",
                        "message": "member acme is already suspended"}]
    assert main(["ops", "enrol", "evil", "--name", "Evil", "--public-key", "01" + "00" * 31, *op]) == 3
    assert "prime-order subgroup" in capsys.readouterr().err  # refused before anything is sent
    assert main(["ops", "rotate-key", "acme", "--old-keyid", member_key.keyid, "--public-key",
                 rotated.public_key.hex(), "--overlap", "soon", *op]) == 3
    assert "durations look like" in capsys.readouterr().err


def test_ops_needs_the_operator_key(served: tuple[str, Signer, str], tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    target, _, _ = served
    imposter = tmp_path / "imposter.key"
    imposter.write_text(Signer.from_seed(b"\x66" * 32).seed.hex())
    code = main(["ops", "create-group", "g2", "--name", "G", "--max-tlp", "green",
                 "--exchange", target, "--origin", "cli.test.invalid/log", "--operator-key-file", str(imposter)])
    assert code == 4 and "is not in the key directory" in capsys.readouterr().err
