"""Bulk import: validate everything, then sign and publish in batches, resumably.

1. **Check** every row (parse, normalize, build the entry's canonical bytes, kept
   in a temporary file) and report every bad row with its line; a signal id given
   twice with different content is bad too (the same row twice is published once).
   The caller publishes nothing if any row is bad, unless the user skips bad rows.
2. **Publish**: sign the kept bytes and send them in batches of the exchange's
   maximum (halved if the exchange says a batch is too large; a quota refusal or an
   outage waits and retries), signing the next batch while two are in flight.

Idempotent: ids and ``created_at`` are functions of the row (a row without
``created_at`` gets the time pinned in the journal, written before the first
batch), so a re-run signs the same bytes and the exchange answers with the original
receipts. Resumable: the journal records how many good rows the exchange
acknowledged; a re-run of the same file starts after them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import struct
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from clients.bulk.readers import Problem, Row
from clients.jsonl import entry_from_json
from clients.member import MemberClient
from exchange.core.dsse import sign_envelope
from exchange.core.entries import Entry, encode_entry
from exchange.core.errors import BatchTooLarge, InvalidInput, QuotaExceeded, TrustwireError, Unavailable
from exchange.core.records import Receipt

__all__ = ["Checked", "Journal", "ImportReport", "check_rows", "publish_rows", "DEFAULT_BATCH"]

log = logging.getLogger(__name__)

DEFAULT_BATCH = 1000  # the exchange's default max_batch
_RETRIES = 30


@dataclass(slots=True, kw_only=True)
class Journal:
    """Progress of one import, saved atomically after every acknowledged batch."""

    path: Path | None
    file_sha256: str
    created_at_ms: int
    rows_done: int = 0

    @classmethod
    def open(cls, path: Path | None, file_sha256: str, now_ms: int) -> Journal:
        if path is not None and path.exists():
            try:
                data = json.loads(path.read_text())
                created, digest, done = int(data["created_at_ms"]), str(data["file_sha256"]), int(data["rows_done"])
            except (ValueError, KeyError, TypeError) as exc:
                raise InvalidInput(f"import journal {path} is unreadable ({exc}); remove it to start over") from exc
            # a changed file starts from its first row, with the same pinned time: unchanged rows
            # sign the same bytes again and get their original receipts
            return cls(path=path, file_sha256=file_sha256, created_at_ms=created,
                       rows_done=done if digest == file_sha256 else 0)
        return cls(path=path, file_sha256=file_sha256, created_at_ms=now_ms)  # saved by the first publish

    def save(self) -> None:
        if self.path is None:
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps({"file_sha256": self.file_sha256, "created_at_ms": self.created_at_ms,
                                   "rows_done": self.rows_done}))
        os.replace(tmp, self.path)


@dataclass(slots=True, kw_only=True)
class ImportReport:
    rows: int = 0
    good: int = 0
    duplicates: int = 0
    problems: list[Problem] = field(default_factory=list)
    resumed_after: int = 0
    published: int = 0
    accepted: int = 0
    batches: int = 0
    batch_size: int = DEFAULT_BATCH
    rejected: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows, "good": self.good, "duplicates": self.duplicates,
            "bad": [{"line": p.line, "error": p.message} for p in self.problems],
            "resumed_after": self.resumed_after, "published": self.published, "accepted": self.accepted,
            "batches": self.batches, "batch_size": self.batch_size, "rejected": self.rejected,
        }


_RECORD = struct.Struct(">IBI")  # line, payload type, payload length


class Checked:
    """What pass 1 found: the report, and every good row's canonical payload, spilled to
    a temporary file in file order (pass 2 only signs and sends: no second parse)."""

    def __init__(self, report: ImportReport) -> None:
        self.report = report
        self._spill: IO[bytes] = tempfile.TemporaryFile(prefix="tw-import-")
        self._types: list[str] = []

    def add(self, line: int, payload_type: str, payload: bytes) -> None:
        if payload_type not in self._types:
            self._types.append(payload_type)
        self._spill.write(_RECORD.pack(line, self._types.index(payload_type), len(payload)) + payload)

    def records(self) -> Iterator[tuple[int, str, bytes]]:
        """(line, payload type, payload) of each good row, in file order."""
        self._spill.flush()
        self._spill.seek(0)
        while head := self._spill.read(_RECORD.size):
            line, kind, size = _RECORD.unpack(head)
            yield line, self._types[kind], self._spill.read(size)

    def close(self) -> None:
        self._spill.close()


def _entry(client: MemberClient, row: Row, secret: bytes | None, created_at_ms: int) -> Entry:
    try:
        return entry_from_json(client, row.obj, secret, created_at_ms)
    except KeyError as exc:
        raise InvalidInput(f"missing field {exc.args[0]!r}") from exc
    except TrustwireError as exc:
        raise InvalidInput(exc.message) from exc
    except (TypeError, ValueError, AttributeError) as exc:
        raise InvalidInput(str(exc)) from exc


def _ident(entry: Entry) -> str:
    if hasattr(entry, "signal_id"):
        return f"signal/{entry.signal_id}"
    return f"{type(entry).__name__.lower()}/{entry.signal.member_id}/{entry.signal.signal_id}"  # type: ignore[union-attr]


def check_rows(client: MemberClient, rows: Iterable[Row | Problem], secret: bytes | None, created_at_ms: int) -> Checked:
    """Pass 1: every row parsed, normalized and built (``created_at_ms`` for rows without
    one: the journal's pinned time); problems and repeated ids found."""
    checked = Checked(ImportReport())
    report = checked.report
    seen: dict[str, tuple[int, bytes]] = {}
    for r in rows:
        report.rows += 1
        if isinstance(r, Problem):
            report.problems.append(r)
            continue
        try:
            entry = _entry(client, r, secret, created_at_ms)
        except InvalidInput as exc:
            report.problems.append(Problem(line=r.line, message=exc.message))
            continue
        key = _ident(entry)
        payload_type, payload = encode_entry(entry)
        digest = hashlib.sha256(payload).digest()[:12]
        first = seen.get(key)
        if first is None:
            seen[key] = (r.line, digest)
            report.good += 1
            checked.add(r.line, payload_type, payload)
        elif first[1] == digest:
            report.duplicates += 1
        else:
            report.problems.append(Problem(line=r.line, message=f"{key} is also on line {first[0]} with other content"))
    return checked


class _Sender:
    """Publish one batch, adapting to the exchange's limits."""

    def __init__(self, client: MemberClient, batch_size: int, sleep: Callable[[float], None]) -> None:
        self.client, self.batch_size, self._sleep = client, batch_size, sleep

    def send(self, envelopes: Sequence[bytes]) -> list[object]:
        delay = 0.05
        for _ in range(_RETRIES):
            try:
                return list(self.client.publish_envelopes(envelopes, batch_size=self.batch_size))
            except BatchTooLarge:
                if self.batch_size == 1:
                    raise
                self.batch_size = max(1, self.batch_size // 2)
                log.info("the exchange takes smaller batches: now %d", self.batch_size)
            except (QuotaExceeded, Unavailable) as exc:
                wait = max(delay, getattr(exc, "retry_after_ms", 0) / 1000)
                log.info("exchange busy (%s); retrying in %.2fs", exc.reason, wait)
                self._sleep(wait)
                delay = min(delay * 2, 5.0)
        raise Unavailable("the exchange kept refusing the import; run it again to resume")


def publish_rows(
    client: MemberClient,
    checked: Checked,
    journal: Journal,
    batch_size: int = DEFAULT_BATCH,
    progress: Callable[[int], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    inflight: int = 2,
) -> ImportReport:
    """Pass 2: sign and publish the good rows after the journal's position, with up to
    ``inflight`` batches on the wire while the next one is signed."""
    report = checked.report
    report.resumed_after = journal.rows_done
    journal.save()  # the pinned time is on disk before the exchange has anything
    sender = _Sender(client, batch_size, sleep)
    pool = ThreadPoolExecutor(max_workers=inflight, thread_name_prefix="tw-import")
    pending: deque[tuple[Future[list[object]], list[int]]] = deque()
    good_index = 0

    def settle() -> None:
        """Account for the oldest batch in flight (batches are journaled in file order)."""
        future, lines = pending.popleft()
        outcomes = future.result()
        for line, o in zip(lines, outcomes, strict=True):
            if isinstance(o, Receipt):
                report.accepted += 1
            else:
                err: Any = o
                report.rejected.append({"line": line, "error": err.reason, "message": err.message})
        report.published += len(lines)
        report.batches += 1
        journal.rows_done += len(lines)
        journal.save()
        if progress is not None:
            progress(len(lines))

    def submit(envelopes: list[bytes], lines: list[int]) -> None:
        while len(pending) >= inflight:
            settle()
        pending.append((pool.submit(sender.send, envelopes), lines))

    try:
        lines: list[int] = []
        envelopes: list[bytes] = []
        for line, payload_type, payload in checked.records():
            good_index += 1
            if good_index <= journal.rows_done:
                continue
            envelopes.append(sign_envelope(payload_type, payload, client.signer).raw)
            lines.append(line)
            if len(envelopes) >= sender.batch_size:
                submit(envelopes, lines)
                envelopes, lines = [], []
        if envelopes:
            submit(envelopes, lines)
        while pending:
            settle()
    finally:
        pool.shutdown(wait=True)
    report.batch_size = sender.batch_size
    return report
