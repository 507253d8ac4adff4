"""trustwire.v1.AuditService: checkpoints, proofs and the whole ledger for auditors."""

from __future__ import annotations

from typing import Any

import grpc

from exchange.core.callauth import CallCredentials
from exchange.pb.trustwire.v1 import audit_pb2 as apb
from exchange.server.gate import Gate
from exchange.server.service import ExchangeCore

__all__ = ["AuditService"]


class AuditService:
    """Decode, call the core, encode."""

    def __init__(self, core: ExchangeCore) -> None:
        self._core = core

    def handler(self, gate: Gate) -> grpc.GenericRpcHandler[Any, Any]:
        return gate.service(
            apb.DESCRIPTOR.services_by_name["AuditService"],
            {
                "GetCheckpoint": self.get_checkpoint,
                "ListCheckpoints": self.list_checkpoints,
                "GetInclusionProof": self.get_inclusion_proof,
                "GetConsistencyProof": self.get_consistency_proof,
                "GetAllEntries": self.get_all_entries,
            },
        )

    def get_checkpoint(self, caller: CallCredentials, request: apb.GetCheckpointRequest) -> apb.GetCheckpointResponse:
        covering = request.covering_index if request.HasField("covering_index") else None
        cp = self._core.latest_checkpoint(caller.principal, covering, request.wait_ms)
        return apb.GetCheckpointResponse(note=cp.note, size=cp.size, log_verifier_key=self._core.checkpoints.verifier_key)

    def list_checkpoints(
        self, caller: CallCredentials, request: apb.ListCheckpointsRequest
    ) -> apb.ListCheckpointsResponse:
        cps = self._core.list_checkpoints(caller.principal, request.from_size, request.limit)
        return apb.ListCheckpointsResponse(notes=[c.note for c in cps])

    def get_inclusion_proof(self, caller: CallCredentials, request: apb.GetInclusionProofRequest) -> apb.InclusionProof:
        size, hashes = self._core.inclusion_proof(caller.principal, request.index, request.tree_size)
        return apb.InclusionProof(index=request.index, tree_size=size, hashes=hashes)

    def get_consistency_proof(
        self, caller: CallCredentials, request: apb.GetConsistencyProofRequest
    ) -> apb.ConsistencyProof:
        size, hashes = self._core.consistency_proof(caller.principal, request.old_size, request.new_size)
        return apb.ConsistencyProof(old_size=request.old_size, new_size=size, hashes=hashes)

    def get_all_entries(self, caller: CallCredentials, request: apb.GetAllEntriesRequest) -> apb.GetAllEntriesResponse:
        page = self._core.all_entries(caller.principal, request.from_index, request.limit)
        return apb.GetAllEntriesResponse(records=page.records, next_index=page.next_index, head=page.head)
