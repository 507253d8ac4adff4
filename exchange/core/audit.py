"""Auditing a whole ledger: what ``trustwire audit verify`` checks, in constant memory.

Given every ledger record in order, the operator's public key, the log's verifier
key, the checkpoints the log signed (ascending sizes) and the ledger's key events
(the exchange's GetKeyDirectory, or the file's key-event index), an audit checks that

* indices are contiguous from 0 (nothing deleted, inserted or reordered);
* every DSSE signature verifies over the exact bytes, with a key that the key
  directory built from the key events *before* that index lets the publisher use,
  and every entry passes the admission rules again;
* nothing was signed with a key after the point its revocation says it was stolen;
* the key events served up front are exactly those in the ledger;
* every signed checkpoint verifies and its root equals the root recomputed from the
  records (so the log never rewrote or forked history it had signed).

Knowing every key event up front is what makes it stream: the directory as of any
index is rebuilt from them, so a :class:`RangeVerifier` checks any range on any core,
and a compromise revealed late is judged from the final directory instead of from a
memory of everything each key signed. The :class:`Auditor` merges ranges in order
into the Merkle frontier (O(log n) hashes) and pulls checkpoints as the tree reaches
their size; its state (:meth:`Auditor.state`) is small enough to save and resume from.

Every finding names the index (or the checkpoint size) and the reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from exchange.core import merkle
from exchange.core import note as notes
from exchange.core import record_view
from exchange.core.acceptance import check_member_at, key_table
from exchange.core.errors import InvalidInput, SecurityError, TrustwireError, UntrustedEntry
from exchange.core.findings import Severity, severity_of
from exchange.core.keydir import KeyDirectory
from exchange.core.keys import KeyId
from exchange.core.keydir_commitment import PREFIX as KEYDIR_PREFIX
from exchange.core.keydir_commitment import KeyDirChain, committed_in
from exchange.core.records import Record
from exchange.core.entries import EntryKind
from exchange.core.verify import EntryVerifier
from exchange.pb.trustwire.v1 import entries_pb2 as pb

__all__ = ["AuditReport", "Auditor", "ChunkResult", "Finding", "RangeVerifier", "CHUNK"]

CHUNK = 2048  # records per range handed to a verification worker


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    reason: str
    message: str
    index: int | None = None
    checkpoint_size: int | None = None

    @property
    def severity(self) -> Severity:
        return severity_of(self.reason)

    def line(self) -> str:
        where = f"entry {self.index}" if self.index is not None else f"checkpoint {self.checkpoint_size}"
        return f"{where}: {self.reason} ({self.severity}): {self.message}"


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
        """No corruption (expected findings, such as a compromised key's entries, are listed but fine)."""
        return all(f.severity is Severity.EXPECTED for f in self.findings)


@dataclass(frozen=True, slots=True, kw_only=True)
class ChunkResult:
    """What checking records ``[start, start + n)`` found; plain values, cheap to ship."""

    start: int
    leaves: bytes  # n leaf hashes of 32 bytes, in order
    verified: int
    findings: tuple[Finding, ...]


def _index_of(raw: bytes) -> int | None:
    try:
        return Record.decode(raw).index
    except TrustwireError:
        return None


class RangeVerifier:
    """Checks ranges of records given every key event of the ledger up front."""

    def __init__(self, operator_key: bytes, key_events: Iterable[bytes], verify_from: int = 0) -> None:
        self._operator_key = operator_key
        self._verify_from = verify_from
        events: dict[int, bytes] = {}
        for raw in key_events:
            index = _index_of(raw)
            if index is not None:
                events.setdefault(index, raw)
        self._events = sorted(events.items())
        self._event_at = dict(self._events)
        self._final = self._directory_until(None)
        self._keys = key_table(self._final)  # every key of the ledger: a key id names one key for good
        self._reset()

    def _reset(self) -> None:
        self._verifier = EntryVerifier(self._operator_key)
        self._applied = 0  # key events (positions in self._events) already applied
        self._position = 0

    def _directory_until(self, stop: int | None) -> KeyDirectory:
        verifier = EntryVerifier(self._operator_key)
        for index, raw in self._events:
            if stop is not None and index >= stop:
                break
            self._apply(verifier, index, raw)
        return verifier.directory

    @staticmethod
    def _apply(verifier: EntryVerifier, index: int, raw: bytes) -> None:
        """Apply a key event to the directory (an invalid one is reported where it sits)."""
        try:
            verifier.last_index = index - 1
            verifier.verify(raw)
        except TrustwireError:
            pass

    def _advance(self, index: int) -> None:
        while self._applied < len(self._events) and self._events[self._applied][0] < index:
            self._apply(self._verifier, *self._events[self._applied])
            self._applied += 1

    @staticmethod
    def _placed(expected: int, raw: bytes, findings: list[Finding]) -> bool:
        """Report a record that does not decode, or that sits at another index; False
        if it does not decode."""
        try:
            record = Record.decode(raw)
        except TrustwireError as exc:
            findings.append(Finding(reason=exc.reason, message=f"record cannot be decoded: {exc.message}", index=expected))
            return False
        if record.index != expected:
            what = "missing (deleted?)" if record.index > expected else "out of order (swapped or duplicated?)"
            findings.append(Finding(reason="ledger-gap", index=expected,
                                    message=f"expected entry {expected}, found entry {record.index}: {what}"))
        return True

    def check(self, start: int, raws: Sequence[bytes]) -> ChunkResult:
        """Check ``raws`` as the records at ``start, start + 1, …``.

        The stateless half runs over the whole range first (:func:`record_view.passes`);
        a member's entry it showed passing, at its expected index, then only takes the
        key and sharing checks at its index (:func:`check_member_at`) from the facts that
        pass read. Anything else (key events, records it could not show passing, a failed
        check) takes the reference path, which decides and says why."""
        if start < self._position:
            self._reset()
        findings: list[Finding] = []
        verified = 0
        checked = max(0, self._verify_from - start)  # the stateless half, for the whole range at once
        facts: list[record_view.Facts] = []
        flags = bytes(checked) + record_view.passes(raws[checked:], self._operator_key, self._keys, _unshown,
                                                    facts.append)
        shown = {f.position + checked: f for f in facts}
        directory = self._verifier.directory
        for offset, raw in enumerate(raws):
            expected = start + offset
            self._advance(expected)
            served = self._event_at.get(expected)
            if served is not None:
                self._applied += 1  # this record applies it (or the mismatch is reported)
                if served != raw:
                    findings.append(Finding(reason="key-directory-mismatch", index=expected,
                                            message="the key event served up front differs from the ledger's record"))
            if expected < self._verify_from:
                if self._placed(expected, raw, findings) and served is not None:
                    self._apply(self._verifier, expected, raw)
                continue
            f = shown.get(offset)
            if f is not None and served is None and f.ledger_index == expected and f.kind is not EntryKind.KEY_EVENT:
                try:
                    check_member_at(f.keyid, f.publisher, f.entry, directory, expected, f.accepted_at_ms)
                except TrustwireError:
                    pass  # the reference path below reports it
                else:
                    verified += 1
                    self._check_compromise(expected, f.keyid, f.accepted_at_ms, findings)
                    continue
            try:
                self._verifier.last_index = expected - 1
                v = self._verifier.verify_passed(raw, flags[offset] == 1)
            except UntrustedEntry as exc:
                if self._placed(expected, raw, findings):
                    findings.append(Finding(reason=exc.cause, message=exc.message, index=expected))
                continue
            if v.index != expected:
                self._placed(expected, raw, findings)
            verified += 1
            if isinstance(v.entry, pb.KeyEvent):
                if served is None:
                    findings.append(Finding(reason="key-directory-mismatch", index=expected,
                                            message="a key event the exchange did not serve up front"))
                continue
            self._check_compromise(expected, v.keyid, v.accepted_at_ms, findings)
        self._position = start + len(raws)
        return ChunkResult(start=start, leaves=b"".join(map(merkle.leaf_hash, raws)), verified=verified,
                           findings=tuple(findings))

    def _check_compromise(self, index: int, keyid: str, at_ms: int, findings: list[Finding]) -> None:
        """Report an entry signed by a key after the point its revocation says it was stolen."""
        key = self._final.keys.get(KeyId(keyid))
        if (key is not None and key.compromised_index is not None and index < key.compromised_index
                and key.tainted(index, at_ms)):
            findings.append(Finding(reason="compromised-key", index=index, message=f"signed by key"
                                    f" {key.keyid[:16]}… after its compromise (revoked at entry {key.compromised_index})"))


def _unshown(raw: bytes) -> bool:
    """A record the batch pass cannot show passing: the reference path checks it in order."""
    return False


class Auditor:
    """Merges checked ranges in ledger order: the tree, the signed roots, the report.

    Feed records one by one with :meth:`add` (checked here, on this core), or ranges
    checked elsewhere with :meth:`merge`; then call :meth:`finish`. ``checkpoints``
    are read lazily and must come in ascending size. ``verify_from`` skips signature
    checks below that index (the tree and the key directory still cover index 0, so a
    range audit is sound); ``stop`` ends the range early (checkpoints beyond it are
    not checked). ``resume`` is a :meth:`state` saved by an earlier run.
    """

    def __init__(
        self,
        operator_key: bytes,
        log_key: str,
        checkpoints: Iterable[str],
        *,
        key_events: Iterable[bytes],
        verify_from: int = 0,
        stop: int | None = None,
        resume: dict[str, Any] | None = None,
    ) -> None:
        self.key_events = list(key_events)
        self._keydir = KeyDirChain(self.key_events)
        self._stop = stop
        self.verify_from = verify_from
        self.operator_key = operator_key
        self._ranges: RangeVerifier | None = None
        self._log = notes.NoteVerifier.from_string(log_key)
        self._checkpoints: Iterator[str] = iter(checkpoints)
        self._next: notes.Checkpoint | None = None
        self._buffer: list[bytes] = []
        self.report = AuditReport()
        self._frontier = merkle.TreeFrontier()
        self._resumed_at = -1  # checkpoints up to here were checked by the run resumed from
        if resume is not None:
            self._resume(resume)
        self._check_roots(self._frontier.size)

    # -- input --------------------------------------------------------------------------

    @property
    def position(self) -> int:
        """The next index to feed."""
        return self._frontier.size + len(self._buffer)

    def add(self, raw: bytes) -> None:
        self._buffer.append(raw)
        if len(self._buffer) >= CHUNK:
            self._flush()

    def _flush(self) -> None:
        if self._buffer:
            if self._ranges is None:
                self._ranges = RangeVerifier(self.operator_key, self.key_events, self.verify_from)
            raws, self._buffer = self._buffer, []
            self.merge(self._ranges.check(self._frontier.size, raws))

    def merge(self, result: ChunkResult) -> None:
        """Fold in the next range (``result.start`` must be :attr:`position`)."""
        if result.start != self._frontier.size or self._buffer:
            raise ValueError(f"range {result.start} merged out of order (expected {self._frontier.size})")
        self.report.findings.extend(result.findings)
        self.report.verified_signatures += result.verified
        leaves, size = result.leaves, merkle.HASH_SIZE
        done, n = 0, len(result.leaves) // size
        while done < n:  # in runs up to the next checkpoint's size, whose root is checked there
            upto = n if self._next is None else min(n, max(done + 1, self._next.size - result.start))
            self._frontier.extend([leaves[o : o + size] for o in range(done * size, upto * size, size)])
            done = upto
            if self._next is not None and self._next.size <= self._frontier.size:
                self._check_roots(self._frontier.size)
        self.report.entries = self._frontier.size

    # -- checkpoints --------------------------------------------------------------------

    def _pull(self) -> notes.Checkpoint | None:
        """The next well-signed checkpoint of this log; bad ones become findings."""
        for note in self._checkpoints:
            try:
                signed = notes.open_checkpoint(note, [self._log])
            except TrustwireError as exc:
                self.report.findings.append(
                    Finding(reason=exc.reason, message=exc.message, checkpoint_size=_claimed_size(note))
                )
                continue
            cp = signed.checkpoint
            if cp.origin != self._log.name:
                self.report.findings.append(Finding(reason="wrong-origin", checkpoint_size=cp.size,
                                                    message=f"origin {cp.origin!r} is not {self._log.name!r}"))
                continue
            return cp
        return None

    def _check_roots(self, size: int) -> None:
        if self._next is None:
            self._next = self._pull()
        while self._next is not None and self._next.size <= size:
            cp = self._next
            if cp.size <= self._resumed_at:
                pass
            elif cp.size == size:
                self.report.checkpoints += 1
                root = self._frontier.root() if size else merkle.EMPTY_ROOT
                if cp.root_hash != root:
                    self.report.findings.append(Finding(
                        reason="checkpoint-mismatch", checkpoint_size=size,
                        message=f"signed root {cp.root_hash.hex()} but the records give {root.hex()}",
                    ))
                self._check_keydir_line(cp)
            else:
                self.report.findings.append(Finding(reason="checkpoint-out-of-order", checkpoint_size=cp.size,
                                                    message="checkpoints must come in ascending size"))
            self._next = self._pull()

    def _check_keydir_line(self, cp: notes.Checkpoint) -> None:
        """The checkpoint's key directory line (if it has one: older checkpoints do not)
        must match the key events of the ledger below its size."""
        if not any(e.split(" ", 1)[0] == KEYDIR_PREFIX for e in cp.extensions):
            return
        try:
            signed = committed_in(cp)
        except SecurityError as exc:
            self.report.findings.append(Finding(reason="key-directory-mismatch", checkpoint_size=cp.size,
                                                message=exc.message))
            return
        if signed != self._keydir.at(cp.size):
            self.report.findings.append(Finding(
                reason="key-directory-mismatch", checkpoint_size=cp.size,
                message=f"the checkpoint commits to {signed.count} key events; the ledger has"
                        f" {self._keydir.at(cp.size).count} (or different ones) below its size"))

    # -- state --------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """Everything needed to go on from :attr:`position` later (JSON-ready, O(log n))."""
        self._flush()
        r = self.report
        return {
            "format": "trustwire-audit-state-v1",
            "size": self._frontier.size,
            "frontier": [h.hex() for h in self._frontier.hashes],
            "verify_from": self.verify_from,
            "verified_signatures": r.verified_signatures,
            "checkpoints": r.checkpoints,
            "findings": [
                {"reason": f.reason, "message": f.message, "index": f.index, "checkpoint_size": f.checkpoint_size}
                for f in r.findings
            ],
        }

    def _resume(self, state: dict[str, Any]) -> None:
        try:
            if state.get("format") != "trustwire-audit-state-v1":
                raise ValueError("not an audit state")
            size = int(state["size"])
            self._frontier = merkle.TreeFrontier.from_hashes(size, [bytes.fromhex(h) for h in state["frontier"]])
            self.report.verified_signatures = int(state["verified_signatures"])
            self.report.checkpoints = int(state["checkpoints"])
            self.report.findings = [Finding(**f) for f in state["findings"]]
        except (KeyError, TypeError, ValueError, merkle.ProofError) as exc:
            raise InvalidInput(f"the audit state to resume from is unreadable ({exc})") from exc
        self.report.entries = size
        self._resumed_at = size

    def finish(self) -> AuditReport:
        self._flush()
        size = self._frontier.size
        if self._next is None:
            self._next = self._pull()
        while self._next is not None:
            if size < self._next.size <= (self._stop if self._stop is not None else self._next.size):
                self.report.findings.append(Finding(
                    reason="checkpoint-beyond-ledger", checkpoint_size=self._next.size,
                    message=f"the log signed {self._next.size} entries but the ledger holds {size}",
                ))
            self._next = self._pull()
        self.report.entries = size
        self.report.tree_size = size
        self.report.root = self._frontier.root() if size else merkle.EMPTY_ROOT
        return self.report


def _claimed_size(note: str) -> int | None:
    try:
        return notes.Checkpoint.parse(notes.parse_note(note).text).size
    except TrustwireError:
        return None
