"""The auditor's client: fetch the ledger and the checkpoints, verify, prove.

Works against a running exchange (as an enrolled auditor, or the operator) or
offline on a copy of the ledger file and the log's checkpoint file, so an auditor
needs nothing from the exchange but bytes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import grpc

from clients.audit_pool import AuditRun, run_audit
from clients.offline_proofs import consistency_result, inclusion_result
from clients.transport import ClientTls, connect, origin_of_log_key, translate_errors
from exchange.core.audit import AuditReport, Auditor
from exchange.core.errors import InvalidInput, LedgerCorrupt, TrustwireError
from exchange.core.keys import Signer
from exchange.core.logview import LogView
from exchange.core.records import Record
from exchange.pb.trustwire.v1 import audit_pb2 as apb
from exchange.pb.trustwire.v1 import audit_pb2_grpc as agrpc
from exchange.pb.trustwire.v1 import exchange_pb2 as xpb
from exchange.pb.trustwire.v1 import exchange_pb2_grpc as xgrpc

__all__ = ["AuditClient", "audit_offline", "ledger_size", "read_checkpoint_file", "read_key_events", "read_ledger_file"]

PAGE = 1000
RPC_TIMEOUT_S = 60.0
SQLITE_MAX_INT = 2**63 - 1


def _open_readonly(path: Path) -> sqlite3.Connection:
    if not Path(path).is_file():
        raise InvalidInput(f"ledger file {path} does not exist")
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


def _unreadable(path: Path, exc: sqlite3.DatabaseError) -> LedgerCorrupt:
    """A ledger or checkpoint file SQLite cannot read, with the likely cause."""
    if "no such table" in str(exc):
        return LedgerCorrupt(
            f"{path} holds no Trustwire data ({exc}): a copy of a live ledger.db without its -wal file is "
            "a stub; take the copy with `trustwire ops snapshot`"
        )
    return LedgerCorrupt(f"cannot read {path}: {exc}")


def read_ledger_file(path: Path, start: int = 0, stop: int | None = None) -> Iterator[bytes]:
    """Record bytes of an embedded-engine ledger file from ``start``, in index order (streamed)."""
    conn = _open_readonly(path)
    try:
        yield from (row[0] for row in conn.execute(
            "SELECT record FROM records WHERE idx >= ? AND idx < ? ORDER BY idx",
            (start, SQLITE_MAX_INT if stop is None else stop),
        ))
    except sqlite3.DatabaseError as exc:
        raise _unreadable(path, exc) from exc
    finally:
        conn.close()


def read_key_events(path: Path) -> list[bytes]:
    """The key-event records of a ledger file (its key-event index: few, whatever the size)."""
    conn = _open_readonly(path)
    try:
        return [row[0] for row in conn.execute("SELECT record FROM records WHERE kind = 'keyevent' ORDER BY idx")]
    except sqlite3.DatabaseError as exc:
        raise _unreadable(path, exc) from exc
    finally:
        conn.close()


def ledger_size(path: Path) -> int:
    conn = _open_readonly(path)
    try:
        row = conn.execute("SELECT idx FROM records ORDER BY idx DESC LIMIT 1").fetchone()
        return 0 if row is None else int(row[0]) + 1
    except sqlite3.DatabaseError as exc:
        raise _unreadable(path, exc) from exc
    finally:
        conn.close()


def read_checkpoint_file(path: Path) -> Iterator[str]:
    """Signed checkpoint notes in ascending size: streamed from the log's checkpoints.db,
    or from a text file of notes separated by blank lines (each note ends after its
    signature block)."""
    if not Path(path).exists():
        raise InvalidInput(f"checkpoint file {path} does not exist")
    if Path(path).suffix == ".db":
        return _db_notes(path)
    return iter(sorted(split_notes(Path(path).read_text()), key=lambda n: _claimed(n)))


def _db_notes(path: Path) -> Iterator[str]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        yield from (row[0] for row in conn.execute("SELECT note FROM checkpoints ORDER BY size"))
    except sqlite3.DatabaseError as exc:
        raise _unreadable(path, exc) from exc
    finally:
        conn.close()


def _claimed(note: str) -> int:
    try:
        return _size_of(note)
    except TrustwireError:
        return -1


def split_notes(text: str) -> list[str]:
    """Split concatenated signed notes (each: body, blank line, signature lines)."""
    notes: list[str] = []
    current: list[str] = []
    in_signatures = False
    for line in text.splitlines(keepends=True):
        if in_signatures and not line.startswith("\u2014"):
            notes.append("".join(current))
            current, in_signatures = [], False
            if not line.strip():
                continue
        current.append(line)
        if line == "\n":
            in_signatures = True
    if current:
        notes.append("".join(current))
    return notes


def audit_offline(
    ledger: Path, checkpoints: Iterable[str], operator_key: bytes, log_key: str, run: AuditRun = AuditRun()
) -> AuditReport:
    """Audit a ledger file in constant memory, on ``workers`` cores."""
    auditor = Auditor(operator_key, log_key, checkpoints, key_events=read_key_events(ledger),
                      verify_from=run.verify_from, stop=run.stop, resume=run.resume)
    return run_audit(auditor, read_ledger_file(ledger, auditor.position, run.stop), run)


class AuditClient:
    def __init__(
        self,
        target: str,
        *,
        principal: str,
        signer: Signer,
        operator_key: bytes,
        log_key: str,
        channel: grpc.Channel | None = None,
        tls: ClientTls | None = None,
    ) -> None:
        self._channel = channel or connect(target, signer, principal, tls=tls, origin=origin_of_log_key(log_key))
        self._audit = agrpc.AuditServiceStub(self._channel)
        self._exchange = xgrpc.ExchangeServiceStub(self._channel)
        self.operator_key = operator_key
        self.log_key = log_key

    def close(self) -> None:
        self._channel.close()

    def checkpoint(self) -> str:
        """The latest signed checkpoint, verified against the log key."""
        with translate_errors():
            reply = self._audit.GetCheckpoint(apb.GetCheckpointRequest(), timeout=RPC_TIMEOUT_S)
        LogView(self.log_key).open(reply.note)
        return reply.note

    def checkpoints(self, from_size: int = 0) -> Iterator[str]:
        """Every signed checkpoint from ``from_size``, ascending, a page at a time."""
        start = from_size
        while True:
            with translate_errors():
                reply = self._audit.ListCheckpoints(
                    apb.ListCheckpointsRequest(from_size=start, limit=PAGE), timeout=RPC_TIMEOUT_S
                )
            if not reply.notes:
                return
            yield from reply.notes
            start = _size_of(reply.notes[-1]) + 1

    def key_events(self, until: int = 0) -> list[bytes]:
        """The ledger's key-event records (before ``until``; 0: up to the head)."""
        with translate_errors():
            reply = self._exchange.GetKeyDirectory(xpb.GetKeyDirectoryRequest(until_index=until), timeout=RPC_TIMEOUT_S)
        return list(reply.records)

    def records(self, start: int = 0, stop: int | None = None) -> Iterator[bytes]:
        """Every ledger record from ``start`` (auditors and the operator only)."""
        cursor = start
        while stop is None or cursor < stop:
            with translate_errors():
                page = self._audit.GetAllEntries(
                    apb.GetAllEntriesRequest(from_index=cursor, limit=PAGE), timeout=RPC_TIMEOUT_S
                )
            if not page.records:
                return
            for raw in page.records:
                if stop is not None and cursor >= stop:
                    return
                yield raw
                cursor += 1

    def verify(self, run: AuditRun = AuditRun()) -> AuditReport:
        """Audit the exchange's ledger in constant memory, on ``workers`` cores."""
        auditor = Auditor(self.operator_key, self.log_key, self.checkpoints(), key_events=self.key_events(run.stop or 0),
                          verify_from=run.verify_from, stop=run.stop, resume=run.resume)
        return run_audit(auditor, self.records(auditor.position, run.stop), run)

    def prove(self, index: int, tree_size: int = 0) -> dict[str, Any]:
        """Inclusion of entry ``index``, verified locally, as a machine-readable dict."""
        view = LogView(self.log_key)
        note = self.checkpoint()
        trusted = view.advance(note, 0, [])
        with translate_errors():
            proof = self._audit.GetInclusionProof(
                apb.GetInclusionProofRequest(index=index, tree_size=tree_size or trusted.size), timeout=RPC_TIMEOUT_S
            )
            try:
                record = next(iter(self.records(index, index + 1)))
            except grpc.RpcError:
                page = self._exchange.GetEntries(xpb.GetEntriesRequest(from_index=index, limit=1), timeout=RPC_TIMEOUT_S)
                record = page.records[0] if page.records else b""
        if proof.tree_size != trusted.size:
            raise InvalidInput("prove against the latest checkpoint only (--tree-size must match it)")
        if Record.decode(record).index != index:
            raise InvalidInput(f"entry {index} is not visible to this principal")
        view.check_inclusion(record, index, proof.tree_size, list(proof.hashes))
        return inclusion_result(record, index, list(proof.hashes), trusted)

    def consistency(self, old_note: str, new_note: str) -> dict[str, Any]:
        """Check that ``new_note`` extends ``old_note`` with a proof from the exchange."""
        view = LogView(self.log_key, trusted_note=old_note)
        old = view.trusted
        new = LogView(self.log_key).open(new_note)
        if old is None:
            raise InvalidInput("old checkpoint missing")
        with translate_errors():
            proof = self._audit.GetConsistencyProof(
                apb.GetConsistencyProofRequest(old_size=old.size, new_size=new.size), timeout=RPC_TIMEOUT_S
            )
        view.advance(new_note, old.size, list(proof.hashes))
        return consistency_result(old, new, list(proof.hashes))


def _size_of(note: str) -> int:
    from exchange.core import note as notes

    return notes.Checkpoint.parse(notes.parse_note(note).text).size
