"""`trustwire ops top | status | rejects` against a running exchange, as an operator runs them.

The exchange is a real server on 127.0.0.1 (tests.conftest.start_taskforce); the CLI
runs in-process through ``main(argv)``, and the live view runs in a real terminal:
tmux when it is installed, else a pseudo-terminal. A subscriber is held open and
behind by not reading its stream: with HTTP/2 BDP probing off, its flow-control
window (64 KiB) is smaller than the page the exchange tries to send, so the stream's
cursor stays where the subscriber stopped reading.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from exchange.program.cli import main
from clients.transport import _CallSigner
from exchange.core.dsse import sign_envelope
from exchange.core.entries import encode_entry
from exchange.pb.trustwire.v1 import exchange_pb2 as xpb
from exchange.pb.trustwire.v1 import exchange_pb2_grpc as xgrpc
from tests.conftest import GROUP_ALL, TaskForce, insecure_signer, start_taskforce, wait_until
from tests.e2e.serve_process import spawn_serve

HEAD0 = 18  # 8 enrolment events, then 6 + 4 signals (the workload below)
BACKLOG = 200  # text signals of ~1 KiB: one page far larger than the subscriber's window
WINDOW = 900  # rate window for the JSON checks (seconds): independent of how long the test runs


@pytest.fixture
def tf(tmp_path: Path) -> Iterator[TaskForce]:
    force = start_taskforce(tmp_path / "exchange", metrics_listen="off")
    try:
        yield force
    finally:
        force.close()


def _ops(tf: TaskForce, tmp_path: Path) -> list[str]:
    key = tmp_path / "operator.key"
    key.write_text(tf.operator.seed.hex())
    return ["--exchange", tf.target, "--origin", tf.origin, "--operator-key-file", str(key)]


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capsys.readouterr()
    code = main(argv)
    return code, capsys.readouterr().out


def _top_json(tf: TaskForce, tmp_path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> dict[str, Any]:
    code, out = _run(["ops", "top", "--once", "--json", "--window", f"{WINDOW}s", *_ops(tf, tmp_path), *extra], capsys)
    assert code == 0
    snap: dict[str, Any] = json.loads(out)
    return snap


class HeldSubscriber:
    """carol's Subscribe stream, read up to the head and then left unread."""

    def __init__(self, tf: TaskForce) -> None:
        options = [("grpc.http2.bdp_probe", 0)]  # keep the default 64 KiB stream window
        self.channel = grpc.intercept_channel(
            grpc.insecure_channel(tf.target, options=options), _CallSigner(tf.signers["carol"], "carol", tf.origin)
        )
        self.stream = xgrpc.ExchangeServiceStub(self.channel).Subscribe(xpb.SubscribeRequest(from_index=0), timeout=120)
        head = tf.server.ledger.head()
        self.cursor = 0
        while self.cursor < head:  # bounded: the ledger holds `head` entries
            self.cursor = next(self.stream).next_index

    def close(self) -> None:
        self.stream.cancel()
        self.channel.close()


def _publish_workload(tf: TaskForce) -> None:
    bob, alice = tf.client("bob"), tf.client("alice")
    assert len(bob.publish([bob.signal("md5", f"{i:032x}", groups=[GROUP_ALL]) for i in range(6)])) == 6
    assert len(alice.publish([alice.signal("md5", f"{i + 100:032x}", groups=[GROUP_ALL]) for i in range(4)])) == 4
    shouting = bob.signal("md5", f"{0xABC:032x}", groups=[GROUP_ALL])
    shouting.value = shouting.value.upper()  # signed as is: the exchange refuses it
    (refused,) = bob.publish_envelopes([sign_envelope(*encode_entry(shouting), tf.signers["bob"]).raw])
    assert getattr(refused, "reason", "") == "non-normalized-value"


def _backlog(tf: TaskForce, n: int = BACKLOG, start: int = 0) -> None:
    bob = tf.client("bob")
    phrases = [bob.signal("text", f"phrase {i} " + "lorem ipsum " * 80, groups=[GROUP_ALL])
               for i in range(start, start + n)]
    assert len(bob.publish(phrases)) == n


# -- ops top --once --json ---------------------------------------------------------------------------


def test_ops_top_once_json_reports_members_rates_and_lag(
    tf: TaskForce, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _publish_workload(tf)
    held = HeldSubscriber(tf)
    try:
        assert held.cursor == HEAD0
        _backlog(tf)
        snap = _top_json(tf, tmp_path, capsys, "--silent-after", "1h")

        assert snap["exchange"] == tf.target and snap["engine"] == "sqlite" and snap["window_s"] == WINDOW
        assert snap["ledger"]["head"] == HEAD0 + BACKLOG
        members = {m["member"]: m for m in snap["members"]}
        assert set(members) == {"alice", "bob", "carol", "operator"}
        bob, alice, carol = members["bob"], members["alice"], members["carol"]
        assert (bob["accepted_total"], bob["accepted_in_window"]) == (6 + BACKLOG, 6 + BACKLOG)
        assert bob["accepted_by_type"] == {"md5": 6, "text": BACKLOG}
        assert bob["rate_per_s"] == round((6 + BACKLOG) / WINDOW, 4)
        assert bob["rejected_by_reason"] == {"non-normalized-value": 1}
        assert (alice["accepted_total"], alice["rate_per_s"]) == (4, round(4 / WINDOW, 4))
        assert (carol["accepted_total"], carol["rate_per_s"], carol["last_accepted_ms"]) == (0, 0.0, None)
        assert members["operator"]["accepted_by_type"] == {"keyevent": 8}
        assert snap["rejects"] == [{"reason": "non-normalized-value", "in_window": 1, "total": 1}]
        (sub,) = snap["subscribers"]
        assert (sub["member"], sub["cursor"], sub["lag"]) == ("carol", HEAD0, BACKLOG)
        assert snap["alerts"] == [] and snap["status"] == "ok"

        # lag keeps growing while carol does not read: readings (one a second) show it
        def growing() -> bool:
            _backlog(tf, n=1, start=BACKLOG + len(growing.seen))  # type: ignore[attr-defined]
            now = _top_json(tf, tmp_path, capsys, "--silent-after", "1h")
            growing.seen.append(now)  # type: ignore[attr-defined]
            return any(a["kind"] == "lag-growing" for a in now["alerts"])

        growing.seen = []  # type: ignore[attr-defined]
        wait_until(growing, timeout=30, interval=0.3)
        last = growing.seen[-1]  # type: ignore[attr-defined]
        (sub,) = last["subscribers"]
        assert sub["lag_growing"] and sub["recent_lag"][-3] < sub["recent_lag"][-2] < sub["recent_lag"][-1]
        assert sub["lag"] == last["ledger"]["head"] - HEAD0
        (alert,) = last["alerts"]
        assert (alert["level"], alert["subject"], last["status"]) == ("warning", sub["stream"], "warning")
    finally:
        held.close()
    wait_until(lambda: _top_json(tf, tmp_path, capsys)["subscribers"] == [])


def test_ops_top_flags_a_silent_member(tf: TaskForce, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bob = tf.client("bob")
    bob.publish([bob.signal("md5", f"{7:032x}", groups=[GROUP_ALL])])

    def silent() -> list[str]:
        snap = _top_json(tf, tmp_path, capsys, "--silent-after", "1s")
        return sorted(a["subject"] for a in snap["alerts"] if a["kind"] == "member-silent")

    wait_until(lambda: silent() == ["alice", "bob", "carol"], timeout=20, interval=0.2)
    assert _top_json(tf, tmp_path, capsys, "--silent-after", "1h")["alerts"] == []


def test_ops_top_without_a_terminal_prints_snapshots(
    tf: TaskForce, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Like top -b: one JSON snapshot per line and refresh, bounded by --iterations."""
    code, out = _run(["ops", "top", "--json", "--iterations", "3", "--interval", "0.05", *_ops(tf, tmp_path)], capsys)
    lines = out.splitlines()
    assert code == 0 and len(lines) == 3
    assert [json.loads(line)["ledger"]["head"] for line in lines] == [8, 8, 8]
    code, out = _run(["ops", "top", "--iterations", "1", *_ops(tf, tmp_path)], capsys)
    assert code == 0 and "publishers" in out and "subscribers" in out and "alerts" in out


# -- ops status: exit codes ------------------------------------------------------------------------


def test_ops_status_exit_codes(
    tf: TaskForce, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ops = _ops(tf, tmp_path)
    code, out = _run(["ops", "status", *ops], capsys)
    assert code == 0, out
    assert out.splitlines()[0] == f"trustwire exchange test.trustwire.invalid/log at {tf.target}: OK"
    assert "ledger head 8" in out and "3 enrolled" in out

    wait_until(lambda: _run(["ops", "status", "--silent-after", "1s", *ops], capsys)[0] == 1)
    code, out = _run(["ops", "status", "--silent-after", "1s", "--json", *ops], capsys)
    report = json.loads(out)
    assert (code, report["status"], report["exit_code"]) == (1, "warning", 1)
    assert {a["kind"] for a in report["alerts"]} == {"member-silent"}

    # the checkpointer stops signing: entries wait, and the check turns critical
    monkeypatch.setattr(tf.server.checkpoints, "catch_up", lambda: False)
    bob = tf.client("bob")
    bob.publish([bob.signal("md5", f"{9:032x}", groups=[GROUP_ALL])])
    wait_until(lambda: _run(["ops", "status", "--checkpoint-max-age", "1s", *ops], capsys)[0] == 2)
    code, out = _run(["ops", "status", "--checkpoint-max-age", "1s", *ops], capsys)
    assert "CRITICAL checkpoint-stale: 1 entries have waited" in out
    assert "1 entries uncovered" in out

    # nobody listening: critical; a key the exchange does not know: unknown
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{s.getsockname()[1]}"
    code, out = _run(["ops", "status", *ops, "--exchange", closed], capsys)
    assert code == 2 and "CRITICAL" in out
    imposter = tmp_path / "imposter.key"
    imposter.write_text(insecure_signer("imposter").seed.hex())
    code, out = _run(["ops", "status", "--exchange", tf.target, "--operator-key-file", str(imposter)], capsys)
    assert code == 3 and "UNKNOWN" in out and "not in the key directory" in out


# -- ops rejects -------------------------------------------------------------------------------------


def test_ops_rejects_lists_events(tf: TaskForce, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _publish_workload(tf)
    ops = _ops(tf, tmp_path)
    code, out = _run(["ops", "rejects", "--since", "10m", "--json", *ops], capsys)
    assert code == 0
    (row,) = json.loads(out)
    assert {k: row[k] for k in ("member", "method", "status", "reason", "count")} == {
        "member": "bob", "method": "Publish", "status": "INVALID_ARGUMENT", "reason": "non-normalized-value",
        "count": 1,
    }
    assert re.fullmatch(r"[0-9a-f]{16}", row["correlation_id"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", row["at"])
    code, out = _run(["ops", "rejects", "--since", "10m", *ops], capsys)
    assert "non-normalized-value" in out and row["correlation_id"] in out
    code, out = _run(["ops", "rejects", "--since", "2999-01-01T00:00:00Z", "--json", *ops], capsys)
    assert json.loads(out) == []
    code, out = _run(["ops", "rejects", "--since", "10m", "--member", "alice", "--json", *ops], capsys)
    assert json.loads(out) == []
    assert main(["ops", "rejects", "--since", "yesterday", *ops]) == 3


# -- the live view in a terminal -----------------------------------------------------------------------


class Terminal:
    """A 140x60 terminal running a command: tmux when installed, else a pseudo-terminal."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.tmux = shutil.which("tmux")
        self._buffer = b""
        if self.tmux:
            self.socket = f"tw-test-{uuid.uuid4().hex[:8]}"  # a private tmux server, ended below
            command = " ".join(_quote(a) for a in argv)
            subprocess.run(
                [self.tmux, "-L", self.socket, "new-session", "-d", "-x", "140", "-y", "60", "-s", "top",
                 f"{command}; echo EXIT=$?; sleep 60"],
                check=True, env=env, timeout=20,
            )
        else:
            import pty
            import struct
            import termios
            from fcntl import ioctl

            self.master, slave = pty.openpty()
            ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 60, 140, 0, 0))
            self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True)
            os.close(slave)

    def screen(self) -> str:
        if self.tmux:
            out = subprocess.run(
                [self.tmux, "-L", self.socket, "capture-pane", "-p", "-t", "top"],
                capture_output=True, text=True, timeout=20,
            )
            return out.stdout
        while select.select([self.master], [], [], 0.05)[0]:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                break
            if not chunk:
                break
            self._buffer += chunk
        text = self._buffer.decode(errors="replace")
        return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\x1b[=>]", "", text)

    def interrupt(self) -> None:
        if self.tmux:
            subprocess.run([self.tmux, "-L", self.socket, "send-keys", "-t", "top", "C-c"], check=True, timeout=20)
        else:
            self.proc.send_signal(signal.SIGINT)

    def exit_code(self) -> int | None:
        if self.tmux:
            found = re.search(r"EXIT=(\d+)", self.screen())
            return int(found.group(1)) if found else None
        return self.proc.poll()

    def close(self) -> None:
        if self.tmux:
            subprocess.run([self.tmux, "-L", self.socket, "kill-server"], timeout=20, check=False)
        else:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait(timeout=20)
            os.close(self.master)


def _quote(arg: str) -> str:
    return "'" + arg.replace("'", "'\\''") + "'"


def test_ops_top_live_view_in_a_terminal(tf: TaskForce, tmp_path: Path) -> None:
    _publish_workload(tf)
    held = HeldSubscriber(tf)
    _backlog(tf, n=100)
    env = {**os.environ, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "TERM": "xterm-256color", "COLUMNS": "140",
           "LINES": "60"}
    env.pop("NO_COLOR", None)
    term = Terminal(
        [sys.executable, "-m", "exchange.program", "ops", "top", *_ops(tf, tmp_path), "--silent-after", "1s",
         "--window", "15m"],
        env,
    )
    try:
        def shows(pattern: str) -> None:
            """Wait until the screen matches; show the screen if it never does."""
            try:
                wait_until(lambda: re.search(pattern, term.screen()) is not None, timeout=30, interval=0.1)
            except AssertionError:
                raise AssertionError(f"{pattern!r} never appeared; the screen:\n{term.screen()}") from None

        # the first screens: every member, bob's counts, carol's held stream and her lag, an alert
        shows(r"trustwire ops top")
        shows(r"alice\s+member\s+[\d.]+\s+4\s+4\s+0\b")
        shows(r"bob\s+member\s+[\d.]+\s+106\s+106\s+1\b")  # in window, accepted, rejected
        shows(r"operator\s+operator\s+[\d.]+\s+8\s+8\s+0\b")
        shows(rf"s\d+\s+carol\s+{HEAD0}\s+100\b")  # stream, member, cursor, lag
        shows(r"non-normalized-value\s+1\s+1\b")
        shows(r"WARNING\s+member-silent\s+carol has published nothing")

        # it refreshes by itself: new entries show up without any key press
        _backlog(tf, n=10, start=500)
        shows(r"bob\s+member\s+[\d.]+\s+116\s+116\s+1\b")
        shows(rf"s\d+\s+carol\s+{HEAD0}\s+110\b")

        term.interrupt()  # Ctrl-C: the view ends and the exit code says interrupted
        wait_until(lambda: term.exit_code() is not None, timeout=30)
        assert term.exit_code() == 130
    finally:
        term.close()
        held.close()


def test_ops_top_shows_the_exchange_down_when_it_stops_answering(tmp_path: Path) -> None:
    """A `trustwire serve` process stops while `ops top --json` watches it: the next
    refresh says "down" (never the last OK snapshot), and the text view says DOWN."""
    operator = insecure_signer("top-operator")
    (tmp_path / "operator.key").write_text(operator.seed.hex())
    server, target, _ = spawn_serve(tmp_path, operator.public_key.hex(), "top.test.invalid/log")
    ops = ["--exchange", target, "--origin", "top.test.invalid/log",
           "--operator-key-file", str(tmp_path / "operator.key")]
    top = subprocess.Popen(
        [sys.executable, "-m", "exchange.program", "ops", "top", "--json", "--interval", "0.2",
         "--iterations", "300", *ops], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        assert top.stdout is not None
        first = json.loads(top.stdout.readline())
        assert first["status"] == "ok"
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=20) == 0
        for _ in range(300):  # at most the remaining refreshes
            line = json.loads(top.stdout.readline())
            if line["status"] != "ok":
                break
        assert line["status"] == "down" and line["exchange"] == ops[1] and line["error"]
        assert line["last_snapshot"]["status"] == "ok"  # what it last saw, kept apart
    finally:
        top.kill()
        top.wait(timeout=20)
        if server.poll() is None:
            server.kill()
            server.wait(timeout=20)
    # the text view of an exchange that never answered
    text = subprocess.run([sys.executable, "-m", "exchange.program", "ops", "top", "--iterations", "1", *ops],
                          capture_output=True, text=True, timeout=120)
    assert text.returncode == 0 and "DOWN" in text.stdout and " OK" not in text.stdout
