"""The witness over real HTTP on 127.0.0.1:0, driven by the exchange's WitnessClient.

Trees live in memory (``exchange.core.merkle``); every cosignature returned is
checked with ``open_checkpoint(..., cosigners=[witness], quorum=1)``.
"""

from __future__ import annotations

import hashlib
import http.client
import socket
from collections.abc import Iterator
from pathlib import Path

import nacl.signing
import pytest

from clients.witness import RunningWitness, Witness, serve_witness
from exchange.core.merkle import consistency_proof, leaf_hash, root_from_leaf_hashes
from exchange.core.note import (
    Checkpoint,
    CosignatureSigner,
    CosignatureVerifier,
    NoteSigner,
    Signature,
    append_signatures,
    open_checkpoint,
    sign_note,
)
from exchange.core.witness_protocol import SIZE_CONTENT_TYPE, encode_add_checkpoint, parse_size
from exchange.server.witnesses import (
    BadCosignature,
    WitnessClient,
    WitnessConflict,
    WitnessRejected,
    WitnessUnavailable,
)

ORIGIN = "trustwire.test/log"
PREFIX = "/witness/v1"
NOW = 1_700_000_123


def _key(label: str) -> nacl.signing.SigningKey:
    """Deterministic INSECURE test keys."""
    return nacl.signing.SigningKey(hashlib.sha256(f"witness-http-INSECURE:{label}".encode()).digest())


LOG = NoteSigner(ORIGIN, _key("log"))
WITNESS = CosignatureSigner("witness.test/w1", _key("witness"))


class MemTree:
    """An in-memory log: leaf hashes, roots, consistency proofs and signed notes."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.leaves: list[bytes] = []
        self.proofs_asked: list[int] = []

    def note(self, size: int, signer: NoteSigner = LOG) -> str:
        while len(self.leaves) < size:
            self.leaves.append(leaf_hash(f"{self.label}:{len(self.leaves)}".encode()))
        root = root_from_leaf_hashes(self.leaves[:size])
        return sign_note(Checkpoint(signer.name, size, root).to_text(), [signer])

    def consistency(self, size: int) -> "Consistency":
        return Consistency(self, size)


class Consistency:
    """The ``consistency(old)`` callback the checkpoint log hands to a cosigner."""

    def __init__(self, tree: MemTree, size: int) -> None:
        self.tree, self.size = tree, size

    def __call__(self, old: int) -> list[bytes]:
        self.tree.proofs_asked.append(old)
        leaves = self.tree.leaves

        def node(level: int, index: int) -> bytes:
            return root_from_leaf_hashes(leaves[index << level : (index + 1) << level])

        return consistency_proof(old, self.size, node)


def cosign(client: WitnessClient, tree: MemTree, size: int) -> str:
    """Cosign ``size`` through the client; return the note with the cosignature, verified."""
    note = tree.note(size)
    lines = client.cosign(note, size, tree.consistency(size))
    cosigned = append_signatures(note, [Signature.parse_line(line) for line in lines])
    opened = open_checkpoint(cosigned, [LOG.verifier], cosigners=[WITNESS.verifier], quorum=1)
    assert opened.checkpoint.size == size
    assert [c.timestamp for c in opened.cosignatures] == [NOW]
    return cosigned


@pytest.fixture
def running(tmp_path: Path) -> Iterator[RunningWitness]:
    witness = Witness(WITNESS.name, WITNESS.signing_key, {ORIGIN: [LOG.verifier]}, tmp_path / "w.db")
    server = serve_witness(witness, "127.0.0.1:0", PREFIX, clock=lambda: NOW + 0.75)
    try:
        yield server
    finally:
        server.stop()


def client_for(running: RunningWitness, **kwargs: object) -> WitnessClient:
    return WitnessClient(running.url, WITNESS.verifier_key(), **kwargs)  # type: ignore[arg-type]


# --------------------------------------------------------------------------
# WitnessClient ↔ witness
# --------------------------------------------------------------------------


def test_server_binds_an_ephemeral_loopback_port(running: RunningWitness) -> None:
    assert running.port > 0
    assert running.url == f"http://127.0.0.1:{running.port}{PREFIX}"


def test_cosigns_the_first_and_following_checkpoints(running: RunningWitness) -> None:
    client, tree = client_for(running), MemTree("a")
    cosign(client, tree, 3)
    assert tree.proofs_asked == []  # old 0: no proof
    for size in (4, 9, 9, 40):
        cosign(client, tree, size)
        assert client.known_size == size
    assert tree.proofs_asked == [3, 4, 9, 9]


def test_a_fresh_client_learns_the_size_from_409_and_retries_once(running: RunningWitness) -> None:
    tree = MemTree("a")
    cosign(client_for(running), tree, 5)
    restarted = client_for(running)  # the log restarted and forgot the witness's size
    cosign(restarted, tree, 12)
    assert tree.proofs_asked == [5]
    assert restarted.known_size == 12


def test_witness_ahead_of_the_log_is_a_conflict(running: RunningWitness) -> None:
    tree = MemTree("a")
    cosign(client_for(running), tree, 20)
    behind = client_for(running)
    with pytest.raises(WitnessConflict, match="cosigned size 20, larger than checkpoint 10"):
        behind.cosign(tree.note(10), 10, tree.consistency(10))
    assert behind.known_size == 20


def test_same_size_fork_is_a_conflict(running: RunningWitness) -> None:
    cosign(client_for(running), MemTree("honest"), 6)
    fork = MemTree("fork")
    client = client_for(running, known_size=6)
    with pytest.raises(WitnessConflict, match="409"):
        client.cosign(fork.note(6), 6, fork.consistency(6))


def test_forked_history_is_a_conflict(running: RunningWitness) -> None:
    cosign(client_for(running), MemTree("honest"), 4)
    fork = MemTree("fork")
    with pytest.raises(WitnessConflict, match="422"):
        client_for(running, known_size=4).cosign(fork.note(9), 9, fork.consistency(9))


def test_unknown_origin_is_rejected_with_404(running: RunningWitness) -> None:
    stranger = NoteSigner("stranger.test/log", _key("stranger"))
    tree = MemTree("s")
    with pytest.raises(WitnessRejected) as caught:
        client_for(running).cosign(tree.note(2, stranger), 2, tree.consistency(2))
    assert caught.value.http_status == 404
    assert "unknown log origin" in str(caught.value)


def test_untrusted_log_key_is_rejected_with_403(running: RunningWitness) -> None:
    tree = MemTree("a")
    impostor = NoteSigner(ORIGIN, _key("impostor"))
    with pytest.raises(WitnessRejected) as caught:
        client_for(running).cosign(tree.note(2, impostor), 2, tree.consistency(2))
    assert caught.value.http_status == 403


def test_cosignature_from_an_unexpected_key_is_refused(running: RunningWitness) -> None:
    other = CosignatureSigner(WITNESS.name, _key("not-the-witness"))
    client = WitnessClient(running.url, other.verifier_key())
    tree = MemTree("a")
    with pytest.raises(BadCosignature, match="no cosignature from its configured key"):
        client.cosign(tree.note(2), 2, tree.consistency(2))
    assert client.known_size == 0


def test_unreachable_witness_is_unavailable(running: RunningWitness) -> None:
    url = running.url
    running.stop()
    tree = MemTree("a")
    with pytest.raises(WitnessUnavailable, match="unreachable"):
        WitnessClient(url, WITNESS.verifier_key(), timeout=2).cosign(tree.note(1), 1, tree.consistency(1))


def test_silent_witness_times_out() -> None:
    """A peer that accepts the connection but never answers: bounded by the timeout."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        client = WitnessClient(f"http://127.0.0.1:{port}", WITNESS.verifier_key(), timeout=0.3)
        tree = MemTree("a")
        with pytest.raises(WitnessUnavailable):
            client.cosign(tree.note(1), 1, tree.consistency(1))


def test_client_rejects_bad_urls() -> None:
    for url in ("ftp://127.0.0.1/w", "127.0.0.1:80", "http://127.0.0.1/w?x=1"):
        with pytest.raises(ValueError):
            WitnessClient(url, WITNESS.verifier_key())


# --------------------------------------------------------------------------
# Raw HTTP behaviour
# --------------------------------------------------------------------------


def _conn(running: RunningWitness) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", running.port, timeout=5)


def _request(
    conn: http.client.HTTPConnection, method: str, path: str, body: bytes | None = None
) -> tuple[int, str, bytes, http.client.HTTPResponse]:
    conn.request(method, path, body=body)
    response = conn.getresponse()
    data = response.read()
    return response.status, response.headers.get("Content-Type", ""), data, response


def test_keep_alive_serves_several_requests_on_one_connection(running: RunningWitness) -> None:
    tree = MemTree("a")
    path = PREFIX + "/add-checkpoint"
    conn = _conn(running)
    try:
        status, _, body, _ = _request(conn, "POST", path, encode_add_checkpoint(0, [], tree.note(3)))
        assert status == 200 and body.startswith("— witness.test/w1 ".encode())
        sock = conn.sock
        status, ctype, body, _ = _request(conn, "POST", path, encode_add_checkpoint(0, [], tree.note(5)))
        assert (status, ctype, parse_size(body)) == (409, SIZE_CONTENT_TYPE, 3)
        status, _, _, _ = _request(conn, "GET", path)
        assert status == 405
        proof = tree.consistency(5)(3)
        status, _, _, response = _request(conn, "POST", path, encode_add_checkpoint(3, proof, tree.note(5)))
        assert status == 200
        assert conn.sock is sock, "the connection was not kept alive"
        assert response.version == 11
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", PREFIX + "/add-checkpoint", 405),
        ("PUT", PREFIX + "/add-checkpoint", 405),
        ("DELETE", PREFIX + "/add-checkpoint", 405),
        ("POST", "/add-checkpoint", 404),
        ("POST", PREFIX + "/add-checkpoint/x", 404),
        ("GET", "/", 404),
    ],
)
def test_other_methods_and_paths(running: RunningWitness, method: str, path: str, status: int) -> None:
    conn = _conn(running)
    try:
        got, _, _, response = _request(conn, method, path, b"old 0\n\n" if method == "POST" else None)
        assert got == status
        if status == 405:
            assert response.headers["Allow"] == "POST"
    finally:
        conn.close()


def test_oversized_body_is_413_without_reading_it(running: RunningWitness) -> None:
    conn = _conn(running)
    try:
        conn.putrequest("POST", PREFIX + "/add-checkpoint")
        conn.putheader("Content-Length", str(2 << 20))
        conn.endheaders()
        conn.send(b"old 0\n\n")  # the rest never comes: the server must not wait for it
        response = conn.getresponse()
        assert response.status == 413
        assert response.headers["Connection"] == "close"
    finally:
        conn.close()


def test_oversized_body_with_expect_100_continue_is_413(running: RunningWitness) -> None:
    conn = _conn(running)
    try:
        conn.putrequest("POST", PREFIX + "/add-checkpoint")
        conn.putheader("Content-Length", str(2 << 20))
        conn.putheader("Expect", "100-continue")
        conn.endheaders()
        assert conn.getresponse().status == 413
    finally:
        conn.close()


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "no-length"])
def test_missing_content_length_is_411(running: RunningWitness, chunked: bool) -> None:
    conn = _conn(running)
    try:
        conn.putrequest("POST", PREFIX + "/add-checkpoint")
        if chunked:
            conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        if chunked:
            conn.send(b"0\r\n\r\n")
        assert conn.getresponse().status == 411
    finally:
        conn.close()


@pytest.mark.parametrize("length", ["abc", "\u00b2", "-1"])
def test_bad_content_length_is_400(running: RunningWitness, length: str) -> None:
    with socket.create_connection(("127.0.0.1", running.port), timeout=5) as sock:
        request = f"POST {PREFIX}/add-checkpoint HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n"
        sock.sendall(request.encode("utf-8"))
        reply = b""
        while chunk := sock.recv(4096):  # the server closes the connection after the error
            reply += chunk
        assert reply.startswith(b"HTTP/1.1 400 "), reply


def test_malformed_body_is_400_over_http(running: RunningWitness) -> None:
    conn = _conn(running)
    try:
        status, ctype, body, _ = _request(conn, "POST", PREFIX + "/add-checkpoint", b"old 01\n\n")
        assert status == 400 and ctype.startswith("text/plain") and b"leading zeroes" in body
    finally:
        conn.close()


def test_stopped_server_releases_its_port(tmp_path: Path) -> None:
    witness = Witness(WITNESS.name, WITNESS.signing_key, {ORIGIN: [LOG.verifier]}, tmp_path / "w.db")
    first = serve_witness(witness)
    port = first.port
    first.stop()
    second = serve_witness(witness, f"127.0.0.1:{port}")
    try:
        assert second.port == port
    finally:
        second.stop()


def test_verifier_type_is_enforced() -> None:
    with pytest.raises(Exception, match="expected 0x04"):
        WitnessClient("http://127.0.0.1:1", LOG.verifier_key())
    assert isinstance(WitnessClient("http://127.0.0.1:1", WITNESS.verifier).verifier, CosignatureVerifier)
