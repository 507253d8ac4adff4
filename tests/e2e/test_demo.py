"""The demo and the CLI, run the way a user runs them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from exchange.program.cli import main


def _trustwire() -> list[str]:
    exe = shutil.which("trustwire", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "exchange.program"]


def test_demo_twice_same_outcome(tmp_path: Path) -> None:
    runs = []
    for _ in range(2):
        proc = subprocess.run(
            [*_trustwire(), "demo", "--json"], capture_output=True, text=True, timeout=300, cwd=tmp_path,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert proc.returncode == 0, proc.stderr
        runs.append(json.loads(proc.stdout))
    first, second = runs
    assert first == second
    # every built-in type is published, and the deliberate mistakes are rejected with reasons
    assert first["rejected"] == 5
    assert {r["reason"] for r in first["rejections"]} == {
        "forged-signature", "non-normalized-value", "wrong-member", "group-not-allowed", "not-found",
    }
    assert first["accepted"] == first["ledger_size"] == first["published"] - first["rejected"]
    assert set(first["members"]) == {"northwind", "lumen", "parcel"}
    nw, parcel = first["members"]["northwind"], first["members"]["parcel"]
    assert nw["verified"] == first["ledger_size"] and nw["quarantined"] == 0
    # parcel is not in ncii-response: it never sees that signal (nor its opinions)
    assert parcel["verified"] < nw["verified"]
    assert nw["bank"]["retracted"] == 2 and nw["bank"]["expired"] == 1
    assert nw["queue_by_priority"]["P0"] > 0
    assert first["members"]["lumen"]["auto_actioned"] == 4  # the NCII rule auto-actions 4 files


def test_demo_workdir_is_kept_and_reusable(tmp_path: Path, capsys: object) -> None:
    workdir = tmp_path / "demo"
    assert main(["demo", "--workdir", str(workdir), "--json"]) == 0
    assert (workdir / "ledger.db").exists() and (workdir / "northwind.db").exists()
    assert main(["demo", "--workdir", str(workdir), "--json"]) == 0  # wipes its own previous run
    stranger = tmp_path / "not-a-demo"
    stranger.mkdir()
    (stranger / "precious.txt").write_text("keep me")
    assert main(["demo", "--workdir", str(stranger)]) == 2
    assert (stranger / "precious.txt").read_text() == "keep me"
