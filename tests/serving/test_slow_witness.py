"""A witness that drips one byte every second, or one that is dead, slows nothing:
publishes, checkpoints, Subscribe and a restart of a real ``trustwire serve`` go on,
and the witness shows as down in ``ops status``."""

from __future__ import annotations

import hashlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import nacl.signing
import pytest

from exchange.core.note import CosignatureSigner
from exchange.pb.trustwire.v1 import exchange_pb2 as xpb
from tests.conftest import wait_until
from tests.serving.conftest import Served, ops_alerts, serve

WITNESS = CosignatureSigner(
    "witness.test/drip", nacl.signing.SigningKey(hashlib.sha256(b"serving-INSECURE:witness").digest())
)


class DrippingWitness:
    """Accepts add-checkpoint requests and answers one byte a second, forever."""

    def __init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self.requests = 0
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn: socket.socket) -> None:
        self.requests += 1
        with conn:
            try:
                conn.recv(65536)
                for byte in b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\n" + b"x" * 1000:
                    if self._stop.wait(1.0):
                        return
                    conn.sendall(bytes([byte]))
            except OSError:
                return

    def close(self) -> None:
        self._stop.set()
        self._sock.close()


@pytest.fixture(params=["dripping-witness", "dead-witness"])
def slow_witness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Served, str]]:
    drip = DrippingWitness()
    port = drip.port
    if request.param == "dead-witness":
        drip.close()  # nothing listens there any more
    spec = f"http://127.0.0.1:{port} {WITNESS.verifier_key()}"
    served = serve(tmp_path / "exchange", witnesses=spec, witness_deadline_s=2)
    try:
        yield served, request.param
    finally:
        served.close()
        drip.close()


def test_slow_witness_does_not_stall_the_log(slow_witness: tuple[Served, str]) -> None:
    served, _ = slow_witness
    # start-up did not wait for the witness (serve() returned), and publishes go on
    indices = [served.publish("alice", f"{i:032x}") for i in range(5)]
    # a checkpoint covers them, and Subscribe serves them with it
    pages = list(served.stub("bob").Subscribe(xpb.SubscribeRequest(from_index=0, stop_at_head=True), timeout=30))
    assert pages[-1].proof.tree_size > max(indices)
    # the witness shows as down
    wait_until(lambda: any(a["kind"] == "witness-down" for a in ops_alerts(served)), timeout=30)
    # and a restart does not hang on it
    assert served.exchange.stop(timeout=30) == 0
    served.exchange.start(timeout=30)
    served.publish("alice", "9" * 32)
