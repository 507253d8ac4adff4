"""The Node verifier checks the ``trustwire-keydir`` checkpoint line (issue 12): a fake
exchange (a real gRPC server on 127.0.0.1:0) hides bob's compromise revocation from
carol's stream with a valid batch proof, and passes every audit call through to the
real exchange; the Node member exits 8 naming the withheld key event."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc

from clients.transport import connect
from exchange.pb.trustwire.v1 import audit_pb2_grpc as agrpc
from exchange.pb.trustwire.v1 import exchange_pb2 as xpb
from exchange.pb.trustwire.v1 import exchange_pb2_grpc as xgrpc
from tests.conftest import TaskForce
from tests.e2e.test_node_member import NODE_DIR, TIMEOUT_S, call_auth, node
from tests.grpc.conftest import Stubs
from tests.grpc.test_malicious_exchange import stolen_then_revoked, withheld_page


class WithholdingExchange(xgrpc.ExchangeServiceServicer):
    def __init__(self, page: xpb.SubscribeResponse) -> None:
        self.page = page

    def Subscribe(self, request: xpb.SubscribeRequest, context: grpc.ServicerContext) -> Iterator[xpb.SubscribeResponse]:
        yield self.page


class PassThroughAudit(agrpc.AuditServiceServicer):
    def __init__(self, real: agrpc.AuditServiceStub) -> None:
        self.real = real

    def GetInclusionProof(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self.real.GetInclusionProof(request)

    def GetConsistencyProof(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self.real.GetConsistencyProof(request)

    def ListCheckpoints(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self.real.ListCheckpoints(request)


def _verify(target: str, tf: TaskForce, tmp: Path, principal: str) -> tuple[int, dict[str, Any], str]:
    seed = tmp / f"{principal}.seed"
    seed.write_text(tf.signers[principal].seed.hex())
    proc = subprocess.run(
        [node(), str(NODE_DIR / "bin" / "member.js"), "verify", "--target", target, "--principal", principal,
         "--seed-file", str(seed), "--operator-public-key", tf.operator.public_key.hex(), "--log-key", tf.log_key,
         "--call-auth", call_auth()],
        capture_output=True, text=True, timeout=TIMEOUT_S, check=False,
    )
    return proc.returncode, (json.loads(proc.stdout) if proc.stdout.strip() else {}), proc.stderr


def test_node_member_detects_a_withheld_compromise_revocation(taskforce: TaskForce, tmp_path: Path) -> None:
    """withhold-key-revoked, seen by the second implementation."""
    stubs = Stubs(taskforce)
    revoked = stolen_then_revoked(taskforce)
    stub = stubs.member("carol")
    page = withheld_page(taskforce, stub, revoked)  # waits for a checkpoint covering the head
    (real_page,) = [p for p in stub.Subscribe(xpb.SubscribeRequest(from_index=0, stop_at_head=True)) if p.records]
    assert real_page.next_index == taskforce.server.ledger.head()  # the control, untouched

    channel = connect(taskforce.target, taskforce.signers["carol"], "carol", origin=taskforce.origin)
    results = {}
    for name, served in (("honest", real_page), ("withholding", page)):
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        xgrpc.add_ExchangeServiceServicer_to_server(WithholdingExchange(served), server)
        agrpc.add_AuditServiceServicer_to_server(PassThroughAudit(agrpc.AuditServiceStub(channel)), server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        try:
            results[name] = _verify(f"127.0.0.1:{port}", taskforce, tmp_path, "carol")
        finally:
            server.stop(None)
    channel.close()
    stubs.close()

    code, report, err = results["honest"]
    assert code == 0 and report["keydir_checks"] == 1 and "keydir_error" not in report, err
    code, report, err = results["withholding"]
    assert code == 8, err
    assert "withheld or altered a key event" in report["keydir_error"]
    assert revoked not in report["verified"]
