"""The exchange's core service: admission plus visibility-filtered reads.

No gRPC here: the servicer decodes requests, calls this, and encodes replies. Every
method takes the authenticated principal.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from exchange.core.entries import OPERATOR
from exchange.core.errors import KeyNotValid, MemberSuspended, PermissionDenied, UnknownKey, WrongMember
from exchange.core.keys import KeyId
from exchange.server.admission import Admission, Outcome
from exchange.server.ledger import Ledger

__all__ = ["ExchangeCore", "Page"]

log = logging.getLogger(__name__)

PAGE_SCAN = 512  # records read per scan step
MAX_PAGE = 1000


@dataclass(frozen=True, slots=True, kw_only=True)
class Page:
    records: list[bytes]
    next_index: int
    head: int


class ExchangeCore:
    def __init__(self, ledger: Ledger, admission: Admission, clock_ms: Callable[[], int]) -> None:
        self.ledger = ledger
        self.admission = admission
        self._clock_ms = clock_ms

    # -- authentication ----------------------------------------------------------------

    def key_for_call(self, principal: str, keyid: KeyId) -> bytes:
        """Public key ``principal`` may authenticate calls with (current directory)."""
        if principal == OPERATOR:
            if keyid != self.admission.operator_keyid:
                raise UnknownKey("the operator authenticates with the operator key")
            return self.admission.operator_key
        directory = self.admission.directory
        info = directory.keys.get(keyid)
        if info is None:
            raise UnknownKey(f"key {keyid[:16]}… is not in the key directory")
        if info.member_id != principal:
            raise WrongMember(f"key {keyid[:16]}… does not belong to {principal}")
        if info.revoked_index is not None or info.valid_from_ms > self._clock_ms():
            raise KeyNotValid(f"key {keyid[:16]}… of {principal} is revoked or not yet valid")
        member = directory.members.get(info.member_id)
        if member is None or member.suspended:
            raise MemberSuspended(f"member {principal} is suspended")
        return info.public_key

    # -- writes ------------------------------------------------------------------------

    def publish(self, principal: str, envelopes: Sequence[bytes]) -> list[Outcome]:
        return self.admission.publish(principal, envelopes)

    # -- reads -------------------------------------------------------------------------

    def _groups(self, principal: str) -> frozenset[str] | None:
        """None means "sees everything" (the operator)."""
        if principal == OPERATOR:
            return None
        member = self.admission.directory.members.get(principal)  # type: ignore[call-overload]
        if member is None:
            raise PermissionDenied(f"{principal} is not an enrolled member")
        return frozenset(member.groups)

    def page(self, principal: str, start: int, limit: int) -> Page:
        """Up to ``limit`` visible records from ``start``, scanning at most a bounded window."""
        groups = self._groups(principal)
        limit = max(1, min(limit or MAX_PAGE, MAX_PAGE))
        head = self.ledger.head()
        out: list[bytes] = []
        cursor = start
        scanned = 0
        while cursor < head and len(out) < limit and scanned < 20 * MAX_PAGE:
            rows = self.ledger.read(cursor, min(PAGE_SCAN, limit - len(out)) if groups is None else PAGE_SCAN)
            if not rows:
                break
            for row in rows:
                if len(out) >= limit:
                    break
                cursor = row.index + 1
                scanned += 1
                if groups is None or row.visible_to(principal, groups):
                    out.append(row.record)
        return Page(records=out, next_index=cursor, head=head)

    def subscribe(
        self, principal: str, start: int, stop_at_head: bool, is_active: Callable[[], bool], heartbeat_s: float = 5.0
    ) -> Iterator[Page]:
        """Pages from ``start`` on; at the head, wait for growth (heartbeat pages are empty)."""
        cursor = start
        while is_active():
            page = self.page(principal, cursor, MAX_PAGE)
            cursor = page.next_index
            if page.records:
                yield page
                continue
            if cursor < page.head:
                continue  # scanned a window of invisible records; keep going
            if stop_at_head:
                yield page
                return
            head = self.ledger.wait_for(cursor, timeout=heartbeat_s)
            if head <= cursor:
                yield page  # heartbeat: tells the subscriber the head it is at

    def key_event_records(self, principal: str, until: int) -> tuple[list[bytes], int]:
        self._groups(principal)
        head = self.ledger.head()
        return self.ledger.key_event_records(until or head), head
