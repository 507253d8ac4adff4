"""One encoding of lookup results, as JSON-ready dicts and as MatchService protobufs."""

from __future__ import annotations

from typing import Any

from clients.matchsvc.service import LookupResult, Scored
from exchange.core.signals import ContentHash
from exchange.pb.trustwire.v1 import entries_pb2 as pb
from exchange.pb.trustwire.v1 import match_pb2 as mpb

__all__ = ["result_dict", "result_pb", "hashes_dict", "hashes_pb"]


def _severity(n: int) -> str:
    try:
        return pb.Severity.Name(n).removeprefix("SEVERITY_").lower()  # type: ignore[arg-type]
    except ValueError:
        return str(n)


def _match_dict(m: Scored) -> dict[str, Any]:
    s, d = m.hit.signal, m.decision
    out: dict[str, Any] = {
        "publisher": s.publisher,
        "signal_id": s.signal_id,
        "ledger_index": s.index,
        "type": s.type,
        "labels": list(s.labels),
        "confidence": s.confidence,
        "severity": _severity(s.severity),
        "distance": m.hit.distance,
        "opinions": dict(m.hit.opinions),
        "accepted_at_ms": s.accepted_at_ms,
        "decision": {"action": d.action.value, "priority": d.priority, "rule": d.rule},
    }
    if m.hit.video is not None:
        out["video"] = {"query_match_percent": m.hit.video[0], "compared_match_percent": m.hit.video[1]}
    if m.suppressed_by is not None:
        out["suppressed_by"] = m.suppressed_by
    return out


def result_dict(r: LookupResult) -> dict[str, Any]:
    return {
        "type": r.type,
        "value": r.value,
        "matches": [_match_dict(m) for m in r.matches],
        "suppressed": [_match_dict(m) for m in r.suppressed],
    }


def hashes_dict(hashes: tuple[ContentHash, ...]) -> list[dict[str, Any]]:
    return [{"type": h.type, "value": h.value, "quality": h.quality} for h in hashes]


def _match_pb(m: Scored) -> mpb.SignalMatch:
    s, d = m.hit.signal, m.decision
    video = m.hit.video or (0.0, 0.0)
    return mpb.SignalMatch(
        query_match_percent=video[0],
        compared_match_percent=video[1],
        publisher=s.publisher,
        signal_id=s.signal_id,
        ledger_index=s.index,
        type=s.type,
        labels=list(s.labels),
        confidence=s.confidence,
        severity=_severity(s.severity),
        distance=m.hit.distance,
        opinions=dict(m.hit.opinions),
        accepted_at_ms=s.accepted_at_ms,
        decision=mpb.PolicyDecision(action=d.action.value, priority=d.priority, rule=d.rule),
    )


def result_pb(r: LookupResult) -> mpb.LookupResponse:
    return mpb.LookupResponse(
        type=r.type,
        value=r.value,
        matches=[_match_pb(m) for m in r.matches],
        suppressed=[mpb.Suppression(match=_match_pb(m), reason=m.suppressed_by or "") for m in r.suppressed],
    )


def hashes_pb(hashes: tuple[ContentHash, ...]) -> list[mpb.ContentHash]:
    return [mpb.ContentHash(type=h.type, value=h.value, quality=h.quality) for h in hashes]
