"""JSON Lines input for ``trustwire member publish``: one entry per line.

    {"kind": "signal", "id": "nw-0001", "type": "pdq", "value": "f8f0…", "labels": ["csam"],
     "confidence": 90, "severity": "high", "groups": ["hash-sharing"], "tlp": "amber",
     "valid_until": "2027-01-01T00:00:00Z", "description": "…", "related": ["nw-0002"]}
    {"kind": "signal", "id": "nw-0003", "type": "account", "platform": "examplechat",
     "account_kind": "email", "identifier": "someone@example.invalid"}   # HMAC'd locally
    {"kind": "retraction", "id": "nw-0001", "reason": "false_positive"}
    {"kind": "opinion", "publisher": "lumen", "id": "lm-0007", "verdict": "true_positive"}

``created_at`` (ISO 8601) defaults to now; give it to make re-running an import
idempotent (the same line then signs the same bytes and gets the same receipt).
A ``note`` field is a comment for humans and is never sent, nor is ``provenance``
(what ``trustwire member export`` writes about where a signal came from). Values are normalized
before signing. Account identifiers are turned into HMACs with
the task-force secret before anything leaves the machine.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from clients.accounts import account_value
from clients.member import MemberClient
from exchange.core.entries import Entry
from exchange.core.errors import InvalidInput, TrustwireError
from exchange.core.signals import Account

__all__ = ["entries_from_jsonl", "entry_from_json", "parse_time_ms"]

_SIGNAL_KEYS = {
    "kind", "id", "type", "value", "labels", "confidence", "severity", "groups", "tlp", "valid_from",
    "valid_until", "description", "related", "created_at", "platform", "account_kind", "identifier", "note",
    "provenance",
}
_RETRACTION_KEYS = {"kind", "id", "reason", "created_at", "note"}
_OPINION_KEYS = {"kind", "publisher", "id", "verdict", "created_at", "note"}
_KEYS = {"signal": _SIGNAL_KEYS, "retraction": _RETRACTION_KEYS, "opinion": _OPINION_KEYS}


def parse_time_ms(text: str) -> int:
    try:
        return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError as exc:
        raise InvalidInput(f"not an ISO 8601 time: {text!r}") from exc


def format_time_ms(ms: int) -> str:
    """``ms`` since the epoch as ISO 8601 UTC (``2026-12-01T21:58:04.123Z``): the inverse of parse_time_ms."""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _opt_time(obj: dict[str, Any], key: str) -> int | None:
    return parse_time_ms(obj[key]) if obj.get(key) else None


def entry_from_json(
    client: MemberClient, obj: dict[str, Any], secret: bytes | None = None, created_at_ms: int | None = None
) -> Entry:
    """One parsed line as an entry (``created_at_ms`` when the line has no ``created_at``)."""
    kind = obj.get("kind", "signal")
    unknown = sorted(set(obj) - _KEYS.get(kind, set(obj)))
    if unknown:
        raise InvalidInput(f"unknown field(s): {', '.join(unknown)}")
    created = _opt_time(obj, "created_at") or created_at_ms
    if kind == "signal":
        value = obj.get("value")
        if obj.get("type") == Account.name and "identifier" in obj:
            value = account_value(obj["platform"], obj["account_kind"], obj["identifier"], secret)
        if not isinstance(value, str):
            raise InvalidInput("signal needs a string value")
        return client.signal(
            obj["type"],
            value,
            signal_id=obj["id"],
            groups=obj["groups"],
            labels=obj.get("labels", []),
            confidence=int(obj.get("confidence", 50)),
            severity=obj.get("severity", "medium"),
            tlp=obj.get("tlp", "amber"),
            valid_from_ms=_opt_time(obj, "valid_from"),
            valid_until_ms=_opt_time(obj, "valid_until"),
            related=obj.get("related", []),
            description=obj.get("description", ""),
            created_at_ms=created,
        )
    if kind == "retraction":
        return client.retraction(obj["id"], obj.get("reason", "error"), created_at_ms=created)
    if kind == "opinion":
        return client.opinion(obj["publisher"], obj["id"], obj["verdict"], created_at_ms=created)
    raise InvalidInput(f"unknown kind {kind!r} (signal, retraction or opinion)")


def entries_from_jsonl(
    client: MemberClient,
    lines: Iterable[str],
    secret: bytes | None = None,
    created_at_ms: int | None = None,
    source: str = "input",
) -> list[Entry]:
    """Parse every line; the first bad line raises InvalidInput naming it."""
    out: list[Entry] = []
    for n, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            obj = json.loads(line)
            if not isinstance(obj, dict):
                raise InvalidInput("each line is a JSON object")
            out.append(entry_from_json(client, obj, secret, created_at_ms))
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"{source}:{n}: not JSON: {exc.msg}") from exc
        except KeyError as exc:
            raise InvalidInput(f"{source}:{n}: missing field {exc.args[0]!r}") from exc
        except TrustwireError as exc:
            raise InvalidInput(f"{source}:{n}: {exc.message}") from exc
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"{source}:{n}: {exc}") from exc
    return out
