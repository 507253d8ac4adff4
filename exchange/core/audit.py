"""Auditing a whole ledger: what ``trustwire audit verify`` checks.

Given every ledger record in order, the operator's public key, the log's verifier
key and the checkpoints the log signed, an :class:`Auditor` checks that

* indices are contiguous from 0 (nothing deleted, inserted or reordered);
* every DSSE signature verifies over the exact bytes, with a key that the key
  directory built from the key events *before* that index lets the publisher use,
  and every entry passes the admission rules again;
* nothing was signed with a key after the point its revocation says it was stolen;
* every signed checkpoint verifies and its root equals the root recomputed from the
  records (so the log never rewrote or forked history it had signed).

Every finding names the index (or the checkpoint size) and the reason.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from exchange.core import merkle
from exchange.core import note as notes
from exchange.core.errors import TrustwireError, UntrustedEntry
from exchange.core.records import Record
from exchange.core.keys import KeyId
from exchange.core.verify import EntryVerifier, VerifiedEntry
from exchange.pb.trustwire.v1 import entries_pb2 as pb

__all__ = ["AuditReport", "Auditor", "Finding"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    reason: str
    message: str
    index: int | None = None
    checkpoint_size: int | None = None

    def line(self) -> str:
        where = f"entry {self.index}" if self.index is not None else f"checkpoint {self.checkpoint_size}"
        return f"{where}: {self.reason}: {self.message}"


@dataclass(slots=True)
class AuditReport:
    entries: int = 0
    verified_signatures: int = 0
    checkpoints: int = 0
    tree_size: int = 0
    root: bytes = b""
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings


class Auditor:
    """Feed records in ledger order with :meth:`add`, then call :meth:`finish`.

    ``verify_from`` skips signature checks below that index (the tree and the key
    directory are still built from index 0, so a range audit is sound).
    """

    def __init__(self, operator_key: bytes, log_key: str, checkpoints: Iterable[str], verify_from: int = 0) -> None:
        self._verifier = EntryVerifier(operator_key)
        self._log = notes.NoteVerifier.from_string(log_key)
        self._verify_from = verify_from
        self._frontier = merkle.TreeFrontier()
        self._signed: dict[KeyId, list[tuple[int, int]]] = {}
        self.report = AuditReport()
        self._pending: dict[int, list[notes.Checkpoint]] = {}
        for note in checkpoints:
            self._add_checkpoint(note)

    def _add_checkpoint(self, note: str) -> None:
        try:
            signed = notes.open_checkpoint(note, [self._log])
        except TrustwireError as exc:
            size = _claimed_size(note)
            self.report.findings.append(Finding(reason=exc.reason, message=exc.message, checkpoint_size=size))
            return
        cp = signed.checkpoint
        if cp.origin != self._log.name:
            self.report.findings.append(
                Finding(reason="wrong-origin", message=f"origin {cp.origin!r} is not {self._log.name!r}",
                        checkpoint_size=cp.size)
            )
            return
        self._pending.setdefault(cp.size, []).append(cp)
        self.report.checkpoints += 1
        if cp.size == 0:
            self._check_roots(0)

    def add(self, raw: bytes) -> None:
        expected = self._frontier.size
        try:
            record = Record.decode(raw)
        except TrustwireError as exc:
            self._finding(expected, exc.reason, f"record cannot be decoded: {exc.message}")
            record = None
        if record is not None and record.index != expected:
            what = "missing (deleted?)" if record.index > expected else "out of order (swapped or duplicated?)"
            self._finding(expected, "ledger-gap", f"expected entry {expected}, found entry {record.index}: {what}")
        if record is not None and expected >= self._verify_from:
            try:
                self._verifier.last_index = expected - 1
                verified = self._verifier.verify(raw)
                self.report.verified_signatures += 1
                self._track_keys(verified)
            except UntrustedEntry as exc:
                self._finding(expected, exc.cause, exc.message)
        elif record is not None:
            self._track_directory(raw)
        self._frontier.append(merkle.leaf_hash(raw))
        self.report.entries += 1
        self._check_roots(self._frontier.size)

    def _track_keys(self, v: VerifiedEntry) -> None:
        """Remember who signed what, and flag what a key signed after its compromise
        once the (later) revocation says so."""
        e = v.entry
        if not isinstance(e, pb.KeyEvent):
            self._signed.setdefault(v.keyid, []).append((v.index, v.accepted_at_ms))
            return
        if e.WhichOneof("event") == "key_revoked" and e.key_revoked.compromised:
            key = self._verifier.directory.keys[KeyId(e.key_revoked.keyid)]
            for index, at_ms in self._signed.get(key.keyid, []):
                if key.tainted(index, at_ms):
                    self._finding(
                        index,
                        "compromised-key",
                        f"signed by key {key.keyid[:16]}… after its compromise (revoked at entry {v.index})",
                    )

    def _track_directory(self, raw: bytes) -> None:
        """Below verify_from: still apply key events, so later checks use the right directory."""
        try:
            self._verifier.last_index = self._frontier.size - 1
            self._verifier.verify(raw)
        except TrustwireError:
            self._verifier.last_index = self._frontier.size

    def _check_roots(self, size: int) -> None:
        for cp in self._pending.pop(size, []):
            root = self._frontier.root() if size else merkle.EMPTY_ROOT
            if cp.root_hash != root:
                self.report.findings.append(
                    Finding(
                        reason="checkpoint-mismatch",
                        message=f"signed root {cp.root_hash.hex()} but the records give {root.hex()}",
                        checkpoint_size=size,
                    )
                )

    def _finding(self, index: int, reason: str, message: str) -> None:
        self.report.findings.append(Finding(reason=reason, message=message, index=index))

    def finish(self) -> AuditReport:
        for size in sorted(self._pending):
            self.report.findings.append(
                Finding(
                    reason="checkpoint-beyond-ledger",
                    message=f"the log signed {size} entries but the ledger holds {self._frontier.size}",
                    checkpoint_size=size,
                )
            )
        self._pending.clear()
        self.report.tree_size = self._frontier.size
        self.report.root = self._frontier.root() if self._frontier.size else merkle.EMPTY_ROOT
        return self.report


def _claimed_size(note: str) -> int | None:
    try:
        return notes.Checkpoint.parse(notes.parse_note(note).text).size
    except TrustwireError:
        return None
