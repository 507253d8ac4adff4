"""``trustwire audit verify`` streams: ranges on worker processes, resumable, and the
attacks it must still catch when key events are served up front."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from clients import audit_pool
from clients.audit_pool import AuditRun
from clients.auditor import audit_offline, read_checkpoint_file, read_key_events, read_ledger_file
from clients.cli.main import main
from exchange.core import note as notes
from exchange.core.audit import CHUNK, Auditor
from exchange.core.keys import Signer
from exchange.server.checkpoints import CheckpointLog
from exchange.server.ledger import SqliteLedger
from tests.ledger_contract import OPERATOR_KEY, receipts, signal, task_force

ORIGIN = "example.org/audit-stream-test"
LOG_SIGNER = notes.NoteSigner(ORIGIN, Signer.from_seed(hashlib.sha256(b"audit-stream-log-INSECURE").digest()).signing_key)
N = 2 * CHUNK + 500  # three ranges, the last one partial


@pytest.fixture(scope="module")
def ledger_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("audit") / "ledger.db"
    ledger = SqliteLedger(path)
    log = CheckpointLog(ledger, Path(str(path) + ".audit"), LOG_SIGNER, ORIGIN, interval_ms=0)
    try:
        receipts(ledger.append(task_force()))
        for start in range(0, N, 700):  # a checkpoint per batch (interval 0): many roots to check
            receipts(ledger.append([
                signal("alice", f"s-{i}", ["g-one"], value=hashlib.md5(f"v{i}".encode()).hexdigest())
                for i in range(start, min(N, start + 700))
            ]))
            log.catch_up()
    finally:
        log.stop()
        ledger.close()
    return path


@pytest.fixture(autouse=True)
def workers_even_for_small_ledgers(monkeypatch: pytest.MonkeyPatch) -> None:
    """These ledgers are small: make --workers start its processes anyway."""
    monkeypatch.setattr(audit_pool, "SMALL", 0)


def _audit(path: Path, **kwargs: object) -> object:
    cps = read_checkpoint_file(Path(str(path) + ".audit") / "checkpoints.db")
    return audit_offline(path, cps, OPERATOR_KEY.public_key, LOG_SIGNER.verifier_key(), AuditRun(**kwargs))  # type: ignore[arg-type]


def test_workers_agree_with_one_core(ledger_file: Path) -> None:
    one = _audit(ledger_file, workers=1)
    two = _audit(ledger_file, workers=2)
    assert one.ok and two.ok, (one.findings, two.findings)  # type: ignore[attr-defined]
    assert one.entries == two.entries == N + 7  # type: ignore[attr-defined]
    assert one.root == two.root and one.checkpoints == two.checkpoints >= 8  # type: ignore[attr-defined]
    assert two.verified_signatures == N + 7  # type: ignore[attr-defined]


def test_an_interrupted_audit_resumes_where_it_stopped(ledger_file: Path) -> None:
    saved: list[dict[str, object]] = []
    first = _audit(ledger_file, workers=2, stop=CHUNK + 100, save_state=saved.append)
    assert first.ok  # type: ignore[attr-defined]
    state = json.loads(json.dumps(saved[-1]))  # as stored on disk
    assert state["size"] == CHUNK + 100 and len(state["frontier"]) <= 64
    rest = _audit(ledger_file, workers=2, resume=state)
    whole = _audit(ledger_file, workers=1)
    assert rest.ok and (rest.entries, rest.root, rest.checkpoints) == (  # type: ignore[attr-defined]
        whole.entries, whole.root, whole.checkpoints)  # type: ignore[attr-defined]


def test_tampered_record_is_found_by_a_worker(ledger_file: Path) -> None:
    records = list(read_ledger_file(ledger_file))
    victim = CHUNK + 17
    forged = signal("alice", "s-forged", ["g-one"], signer=OPERATOR_KEY)  # signed by the wrong key
    from exchange.core.records import Record, encode_record

    original = Record.decode(records[victim])
    records[victim] = encode_record(victim, original.accepted_at_ms, forged.envelope)
    auditor = Auditor(OPERATOR_KEY.public_key, LOG_SIGNER.verifier_key(),
                      read_checkpoint_file(Path(str(ledger_file) + ".audit") / "checkpoints.db"),
                      key_events=read_key_events(ledger_file))
    from clients.audit_pool import run_audit

    report = run_audit(auditor, records, AuditRun(workers=2))
    reasons = {(f.index, f.reason) for f in report.findings}
    assert (victim, "wrong-member") in reasons
    assert any(f.reason == "checkpoint-mismatch" for f in report.findings)


def test_withheld_key_event_is_reported(ledger_file: Path) -> None:
    """The exchange serves a key directory without one of the ledger's key events."""
    events = read_key_events(ledger_file)
    auditor = Auditor(OPERATOR_KEY.public_key, LOG_SIGNER.verifier_key(), [], key_events=events[:-1])
    from clients.audit_pool import run_audit

    report = run_audit(auditor, read_ledger_file(ledger_file, 0, 50))
    assert [(f.index, f.reason) for f in report.findings] == [(6, "key-directory-mismatch")]


def test_cli_verify_offline_with_workers_and_state(ledger_file: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "audit-state.json"
    argv = ["audit", "verify", "--ledger", str(ledger_file), "--operator-public-key", OPERATOR_KEY.public_key.hex(),
            "--log-key", LOG_SIGNER.verifier_key(), "--workers", "2", "--state", str(state), "--json"]
    assert main([*argv, "--to", "3000"]) == 0
    assert json.loads(capsys.readouterr().out)["entries"] == 3000
    assert json.loads(state.read_text())["size"] == 3000
    assert main(argv) == 0  # resumes from 3000
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] and out["entries"] == N + 7


def test_cli_rejects_zero_workers(ledger_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["audit", "verify", "--ledger", str(ledger_file), "--operator-public-key",
                 OPERATOR_KEY.public_key.hex(), "--log-key", LOG_SIGNER.verifier_key(), "--workers", "0"])
    assert code != 0
    assert "--workers" in capsys.readouterr().err



def test_checkpoint_lying_about_the_key_directory_is_found(ledger_file: Path) -> None:
    """keydir-line-lie: a log-signed checkpoint whose trustwire-keydir line hides a key
    event is a key-directory-mismatch (corruption) for the auditor."""
    from exchange.core.keydir_commitment import KeyDirCommitment, committed_in

    cps = list(read_checkpoint_file(Path(str(ledger_file) + ".audit") / "checkpoints.db"))
    last = notes.open_checkpoint(cps[-1], [notes.NoteVerifier.from_string(LOG_SIGNER.verifier_key())]).checkpoint
    honest = committed_in(last)
    lie = KeyDirCommitment(honest.count - 1, honest.digest)
    forged = notes.sign_note(notes.Checkpoint(last.origin, last.size, last.root_hash, (lie.line(),)).to_text(),
                             [LOG_SIGNER])
    report = audit_offline(ledger_file, [*cps[:-1], forged], OPERATOR_KEY.public_key, LOG_SIGNER.verifier_key())
    assert not report.ok
    assert [(f.reason, f.checkpoint_size) for f in report.findings] == [("key-directory-mismatch", last.size)]
