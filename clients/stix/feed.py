"""A member's bank as an ordered feed of STIX objects (for TAXII and for export).

Positions order the feed: the shared objects (system identity, extension and TLP
definitions, member identities) come first at negative positions, then every
signal and opinion at the ledger index of its last change. ``date_added`` is when
the exchange accepted that change (a member identity: its first banked signal or
opinion).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stix2.utils import format_datetime

from clients.bank import Bank, BankSignal
from clients.stix.objects import Checkpoint, indicator, opinion_object, static_objects

__all__ = ["FeedObject", "feed"]


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedObject:
    position: int
    date_added_ms: int
    obj: Any  # a stix2 object

    @property
    def id(self) -> str:
        return str(self.obj["id"])

    @property
    def version(self) -> str:
        """The object's ``modified`` exactly as serialized (TAXII's version of an object)."""
        modified = self.obj.get("modified") or self.obj.get("created")
        return str(format_datetime(modified)) if modified is not None else "1970-01-01T00:00:00.000Z"


def _static(bank: Bank, group: str | None) -> list[FeedObject]:
    first_seen = bank.members(group)
    objs = static_objects(first_seen)
    start = -len(objs)
    earliest = min(first_seen.values(), default=0)
    out = []
    for i, o in enumerate(objs):
        if o["type"] == "identity" and o.get("identity_class") == "organization":
            added = first_seen.get(str(o["name"]), earliest)
        else:
            added = earliest
        out.append(FeedObject(position=start + i, date_added_ms=added, obj=o))
    return out


def feed(
    bank: Bank,
    *,
    after: int | None = None,
    limit: int = 1000,
    group: str | None = None,
    added_after_ms: int | None = None,
    checkpoint: Checkpoint | None = None,
) -> list[FeedObject]:
    """Up to ``limit`` objects after position ``after`` (None: from the start)."""
    out: list[FeedObject] = []
    if after is None or after < -1:
        out = [
            o for o in _static(bank, group)
            if (after is None or o.position > after) and (added_after_ms is None or o.date_added_ms > added_after_ms)
        ]
    if len(out) >= limit:
        return out[:limit]
    for change in bank.changes(after=max(after if after is not None else -1, -1), limit=limit - len(out),
                               group=group, changed_after_ms=added_after_ms):
        if isinstance(change, BankSignal):
            out.append(FeedObject(position=change.position, date_added_ms=change.changed_at_ms,
                                  obj=indicator(change, checkpoint)))
        else:
            out.append(FeedObject(position=change.position, date_added_ms=change.accepted_at_ms,
                                  obj=opinion_object(change)))
    return out
