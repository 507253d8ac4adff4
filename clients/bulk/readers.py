"""Bulk input as rows in the JSON Lines entry schema (:mod:`clients.jsonl`), each with
the line (or bundle object) it came from.

- **JSONL**: one entry per line, as ``trustwire member publish`` reads.
- **CSV** (header row; NCMEC/StopNCII/TCAP-style hash lists): columns named like the
  JSONL fields are used as they are; ``--map field=column`` renames, constants
  (``--type md5``, ``--groups …``) fill what the file lacks (a column named like the
  ``--type``, such as ``MD5``, holds the values), and other columns are ignored. List cells (labels, groups, related) split on ``;`` or ``|``. Without an
  ``id`` column each row's id is derived from its type and value, so re-runs agree.
- **STIX 2.1 bundles**: each indicator with a single-comparison pattern of a known
  type (or the ``trustwire-signal`` extension); labels, confidence, validity and the
  TLP marking carry over, and the id comes from the indicator's id. Revoked
  indicators and other objects are skipped.

A row that cannot be read is a :class:`Problem` naming its line; readers go on, so
every bad row is reported at once.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from clients.stix.objects import SEVERITY_NAME, TLP_BY_MARKING, signal_extension
from clients.stix.types import type_from_pattern
from exchange.core.errors import InvalidInput

__all__ = ["Problem", "Row", "FORMATS", "CsvMapping", "read_rows", "derived_id"]

FORMATS = ("csv", "jsonl", "stix")
CSV_FIELDS = (
    "id", "type", "value", "labels", "confidence", "severity", "groups", "tlp", "valid_from", "valid_until",
    "description", "related", "created_at", "platform", "account_kind", "identifier",
)
_LISTS = {"labels", "groups", "related"}
_SPLIT = re.compile(r"[;|]")


@dataclass(frozen=True, slots=True, kw_only=True)
class Row:
    line: int
    obj: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class Problem:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass(frozen=True, slots=True, kw_only=True)
class CsvMapping:
    """Which CSV column holds which field, and constants for fields no column holds."""

    columns: Mapping[str, str]  # field -> column header
    defaults: Mapping[str, Any]  # field -> value (lists already split)
    id_prefix: str = "imp-"

    @classmethod
    def parse(cls, specs: Iterable[str], defaults: Mapping[str, Any], id_prefix: str = "imp-") -> CsvMapping:
        columns: dict[str, str] = {}
        for spec in specs:
            field, sep, column = spec.partition("=")
            if not sep or field not in CSV_FIELDS or not column:
                raise InvalidInput(f"--map takes FIELD=COLUMN with FIELD one of {', '.join(CSV_FIELDS)}; got {spec!r}")
            columns[field] = column
        return cls(columns=columns, defaults={k: v for k, v in defaults.items() if v is not None}, id_prefix=id_prefix)


def derived_id(prefix: str, type_name: str, value: str) -> str:
    """A signal id that is a function of the row (type and raw value): re-runs give the same id."""
    return prefix + hashlib.sha256(f"{type_name.lower()}\x1f{value.strip().lower()}".encode()).hexdigest()[:24]


def _jsonl(lines: Iterable[str]) -> Iterator[Row | Problem]:
    for n, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            yield Problem(line=n, message=f"not JSON: {exc.msg}")
            continue
        yield Row(line=n, obj=obj) if isinstance(obj, dict) else Problem(line=n, message="each line is a JSON object")


def _csv(lines: Iterable[str], mapping: CsvMapping) -> Iterator[Row | Problem]:
    reader = csv.reader(lines)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        return
    except csv.Error as exc:
        yield Problem(line=1, message=f"bad CSV header: {exc}")
        return
    where: dict[str, int] = {}
    for field in CSV_FIELDS:
        column = mapping.columns.get(field, field)
        if column in header:
            where[field] = header.index(column)
        elif field in mapping.columns:
            yield Problem(line=1, message=f"no column {column!r} (mapped to {field}); the header has {', '.join(header)}")
            return
    type_default = mapping.defaults.get("type")
    if "value" not in where and isinstance(type_default, str):  # a hash list whose column is named by its type
        named = [i for i, h in enumerate(header) if h.lower() == type_default.lower()]
        if named:
            where["value"] = named[0]
    if "type" not in where and "type" not in mapping.defaults:
        yield Problem(line=1, message="no 'type' column; map one (--map type=COLUMN) or give --type")
        return
    if "value" not in where and "identifier" not in where:
        yield Problem(line=1, message="no 'value' column; map one with --map value=COLUMN")
        return
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield Problem(line=reader.line_num, message=f"bad CSV: {exc}")
            continue
        n = reader.line_num
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != len(header):
            yield Problem(line=n, message=f"{len(cells)} cells, the header has {len(header)}")
            continue
        obj: dict[str, Any] = dict(mapping.defaults)
        for field, i in where.items():
            cell = cells[i].strip()
            if not cell:
                continue
            obj[field] = [p.strip() for p in _SPLIT.split(cell) if p.strip()] if field in _LISTS else cell
        if isinstance(obj.get("type"), str):
            obj["type"] = obj["type"].lower()
        if "confidence" in obj and isinstance(obj["confidence"], str):
            if not obj["confidence"].isdigit():
                yield Problem(line=n, message=f"confidence {obj['confidence'][:20]!r} is not a number 0-100")
                continue
            obj["confidence"] = int(obj["confidence"])
        if "id" not in obj:
            if "type" not in obj or not ("value" in obj or "identifier" in obj):
                yield Problem(line=n, message="a row needs a type and a value")
                continue
            raw = str(obj.get("value") or f"{obj.get('platform')}:{obj.get('account_kind')}:{obj.get('identifier')}")
            obj["id"] = derived_id(mapping.id_prefix, str(obj["type"]), raw)
        yield Row(line=n, obj=obj)


def _stix(text: str, defaults: Mapping[str, Any], member_id: str) -> Iterator[Row | Problem]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        yield Problem(line=exc.lineno, message=f"not JSON: {exc.msg}")
        return
    objects = data.get("objects") if isinstance(data, dict) and data.get("type") == "bundle" else None
    if not isinstance(objects, list):
        yield Problem(line=1, message="not a STIX bundle (an object with type 'bundle' and a list of objects)")
        return
    for n, o in enumerate(objects, 1):
        if not isinstance(o, dict) or o.get("type") != "indicator" or o.get("revoked"):
            continue
        ext = signal_extension(o)
        if ext is not None and isinstance(ext.get("signal_type"), str) and isinstance(ext.get("value"), str):
            found: tuple[str, str] | None = (ext["signal_type"], ext["value"])
        elif o.get("pattern_type", "stix") == "stix" and isinstance(o.get("pattern"), str):
            found = type_from_pattern(o["pattern"])
        else:
            found = None
        if found is None:
            yield Problem(line=n, message=f"object {n} ({str(o.get('id'))[:60]}): no single-comparison pattern of a "
                                          "known type (md5, sha1, sha256, url, domain, pdq, account)")
            continue
        obj: dict[str, Any] = dict(defaults)
        obj["type"], obj["value"] = found
        own = ext is not None and ext.get("publisher") == member_id and isinstance(ext.get("signal_id"), str)
        obj["id"] = ext["signal_id"] if own and ext is not None else "stix-" + str(o.get("id", "")).partition("--")[2]
        if o.get("labels"):
            obj["labels"] = list(o["labels"])
        if isinstance(o.get("confidence"), int):
            obj["confidence"] = o["confidence"]
        tlps = [TLP_BY_MARKING[m] for m in o.get("object_marking_refs", []) if m in TLP_BY_MARKING]
        if tlps and "tlp" not in defaults:
            obj["tlp"] = tlps[0]
        if ext is not None and ext.get("severity") in SEVERITY_NAME.values():
            obj.setdefault("severity", ext["severity"])
        if ext is not None and "groups" not in obj and isinstance(ext.get("groups"), list):
            obj["groups"] = ext["groups"]
        for key in ("valid_from", "valid_until"):
            if o.get(key):
                obj[key] = o[key]
        obj["created_at"] = o.get("modified") or o.get("created")
        if o.get("description"):
            obj["description"] = str(o["description"])[:200]
        yield Row(line=n, obj=obj)


def read_rows(
    fmt: str, text: str, *, mapping: CsvMapping | None = None, member_id: str = ""
) -> Iterator[Row | Problem]:
    """The rows of ``text`` in format ``fmt`` (csv, jsonl or stix), problems in between."""
    if fmt == "jsonl":
        return _jsonl(io.StringIO(text))
    if fmt == "csv":
        return _csv(io.StringIO(text, newline=""), mapping or CsvMapping(columns={}, defaults={}))
    if fmt == "stix":
        return _stix(text, (mapping.defaults if mapping else {}), member_id)
    raise InvalidInput(f"unknown format {fmt!r} ({', '.join(FORMATS)})")
