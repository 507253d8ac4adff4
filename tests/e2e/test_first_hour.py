"""README "The first hour, persona by persona", executed verbatim.

Every ```sh block after a ``<!-- first-hour: NAME -->`` marker in README.md runs as one
bash script (``set -euo pipefail``) in a shared working directory, as separate
processes against a `trustwire serve` process under mutual TLS with a PKI made by
the openssl CLI. Only the README's documented ``TW_*`` variables are supplied, filled
the way a reader would: from the outputs of earlier blocks (public keys, the serve
banner). One test per persona asserts its outputs and exit codes; each runs the
blocks it depends on first (once per module).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.e2e.pki import openssl_pki

BLOCK = re.compile(r"<!-- first-hour: ([a-z-]+) -->\n```sh\n(.*?)```", re.S)
PUBLIC_KEY = re.compile(r"^public key ([0-9a-f]{64})", re.M)
ORDER = ("operator-keys", "operator-serve", "member-init", "auditor-keygen", "operator-enrol", "member-publish",
         "member-match", "reviewer", "operator-daily", "auditor", "hma")
TIMEOUT_S = 300
# run alone, a persona's test first runs the blocks it depends on: allow for that on a busy machine
pytestmark = pytest.mark.timeout(900)


def readme_blocks() -> dict[str, str]:
    found = BLOCK.findall((REPO / "README.md").read_text())
    blocks = dict(found)
    assert len(blocks) == len(found), "a first-hour block name is used twice"
    return blocks


def test_every_first_hour_block_is_run() -> None:
    assert sorted(readme_blocks()) == sorted(ORDER)


class Walk:
    """The README's blocks in dependency order, each run once; their outputs kept."""

    def __init__(self, root: Path) -> None:
        self.blocks = readme_blocks()
        self.work = root / "work"
        self.work.mkdir(parents=True)
        pki = openssl_pki(root / "pki", ["operator", "northwind", "contoso", "audit-firm"])
        venv_bin = str(Path(sys.executable).parent)
        self.env = {
            **os.environ, "PATH": venv_bin + os.pathsep + os.environ.get("PATH", ""), "HOME": str(root / "home"),
            "TW_PKI": str(pki.directory), "TW_LISTEN": "127.0.0.1:0", "TW_ORIGIN": "first-hour.test.invalid/log",
        }
        self.env.pop("TRUSTWIRE_TLS_CA_FILE", None)
        self.out: dict[str, subprocess.CompletedProcess[str]] = {}
        self.banner: list[str] = []
        self.server: subprocess.Popen[str] | None = None

    def upto(self, name: str) -> None:
        for step in ORDER[: ORDER.index(name) + 1]:
            if step not in self.out and not (step == "operator-serve" and self.server):
                self._run(step)

    def _run(self, step: str) -> None:
        if step == "operator-serve":
            self._serve()
            return
        proc = subprocess.run(["bash", "-euo", "pipefail", "-c", self.blocks[step]], cwd=self.work, env=self.env,
                              capture_output=True, text=True, timeout=TIMEOUT_S, stdin=subprocess.DEVNULL)
        assert proc.returncode == 0, (step, proc.stdout, proc.stderr)
        self.out[step] = proc
        keys = PUBLIC_KEY.findall(proc.stdout)
        if step == "operator-keys":
            self.env["TW_OPERATOR_PUBLIC_KEY"] = keys[0]
        elif step == "member-init":
            self.env["TW_NORTHWIND_PUBLIC_KEY"], self.env["TW_CONTOSO_PUBLIC_KEY"] = keys
        elif step == "auditor-keygen":
            (self.env["TW_AUDITOR_PUBLIC_KEY"],) = keys

    def _serve(self) -> None:
        self.server = subprocess.Popen(["bash", "-c", "exec " + self.blocks["operator-serve"]], cwd=self.work,
                                       env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.server.stdout is not None
        self.banner = [self.server.stdout.readline() for _ in range(3)]  # bounded by pytest-timeout
        port = re.search(r"port (\d+)", self.banner[0])
        assert port, (self.banner, self.server.stderr.read() if self.server.poll() is not None else "")
        self.env["TW_EXCHANGE"] = f"127.0.0.1:{port.group(1)}"
        self.env["TW_LOG_KEY"] = self.banner[1].split("log verifier key: ")[1].strip()

    def stdout(self, step: str) -> str:
        self.upto(step)
        return self.out[step].stdout

    def close(self) -> None:
        if self.server is not None:
            self.server.send_signal(signal.SIGTERM)
            assert self.server.wait(timeout=30) == 0


@pytest.fixture(scope="module")
def walk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Walk]:
    w = Walk(tmp_path_factory.mktemp("first-hour"))
    try:
        yield w
    finally:
        w.close()


def test_operator(walk: Walk) -> None:
    walk.upto("operator-enrol")
    assert "mutual TLS on" in walk.banner[2]
    enrol = walk.stdout("operator-enrol")
    for member in ("northwind", "contoso", "audit-firm"):
        assert re.search(rf"^{member}\b.*\n\s+key \w+ valid\s", enrol, re.M), enrol
    assert "all-members" in enrol
    # the operator's settings without the client certificate: refused, and told why
    proc = subprocess.run(["trustwire", "ops", "directory", "--config", "operator/ops.toml", "--tls-cert-file", "",
                           "--tls-key-file", "", "--json"], cwd=walk.work, env=walk.env, capture_output=True,
                          text=True, timeout=TIMEOUT_S)
    assert proc.returncode != 0 and json.loads(proc.stdout)["error"]["message"], (proc.stdout, proc.stderr)


def test_member(walk: Walk) -> None:
    init = walk.stdout("member-init")
    assert "northwind/member.toml" in init and "contoso/policy.toml" in init
    published = walk.stdout("member-publish")
    assert "md5        f2018376279afca487978781df6b4d80  flyer.txt" in published  # the values in signals.jsonl
    receipts = re.findall(r"^(flyer-[a-z0-9]+): index (\d+)$", published, re.M)
    assert receipts[:3] == receipts[3:] == [("flyer-md5", "7"), ("flyer-sha256", "8"), ("flyer-url", "9")], published
    matched = walk.stdout("member-match")
    assert re.search(r"verified \d+ entries \(3 signals", matched), matched
    assert "northwind/flyer-md5" in matched and "northwind/flyer-sha256" in matched
    assert "northwind/flyer-url (url" in matched and "confidence" in matched
    # one file, two signals: one queue item, the second signal its evidence
    items = [line for line in matched.splitlines() if line.startswith("#")]
    assert len(items) == 1 and "pending" in items[0] and "+1 more signals" in items[0], matched


def test_reviewer(walk: Walk) -> None:
    out = walk.stdout("reviewer")
    assert "#1 claimed by ana" in out
    assert out.count("exit 5") == 2, out  # bo can neither take nor decide ana's claim
    assert "claimed by ana" in walk.out["reviewer"].stderr
    assert re.search(r"^#1 actioned by ana; opinion true_positive on northwind/", out, re.M), out
    sent = re.findall(r"opinion true_positive on (northwind/flyer-[a-z0-9]+) sent at index \d+", out)
    assert sorted(sent) == ["northwind/flyer-md5", "northwind/flyer-sha256"], out  # one per signal of the item
    history = [line for line in out.splitlines() if re.match(r"20\d\d-\d\d-\d\dT", line)]
    assert [h.split()[1] for h in history] == ["pending", "pending", "in_review", "actioned"], out
    # the publisher sees the verdict on both signals of the item
    assert re.search(r"flyer-md5\s+md5\s+true_positive 1.*contoso=true_positive", out), out
    assert re.search(r"flyer-sha256\s+sha256\s+true_positive 1", out), out


def test_operator_day_to_day(walk: Walk) -> None:
    daily = walk.stdout("operator-daily")
    assert f"trustwire exchange first-hour.test.invalid/log at {walk.env['TW_EXCHANGE']}: OK" in daily, daily
    assert re.search(r"members: 2 enrolled", daily), daily
    assert re.search(r"^12 entries and \d+ signed checkpoints copied to auditor/snapshot", daily, re.M), daily
    assert (walk.work / "auditor" / "snapshot" / "ledger.db").stat().st_size > 0


def test_auditor(walk: Walk) -> None:
    out = walk.stdout("auditor")
    online, offline = re.findall(r"^OK: (\d+) entries, (\d+) signatures", out, re.M)
    assert online == offline == ("12", "12"), out  # 3 × 2 enrolment, group, 3 signals, 2 opinions
    proof, end = json.JSONDecoder().raw_decode(out, out.index("{"))
    assert (proof["index"], proof["verified"]) == (7, True) and proof["tree_size"] > 7, proof
    note = out[end:].strip().splitlines()  # the snapshot's latest checkpoint, its signature verified
    assert note[0] == "first-hour.test.invalid/log" and int(note[1]) >= proof["tree_size"], out
    assert note[-1].startswith("— first-hour.test.invalid/log "), out


def test_hma_user(walk: Walk) -> None:
    walk.upto("hma")
    out = walk.out["hma"]
    assert "Up to date" in out.stderr, out.stderr
    assert "northwind/flyer-url" in out.stdout and "spam" in out.stdout, out.stdout
    # the same HMA setup without its client certificate: refused, and (with -v, pytx's way to show
    # why a collab failed) told why, not "Socket closed"
    env = {**walk.env, "HOME": str(walk.work / "hma-no-cert"), "TX_TRUSTWIRE_KEY": (walk.work / "contoso" /
                                                                                   "contoso.key").read_text().strip()}
    tx = ["threatexchange"]
    for args in (["config", "extensions", "add", "clients.threatexchange"],
                 ["config", "collab", "edit", "trustwire", "taskforce", "--create", "--exchange",
                  walk.env["TW_EXCHANGE"], "--member-id", "contoso", "--operator-public-key",
                  walk.env["TW_OPERATOR_PUBLIC_KEY"], "--log-key", walk.env["TW_LOG_KEY"],
                  "--tls-ca-file", walk.env["TW_PKI"] + "/ca.pem"]):
        done = subprocess.run([*tx, *args], cwd=walk.work, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
    refused = subprocess.run([*tx, "-v", "fetch"], cwd=walk.work, env=env, capture_output=True, text=True,
                             timeout=TIMEOUT_S)
    assert refused.returncode != 0 and "failed to fetch" in refused.stderr, refused.stderr
    assert "tls_cert_file" in refused.stderr or "certificate" in refused.stderr.lower(), refused.stderr
