"""trustwire.v1.ExchangeService: publish, follow and read the ledger.

Thin: decode, call the core, encode. Subscribe is the one long-lived call; it runs
on the event loop and holds no thread. It re-authorizes the caller before every
page and at least once a second while it waits, so a stream ends within a second
of a suspension, a retired, revoked or expired key, or a lost group, and never
delivers an entry accepted after that change.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import grpc

from exchange.core.callauth import CallCredentials
from exchange.core.errors import OutOfRange, Unavailable
from exchange.core.records import Receipt
from exchange.pb.trustwire.v1 import audit_pb2 as apb
from exchange.pb.trustwire.v1 import exchange_pb2 as xpb
from exchange.server.checkpoints import LogCheckpoint
from exchange.server.gate import Context, Gate
from exchange.server.service import MAX_PAGE, ExchangeCore, Page, ProvenPage
from exchange.server.streams import Pulse

__all__ = ["ExchangeService"]

RECHECK_S = 0.9
"""A waiting stream re-authorizes at least this often (keys expire with time); key
directory changes wake it at once (they are ledger entries, so a checkpoint follows)."""
HEARTBEAT_S = 5.0
COVER_WAIT_S = 5.0
TRUSTED_WAIT_S = 1.0


def _subscribe_reply(proven: ProvenPage) -> xpb.SubscribeResponse:
    page, size = proven.page, proven.checkpoint.size
    return xpb.SubscribeResponse(
        records=page.records,
        next_index=page.next_index,
        head=page.head,
        checkpoint=proven.checkpoint.note,
        proof=apb.BatchInclusionProof(tree_size=size, hashes=proven.inclusion),
        consistency=apb.ConsistencyProof(old_size=proven.consistency_from, new_size=size, hashes=proven.consistency),
    )


class ExchangeService:
    def __init__(self, core: ExchangeCore, gate: Gate, pulse: Pulse, heartbeat_s: float = HEARTBEAT_S) -> None:
        self._core = core
        self._gate = gate
        self._pulse = pulse
        self._heartbeat_s = heartbeat_s

    def handler(self) -> grpc.GenericRpcHandler[Any, Any]:
        return self._gate.service(
            xpb.DESCRIPTOR.services_by_name["ExchangeService"],
            {"Publish": self.publish, "GetEntries": self.get_entries, "GetKeyDirectory": self.get_key_directory},
            {"Subscribe": self.subscribe},
        )

    def publish(self, caller: CallCredentials, request: xpb.PublishRequest) -> xpb.PublishResponse:
        """Each outcome written into the response in place (no message built per
        receipt and then copied in)."""
        response = xpb.PublishResponse()
        results = response.results
        for o in self._core.publish(caller.principal, list(request.envelopes)):
            if isinstance(o, Receipt):
                r = results.add().receipt
                r.index, r.leaf_hash = o.index, o.leaf_hash
                r.accepted_at.FromMilliseconds(o.accepted_at_ms)
            else:
                results.add().error.CopyFrom(xpb.EntryError(
                    status=o.status, reason=o.reason, message=o.message, correlation_id=o.correlation_id or ""
                ))
        return response

    def get_entries(self, caller: CallCredentials, request: xpb.GetEntriesRequest) -> xpb.GetEntriesResponse:
        page = self._core.page(caller.principal, request.from_index, request.limit)
        return xpb.GetEntriesResponse(records=page.records, next_index=page.next_index, head=page.head)

    def get_key_directory(
        self, caller: CallCredentials, request: xpb.GetKeyDirectoryRequest
    ) -> xpb.GetKeyDirectoryResponse:
        records, head = self._core.key_event_records(caller.principal, request.until_index)
        return xpb.GetKeyDirectoryResponse(records=records, head=head)

    # -- Subscribe ------------------------------------------------------------------------------

    async def _wait_for_size(self, caller: CallCredentials, groups: Any, size: int, timeout: float) -> LogCheckpoint | None:
        """Wait (re-authorizing) until a checkpoint covers ``size``, or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while True:
            covering = self._core.covering_checkpoint(size)
            left = deadline - time.monotonic()
            if covering is not None or left <= 0:
                return covering
            await self._pulse.wait(min(RECHECK_S, left))
            self._core.recheck_stream(caller.principal, caller.keyid, groups)

    def _read(
        self, principal: str, cursor: int, checkpoint: LogCheckpoint, proven_to: int
    ) -> tuple[Page, ProvenPage | None]:
        """One page and, when it holds records, its proofs: one trip to the executor."""
        page = self._core.page(principal, cursor, MAX_PAGE, until=checkpoint.size)
        return page, (self._core.prove(page, checkpoint, proven_to) if page.records else None)

    async def subscribe(
        self, caller: CallCredentials, request: xpb.SubscribeRequest, context: Context
    ) -> AsyncIterator[xpb.SubscribeResponse]:
        """Proven pages from ``from_index`` on, each covered by a signed checkpoint; at
        the head, a follow-mode stream waits for growth and sends an empty heartbeat
        page every ``heartbeat_s``."""
        core, principal = self._core, caller.principal
        groups = await self._gate.run(core.start_stream, principal)
        stream = core.activity.stream(principal, request.from_index)
        cursor, proven_to, trusted = request.from_index, request.trusted_size, request.trusted_size
        try:
            while True:
                core.recheck_stream(principal, caller.keyid, groups)
                head = core.ledger.head()  # in memory on every engine
                checkpoint = await self._wait_for_size(caller, groups, head, COVER_WAIT_S)
                if checkpoint is None:
                    raise Unavailable(f"the audit log has not yet signed a checkpoint covering {head} entries; retry")
                if trusted > checkpoint.size:  # a replica a few ms behind the one the member last read from
                    checkpoint = await self._wait_for_size(caller, groups, trusted, TRUSTED_WAIT_S) or checkpoint
                    if trusted > checkpoint.size:
                        raise OutOfRange(
                            f"you trust a checkpoint of size {trusted}; the log's latest is {checkpoint.size}"
                        )
                page, proven = await self._gate.run(self._read, principal, cursor, checkpoint, proven_to)
                core.recheck_stream(principal, caller.keyid, groups)  # a change that landed meanwhile drops the page
                cursor = page.next_index
                idle = not page.records and cursor >= checkpoint.size
                if not page.records and not idle:
                    continue  # a window of invisible records; keep scanning
                if idle and not request.stop_at_head:
                    if await self._wait_for_size(caller, groups, cursor + 1, self._heartbeat_s) is not None:
                        continue
                if proven is None:  # an empty heartbeat page
                    proven = await self._gate.run(core.prove, page, checkpoint, proven_to)
                yield _subscribe_reply(proven)
                stream.advance(page.next_index)
                proven_to = checkpoint.size
                if idle and request.stop_at_head:
                    return
        finally:
            stream.close()
