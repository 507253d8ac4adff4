"""Tests for exchange.core.merkle against the transparency-dev/merkle vectors.

The vectors are in ``conformance/third_party/rfc6962-merkle`` (vendored with its licence)
(transparency-dev/merkle ``testdata``).  Proof generation and the frontier are
also checked against a direct, recursive transcription of RFC 9162 §2.1.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange.core.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    MAX_TREE_SIZE,
    NodeRef,
    ProofError,
    TreeFrontier,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_from_inclusion_proof,
    root_from_leaf_hashes,
    tree_root,
    verify_consistency,
    verify_inclusion,
)

VECTORS = Path(__file__).resolve().parents[2] / "conformance" / "third_party" / "rfc6962-merkle"
MAX_SIZE = 70


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def _b64(value: str) -> bytes:
    return base64.b64decode(value, validate=True)


def _proof(raw: list[str] | None) -> list[bytes]:
    return [_b64(item) for item in raw or []]


def _load(kind: str) -> list[tuple[str, dict[str, Any]]]:
    root = VECTORS / kind
    files = sorted(root.rglob("*.json"))
    return [(str(path.relative_to(root)), json.loads(path.read_text())) for path in files]


def _ids(cases: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [name for name, _ in cases]


INCLUSION = _load("inclusion")
CONSISTENCY = _load("consistency")


def _leaves(count: int) -> list[bytes]:
    return [leaf_hash(i.to_bytes(4, "big") + b"leaf") for i in range(count)]


def _reference_root(leaves: Sequence[bytes]) -> bytes:
    """MTH per RFC 9162 §2.1.1, recursively (small inputs only)."""
    n = len(leaves)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaves[0]
    k = 1 << ((n - 1).bit_length() - 1)
    return node_hash(_reference_root(leaves[:k]), _reference_root(leaves[k:]))


def _reference_path(m: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PATH(m, D[n]) per RFC 9162 §2.1.3.1."""
    n = len(leaves)
    if n == 1:
        return []
    k = 1 << ((n - 1).bit_length() - 1)
    if m < k:
        return _reference_path(m, leaves[:k]) + [_reference_root(leaves[k:])]
    return _reference_path(m - k, leaves[k:]) + [_reference_root(leaves[:k])]


def _reference_subproof(m: int, leaves: Sequence[bytes], whole: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b) per RFC 9162 §2.1.4.1."""
    n = len(leaves)
    if m == n:
        return [] if whole else [_reference_root(leaves)]
    k = 1 << ((n - 1).bit_length() - 1)
    if m <= k:
        return _reference_subproof(m, leaves[:k], whole) + [_reference_root(leaves[k:])]
    return _reference_subproof(m - k, leaves[k:], False) + [_reference_root(leaves[:k])]


class Store:
    """In-memory leveled store that refuses nodes incomplete at ``limit``."""

    def __init__(self, leaves: Sequence[bytes]) -> None:
        self.levels: list[list[bytes]] = [list(leaves)]
        while len(self.levels[-1]) > 1:
            below = self.levels[-1]
            self.levels.append(
                [node_hash(below[i], below[i + 1]) for i in range(0, len(below) - 1, 2)]
            )
        self.calls = 0

    def getter(self, limit: int) -> Callable[[int, int], bytes]:
        def get_node(level: int, index: int) -> bytes:
            self.calls += 1
            if level < 0 or index < 0 or (index + 1) << level > limit:
                raise AssertionError(f"node ({level}, {index}) incomplete at {limit}")
            return self.levels[level][index]

        return get_node


def _uniform_levels(leaf: bytes, depth: int = 64) -> list[bytes]:
    """Perfect-subtree hashes of a tree whose leaves are all ``leaf``."""
    levels = [leaf]
    for _ in range(depth):
        levels.append(node_hash(levels[-1], levels[-1]))
    return levels


UNIFORM = _uniform_levels(leaf_hash(b"same"))


def _uniform_getter(limit: int) -> Callable[[int, int], bytes]:
    def get_node(level: int, index: int) -> bytes:
        if level < 0 or index < 0 or (index + 1) << level > limit:
            raise AssertionError(f"node ({level}, {index}) incomplete at {limit}")
        return UNIFORM[level]

    return get_node


def _flip(value: bytes, position: int) -> bytes:
    data = bytearray(value)
    data[position] ^= 0x01
    return bytes(data)


LEAVES = _leaves(MAX_SIZE)
STORE = Store(LEAVES)


# --------------------------------------------------------------------------
# Vectors
# --------------------------------------------------------------------------


def test_vectors_are_present() -> None:
    assert len(INCLUSION) >= 80
    assert len(CONSISTENCY) >= 90


@pytest.mark.parametrize(("name", "case"), INCLUSION, ids=_ids(INCLUSION))
def test_inclusion_vector(name: str, case: dict[str, Any]) -> None:
    args = (
        _b64(case["leafHash"]),
        case["leafIdx"],
        case["treeSize"],
        _proof(case["proof"]),
        _b64(case["root"]),
    )
    if case["wantErr"]:
        with pytest.raises(ProofError):
            verify_inclusion(*args)
    else:
        verify_inclusion(*args)


@pytest.mark.parametrize(("name", "case"), CONSISTENCY, ids=_ids(CONSISTENCY))
def test_consistency_vector(name: str, case: dict[str, Any]) -> None:
    args = (
        case["size1"],
        case["size2"],
        _b64(case["root1"]),
        _b64(case["root2"]),
        _proof(case["proof"]),
    )
    if case["wantErr"]:
        with pytest.raises(ProofError):
            verify_consistency(*args)
    else:
        verify_consistency(*args)


@pytest.mark.parametrize(
    ("name", "case"),
    [c for c in INCLUSION if not c[1]["wantErr"]],
    ids=_ids([c for c in INCLUSION if not c[1]["wantErr"]]),
)
def test_inclusion_vector_root_helper(name: str, case: dict[str, Any]) -> None:
    computed = root_from_inclusion_proof(
        _b64(case["leafHash"]), case["leafIdx"], case["treeSize"], _proof(case["proof"])
    )
    assert computed == _b64(case["root"])


def test_vector_roots_match_known_tree() -> None:
    """The vectors use the RFC 6962 reference tree: leaves of the tests."""
    data = [
        b"",
        b"\x00",
        b"\x10",
        b"\x20\x21",
        b"\x30\x31",
        b"\x40\x41\x42\x43",
        b"\x50\x51\x52\x53\x54\x55\x56\x57",
        b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
    ]
    root8 = _b64("XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=")
    assert root_from_leaf_hashes([leaf_hash(d) for d in data]) == root8
    root5 = _b64("Tju7H3tHjc/nH7YxYxUZo7yhLJrvyhYSv85ME6hiZNQ=")
    assert root_from_leaf_hashes([leaf_hash(d) for d in data[:5]]) == root5


# --------------------------------------------------------------------------
# Hashing and roots
# --------------------------------------------------------------------------


def test_hash_primitives() -> None:
    assert EMPTY_ROOT == hashlib.sha256(b"").digest()
    assert leaf_hash(b"x") == hashlib.sha256(b"\x00x").digest()
    assert node_hash(b"a", b"b") == hashlib.sha256(b"\x01ab").digest()
    assert len(EMPTY_ROOT) == HASH_SIZE
    assert root_from_leaf_hashes([]) == EMPTY_ROOT


@pytest.mark.parametrize("size", range(MAX_SIZE + 1))
def test_roots_agree(size: int) -> None:
    leaves = LEAVES[:size]
    expected = _reference_root(leaves)
    assert root_from_leaf_hashes(leaves) == expected
    assert tree_root(size, STORE.getter(size)) == expected
    frontier = TreeFrontier()
    frontier.extend(leaves)
    assert frontier.size == size
    assert frontier.root() == expected
    assert len(frontier.hashes) == size.bit_count()


def test_root_from_leaf_hashes_accepts_iterators() -> None:
    assert root_from_leaf_hashes(iter(LEAVES[:9])) == _reference_root(LEAVES[:9])


def test_root_from_leaf_hashes_rejects_bad_leaf() -> None:
    with pytest.raises(ProofError, match="leaf hash"):
        root_from_leaf_hashes([b"short"])


# --------------------------------------------------------------------------
# Frontier
# --------------------------------------------------------------------------


def test_frontier_roots_at_every_step() -> None:
    frontier = TreeFrontier()
    assert frontier.root() == EMPTY_ROOT
    for size in range(1, MAX_SIZE + 1):
        frontier.append(LEAVES[size - 1])
        assert frontier.root() == _reference_root(LEAVES[:size])


def test_frontier_reports_completed_nodes() -> None:
    frontier = TreeFrontier()
    seen: dict[tuple[int, int], bytes] = {}
    for index, leaf in enumerate(LEAVES):
        completed = frontier.append(leaf)
        assert completed[0] == NodeRef(0, index, leaf)
        assert len(completed) == 1 + (index + 1 ^ index).bit_length() - 1
        for node in completed:
            assert (node.index + 1) << node.level == index + 1
            seen[(node.level, node.index)] = node.hash
    for level, hashes in enumerate(STORE.levels):
        for index, value in enumerate(hashes):
            assert seen[(level, index)] == value


@pytest.mark.parametrize("size", range(MAX_SIZE + 1))
def test_frontier_serialization_round_trip(size: int) -> None:
    frontier = TreeFrontier()
    frontier.extend(LEAVES[:size])
    encoded = frontier.to_bytes()
    assert len(encoded) == 9 + HASH_SIZE * size.bit_count()
    decoded = TreeFrontier.from_bytes(encoded)
    assert decoded == frontier
    assert decoded.root() == frontier.root()
    assert TreeFrontier.from_store(size, STORE.getter(size)) == frontier
    # Continuing from a restored frontier gives the same trees.
    if size < MAX_SIZE:
        decoded.append(LEAVES[size])
        assert decoded.root() == _reference_root(LEAVES[: size + 1])


def test_frontier_copy_is_independent() -> None:
    frontier = TreeFrontier()
    frontier.extend(LEAVES[:5])
    clone = frontier.copy()
    clone.append(LEAVES[5])
    assert frontier.size == 5
    assert clone.size == 6
    assert frontier != clone


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "too short"),
        (b"\x01" + (0).to_bytes(8, "big") + b"\x00", "needs 0 hash bytes"),
        (b"\x02" + (0).to_bytes(8, "big"), "version"),
        (b"\x01" + (3).to_bytes(8, "big") + b"\x00" * 32, "needs 64 hash bytes"),
        (b"\x01" + (3).to_bytes(8, "big") + b"\x00" * 96, "needs 64 hash bytes"),
    ],
)
def test_frontier_from_bytes_rejects(data: bytes, message: str) -> None:
    with pytest.raises(ProofError, match=message):
        TreeFrontier.from_bytes(data)


def test_frontier_from_hashes_rejects() -> None:
    with pytest.raises(ProofError, match="has 2 hashes"):
        TreeFrontier.from_hashes(3, [EMPTY_ROOT])
    with pytest.raises(ProofError, match="frontier hash #0"):
        TreeFrontier.from_hashes(1, [b"x"])
    with pytest.raises(ProofError, match="tree size"):
        TreeFrontier.from_hashes(-1, [])


def test_frontier_at_maximum_size() -> None:
    size = MAX_TREE_SIZE
    frontier = TreeFrontier.from_store(size, _uniform_getter(size))
    assert frontier.root() == tree_root(size, _uniform_getter(size))
    assert TreeFrontier.from_bytes(frontier.to_bytes()) == frontier
    with pytest.raises(ProofError, match="full"):
        frontier.append(UNIFORM[0])


def test_frontier_append_carries_at_large_size() -> None:
    size = (1 << 40) - 1
    frontier = TreeFrontier.from_store(size, _uniform_getter(size))
    completed = frontier.append(UNIFORM[0])
    assert [node.level for node in completed] == list(range(41))
    assert frontier.hashes == (UNIFORM[40],)
    assert frontier.root() == UNIFORM[40]


# --------------------------------------------------------------------------
# Proof generation vs. RFC 9162 and verification
# --------------------------------------------------------------------------


@pytest.mark.parametrize("size", range(1, MAX_SIZE + 1))
def test_inclusion_proofs_all_indices(size: int) -> None:
    leaves = LEAVES[:size]
    root = _reference_root(leaves)
    get_node = STORE.getter(size)
    for index in range(size):
        proof = inclusion_proof(index, size, get_node)
        assert proof == _reference_path(index, leaves)
        verify_inclusion(leaves[index], index, size, proof, root)
        assert root_from_inclusion_proof(leaves[index], index, size, proof) == root


@pytest.mark.parametrize("new_size", range(1, MAX_SIZE + 1))
def test_consistency_proofs_all_sizes(new_size: int) -> None:
    leaves = LEAVES[:new_size]
    new_root = _reference_root(leaves)
    get_node = STORE.getter(new_size)
    for old_size in range(0, new_size + 1):
        proof = consistency_proof(old_size, new_size, get_node)
        if 0 < old_size:
            assert proof == _reference_subproof(old_size, leaves, True)
        else:
            assert proof == []
        old_root = _reference_root(leaves[:old_size])
        verify_consistency(old_size, new_size, old_root, new_root, proof)


@pytest.mark.parametrize("size", range(2, 20))
def test_inclusion_tampering_detected(size: int) -> None:
    leaves = LEAVES[:size]
    root = _reference_root(leaves)
    for index in range(size):
        proof = inclusion_proof(index, size, STORE.getter(size))
        for position in range(len(proof)):
            bad = list(proof)
            bad[position] = _flip(bad[position], position % HASH_SIZE)
            with pytest.raises(ProofError, match="leads to root"):
                verify_inclusion(leaves[index], index, size, bad, root)
        with pytest.raises(ProofError):
            verify_inclusion(leaves[index], index ^ 1, size, proof, root)
        with pytest.raises(ProofError):
            verify_inclusion(leaves[index], index, size, proof[:-1], root)
        with pytest.raises(ProofError):
            verify_inclusion(leaves[index], index, size, [*proof, root], root)
        with pytest.raises(ProofError):
            verify_inclusion(_flip(leaves[index], 0), index, size, proof, root)


@pytest.mark.parametrize("new_size", range(2, 20))
def test_consistency_tampering_detected(new_size: int) -> None:
    leaves = LEAVES[:new_size]
    new_root = _reference_root(leaves)
    for old_size in range(1, new_size):
        old_root = _reference_root(leaves[:old_size])
        proof = consistency_proof(old_size, new_size, STORE.getter(new_size))
        for position in range(len(proof)):
            bad = list(proof)
            bad[position] = _flip(bad[position], 31)
            with pytest.raises(ProofError, match="leads to"):
                verify_consistency(old_size, new_size, old_root, new_root, bad)
        with pytest.raises(ProofError):
            verify_consistency(old_size, new_size, new_root, old_root, proof)
        with pytest.raises(ProofError):
            verify_consistency(old_size, new_size, old_root, new_root, proof[1:])
        with pytest.raises(ProofError):
            verify_consistency(old_size, new_size, old_root, new_root, [*proof, old_root])
        with pytest.raises(ProofError):
            verify_consistency(old_size, new_size, old_root, _flip(new_root, 3), proof)
        with pytest.raises(ProofError):
            verify_consistency(old_size, new_size, _flip(old_root, 3), new_root, proof)


def test_generation_argument_errors() -> None:
    get_node = STORE.getter(8)
    with pytest.raises(ProofError, match="empty tree"):
        inclusion_proof(0, 0, get_node)
    with pytest.raises(ProofError, match="outside"):
        inclusion_proof(8, 8, get_node)
    with pytest.raises(ProofError, match="outside"):
        inclusion_proof(-1, 8, get_node)
    with pytest.raises(ProofError, match="exceeds"):
        consistency_proof(9, 8, get_node)
    with pytest.raises(ProofError, match="2\\^64"):
        consistency_proof(0, 1 << 64, get_node)


def test_generation_checks_store_output() -> None:
    with pytest.raises(ProofError, match="node store returned 3 bytes"):
        inclusion_proof(0, 2, lambda level, index: b"bad")


def test_consistency_edge_rules() -> None:
    root = _reference_root(LEAVES[:3])
    verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    verify_consistency(0, 3, EMPTY_ROOT, root, [])
    with pytest.raises(ProofError, match="must be empty"):
        verify_consistency(0, 3, EMPTY_ROOT, root, [root])
    with pytest.raises(ProofError, match="empty root"):
        verify_consistency(0, 3, root, root, [])
    with pytest.raises(ProofError, match="new root hash"):
        verify_consistency(0, 3, EMPTY_ROOT, b"short", [])
    with pytest.raises(ProofError, match="same size"):
        verify_consistency(3, 3, root, EMPTY_ROOT, [])
    with pytest.raises(ProofError, match="exceeds"):
        verify_consistency(4, 3, root, root, [])


def test_verify_rejects_wrong_hash_lengths() -> None:
    proof = inclusion_proof(1, 3, STORE.getter(3))
    root = _reference_root(LEAVES[:3])
    with pytest.raises(ProofError, match="root hash is 31 bytes"):
        verify_inclusion(LEAVES[1], 1, 3, proof, root[:31])
    with pytest.raises(ProofError, match="proof hash #1 is 33 bytes"):
        verify_inclusion(LEAVES[1], 1, 3, [proof[0], proof[1] + b"\x00"], root)


# --------------------------------------------------------------------------
# Large trees (uniform leaves make every perfect subtree cheap to name)
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "size", [1 << 62, (1 << 62) + 1, MAX_TREE_SIZE, 10_000_000, 10_000_001]
)
def test_large_tree_proofs(size: int) -> None:
    get_node = _uniform_getter(size)
    root = tree_root(size, get_node)
    for index in (0, 1, size // 3, size - 2, size - 1):
        proof = inclusion_proof(index, size, get_node)
        assert len(proof) <= 64
        verify_inclusion(UNIFORM[0], index, size, proof, root)
    for old_size in (1, 2, 3, size // 2, size - 1, size):
        proof = consistency_proof(old_size, size, get_node)
        old_root = tree_root(old_size, _uniform_getter(old_size))
        verify_consistency(old_size, size, old_root, root, proof)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_property_large_inclusion(data: st.DataObject) -> None:
    size = data.draw(st.integers(min_value=1, max_value=MAX_TREE_SIZE))
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    get_node = _uniform_getter(size)
    proof = inclusion_proof(index, size, get_node)
    verify_inclusion(UNIFORM[0], index, size, proof, tree_root(size, get_node))


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_property_large_consistency(data: st.DataObject) -> None:
    new_size = data.draw(st.integers(min_value=1, max_value=MAX_TREE_SIZE))
    old_size = data.draw(st.integers(min_value=0, max_value=new_size))
    proof = consistency_proof(old_size, new_size, _uniform_getter(new_size))
    # At most ceil(log2(new_size)) path hashes plus the old tree's last node.
    assert len(proof) <= (new_size - 1).bit_length() + 1
    verify_consistency(
        old_size,
        new_size,
        tree_root(old_size, _uniform_getter(old_size)),
        tree_root(new_size, _uniform_getter(new_size)),
        proof,
    )


@settings(max_examples=200, deadline=None)
@given(
    sizes=st.integers(min_value=1, max_value=MAX_SIZE).flatmap(
        lambda n: st.tuples(st.just(n), st.integers(min_value=0, max_value=n - 1))
    ),
    position=st.integers(min_value=0, max_value=63),
    bit=st.integers(min_value=0, max_value=7),
)
def test_property_any_bit_flip_rejected(
    sizes: tuple[int, int], position: int, bit: int
) -> None:
    size, index = sizes
    leaves = LEAVES[:size]
    root = _reference_root(leaves)
    proof = inclusion_proof(index, size, STORE.getter(size))
    blob = bytearray(b"".join(proof) + leaves[index])
    offset = position * 7 % len(blob)
    blob[offset] ^= 1 << bit
    bad_proof = [bytes(blob[i : i + 32]) for i in range(0, len(proof) * 32, 32)]
    bad_leaf = bytes(blob[len(proof) * 32 :])
    with pytest.raises(ProofError):
        verify_inclusion(bad_leaf, index, size, bad_proof, root)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(max_size=8), max_size=40))
def test_property_frontier_matches_reference(items: list[bytes]) -> None:
    leaves = [leaf_hash(item) for item in items]
    frontier = TreeFrontier()
    frontier.extend(leaves)
    assert frontier.root() == _reference_root(leaves)
    assert TreeFrontier.from_bytes(frontier.to_bytes()).root() == frontier.root()


def test_frontier_extend_stops_cleanly_on_bad_leaf() -> None:
    frontier = TreeFrontier()
    with pytest.raises(ProofError, match="leaf hash is 3 bytes"):
        frontier.extend([*LEAVES[:5], b"bad", LEAVES[5]])
    assert frontier.size == 5
    assert frontier.root() == _reference_root(LEAVES[:5])


from exchange.core import merkle  # noqa: E402


# -- batch inclusion proofs --------------------------------------------------------------


def _store(leaves: list[bytes]):  # type: ignore[no-untyped-def]
    levels = [leaves]
    while len(levels[-1]) > 1:
        prev = levels[-1]
        levels.append([merkle.node_hash(prev[i], prev[i + 1]) for i in range(0, len(prev) - 1, 2)])
    return lambda level, index: levels[level][index]


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 13, 31, 64, 100])
def test_batch_proof_round_trips_for_every_subset_shape(size: int) -> None:
    leaves = [merkle.leaf_hash(bytes([i % 256, i // 256])) for i in range(size)]
    root = merkle.root_from_leaf_hashes(leaves)
    get = _store(leaves)
    rng = random.Random(size)
    subsets = [[0], [size - 1], list(range(size)), sorted(rng.sample(range(size), max(1, size // 3)))]
    for subset in subsets:
        proof = merkle.batch_inclusion_proof(subset, size, get)
        merkle.verify_batch_inclusion([(i, leaves[i]) for i in subset], size, proof, root)
        if len(subset) == 1:  # one leaf: the batch proof is its RFC 6962 audit path (in another order)
            assert sorted(proof) == sorted(merkle.inclusion_proof(subset[0], size, get))


def test_batch_proof_of_a_contiguous_page_is_logarithmic() -> None:
    size = 5000
    leaves = [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(size)]
    proof = merkle.batch_inclusion_proof(list(range(1000, 2000)), size, _store(leaves))
    assert len(proof) <= 2 * size.bit_length()


def test_batch_proof_rejects_tampering() -> None:
    size = 40
    leaves = [merkle.leaf_hash(bytes([i])) for i in range(size)]
    root = merkle.root_from_leaf_hashes(leaves)
    subset = [3, 4, 17, 39]
    proof = merkle.batch_inclusion_proof(subset, size, _store(leaves))
    good = [(i, leaves[i]) for i in subset]
    with pytest.raises(merkle.ProofError):  # a leaf that is not there
        merkle.verify_batch_inclusion([(3, leaves[3]), (4, leaves[5]), *good[2:]], size, proof, root)
    with pytest.raises(merkle.ProofError):  # claiming a leaf sits at another index
        merkle.verify_batch_inclusion([(3, leaves[3]), (5, leaves[4]), *good[2:]], size, proof, root)
    with pytest.raises(merkle.ProofError):  # a flipped proof hash
        merkle.verify_batch_inclusion(good, size, [bytes([proof[0][0] ^ 1]) + proof[0][1:], *proof[1:]], root)
    with pytest.raises(merkle.ProofError):  # too short, too long
        merkle.verify_batch_inclusion(good, size, proof[:-1], root)
    with pytest.raises(merkle.ProofError):
        merkle.verify_batch_inclusion(good, size, [*proof, proof[0]], root)
    with pytest.raises(merkle.ProofError):  # unsorted indices
        merkle.verify_batch_inclusion(list(reversed(good)), size, proof, root)
