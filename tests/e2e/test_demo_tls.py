"""`trustwire demo --tls`: the same demo over mutual TLS with generated INSECURE certificates."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from tests.e2e.test_demo import _trustwire


def _demo(cwd: Path, *flags: str) -> tuple[dict[str, Any], str]:
    proc = subprocess.run(
        [*_trustwire(), "demo", "--json", *flags], capture_output=True, text=True, timeout=300, cwd=cwd,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout), proc.stderr


def test_demo_over_mtls_has_the_same_outcome(tmp_path: Path) -> None:
    plain, _ = _demo(tmp_path)
    workdir = tmp_path / "tls-demo"
    mtls, stderr = _demo(tmp_path, "--tls", "--workdir", str(workdir))
    assert "ran with mutual TLS" in stderr
    assert (plain.pop("transport"), mtls.pop("transport")) == ("plaintext", "mtls")
    assert mtls.pop("workdir") == str(workdir) and plain.pop("workdir") is None
    assert mtls == plain  # same members, queues, banks, rejections and ledger
    assert set(mtls["members"]) == {"northwind", "lumen", "parcel"}
    pki = workdir / "pki"
    assert "INSECURE" in (pki / "README-INSECURE.txt").read_text()
    assert {p.name for p in pki.glob("client-*.pem")} == {
        "client-operator.pem", "client-northwind.pem", "client-lumen.pem", "client-parcel.pem",
    }
