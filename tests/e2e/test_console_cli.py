"""`trustwire member console …` as users run it: accounts, serving, claim-hijack."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from clients.bank import Match
from clients.cli.main import main
from clients.policy import Action, Decision
from tests.conftest import GROUP_ALL, TaskForce, accepted


def _member_args(tf: TaskForce, tmp_path: Path, name: str = "bob") -> list[str]:
    key = tmp_path / f"{name}.key"
    key.write_text(tf.signers[name].seed.hex())
    return ["--exchange", tf.target, "--member-id", name, "--key-file", str(key),
            "--operator-public-key", tf.operator.public_key.hex(), "--log-key", tf.log_key,
            "--state", str(tmp_path / f"{name}.db")]


def test_account_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    db = ["--accounts", str(tmp_path / "console.db")]
    monkeypatch.setattr(sys, "stdin", io.StringIO("a long enough password\n"))
    assert main(["member", "console", "account", "add", "ana", "--role", "lead", "--password-stdin", *db]) == 0
    assert capsys.readouterr().out.strip() == "ana: lead, active"
    assert main(["member", "console", "account", "disable", "ana", *db]) == 0
    assert main(["member", "console", "account", "list", "--json", *db]) == 0
    out = capsys.readouterr().out
    assert json.loads(out[out.index("["):]) == [{"name": "ana", "role": "lead", "disabled": True}]
    monkeypatch.setattr(sys, "stdin", io.StringIO("short\n"))
    assert main(["member", "console", "account", "add", "ben", "--password-stdin", *db]) == 3
    err = capsys.readouterr().err.strip()
    assert err == "trustwire: error: a password needs at least 12 characters"
    assert main(["member", "console", "account", "add", "Bad Name!", "--password-stdin", *db]) == 3
    assert main(["member", "console", "account", "disable", "nobody", *db]) == 6
    assert "a long enough password" not in (tmp_path / "console.db").read_bytes().decode("latin-1")


def test_queue_claim_hijack_from_the_cli(taskforce: TaskForce, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    alice = taskforce.client("alice")
    accepted(alice.publish([alice.signal("url", "https://bad.example/x", groups=[GROUP_ALL], signal_id="u")]))
    bob = taskforce.client("bob", state=True)
    bob.sync()
    assert bob.bank is not None and bob.queue is not None and bob.store is not None
    banked = bob.bank.get("alice", "u")
    assert banked is not None
    bob.queue.enqueue(Match(content_ref="post-1", signal=banked), Decision(action=Action.ENQUEUE, priority=1, rule="r"))
    args = _member_args(taskforce, tmp_path)
    args[-1] = str(bob.store.path)  # the CLI opens the same state file
    assert main(["member", "queue", "claim", "1", "--reviewer", "ana", *args]) == 0
    capsys.readouterr()
    assert main(["member", "queue", "decide", "1", "--reviewer", "ben", "--decision", "dismissed", *args]) == 5
    assert capsys.readouterr().err.strip() == "trustwire: error: queue item 1 is claimed by ana"


def test_console_serve_runs_until_sigterm(taskforce: TaskForce, tmp_path: Path) -> None:
    args = _member_args(taskforce, tmp_path)
    accounts = str(tmp_path / "console.db")
    proc = subprocess.Popen(
        [sys.executable, "-m", "clients.cli.main", "member", "console", "serve", *args, "--accounts", accounts,
         "--listen", "127.0.0.1:0", "--media-root", str(tmp_path), "--sync-interval", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # blocks until the console prints its URL (bounded by pytest-timeout)
        assert line.startswith("console listening on http://127.0.0.1:"), (line, proc.stderr and proc.stderr.read())
        url = line.split()[-1]
        r = httpx.get(url + "/", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/login"
        assert httpx.get(url + "/login").status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0


def test_console_refuses_plain_http_beyond_loopback(taskforce: TaskForce, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    args = _member_args(taskforce, tmp_path)
    code = main(["member", "console", "serve", *args, "--accounts", str(tmp_path / "c.db"), "--listen", "0.0.0.0:0"])
    assert code == 2  # a configuration error
    assert "loopback only" in capsys.readouterr().err
