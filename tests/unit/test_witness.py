"""The tlog-witness wire format and the witness core (real SQLite file, no HTTP).

Every status code of c2sp.org/tlog-witness ``add-checkpoint`` is exercised,
plus the atomicity the spec demands (racing requests with the same old size)
and equivocation by a log (two different checkpoints of one size, or one that
does not extend the cosigned checkpoint): refused, never cosigned, recorded.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nacl.signing
import pytest

from clients.witness import Witness, WitnessConfig, WitnessResponse, WitnessState, read_signing_key
from exchange.core.errors import ConfigError, InvalidInput
from exchange.core.merkle import EMPTY_ROOT, consistency_proof, leaf_hash, root_from_leaf_hashes
from exchange.core.note import (
    EM_DASH,
    Checkpoint,
    CosignatureVerifier,
    NoteSigner,
    open_checkpoint,
    parse_note,
    sign_note,
)
from exchange.core.witness_protocol import (
    MAX_PROOF_LINES,
    MAX_REQUEST_SIZE,
    SIZE_CONTENT_TYPE,
    WitnessProtocolError,
    encode_add_checkpoint,
    format_size,
    parse_add_checkpoint,
    parse_cosignatures,
    parse_size,
)

ORIGIN = "trustwire.test/log"
NOW = 1_700_000_000


def _key(label: str) -> nacl.signing.SigningKey:
    """Deterministic INSECURE test keys."""
    return nacl.signing.SigningKey(hashlib.sha256(f"witness-test-INSECURE:{label}".encode()).digest())


LOG = NoteSigner(ORIGIN, _key("log"))
LOG_ROTATED = NoteSigner(ORIGIN, _key("log-2"))
IMPOSTOR = NoteSigner(ORIGIN, _key("impostor"))
OTHER_LOG = NoteSigner("other.test/log", _key("other"))
WITNESS_NAME = "witness.test/w1"
WITNESS_KEY = _key("witness")


class MemTree:
    """An in-memory RFC 6962 tree of leaf hashes, for roots and consistency proofs."""

    def __init__(self, label: str, size: int = 0) -> None:
        self.label = label
        self.leaves: list[bytes] = []
        self.grow(size)

    def grow(self, size: int) -> None:
        while len(self.leaves) < size:
            self.leaves.append(leaf_hash(f"{self.label}:{len(self.leaves)}".encode()))

    def node(self, level: int, index: int) -> bytes:
        return root_from_leaf_hashes(self.leaves[index << level : (index + 1) << level])

    def root(self, size: int) -> bytes:
        return root_from_leaf_hashes(self.leaves[:size])

    def proof(self, old: int, new: int) -> list[bytes]:
        return consistency_proof(old, new, self.node)

    def note(self, size: int, signers: Sequence[NoteSigner] = (LOG,), origin: str = ORIGIN) -> str:
        self.grow(size)
        return sign_note(Checkpoint(origin, size, self.root(size)).to_text(), list(signers))

    def request(self, old: int, size: int, signers: Sequence[NoteSigner] = (LOG,)) -> bytes:
        note = self.note(size, signers)
        return encode_add_checkpoint(old, self.proof(old, size) if old else [], note)


def make_witness(path: Path) -> Witness:
    logs = {ORIGIN: [LOG.verifier, LOG_ROTATED.verifier], OTHER_LOG.name: [OTHER_LOG.verifier]}
    return Witness(WITNESS_NAME, WITNESS_KEY, logs, path)


@pytest.fixture
def witness(tmp_path: Path) -> Witness:
    return make_witness(tmp_path / "witness.db")


def cosigner() -> CosignatureVerifier:
    return CosignatureVerifier(WITNESS_NAME, bytes(WITNESS_KEY.verify_key))


def assert_cosigned(response: WitnessResponse, note: str) -> None:
    """A 200 whose body holds a cosignature/v1 by the witness that verifies on ``note``."""
    assert response.status == 200, response.body
    signatures = parse_cosignatures(response.body)
    lines = "".join(s.to_line() for s in signatures)
    opened = open_checkpoint(note + lines, [LOG.verifier, LOG_ROTATED.verifier], [cosigner()], quorum=1)
    assert [c.timestamp for c in opened.cosignatures] == [NOW]


def assert_refused(response: WitnessResponse, status: int, text: str = "") -> None:
    assert response.status == status, response.body
    assert EM_DASH.encode() not in response.body, "a refusal must never carry a cosignature"
    assert text in response.body.decode(), response.body


def stored_size(witness: Witness, origin: str = ORIGIN) -> int | None:
    latest = witness.state.latest(origin)
    return None if latest is None else latest.size


# --------------------------------------------------------------------------
# Wire format
# --------------------------------------------------------------------------

# c2sp.org/tlog-witness, "add-checkpoint": the example request body.
SPEC_REQUEST = (
    "old 20852014\n"
    "PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\n"
    "jrJZDmY8Y7SyJE0MWLpLozkIVMSMZcD5kvuKxPC3swk=\n"
    "5+pKlUdi2LeF/BcMHBn+Ku6yhPGNCswZZD1X/6QgPd8=\n"
    "/6WVhPs2CwSsb5rYBH5cjHV/wSmA79abXAwhXw3Kj/0=\n"
    "\n"
    "example.com/behind-the-sofa\n"
    "20852163\n"
    "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    "\n"
    f"{EM_DASH} example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5"
    "/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
    f"{EM_DASH} example.com/behind-the-sofa opLqBQsREYCgu6xQkYQwJr9fo45a62DN9EdmHXnZdXNqlcVGlCum2Wks"
    "+49/V6267UEjw6QUXTS5Rovnzv++qbSzm9Q=\n"
).encode()

# c2sp.org/tlog-witness, "add-checkpoint": the example response body.
SPEC_RESPONSE = (
    f"{EM_DASH} witness.example/w1 CMp+6LWBU0anHGH5aNDTJkH/gj79sG+T6+iP2ThYN5krrDJbR1HDnucj"
    "L39QsZTSvVjyQLrdk3DXDqI5G2HgLatVs0pWh6Up69HVOw==\n"
    f"{EM_DASH} witness.example/w1 I7rEps0pvK2UqkS2gSpVUDhrhVtQV9lgF6pRrWAvjJHjyWpW7VcE3SiO"
    "lVlbQNt64vWhO+DlkL0+UfzuOBMh9ChdMkP1vi/lCAsmlw==\n"
    f"{EM_DASH} witness.example/w2 AWui8Sk55XjYLOijihBjhqEH6nS1ndDymE0a+6idX7pLcnoB+dhnz085"
    "4aLZgrrKbYKA7nC3HNJhm/kWl7oJlqU3rXXvpysAdyP3wQ==\n"
).encode()


def test_parses_the_spec_example_request() -> None:
    request = parse_add_checkpoint(SPEC_REQUEST)
    assert request.old_size == 20852014
    assert len(request.proof) == 4
    assert request.proof[0] == base64.b64decode("PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=")
    assert request.checkpoint.origin == "example.com/behind-the-sofa"
    assert request.checkpoint.size == 20852163
    assert len(request.parsed.signatures) == 2
    assert request.encode() == SPEC_REQUEST


def test_parses_the_spec_example_response() -> None:
    signatures = parse_cosignatures(SPEC_RESPONSE)
    assert [s.name for s in signatures] == ["witness.example/w1", "witness.example/w1", "witness.example/w2"]


def test_request_round_trip_without_proof() -> None:
    tree = MemTree("a", 3)
    body = encode_add_checkpoint(0, [], tree.note(3))
    assert body.startswith(b"old 0\n\n" + ORIGIN.encode())
    request = parse_add_checkpoint(body)
    assert (request.old_size, request.proof, request.checkpoint.size) == (0, (), 3)
    assert request.checkpoint.root_hash == tree.root(3)


def _with_header(header: str, note: str | None = None) -> bytes:
    return header.encode() + (note if note is not None else MemTree("h").note(8)).encode()


HASH_LINE = base64.b64encode(b"\x11" * 32).decode() + "\n"

MALFORMED_REQUESTS = {
    "no-old-line": _with_header("\n"),
    "capital-old": _with_header("Old 4\n\n"),
    "two-spaces": _with_header("old  4\n\n"),
    "leading-zero": _with_header("old 04\n\n"),
    "negative": _with_header("old -4\n\n"),
    "trailing-space": _with_header("old 4 \n\n"),
    "above-2^64": _with_header(f"old {1 << 64}\n\n"),
    "no-empty-line": b"old 4\n" + HASH_LINE.encode(),
    "crlf": _with_header("old 4\r\n" + HASH_LINE + "\r\n"),
    "proof-not-base64": _with_header("old 4\n" + "!" * 44 + "\n\n"),
    "proof-short-hash": _with_header("old 4\n" + base64.b64encode(b"\x11" * 31).decode() + "\n\n"),
    "proof-non-canonical": _with_header("old 4\n" + HASH_LINE[:42] + "R=\n\n"),
    "64-proof-lines": _with_header("old 4\n" + HASH_LINE * (MAX_PROOF_LINES + 1) + "\n"),
    "proof-from-zero": _with_header("old 0\n" + HASH_LINE + "\n"),
    "unsigned-checkpoint": _with_header("old 0\n\n", Checkpoint(ORIGIN, 1, EMPTY_ROOT).to_text()),
    "bad-checkpoint-size": _with_header("old 0\n\n", sign_note(f"{ORIGIN}\n01\n{base64.b64encode(EMPTY_ROOT).decode()}\n", [LOG])),
    "not-utf8": b"old 0\n\n" + b"\xff\xfe\n\n",
}


@pytest.mark.parametrize("body", MALFORMED_REQUESTS.values(), ids=MALFORMED_REQUESTS.keys())
def test_malformed_requests_are_rejected(body: bytes) -> None:
    with pytest.raises(WitnessProtocolError) as caught:
        parse_add_checkpoint(body)
    assert isinstance(caught.value, InvalidInput)
    assert caught.value.status == "INVALID_ARGUMENT"


def test_63_proof_lines_are_allowed() -> None:
    request = parse_add_checkpoint(_with_header("old 4\n" + HASH_LINE * MAX_PROOF_LINES + "\n"))
    assert len(request.proof) == MAX_PROOF_LINES


def test_encoder_enforces_the_client_rules() -> None:
    note = MemTree("e").note(4)
    with pytest.raises(WitnessProtocolError, match="at most 63"):
        encode_add_checkpoint(2, [b"\x00" * 32] * 64, note)
    with pytest.raises(WitnessProtocolError, match="must be empty"):
        encode_add_checkpoint(0, [b"\x00" * 32], note)
    with pytest.raises(WitnessProtocolError, match="bytes, expected 32"):
        encode_add_checkpoint(2, [b"\x00" * 31], note)
    with pytest.raises(WitnessProtocolError, match="malformed"):
        encode_add_checkpoint(2, [], "not a note")


def test_size_body() -> None:
    assert format_size(0) == b"0\n"
    assert parse_size(b"20852163\n") == 20852163
    for bad in (b"12", b"012\n", b"-1\n", b"1 \n", b"\n", b"1\n\n", f"{1 << 64}\n".encode()):
        with pytest.raises(WitnessProtocolError):
            parse_size(bad)


@pytest.mark.parametrize("body", [b"", b"hello\n", SPEC_RESPONSE[:-1], b"\xff\n"], ids=["empty", "text", "no-newline", "not-utf8"])
def test_malformed_responses_are_rejected(body: bytes) -> None:
    with pytest.raises(WitnessProtocolError):
        parse_cosignatures(body)


# --------------------------------------------------------------------------
# Witness core: the happy path
# --------------------------------------------------------------------------


def test_first_checkpoint_is_cosigned_and_stored(witness: Witness) -> None:
    tree = MemTree("a")
    note = tree.note(5)
    response = witness.add_checkpoint(encode_add_checkpoint(0, [], note), NOW)
    assert_cosigned(response, note)
    latest = witness.state.latest(ORIGIN)
    assert latest is not None
    assert (latest.size, latest.root, latest.note) == (5, tree.root(5), note)


def test_growth_with_a_consistency_proof_is_cosigned(witness: Witness) -> None:
    tree = MemTree("a")
    assert witness.add_checkpoint(tree.request(0, 5), NOW).status == 200
    for old, new in [(5, 8), (8, 13), (13, 64), (64, 65)]:
        body = tree.request(old, new)
        assert_cosigned(witness.add_checkpoint(body, NOW), parse_add_checkpoint(body).note)
        assert stored_size(witness) == new


def test_same_checkpoint_again_is_cosigned_again(witness: Witness) -> None:
    tree = MemTree("a")
    assert witness.add_checkpoint(tree.request(0, 4), NOW).status == 200
    note = tree.note(4)
    assert_cosigned(witness.add_checkpoint(encode_add_checkpoint(4, [], note), NOW), note)
    assert witness.state.conflicts() == []


def test_empty_tree_checkpoint_is_cosigned(witness: Witness) -> None:
    note = MemTree("a").note(0)
    assert_cosigned(witness.add_checkpoint(encode_add_checkpoint(0, [], note), NOW), note)


def test_rotated_log_key_and_extra_signatures(witness: Witness) -> None:
    """Any trusted key suffices; signatures from unknown keys are ignored."""
    tree = MemTree("a")
    note = tree.note(3, signers=[IMPOSTOR, LOG_ROTATED])
    assert_cosigned(witness.add_checkpoint(encode_add_checkpoint(0, [], note), NOW), note)


def test_origins_are_tracked_separately(witness: Witness) -> None:
    assert witness.add_checkpoint(MemTree("a").request(0, 5), NOW).status == 200
    other = MemTree("o").note(2, signers=[OTHER_LOG], origin=OTHER_LOG.name)
    assert witness.add_checkpoint(encode_add_checkpoint(0, [], other), NOW).status == 200
    assert (stored_size(witness), stored_size(witness, OTHER_LOG.name)) == (5, 2)


# --------------------------------------------------------------------------
# Witness core: every refusal
# --------------------------------------------------------------------------


def test_unknown_origin_is_404(witness: Witness) -> None:
    stranger = NoteSigner("stranger.test/log", _key("stranger"))
    note = MemTree("s").note(2, signers=[stranger], origin=stranger.name)
    assert_refused(witness.add_checkpoint(encode_add_checkpoint(0, [], note), NOW), 404, "unknown log origin")


def test_untrusted_signature_is_403(witness: Witness) -> None:
    response = witness.add_checkpoint(MemTree("a").request(0, 3, signers=[IMPOSTOR]), NOW)
    assert_refused(response, 403)
    assert stored_size(witness) is None


def test_forged_trusted_signature_is_403(witness: Witness) -> None:
    note = MemTree("a").note(3)
    forged = MemTree("b").note(3)  # a different root, with the first note's signature
    forged_note = parse_note(forged).text + "\n" + note.split("\n\n", 1)[1]
    assert_refused(witness.add_checkpoint(encode_add_checkpoint(0, [], forged_note), NOW), 403)
    assert stored_size(witness) is None


def test_old_size_above_checkpoint_size_is_400(witness: Witness) -> None:
    tree = MemTree("a", 8)
    body = b"old 8\n\n" + tree.note(5).encode()
    assert_refused(witness.add_checkpoint(body, NOW), 400, "larger than the checkpoint size")


def test_malformed_body_is_400(witness: Witness) -> None:
    assert_refused(witness.add_checkpoint(b"old 0\n", NOW), 400)
    assert_refused(witness.add_checkpoint(MALFORMED_REQUESTS["leading-zero"], NOW), 400)


def test_oversized_body_is_413(witness: Witness) -> None:
    assert_refused(witness.add_checkpoint(b"x" * (MAX_REQUEST_SIZE + 1), NOW), 413)


def test_stale_old_size_is_409_with_the_stored_size(witness: Witness) -> None:
    tree = MemTree("a")
    assert witness.add_checkpoint(tree.request(0, 8), NOW).status == 200
    for old in (0, 5):  # 0: a client that does not know the witness's size yet
        response = witness.add_checkpoint(tree.request(old, 12), NOW)
        assert_refused(response, 409)
        assert response.content_type == SIZE_CONTENT_TYPE
        assert parse_size(response.body) == 8
    assert stored_size(witness) == 8
    assert witness.state.conflicts() == []


def test_old_size_ahead_of_the_witness_is_409(witness: Witness) -> None:
    response = witness.add_checkpoint(MemTree("a").request(4, 8), NOW)
    assert (response.status, response.content_type, response.body) == (409, SIZE_CONTENT_TYPE, b"0\n")


def test_bad_consistency_proof_is_422_and_logged(witness: Witness, caplog: pytest.LogCaptureFixture) -> None:
    tree = MemTree("a")
    assert witness.add_checkpoint(tree.request(0, 5), NOW).status == 200
    note = tree.note(9)
    proof = tree.proof(5, 9)
    proof[0] = bytes(32)
    with caplog.at_level(logging.WARNING, logger="clients.witness"):
        response = witness.add_checkpoint(encode_add_checkpoint(5, proof, note), NOW)
    assert_refused(response, 422, "consistency proof")
    assert stored_size(witness) == 5
    assert "possible misbehaviour" in caplog.text
    [conflict] = witness.state.conflicts(ORIGIN)
    assert (conflict.kind, conflict.old_size, conflict.proof) == ("inconsistent", 5, tuple(proof))


def test_proof_of_wrong_length_is_422(witness: Witness) -> None:
    tree = MemTree("a")
    assert witness.add_checkpoint(tree.request(0, 5), NOW).status == 200
    body = encode_add_checkpoint(5, tree.proof(5, 9)[:-1], tree.note(9))
    assert_refused(witness.add_checkpoint(body, NOW), 422)


def test_non_empty_proof_between_equal_sizes_is_422(witness: Witness) -> None:
    tree = MemTree("a")
    assert witness.add_checkpoint(tree.request(0, 5), NOW).status == 200
    body = encode_add_checkpoint(5, [bytes(32)], tree.note(5))
    assert_refused(witness.add_checkpoint(body, NOW), 422)


# --------------------------------------------------------------------------
# Equivocation by the log
# --------------------------------------------------------------------------


def test_two_checkpoints_of_the_same_size_is_409_and_recorded(witness: Witness) -> None:
    honest, fork = MemTree("honest"), MemTree("fork")
    first = honest.note(6)
    assert witness.add_checkpoint(encode_add_checkpoint(0, [], first), NOW).status == 200
    second = fork.note(6)
    response = witness.add_checkpoint(encode_add_checkpoint(6, [], second), NOW + 1)
    assert_refused(response, 409, "different root hash")
    latest = witness.state.latest(ORIGIN)
    assert latest is not None and latest.note == first
    [conflict] = witness.state.conflicts(ORIGIN)
    assert (conflict.kind, conflict.cosigned_note, conflict.refused_note) == ("same-size-fork", first, second)
    assert conflict.recorded_at == NOW + 1


def test_checkpoint_not_extending_the_cosigned_one_is_422_and_recorded(witness: Witness) -> None:
    honest, fork = MemTree("honest"), MemTree("fork")
    first = honest.note(4)
    assert witness.add_checkpoint(encode_add_checkpoint(0, [], first), NOW).status == 200
    forked = fork.note(10)  # a valid proof 4 → 10 within the forked tree
    response = witness.add_checkpoint(encode_add_checkpoint(4, fork.proof(4, 10), forked), NOW)
    assert_refused(response, 422)
    assert stored_size(witness) == 4
    [conflict] = witness.state.conflicts()
    assert (conflict.kind, conflict.cosigned_note, conflict.refused_note) == ("inconsistent", first, forked)


def test_first_checkpoint_of_size_zero_with_a_non_empty_root_is_409(witness: Witness) -> None:
    note = sign_note(Checkpoint(ORIGIN, 0, bytes(32)).to_text(), [LOG])
    assert_refused(witness.add_checkpoint(encode_add_checkpoint(0, [], note), NOW), 409)
    assert stored_size(witness) is None
    assert [c.cosigned_note for c in witness.state.conflicts()] == [None]


def test_unsigned_equivocation_is_not_recorded(witness: Witness) -> None:
    """Only validly signed checkpoints are evidence; anything else is just refused."""
    tree = MemTree("a")
    assert witness.add_checkpoint(tree.request(0, 6), NOW).status == 200
    response = witness.add_checkpoint(MemTree("fork").request(6, 6, signers=[IMPOSTOR]), NOW)
    assert_refused(response, 403)
    assert witness.state.conflicts() == []


# --------------------------------------------------------------------------
# Atomicity and persistence
# --------------------------------------------------------------------------


def _race(witness: Witness, bodies: Sequence[bytes]) -> list[WitnessResponse]:
    """Submit all bodies at once from separate threads."""
    barrier = threading.Barrier(len(bodies))

    def submit(body: bytes) -> WitnessResponse:
        barrier.wait(timeout=10)
        return witness.add_checkpoint(body, NOW)

    with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
        return list(pool.map(submit, bodies))


def test_racing_requests_with_the_same_old_size_one_wins(witness: Witness) -> None:
    tree = MemTree("a", 64)
    assert witness.add_checkpoint(tree.request(0, 4), NOW).status == 200
    old = 4
    for round_ in range(5):
        sizes = [old + 1 + k for k in range(8)]
        responses = _race(witness, [tree.request(old, size) for size in sizes])
        winners = [size for size, r in zip(sizes, responses) if r.status == 200]
        assert len(winners) == 1, (round_, [r.status for r in responses])
        for size, response in zip(sizes, responses):
            if size != winners[0]:
                assert (response.status, response.body) == (409, format_size(winners[0]))
        assert stored_size(witness) == winners[0]
        old = winners[0]


def test_spec_race_cannot_roll_back(witness: Witness) -> None:
    """Requests for N and N+K from the same old size: the record never goes backwards."""
    tree = MemTree("a", 40)
    assert witness.add_checkpoint(tree.request(0, 2), NOW).status == 200
    responses = _race(witness, [tree.request(2, 10), tree.request(2, 30)])
    assert sorted(r.status for r in responses) == [200, 409]
    winner = 10 if responses[0].status == 200 else 30
    assert stored_size(witness) == winner


def test_state_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "witness.db"
    tree, fork = MemTree("a"), MemTree("fork")
    first = make_witness(path)
    assert first.add_checkpoint(tree.request(0, 7), NOW).status == 200
    assert first.add_checkpoint(encode_add_checkpoint(7, [], fork.note(7)), NOW).status == 409
    del first
    again = make_witness(path)
    assert stored_size(again) == 7
    assert len(again.state.conflicts()) == 1
    assert parse_size(again.add_checkpoint(tree.request(0, 9), NOW).body) == 7
    assert_cosigned(again.add_checkpoint(tree.request(7, 9), NOW), tree.note(9))


def test_state_file_shared_by_two_witness_objects(tmp_path: Path) -> None:
    """Two witnesses on one file (e.g. two processes) still agree on the record."""
    path = tmp_path / "witness.db"
    a, b = make_witness(path), make_witness(path)
    tree = MemTree("a")
    assert a.add_checkpoint(tree.request(0, 3), NOW).status == 200
    assert parse_size(b.add_checkpoint(tree.request(0, 5), NOW).body) == 3
    assert b.add_checkpoint(tree.request(3, 5), NOW).status == 200
    assert WitnessState(path).latest(ORIGIN) is not None


# --------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------


def _write_key(path: Path) -> Path:
    path.write_text(bytes(WITNESS_KEY).hex() + "\n")
    return path


def test_config_from_toml_builds_a_witness(tmp_path: Path) -> None:
    key_file = _write_key(tmp_path / "witness.key")
    text = (
        f'name = "{WITNESS_NAME}"\nkey_file = "{key_file}"\nstate = "{tmp_path / "w.db"}"\n'
        f'listen = "127.0.0.1:0"\nprefix = "/w"\n\n[logs]\n"{ORIGIN}" = ["{LOG.verifier_key()}"]\n'
    )
    config = WitnessConfig.from_toml(text)
    assert config.logs == {ORIGIN: (LOG.verifier_key(),)}
    assert (config.listen, config.prefix, config.key_file) == ("127.0.0.1:0", "/w", key_file)
    built = Witness.from_config(config)
    assert built.verifier_key == cosigner().verifier_key()
    note = MemTree("a").note(2)
    assert_cosigned(built.add_checkpoint(encode_add_checkpoint(0, [], note), NOW), note)


def test_config_load_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "witness.toml"
    path.write_text(f'name = "{WITNESS_NAME}"\nkey_file = "k"\n')
    assert WitnessConfig.load(path).logs == {}
    with pytest.raises(ConfigError, match="does not exist"):
        WitnessConfig.load(tmp_path / "missing.toml")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('name = "w"\nkey_file = "k"\nport = 1\n', "unknown key"),
        ('name = "w"\n', "missing key"),
        ('name = "w w"\nkey_file = "k"\n', "witness name"),
        ('name = "w"\nkey_file = "k"\nlisten = "nohost"\n', "host:port"),
        ('name = "w"\nkey_file = "k"\nprefix = "w/"\n', "prefix"),
        ('name = "w"\nkey_file = "k"\n[logs]\n"o" = []\n', "no verifier keys"),
        ('name = "w"\nkey_file = "k"\n[logs]\n"o" = ["garbage"]\n', "log 'o'"),
        ('name = "w"\nkey_file = "k"\n[logs]\n"o" = "not-a-list"\n', "list of verifier key"),
        ('name = 3\nkey_file = "k"\n', "must be a string"),
        ("name = \n", "not valid TOML"),
    ],
)
def test_bad_config_is_refused(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        WitnessConfig.from_toml(text)


def test_witness_vkey_is_refused_as_a_log_key() -> None:
    text = f'name = "w"\nkey_file = "k"\n[logs]\n"o" = ["{cosigner().verifier_key()}"]\n'
    with pytest.raises(ConfigError, match="expected 0x01"):
        WitnessConfig.from_toml(text)


def test_read_signing_key(tmp_path: Path) -> None:
    assert bytes(read_signing_key(_write_key(tmp_path / "k"))) == bytes(WITNESS_KEY)
    (tmp_path / "bad").write_text("zz")
    (tmp_path / "short").write_text("abcd")
    for name, message in [("bad", "hex"), ("short", "32-byte"), ("missing", "does not exist")]:
        with pytest.raises(ConfigError, match=message):
            read_signing_key(tmp_path / name)
