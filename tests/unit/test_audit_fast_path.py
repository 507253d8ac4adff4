"""The audit's fast in-order path (facts from the batch pass, tree merged in runs between
checkpoints) finds every corruption the reference path finds: any one record changed,
any one leaf, any one checkpoint."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pytest

from clients.audit_pool import AuditRun, run_audit
from clients.auditor import read_checkpoint_file, read_key_events, read_ledger_file
from exchange.core import note as notes
from exchange.core.audit import CHUNK, Auditor, RangeVerifier
from exchange.core.errors import UntrustedEntry
from exchange.core.keys import Signer
from exchange.core.records import Record, encode_record
from exchange.core.verify import EntryVerifier
from exchange.server.checkpoints import CheckpointLog
from exchange.server.ledger import SqliteLedger
from tests.ledger_contract import OPERATOR_KEY, receipts, signal, task_force

ORIGIN = "example.org/audit-fast-path-test"
LOG_SIGNER = notes.NoteSigner(ORIGIN, Signer.from_seed(hashlib.sha256(b"audit-fast-path-log-INSECURE").digest()).signing_key)
N = CHUNK + 600  # two ranges; a checkpoint every 300 entries, most inside a range


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[bytes], list[bytes], list[str]]:
    """(records, key events, checkpoints) of a real ledger."""
    path = tmp_path_factory.mktemp("fast") / "ledger.db"
    led = SqliteLedger(path)
    log = CheckpointLog(led, Path(str(path) + ".audit"), LOG_SIGNER, ORIGIN, interval_ms=0)
    try:
        receipts(led.append(task_force()))
        for start in range(0, N, 300):
            receipts(led.append([signal("alice", f"s-{i}", ["g-one"], value=hashlib.md5(b"%d" % i).hexdigest())
                                 for i in range(start, min(N, start + 300))]))
            log.catch_up()
    finally:
        log.stop()
        led.close()
    cps = list(read_checkpoint_file(Path(str(path) + ".audit") / "checkpoints.db"))
    return list(read_ledger_file(path)), read_key_events(path), cps


def _audit(records: list[bytes], events: list[bytes], cps: list[str], workers: int = 1) -> Auditor:
    auditor = Auditor(OPERATOR_KEY.public_key, LOG_SIGNER.verifier_key(), cps, key_events=events)
    run_audit(auditor, records, AuditRun(workers=workers))
    return auditor


def _reference_refuses(records: list[bytes], victim: int) -> bool:
    """The reference path (every record decoded and checked again, in order) on records[:victim + 1]."""
    verifier = EntryVerifier(OPERATOR_KEY.public_key)
    for i, raw in enumerate(records[: victim + 1]):
        try:
            verifier.last_index = i - 1
            if verifier.verify(raw).index != i:
                return True
        except UntrustedEntry:
            if i == victim:
                return True
            raise
    return False


def test_the_honest_ledger_passes(ledger: tuple[list[bytes], list[bytes], list[str]]) -> None:
    records, events, cps = ledger
    report = _audit(records, events, cps).report
    assert report.ok and not report.findings
    assert report.verified_signatures == len(records) and report.checkpoints == len(cps) >= 6


def test_every_byte_of_a_record_changed_is_judged_as_the_reference_judges_it(
    ledger: tuple[list[bytes], list[bytes], list[str]],
) -> None:
    """byte-flip: each byte of one signal's record XORed in turn; the fast path reports the
    record exactly when the reference path refuses it, and its leaf always changes."""
    records, events, _ = ledger
    victim = 30
    head = records[: victim + 5]
    honest = RangeVerifier(OPERATOR_KEY.public_key, events).check(0, head)
    assert not honest.findings
    for pos in range(len(records[victim])):
        raw = bytearray(records[victim])
        raw[pos] ^= 0x01
        tampered = [*head[:victim], bytes(raw), *head[victim + 1:]]
        result = RangeVerifier(OPERATOR_KEY.public_key, events).check(0, tampered)
        found = any(f.index == victim for f in result.findings)
        assert found == _reference_refuses(tampered, victim), (pos, result.findings)
        assert result.leaves[32 * victim : 32 * victim + 32] != honest.leaves[32 * victim : 32 * victim + 32]


@pytest.mark.parametrize("attack", ["wrong-key", "foreign-group", "moved", "restamped"])
def test_one_forged_record_is_found(ledger: tuple[list[bytes], list[bytes], list[str]], attack: str) -> None:
    records, events, cps = ledger
    victim = CHUNK + 123
    original = Record.decode(records[victim])
    tampered = list(records)
    if attack == "wrong-key":  # alice's entry signed by bob's key
        from tests.ledger_contract import BOB

        env = signal("alice", "s-x", ["g-one"], signer=BOB).envelope
        tampered[victim] = encode_record(victim, original.accepted_at_ms, env)
    elif attack == "foreign-group":  # well signed, into a group alice is not in
        env = signal("alice", "s-x", ["g-three"]).envelope
        tampered[victim] = encode_record(victim, original.accepted_at_ms, env)
    elif attack == "moved":
        tampered[victim], tampered[victim + 1] = tampered[victim + 1], tampered[victim]
    else:  # the same envelope stamped at another time: signatures pass, the leaf does not
        tampered[victim] = encode_record(victim, original.accepted_at_ms + 1, original.envelope)
    for workers in (1, 2):
        report = _audit(tampered, events, cps, workers).report
        assert not report.ok, (attack, workers)
        assert any(f.reason == "checkpoint-mismatch" for f in report.findings)
        if attack != "restamped":
            assert any(f.index == victim for f in report.findings), (attack, report.findings)


def test_every_leaf_changed_in_a_merged_range_is_found(ledger: tuple[list[bytes], list[bytes], list[str]]) -> None:
    """leaf-swap: a range's leaf hashes altered after the worker checked it; the first
    checkpoint at or after that leaf no longer matches, and none before it is blamed."""
    records, events, cps = ledger
    sizes = [notes.Checkpoint.parse(notes.parse_note(c).text).size for c in cps]
    verifier = RangeVerifier(OPERATOR_KEY.public_key, events)
    chunks = [verifier.check(s, records[s : s + CHUNK]) for s in range(0, len(records), CHUNK)]
    for leaf in (0, 299, 300, CHUNK - 1, CHUNK, len(records) - 1):
        auditor = Auditor(OPERATOR_KEY.public_key, LOG_SIGNER.verifier_key(), cps, key_events=events)
        for chunk in chunks:
            leaves = bytearray(chunk.leaves)
            if chunk.start <= leaf < chunk.start + CHUNK:
                leaves[32 * (leaf - chunk.start)] ^= 0x80
            auditor.merge(dataclasses.replace(chunk, leaves=bytes(leaves)))
        report = auditor.finish()
        blamed = [f.checkpoint_size for f in report.findings if f.reason == "checkpoint-mismatch"]
        assert blamed == [s for s in sizes if s > leaf], leaf


def test_every_checkpoint_forged_is_found(ledger: tuple[list[bytes], list[bytes], list[str]]) -> None:
    """root-lie: each log-signed checkpoint in turn re-signed with another root."""
    records, events, cps = ledger
    log = notes.NoteVerifier.from_string(LOG_SIGNER.verifier_key())
    for k, note in enumerate(cps):
        cp = notes.open_checkpoint(note, [log]).checkpoint
        lie = notes.sign_note(notes.Checkpoint(cp.origin, cp.size, hashlib.sha256(cp.root_hash).digest(),
                                               cp.extensions).to_text(), [LOG_SIGNER])
        report = _audit(records, events, [*cps[:k], lie, *cps[k + 1:]]).report
        assert [(f.reason, f.checkpoint_size) for f in report.findings] == [("checkpoint-mismatch", cp.size)]
