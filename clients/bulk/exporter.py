"""Bulk export of a member's bank as CSV, JSON Lines or a STIX 2.1 bundle.

CSV and JSONL hold the live signals (not retracted, not expired) with the columns /
fields ``trustwire member import`` reads back, plus provenance (publisher, ledger
index, acceptance time). The STIX bundle holds everything the bank knows, retracted
signals as revoked indicators and opinions as sightings and opinions
(:mod:`clients.stix.objects`).
"""

from __future__ import annotations

import csv
import json
import uuid
from collections.abc import Callable, Iterator
from typing import IO, Any

from clients.bank import Bank, BankSignal
from clients.stix.feed import feed
from clients.stix.objects import SEVERITY_NAME, TLP_NAME, Checkpoint, ts

__all__ = ["export_bank", "EXPORT_FORMATS"]

EXPORT_FORMATS = ("csv", "jsonl", "stix")
CSV_COLUMNS = (
    "id", "type", "value", "labels", "confidence", "severity", "groups", "tlp", "valid_from", "valid_until",
    "created_at", "publisher", "ledger_index", "accepted_at",
)
_PAGE = 5000


def _iso(ms: int | None) -> str:
    return "" if ms is None else ts(ms).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _signals(bank: Bank, group: str | None, now_ms: int) -> Iterator[BankSignal]:
    after = -1
    while True:
        page = bank.changes(after=after, limit=_PAGE, group=group)
        for c in page:
            if isinstance(c, BankSignal) and c.live_at(now_ms):
                yield c
        if len(page) < _PAGE:
            return
        after = page[-1].position


def _fields(s: BankSignal) -> dict[str, Any]:
    return {
        "id": s.signal_id, "type": s.type, "value": s.value, "labels": list(s.labels), "confidence": s.confidence,
        "severity": SEVERITY_NAME.get(s.severity, "medium"), "groups": list(s.groups),
        "tlp": TLP_NAME.get(s.tlp, "amber"), "valid_from": _iso(s.valid_from_ms), "valid_until": _iso(s.valid_until_ms),
        "created_at": _iso(s.created_at_ms),
    }


def export_bank(
    bank: Bank, fmt: str, out: IO[str], *, group: str | None = None, now_ms: int,
    checkpoint: Checkpoint | None = None, progress: Callable[[int], None] | None = None,
) -> int:
    """Write the bank (or one sharing group of it) to ``out``; returns objects written."""
    n = 0
    if fmt == "jsonl":
        for s in _signals(bank, group, now_ms):
            line = {"kind": "signal", **{k: v for k, v in _fields(s).items() if v not in ("", [])}}
            line["provenance"] = {"publisher": s.publisher, "ledger_index": s.index, "accepted_at": _iso(s.accepted_at_ms)}
            out.write(json.dumps(line, sort_keys=True) + "\n")
            n += 1
    elif fmt == "csv":
        w = csv.writer(out, lineterminator="\n")
        w.writerow(CSV_COLUMNS)
        for s in _signals(bank, group, now_ms):
            f = _fields(s)
            f.update(publisher=s.publisher, ledger_index=s.index, accepted_at=_iso(s.accepted_at_ms))
            w.writerow([";".join(f[c]) if isinstance(f[c], list) else f[c] for c in CSV_COLUMNS])
            n += 1
    elif fmt == "stix":
        # streamed: a bundle of any size without holding it in memory
        out.write('{"type": "bundle", "id": "bundle--' + str(uuid.uuid4()) + '", "objects": [')
        after: int | None = None
        while True:
            page = feed(bank, after=after, limit=_PAGE, group=group, checkpoint=checkpoint)
            for item in page:
                out.write(("," if n else "") + "\n" + item.obj.serialize())
                n += 1
            if len(page) < _PAGE:
                break
            after = page[-1].position
        out.write("\n]}\n")
    else:
        raise ValueError(f"unknown export format {fmt!r}")
    if progress is not None:
        progress(n)
    return n
