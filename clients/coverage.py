"""Wait until a signed checkpoint covers a ledger index, and trust it.

A receipt says an entry is in the ledger; the audit log signs a checkpoint that
covers it a few hundred milliseconds later. :func:`wait_for_checkpoint` asks the
exchange for the first checkpoint covering the index (``GetCheckpoint`` with
``covering_index``), retries while it answers ``checkpoint-pending``, and moves the
caller's :class:`LogView` to it through a consistency proof, so the returned
checkpoint is one the caller may check inclusion proofs against.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import grpc

from clients.transport import translate_errors
from exchange.core.errors import CheckpointPending
from exchange.core.logview import LogView, TrustedCheckpoint
from exchange.pb.trustwire.v1 import audit_pb2 as apb
from exchange.pb.trustwire.v1 import audit_pb2_grpc as agrpc

__all__ = ["wait_for_checkpoint"]


def wait_for_checkpoint(
    channel: grpc.Channel,
    view: LogView,
    index: int,
    timeout_s: float = 10.0,
    clock: Callable[[], float] = time.monotonic,
) -> TrustedCheckpoint:
    """Return a verified checkpoint whose tree holds ``index``, advancing ``view`` to it.

    Raises CheckpointPending if none arrives within ``timeout_s``, OutOfRange if the
    index is beyond the ledger head, and LogForked if the new checkpoint does not
    extend the one ``view`` trusts.
    """
    trusted = view.trusted
    if trusted is not None and trusted.size > index:
        return trusted
    stub = agrpc.AuditServiceStub(channel)  # type: ignore[no-untyped-call]
    deadline = clock() + timeout_s
    while True:
        wait_ms = max(1, int((deadline - clock()) * 1000))
        try:
            with translate_errors():
                reply = stub.GetCheckpoint(apb.GetCheckpointRequest(covering_index=index, wait_ms=wait_ms))
            break
        except CheckpointPending:
            if clock() >= deadline:
                raise
    old = view.trusted.size if view.trusted is not None else 0
    hashes: list[bytes] = []
    if 0 < old < reply.size:
        with translate_errors():
            proof = stub.GetConsistencyProof(apb.GetConsistencyProofRequest(old_size=old, new_size=reply.size))
        hashes = list(proof.hashes)
    return view.advance(reply.note, old, hashes)
