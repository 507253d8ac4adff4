"""STIX 2.1 objects for banked signals and opinions, built with the ``stix2`` library.

- a signal → an ``indicator`` (pattern from :mod:`clients.stix.types`, ``labels``,
  ``confidence``, ``valid_from``/``valid_until``), created by the publisher's
  ``identity``, marked with the TLP 2.0 ``marking-definition`` of its TLP;
- a retracted signal → the same indicator with ``revoked: true``;
- an opinion → a ``sighting`` (``seen``) or an ``opinion`` (``true_positive`` →
  strongly-agree, ``false_positive`` → strongly-disagree, ``disputed`` → neutral),
  created by its author's identity;
- two extensions (``extension-definition`` objects in every bundle):
  ``trustwire-signal`` (type, value, publisher, signal id, severity, groups) and
  ``trustwire-provenance`` (ledger index, acceptance time, the id of the key whose
  DSSE signature the member verified, the retraction's index, and the checkpoint the
  member verified the bank against; ``trustwire audit prove --index N`` gives the
  entry and its inclusion proof).

Ids are deterministic (derived from publisher and signal id, shaped as UUIDv4), so
every version of a signal is one STIX object and re-exports are stable.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import stix2

from clients.bank import BankOpinion, BankSignal
from clients.stix.types import pattern_for
from exchange.core.entries import SEVERITY_BY_NAME, TLP_BY_NAME

__all__ = [
    "SIGNAL_EXTENSION",
    "PROVENANCE_EXTENSION",
    "TLP_MARKINGS",
    "Checkpoint",
    "stix_id",
    "identity",
    "indicator",
    "opinion_object",
    "static_objects",
    "bundle",
    "ts",
    "checkpoint_of",
    "signal_extension",
    "TLP_NAME",
    "TLP_BY_MARKING",
    "SEVERITY_NAME",
]

SIGNAL_EXTENSION = "extension-definition--e2c01e87-3cd5-402a-ba64-8059ae1bd245"
PROVENANCE_EXTENSION = "extension-definition--d1d0c9ff-127f-455e-8d17-7842c0c5830f"
TRUSTWIRE_IDENTITY = "identity--9f5b7c73-8037-4317-8205-9ac4066b634c"
_TLP2_EXTENSION = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d"
# the TLP 2.0 marking definitions published with STIX 2.1 (FIRST TLP v2)
_TLP2_IDS = {
    "clear": "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
    "green": "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
    "amber": "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
    "amber+strict": "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
    "red": "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",
}
TLP_NAME: dict[int, str] = {int(v): k for k, v in TLP_BY_NAME.items()}
SEVERITY_NAME: dict[int, str] = {int(v): k for k, v in SEVERITY_BY_NAME.items()}
_OPINION = {"true_positive": "strongly-agree", "false_positive": "strongly-disagree", "disputed": "neutral"}


def _tlp_marking(level: str) -> stix2.v21.MarkingDefinition:
    return stix2.v21.MarkingDefinition(
        id=_TLP2_IDS[level],
        created="2022-10-01T00:00:00.000Z",
        name=f"TLP:{level.upper()}",
        extensions={_TLP2_EXTENSION: {"extension_type": "property-extension", "tlp_2_0": level}},
        allow_custom=True,
    )


TLP_MARKINGS: dict[str, stix2.v21.MarkingDefinition] = {level: _tlp_marking(level) for level in _TLP2_IDS}
# marking ids → TLP names, including the TLP 1.0 ones stix2 ships (WHITE reads as CLEAR)
TLP_BY_MARKING: dict[str, str] = {m.id: level for level, m in TLP_MARKINGS.items()} | {
    stix2.v21.TLP_WHITE.id: "clear",
    stix2.v21.TLP_GREEN.id: "green",
    stix2.v21.TLP_AMBER.id: "amber",
    stix2.v21.TLP_RED.id: "red",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Checkpoint:
    """The signed checkpoint a member verified its bank against (for provenance)."""

    origin: str
    size: int
    root_hash_hex: str


def stix_id(kind: str, *parts: str) -> str:
    """A deterministic id, UUIDv4-shaped (as STIX asks of SDOs), for ``kind`` and ``parts``."""
    digest = hashlib.sha256("\x1f".join(("trustwire", kind, *parts)).encode()).digest()
    return f"{kind}--{uuid.UUID(bytes=digest[:16], version=4)}"


def ts(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def identity(member_id: str) -> stix2.v21.Identity:
    """A publisher (or opinion author) as an organization."""
    return stix2.v21.Identity(
        id=stix_id("identity", "member", member_id),
        created="2020-01-01T00:00:00.000Z",
        modified="2020-01-01T00:00:00.000Z",
        name=member_id,
        identity_class="organization",
        description=f"Trustwire member {member_id}",
        created_by_ref=TRUSTWIRE_IDENTITY,
    )


def _modified(s: BankSignal) -> datetime:
    """A revoked version is newer than the version it revokes (STIX needs modified > created)."""
    if s.retracted_index is None:
        return ts(s.created_at_ms)
    return ts(max(s.changed_at_ms, s.created_at_ms + 1))


def indicator(s: BankSignal, checkpoint: Checkpoint | None = None) -> stix2.v21.Indicator:
    """The STIX indicator of a banked signal (revoked once retracted)."""
    valid_from = s.valid_from_ms if s.valid_from_ms is not None else s.created_at_ms
    provenance: dict[str, Any] = {
        "extension_type": "property-extension",
        "ledger_index": s.index,
        "accepted_at": ts(s.accepted_at_ms).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "signing_keyid": s.keyid,
    }
    if s.retracted_index is not None:
        provenance["retraction_index"] = s.retracted_index
    if checkpoint is not None:
        provenance["checkpoint"] = {
            "origin": checkpoint.origin, "tree_size": checkpoint.size, "root_hash": checkpoint.root_hash_hex
        }
    kwargs: dict[str, Any] = {}
    if s.valid_until_ms is not None and s.valid_until_ms > valid_from:
        kwargs["valid_until"] = ts(s.valid_until_ms)
    return stix2.v21.Indicator(
        id=stix_id("indicator", s.publisher, s.signal_id),
        created=ts(s.created_at_ms),
        modified=_modified(s),
        name=f"{s.type} signal {s.signal_id} from {s.publisher}",
        description=f"Trustwire {s.type} signal, severity {SEVERITY_NAME.get(s.severity, 'unspecified')}",
        indicator_types=["malicious-activity"],
        pattern=pattern_for(s.type, s.value),
        pattern_type="stix",
        valid_from=ts(valid_from),
        labels=list(s.labels) or None,
        confidence=s.confidence,
        created_by_ref=stix_id("identity", "member", s.publisher),
        object_marking_refs=[_TLP2_IDS[TLP_NAME.get(s.tlp, "amber")]],
        revoked=s.retracted_index is not None,
        extensions={
            SIGNAL_EXTENSION: {
                "extension_type": "property-extension",
                "signal_type": s.type,
                "value": s.value,
                "publisher": s.publisher,
                "signal_id": s.signal_id,
                "severity": SEVERITY_NAME.get(s.severity, "unspecified"),
                "groups": list(s.groups),
            },
            PROVENANCE_EXTENSION: provenance,
        },
        allow_custom=True,
        **kwargs,
    )


def opinion_object(o: BankOpinion) -> stix2.v21.Sighting | stix2.v21.Opinion:
    """A ``seen`` opinion as a sighting; a verdict as a STIX opinion."""
    author = stix_id("identity", "member", o.author)
    target = stix_id("indicator", o.publisher, o.signal_id)
    at = ts(o.accepted_at_ms)
    ext = {PROVENANCE_EXTENSION: {"extension_type": "property-extension", "ledger_index": o.index}}
    if o.verdict == "seen":
        return stix2.v21.Sighting(
            id=stix_id("sighting", o.publisher, o.signal_id, o.author),
            created=at, modified=at, sighting_of_ref=target, where_sighted_refs=[author],
            created_by_ref=author, extensions=ext, allow_custom=True,
        )
    return stix2.v21.Opinion(
        id=stix_id("opinion", o.publisher, o.signal_id, o.author),
        created=at, modified=at, opinion=_OPINION.get(o.verdict, "neutral"), explanation=f"Trustwire verdict: {o.verdict}",
        object_refs=[target], created_by_ref=author, extensions=ext, allow_custom=True,
    )


def static_objects(publishers: Iterable[str]) -> list[Any]:
    """What every export refers to: the Trustwire identity, both extension definitions,
    the TLP 2.0 markings and one identity per member."""
    system = stix2.v21.Identity(
        id=TRUSTWIRE_IDENTITY, created="2020-01-01T00:00:00.000Z", modified="2020-01-01T00:00:00.000Z",
        name="Trustwire", identity_class="system", description="The Trustwire signal exchange's STIX mapping",
    )

    def ext(ext_id: str, name: str, description: str) -> stix2.v21.ExtensionDefinition:
        return stix2.v21.ExtensionDefinition(
            id=ext_id, created="2026-01-01T00:00:00.000Z", modified="2026-01-01T00:00:00.000Z",
            created_by_ref=TRUSTWIRE_IDENTITY, name=name, description=description,
            schema="https://trustwire.invalid/stix/" + name, version="1.0.0",
            extension_types=["property-extension"],
        )

    return [
        system,
        ext(SIGNAL_EXTENSION, "trustwire-signal", "The Trustwire signal an indicator stands for: type, value, "
            "publisher, signal id, severity, sharing groups."),
        ext(PROVENANCE_EXTENSION, "trustwire-provenance", "Where an object stands on the Trustwire ledger: index, "
            "acceptance time, retraction index, and the verified checkpoint."),
        *TLP_MARKINGS.values(),
        *(identity(p) for p in sorted(set(publishers))),
    ]


def bundle(objects: Iterable[Any]) -> stix2.v21.Bundle:
    return stix2.v21.Bundle(objects=list(objects), allow_custom=True)


def signal_extension(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The ``trustwire-signal`` extension of a parsed indicator dict, if it has one."""
    ext = (obj.get("extensions") or {}).get(SIGNAL_EXTENSION)
    return ext if isinstance(ext, Mapping) else None


def checkpoint_of(trusted: Any) -> Checkpoint | None:
    """The provenance form of a :class:`exchange.core.logview.TrustedCheckpoint` (or None)."""
    if trusted is None:
        return None
    c = trusted.checkpoint
    return Checkpoint(origin=c.origin, size=c.size, root_hash_hex=c.root_hash.hex())
