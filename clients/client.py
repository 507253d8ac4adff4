"""The member's connection to the exchange: publish signed envelopes and read the
stream verified end to end.

Every page of the stream carries a checkpoint that must extend the member's log
view and proofs that its records are in the log; every record then passes the
acceptance rule (:class:`exchange.core.verify.EntryVerifier`). Nothing here keeps
state between calls: the state file belongs to :mod:`clients.sync`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Required, TypedDict, Unpack

import grpc
from google.protobuf.message import DecodeError

from clients.coverage import wait_for_checkpoint
from clients.transport import ClientTls, PublishOutcome, connect, origin_of_log_key, publish_envelopes, translate_errors
from clients.verify_pool import VerifyPool
from exchange.core.dsse import sign_envelope
from exchange.core.entries import Entry, encode_entry
from exchange.core.errors import SecurityError, UntrustedEntry
from exchange.core.keydir import KeyDirectory
from exchange.core.keys import Signer
from exchange.core.logview import LogView, TrustedCheckpoint
from exchange.core.verify import EntryVerifier, VerifiedEntry
from exchange.pb.trustwire.v1 import exchange_pb2 as xpb
from exchange.pb.trustwire.v1 import exchange_pb2_grpc as xgrpc
from exchange.pb.trustwire.v1 import ledger_pb2

__all__ = ["Connection", "ExchangeClient", "claimed_index"]

log = logging.getLogger(__name__)


class Connection(TypedDict, total=False):
    """Who a member is and whom it trusts: the connection options of a client."""

    member_id: Required[str]
    signer: Required[Signer]
    operator_key: Required[bytes]  # the pinned operator key
    log_key: Required[str]  # the log's signed-note verifier key
    witnesses: Sequence[str]  # witness verifier keys
    witness_quorum: int
    channel: grpc.Channel | None  # an existing channel (default: connect to the target)
    tls: ClientTls | None
    verify_workers: int  # processes that check a page's signatures (default: one per core)


class ExchangeClient:
    """One member's authenticated channel to the exchange."""

    def __init__(self, target: str, **connection: Unpack[Connection]) -> None:
        c = connection
        self.member_id = c["member_id"]
        self.signer = c["signer"]
        self.operator_key = c["operator_key"]
        self._log_trust = (c["log_key"], tuple(c.get("witnesses", ())), c.get("witness_quorum", 0))
        channel = c.get("channel")
        origin = origin_of_log_key(c["log_key"])  # calls are signed for this exchange (call-auth v3)
        self._channel = channel or connect(target, self.signer, self.member_id, tls=c.get("tls"), origin=origin)
        self._stub = xgrpc.ExchangeServiceStub(self._channel)  # type: ignore[no-untyped-call]
        # signature checks of a big page run in worker processes, one per core
        self.verify_pool = VerifyPool(c.get("verify_workers"))

    def close(self) -> None:
        self.verify_pool.close()
        self._channel.close()

    def log_view(self, trusted_note: str | None = None) -> LogView:
        """A view of the log under this member's trust anchors, from a trusted checkpoint note."""
        log_key, witnesses, quorum = self._log_trust
        return LogView(log_key, witnesses, quorum, trusted_note=trusted_note)

    def wait_for_checkpoint(self, view: LogView, index: int, timeout_s: float = 10.0) -> TrustedCheckpoint:
        """A verified checkpoint covering ledger ``index``; ``view`` advances to it (see clients.coverage)."""
        return wait_for_checkpoint(self._channel, view, index, timeout_s)

    # -- publishing -------------------------------------------------------------------------

    def sign(self, entry: Entry) -> bytes:
        payload_type, payload = encode_entry(entry)
        return sign_envelope(payload_type, payload, self.signer).raw

    def publish_envelopes(self, envelopes: Sequence[bytes], batch_size: int = 500) -> list[PublishOutcome]:
        """Send already-signed envelopes in batches; one outcome per envelope, in order."""
        return publish_envelopes(self._stub, envelopes, batch_size)

    def publish(self, entries: Iterable[Entry], batch_size: int = 500) -> list[PublishOutcome]:
        """Sign locally and publish; re-publishing the same entries is idempotent."""
        return self.publish_envelopes([self.sign(e) for e in entries], batch_size)

    # -- reading ----------------------------------------------------------------------------

    def prime_directory(
        self, verifier: EntryVerifier, until: int, keep: Callable[[VerifiedEntry], None] | None = None
    ) -> None:
        """Verify the key events before ``until`` when starting mid-ledger (``keep``
        receives each one)."""
        with translate_errors():
            reply = self._stub.GetKeyDirectory(xpb.GetKeyDirectoryRequest(until_index=until), timeout=60)
        for raw in reply.records:
            v = verifier.verify(raw)
            if keep is not None:
                keep(v)
        verifier.last_index = until - 1

    def current_groups(self) -> frozenset[str]:
        """This member's groups as of the ledger head, from the key events the exchange
        serves (each verified): what the exchange filters the stream with."""
        with translate_errors():
            reply = self._stub.GetKeyDirectory(xpb.GetKeyDirectoryRequest(until_index=0), timeout=60)
        verifier = EntryVerifier(self.operator_key, KeyDirectory())
        for raw in reply.records:
            verifier.verify(raw)
        return frozenset(verifier.directory.groups_of(self.member_id))

    def pages(self, start: int, follow: bool, view: LogView) -> Iterator[xpb.SubscribeResponse]:
        """Subscribe pages whose checkpoint extends ``view`` and whose records it includes.

        A fork, a rollback or a bad proof raises a SecurityError and ends delivery.
        """
        trusted = view.trusted.size if view.trusted is not None else 0
        request = xpb.SubscribeRequest(from_index=start, stop_at_head=not follow, trusted_size=trusted)
        cursor = start
        with translate_errors():
            for page in self._stub.Subscribe(request):
                c = page.consistency
                view.advance(page.checkpoint, c.old_size, list(c.hashes))
                indices = [claimed_index(raw, fallback=-1) for raw in page.records]
                if page.records:
                    view.check_batch_inclusion(
                        list(page.records), indices, page.proof.tree_size, list(page.proof.hashes)
                    )
                size = view.trusted.size if view.trusted is not None else 0
                cursor = check_next_index(page.next_index, max([cursor - 1, *indices]) + 1, size)
                yield page

    def subscribe(
        self,
        from_index: int = 0,
        follow: bool = True,
        on_untrusted: Callable[[UntrustedEntry], None] | None = None,
        view: LogView | None = None,
        keep_key_event: Callable[[VerifiedEntry], None] | None = None,
    ) -> Iterator[VerifiedEntry]:
        """Yield every visible entry from ``from_index``, each verified end to end.

        Entries that fail verification are reported to ``on_untrusted`` (default:
        logged) and skipped; the stream goes on. ``view`` is the log view to check
        checkpoints against (default: no trusted checkpoint yet).
        """
        verifier = EntryVerifier(self.operator_key, KeyDirectory())
        if from_index > 0:
            self.prime_directory(verifier, from_index, keep_key_event)
        for page in self.pages(from_index, follow, view if view is not None else self.log_view()):
            for result in verifier.verify_many(list(page.records), self.verify_pool):
                if isinstance(result, UntrustedEntry):
                    (on_untrusted or (lambda e: log.warning("untrusted entry skipped: %s", e)))(result)
                else:
                    yield result


def check_next_index(next_index: int, lowest: int, checkpoint_size: int) -> int:
    """A page's ``next_index`` must lie above its last record (and the previous cursor)
    and within the page's checkpoint; a malicious exchange could otherwise move the
    member's cursor past entries (or beyond the log, bricking every later sync)."""
    if not lowest <= next_index <= checkpoint_size:
        raise SecurityError(
            f"the exchange sent next_index {next_index}, outside [{lowest}, {checkpoint_size}] (the page's last"
            " record and its checkpoint)"
        )
    return next_index


def claimed_index(raw: bytes, fallback: int) -> int:
    """The ledger index an unverified record claims, for bookkeeping only."""
    try:
        return int(ledger_pb2.LedgerRecord.FromString(raw).index)  # no canonical check: bookkeeping only
    except DecodeError:
        return fallback
