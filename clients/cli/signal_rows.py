"""A match's signal as a JSON-ready row: provenance, severity by name, opinions so far."""

from __future__ import annotations

from typing import Any

from clients.bank import VERDICTS
from clients.member import MemberClient
from exchange.core.entries import SEVERITY_BY_NAME

__all__ = ["signal_row"]

_SEVERITY_NAMES: dict[int, str] = {int(v): k for k, v in SEVERITY_BY_NAME.items()}


def signal_row(client: MemberClient, m: Any) -> dict[str, Any]:
    """A match's signal, with its provenance and the opinions on it so far (JSON-ready)."""
    sig = m.signal
    opinions = client.bank.opinion_counts(sig.publisher, sig.signal_id) if client.bank else {}
    return {
        "publisher": sig.publisher,
        "signal_id": sig.signal_id,
        "type": sig.type,
        "distance": m.distance,
        "labels": list(sig.labels),
        "confidence": sig.confidence,
        "severity": _SEVERITY_NAMES.get(int(sig.severity), str(sig.severity)),
        "index": sig.index,
        "accepted_at_ms": sig.accepted_at_ms,
        "valid_until_ms": sig.valid_until_ms,
        "opinions": {VERDICTS.get(int(v), str(v)): n for v, n in sorted(opinions.items())},
    }
