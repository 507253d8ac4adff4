"""`trustwire member import` / `export` against a real exchange: validation, batches,
idempotent and resumable runs, round trips through CSV, JSONL and STIX."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from stix2validator import ValidationOptions, validate_file

from clients.cli.main import main
from tests.conftest import GROUP_ALL, GROUP_NCII, TaskForce, start_taskforce

MD5S = [f"{i:032x}" for i in range(1, 8)]


@pytest.fixture
def small_batches(tmp_path: Path) -> Iterator[TaskForce]:
    tf = start_taskforce(tmp_path / "x", quota_overrides=("alice:2000:20000:3",))  # 3 envelopes per call
    try:
        yield tf
    finally:
        tf.close()


def cli(tf: TaskForce, member: str, tmp: Path) -> list[str]:
    key = tmp / f"{member}.key"
    key.write_text(tf.signers[member].seed.hex())
    return ["--exchange", tf.target, "--member-id", member, "--key-file", str(key),
            "--operator-public-key", tf.operator.public_key.hex(), "--log-key", tf.log_key,
            "--state", str(tmp / f"{member}.db"), "--json"]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    code = main(list(argv))
    out = capsys.readouterr().out
    return code, (json.loads(out) if out.strip() else {})


def test_csv_bad_rows_publish_nothing_then_skip_bad_resume_and_rerun(
    small_batches: TaskForce, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tf = small_batches
    alice = cli(tf, "alice", tmp_path)
    hashes = tmp_path / "ncmec.csv"
    rows = ["Hash,Tags,Comment"] + [f"{h.upper()},csam;priority,row {i}" for i, h in enumerate(MD5S)]
    rows.insert(3, "nothex,csam,bad row")  # line 4
    rows.append(f"{MD5S[0]},csam;priority,row 0")  # a repeat: published once
    hashes.write_text("\n".join(rows) + "\n")
    head = tf.server.ledger.head()
    imp = ["member", "import", str(hashes), "--map", "value=Hash", "--map", "labels=Tags", "--type", "md5",
           "--groups", GROUP_ALL, "--tlp", "green", *alice]

    code, report = run(capsys, *imp)
    assert code == 3 and report["bad"] == [{"line": 4, "error": report["bad"][0]["error"]}]
    assert "md5" in report["bad"][0]["error"] and not report["published_anything"]
    assert tf.server.ledger.head() == head  # all or nothing
    assert not (tmp_path / "ncmec.csv.twimport.json").exists()

    code, report = run(capsys, *imp, "--skip-bad")
    assert code == 0 and report["accepted"] == 7 and report["duplicates"] == 1
    assert report["batch_size"] <= 3  # halved down to the exchange's max
    after_first = tf.server.ledger.head()
    assert after_first == head + 7

    code, report = run(capsys, *imp, "--skip-bad")  # resumed: everything was acknowledged
    assert code == 0 and report["resumed_after"] == 7 and report["published"] == 0

    (tmp_path / "ncmec.csv.twimport.json").unlink()  # journal lost: the time is new, so pin it
    journal = tmp_path / "j.json"
    code, report = run(capsys, *imp, "--skip-bad", "--created-at", "2026-03-01T00:00:00Z", "--journal", str(journal))
    assert code == 0 and report["accepted"] == 7 and tf.server.ledger.head() == after_first + 7
    code, report = run(capsys, *imp, "--skip-bad", "--created-at", "2026-03-01T00:00:00Z",
                       "--journal", str(tmp_path / "other.json"))
    assert code == 0 and report["published"] == 7 and report["accepted"] == 7
    assert tf.server.ledger.head() == after_first + 7  # the same bytes again: original receipts, nothing twice


def test_row_errors_name_every_line(taskforce: TaskForce, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    alice = cli(taskforce, "alice", tmp_path)
    f = tmp_path / "s.jsonl"
    f.write_text(
        json.dumps({"id": "a", "type": "md5", "value": MD5S[0], "groups": [GROUP_ALL]}) + "\n"
        + "{not json\n"
        + json.dumps({"id": "b", "type": "sha256", "value": "abc", "groups": [GROUP_ALL]}) + "\n"
        + json.dumps({"id": "a", "type": "md5", "value": MD5S[1], "groups": [GROUP_ALL]}) + "\n"
        + json.dumps({"id": "c", "type": "md5", "value": MD5S[2]}) + "\n"
    )
    head = taskforce.server.ledger.head()
    code, report = run(capsys, "member", "import", str(f), *alice)
    assert code == 3 and [b["line"] for b in report["bad"]] == [2, 3, 4, 5]
    assert "other content" in report["bad"][2]["error"] and "groups" in report["bad"][3]["error"]
    assert taskforce.server.ledger.head() == head
    code, _ = run(capsys, "member", "import", str(f), "--check", *alice)
    assert code == 3 and taskforce.server.ledger.head() == head


def test_group_escalation_rows_are_rejected_by_the_exchange(
    taskforce: TaskForce, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bob = cli(taskforce, "bob", tmp_path)  # bob is not in the NCII group
    f = tmp_path / "s.csv"
    f.write_text(f"value,groups\n{MD5S[0]},{GROUP_ALL}\n{MD5S[1]},{GROUP_NCII}\n")
    code, report = run(capsys, "member", "import", str(f), "--type", "md5", *bob)
    assert code == 1 and report["accepted"] == 1
    assert [(r["line"], r["error"]) for r in report["rejected"]] == [(3, "group-not-allowed")]


def test_export_stix_validates_and_round_trips_into_another_member(
    taskforce: TaskForce, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    alice, bob = cli(taskforce, "alice", tmp_path), cli(taskforce, "bob", tmp_path)
    src = tmp_path / "a.jsonl"
    src.write_text("".join(
        json.dumps({"id": f"a{i}", "type": t, "value": v, "groups": [GROUP_ALL], "labels": ["spam"], "confidence": 70,
                    "created_at": "2026-02-01T00:00:00Z"}) + "\n"
        for i, (t, v) in enumerate([("md5", MD5S[0]), ("url", "https://x.example.invalid/p"), ("domain", "example.invalid"),
                                    ("pdq", "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22")])
    ) + json.dumps({"kind": "retraction", "id": "a0", "created_at": "2026-02-02T00:00:00Z"}) + "\n")
    assert run(capsys, "member", "import", str(src), *alice)[0] == 0
    bundle = tmp_path / "bank.json"
    code, out = run(capsys, "member", "export", "--format", "stix", "--out", str(bundle), *alice)
    assert code == 0 and out["objects"] > 4
    result = validate_file(str(bundle), ValidationOptions(version="2.1"))
    assert result.is_valid, [str(e) for o in result.object_results for e in o.errors]
    objs = json.loads(bundle.read_text())["objects"]
    assert sum(1 for o in objs if o["type"] == "indicator" and o.get("revoked")) == 1

    code, report = run(capsys, "member", "import", str(bundle), "--groups", GROUP_ALL, *bob)
    assert code == 0 and report["accepted"] == 3  # the revoked indicator is not re-published
    code, _ = run(capsys, "member", "sync", *bob)
    csv_out = tmp_path / "bob.csv"
    assert run(capsys, "member", "export", "--format", "csv", "--out", str(csv_out), "--no-sync", *bob)[0] == 0
    lines = csv_out.read_text().splitlines()
    assert lines[0].startswith("id,type,value,labels") and len(lines) == 1 + 3 + 3  # alice's 3 live + bob's 3
    jl = tmp_path / "bob.jsonl"
    assert run(capsys, "member", "export", "--format", "jsonl", "--out", str(jl), "--no-sync", *bob)[0] == 0
    carol = cli(taskforce, "carol", tmp_path)
    code, report = run(capsys, "member", "import", str(csv_out), "--id-prefix", "c-", *carol)
    assert code == 0 and report["accepted"] == 6


def test_progress_bar_on_a_terminal(served: tuple[str, object, str], tmp_path: Path) -> None:
    """On a terminal (stderr is a tty) the import draws a progress bar; stdout keeps the result."""
    import os
    import pty
    import subprocess
    import sys
    import threading

    from clients.operator import OperatorClient
    from tests.conftest import KEYS_VALID_FROM_MS, insecure_signer

    target, operator, vkey = served
    member = insecure_signer("bar-member")
    op = OperatorClient(target, operator, origin="cli.test.invalid/log")  # type: ignore[arg-type]
    op.publish([op.create_group("everyone", "Everyone", "amber"), op.enrol("m1", "M1", ["everyone"]),
                op.add_key("m1", member.public_key, KEYS_VALID_FROM_MS)])
    op.close()
    key = tmp_path / "m1.key"
    key.write_text(member.seed.hex())
    f = tmp_path / "h.csv"
    f.write_text("md5\n" + "".join(f"{i:032x}\n" for i in range(1, 3001)))
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "clients.cli.main", "member", "import", str(f), "--type", "md5", "--groups", "everyone",
         "--batch-size", "500", "--exchange", target, "--member-id", "m1", "--key-file", str(key),
         "--operator-public-key", operator.public_key.hex(), "--log-key", vkey],  # type: ignore[attr-defined]
        stdout=subprocess.PIPE, stderr=slave, text=True, env={**os.environ, "COLUMNS": "100"},
    )
    os.close(slave)
    seen = bytearray()

    def drain() -> None:
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                return
            if not chunk:
                return
            seen.extend(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    out, _ = proc.communicate(timeout=120)
    reader.join(timeout=10)
    os.close(master)
    assert proc.returncode == 0 and "3000 accepted" in out, (out, bytes(seen[-800:]))
    assert b"importing" in seen and b"/3000" in seen


def test_interrupted_import_resumes_after_the_acknowledged_rows(taskforce: TaskForce, tmp_path: Path) -> None:
    """Ctrl-C after the first batch: the re-run starts after it, and nothing is published twice."""
    from clients.bulk import CsvMapping, Journal, check_rows, publish_rows, read_rows

    text = "md5\n" + "".join(f"{i:032x}\n" for i in range(1, 11))
    mapping = CsvMapping.parse([], {"type": "md5", "groups": [GROUP_ALL]})
    alice = taskforce.client("alice")
    head = taskforce.server.ledger.head()

    def attempt(stop_after: int | None) -> tuple[int, int]:
        journal = Journal.open(tmp_path / "j.json", "digest", 1_800_000_000_000)
        checked = check_rows(alice, read_rows("csv", text, mapping=mapping), None, journal.created_at_ms)
        done = 0

        def progress(n: int) -> None:
            nonlocal done
            done += n
            if stop_after is not None and done >= stop_after:
                raise KeyboardInterrupt

        try:
            report = publish_rows(alice, checked, journal, batch_size=4, progress=progress)
            return report.resumed_after, report.published
        finally:
            checked.close()

    with pytest.raises(KeyboardInterrupt):
        attempt(stop_after=4)
    assert json.loads((tmp_path / "j.json").read_text())["rows_done"] == 4
    assert attempt(None) == (4, 6)
    assert taskforce.server.ledger.head() == head + 10
