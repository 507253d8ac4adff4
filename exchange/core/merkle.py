"""RFC 6962 / RFC 9162 Merkle tree hashing, proofs and an incremental frontier.

Hashing (RFC 9162 §2.1.1): the tree hash of a list of leaves is
``MTH({}) = SHA-256()``, ``MTH({d}) = SHA-256(0x00 || d)`` and, for ``n > 1``,
``MTH(D[n]) = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))`` where ``k`` is the
largest power of two smaller than ``n``.

Addressing: every *complete* (perfect) subtree is named ``(level, index)``; it
covers leaves ``[index * 2**level, (index + 1) * 2**level)``, so level 0 holds
the leaf hashes.  Perfect subtrees never change once all their leaves exist,
which is what a leveled or tiled store can keep.  A tree of size ``n`` is the
right-to-left fold of the perfect subtrees given by the binary digits of ``n``
(largest first); nodes on a non-perfect right edge are *ephemeral* and are
always recomputed here from perfect subtrees.

Proofs follow RFC 9162 §2.1.3 (inclusion, ``PATH``) and §2.1.4 (consistency,
``SUBPROOF``) and are byte-compatible with RFC 6962 §2.1.1/§2.1.2, as used by
c2sp.org/tlog-witness.  Generation takes a ``get_node(level, index)`` callable
and only ever asks it for perfect subtrees complete at the requested size.
Verification functions return ``None`` on success and raise :class:`ProofError`
describing the first problem found; they never return a boolean.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from exchange.core.errors import ProofError  # re-exported

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "MAX_TREE_SIZE",
    "NodeGetter",
    "NodeRef",
    "ProofError",
    "TreeFrontier",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root_from_inclusion_proof",
    "root_from_leaf_hashes",
    "tree_root",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE: Final = 32
"""Size in bytes of every hash (SHA-256)."""

MAX_TREE_SIZE: Final = (1 << 64) - 1
"""Largest tree size (and index bound) accepted: sizes are uint64 on the wire."""

EMPTY_ROOT: Final = hashlib.sha256(b"").digest()
"""Root hash of the empty tree, ``SHA-256()``."""

_LEAF_PREFIX: Final = b"\x00"
_NODE_PREFIX: Final = b"\x01"
_FRONTIER_VERSION: Final = 1
_FRONTIER_HEADER: Final = 9  # version byte + uint64 size

NodeGetter = Callable[[int, int], bytes]
"""``get_node(level, index)``: hash of the perfect subtree at ``(level, index)``."""


@dataclass(frozen=True, slots=True)
class NodeRef:
    """A perfect subtree hash together with its ``(level, index)`` address."""

    level: int
    index: int
    hash: bytes


def leaf_hash(data: bytes) -> bytes:
    """Return the RFC 6962 leaf hash ``SHA-256(0x00 || data)``."""
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return the RFC 6962 interior hash ``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


# --------------------------------------------------------------------------
# Validation helpers
# --------------------------------------------------------------------------


def _check_hash(value: bytes, what: str) -> None:
    if len(value) != HASH_SIZE:
        raise ProofError(f"{what} is {len(value)} bytes, expected {HASH_SIZE}")


def _check_size(value: int, what: str) -> None:
    if value < 0 or value > MAX_TREE_SIZE:
        raise ProofError(f"{what} {value} is outside [0, 2^64-1]")


def _check_proof_hashes(proof: Sequence[bytes]) -> None:
    for position, item in enumerate(proof):
        _check_hash(item, f"proof hash #{position}")


def _fold_right(hashes: Sequence[bytes]) -> bytes:
    """Fold perfect-subtree roots (largest first) into the tree root."""
    if not hashes:
        return EMPTY_ROOT
    root = hashes[-1]
    for left in reversed(hashes[:-1]):
        root = node_hash(left, root)
    return root


def _trailing_zeros(value: int) -> int:
    return (value & -value).bit_length() - 1


# --------------------------------------------------------------------------
# Tree hashes
# --------------------------------------------------------------------------


def root_from_leaf_hashes(hashes: Iterable[bytes]) -> bytes:
    """Return ``MTH`` of the leaves whose leaf hashes are given, in O(n) time.

    Uses O(log n) memory and no recursion, so it is safe for very large trees.
    """
    frontier = TreeFrontier()
    frontier.extend(hashes)
    return frontier.root()


def _perfect_subtrees(start: int, end: int) -> list[tuple[int, int]]:
    """Addresses of the perfect subtrees that make up ``MTH(D[start:end])``.

    ``start`` must be ``0`` or aligned to a power of two no smaller than
    ``end - start`` (true for the whole tree and for every subtree RFC 9162
    hashes), so the binary digits of the length give the split points.
    """
    nodes: list[tuple[int, int]] = []
    position = start
    remaining = end - start
    while remaining:
        level = remaining.bit_length() - 1
        nodes.append((level, position >> level))
        position += 1 << level
        remaining -= 1 << level
    return nodes


def _get(get_node: NodeGetter, level: int, index: int) -> bytes:
    value = get_node(level, index)
    if len(value) != HASH_SIZE:
        raise ProofError(
            f"node store returned {len(value)} bytes for ({level}, {index}), "
            f"expected {HASH_SIZE}"
        )
    return value


def _subtree_root(start: int, end: int, get_node: NodeGetter) -> bytes:
    nodes = _perfect_subtrees(start, end)
    return _fold_right([_get(get_node, level, index) for level, index in nodes])


def tree_root(size: int, get_node: NodeGetter) -> bytes:
    """Return the root of the tree of ``size`` leaves from perfect subtrees."""
    _check_size(size, "tree size")
    return _subtree_root(0, size, get_node)


# --------------------------------------------------------------------------
# Incremental frontier (compact range starting at leaf 0)
# --------------------------------------------------------------------------


class TreeFrontier:
    """The perfect-subtree roots covering leaves ``[0, size)``, largest first.

    Appending a leaf hash costs amortised O(1) hashes and the state is at most
    64 hashes, so the current root is always O(log n) away.  :meth:`append`
    reports every perfect subtree it completes, which is exactly what a
    leveled store must persist to answer ``get_node`` later.
    """

    __slots__ = ("_hashes", "_size")

    def __init__(self) -> None:
        self._size = 0
        self._hashes: list[bytes] = []

    @classmethod
    def from_hashes(cls, size: int, hashes: Sequence[bytes]) -> TreeFrontier:
        """Rebuild a frontier from its size and its perfect-subtree roots."""
        _check_size(size, "tree size")
        expected = size.bit_count()
        if len(hashes) != expected:
            raise ProofError(
                f"a frontier of size {size} has {expected} hashes, got {len(hashes)}"
            )
        for position, item in enumerate(hashes):
            _check_hash(item, f"frontier hash #{position}")
        frontier = cls()
        frontier._size = size
        frontier._hashes = list(hashes)
        return frontier

    @classmethod
    def from_store(cls, size: int, get_node: NodeGetter) -> TreeFrontier:
        """Build the frontier of a tree of ``size`` leaves from a node store."""
        _check_size(size, "tree size")
        nodes = _perfect_subtrees(0, size)
        return cls.from_hashes(size, [_get(get_node, lvl, idx) for lvl, idx in nodes])

    @property
    def size(self) -> int:
        """Number of leaves appended so far."""
        return self._size

    @property
    def hashes(self) -> tuple[bytes, ...]:
        """Perfect-subtree roots, largest (leftmost) first."""
        return tuple(self._hashes)

    def append(self, leaf: bytes) -> tuple[NodeRef, ...]:
        """Append one *leaf hash* and return the perfect subtrees it completed.

        The first element is the leaf itself at level 0, followed by every
        parent that became complete, bottom-up.
        """
        _check_hash(leaf, "leaf hash")
        if self._size >= MAX_TREE_SIZE:
            raise ProofError("tree is full")
        index = self._size
        completed = [NodeRef(0, index, leaf)]
        current = leaf
        level = 0
        while (index >> level) & 1:
            current = node_hash(self._hashes.pop(), current)
            level += 1
            completed.append(NodeRef(level, index >> level, current))
        self._hashes.append(current)
        self._size = index + 1
        return tuple(completed)

    def extend(self, leaves: Iterable[bytes]) -> None:
        """Append many leaf hashes without reporting completed nodes."""
        hashes = self._hashes
        size = self._size
        for leaf in leaves:
            _check_hash(leaf, "leaf hash")
            if size >= MAX_TREE_SIZE:
                raise ProofError("tree is full")
            current = leaf
            carry = size
            while carry & 1:
                current = node_hash(hashes.pop(), current)
                carry >>= 1
            hashes.append(current)
            size += 1
            self._size = size

    def root(self) -> bytes:
        """Root hash of the tree of the current size."""
        return _fold_right(self._hashes)

    def copy(self) -> TreeFrontier:
        """Return an independent copy."""
        return TreeFrontier.from_hashes(self._size, self._hashes)

    def to_bytes(self) -> bytes:
        """Serialize as ``0x01 || uint64_be(size) || hashes`` (largest first)."""
        header = bytes([_FRONTIER_VERSION]) + self._size.to_bytes(8, "big")
        return header + b"".join(self._hashes)

    @classmethod
    def from_bytes(cls, data: bytes) -> TreeFrontier:
        """Parse the output of :meth:`to_bytes`, rejecting any other length."""
        if len(data) < _FRONTIER_HEADER:
            raise ProofError(f"frontier encoding is {len(data)} bytes, too short")
        if data[0] != _FRONTIER_VERSION:
            raise ProofError(f"unknown frontier encoding version {data[0]}")
        size = int.from_bytes(data[1:_FRONTIER_HEADER], "big")
        body = data[_FRONTIER_HEADER:]
        expected = size.bit_count() * HASH_SIZE
        if len(body) != expected:
            raise ProofError(
                f"frontier of size {size} needs {expected} hash bytes, got {len(body)}"
            )
        hashes = [body[i : i + HASH_SIZE] for i in range(0, expected, HASH_SIZE)]
        return cls.from_hashes(size, hashes)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TreeFrontier):
            return NotImplemented
        return self._size == other._size and self._hashes == other._hashes

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"TreeFrontier(size={self._size}, root={self.root().hex()})"


# --------------------------------------------------------------------------
# Proof shape
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _PathShape:
    """Shape of the audit path of node ``(level, index)`` in a tree of ``size``.

    ``inner`` hashes sit below the level where the path meets the right edge
    of the tree (the last of them may be ephemeral); ``border`` hashes are the
    left siblings along the right edge above it.
    """

    level: int
    index: int
    inner: int
    border: int

    @property
    def length(self) -> int:
        return self.inner + self.border


def _path_shape(level: int, index: int, size: int) -> _PathShape:
    last = (size - 1) >> level
    inner = (index ^ last).bit_length()
    border = (index >> inner).bit_count()
    return _PathShape(level, index, inner, border)


def _path_hashes(shape: _PathShape, size: int, get_node: NodeGetter) -> list[bytes]:
    level, index, inner = shape.level, shape.index, shape.inner
    path = [_get(get_node, level + k, (index >> k) ^ 1) for k in range(inner - 1)]
    if inner:
        top = level + inner - 1
        start = ((index >> (inner - 1)) ^ 1) << top
        path.append(_subtree_root(start, size, get_node))
    for k in range(inner, (index >> inner).bit_length() + inner):
        if (index >> k) & 1:
            path.append(_get(get_node, level + k, (index >> k) - 1))
    return path


def _fold_path(
    seed: bytes, shape: _PathShape, path: Sequence[bytes]
) -> tuple[bytes, bytes]:
    """Fold ``path`` upwards from ``seed``.

    Returns ``(root, left_root)``: the root of the whole tree, and the root
    built from ``seed`` and the left siblings only (the tree that ends where
    the seed node ends).
    """
    root = seed
    left_root = seed
    for k, sibling in enumerate(path[: shape.inner]):
        if (shape.index >> k) & 1:
            root = node_hash(sibling, root)
            left_root = node_hash(sibling, left_root)
        else:
            root = node_hash(root, sibling)
    for sibling in path[shape.inner :]:
        root = node_hash(sibling, root)
        left_root = node_hash(sibling, left_root)
    return root, left_root


# --------------------------------------------------------------------------
# Inclusion proofs (RFC 9162 §2.1.3)
# --------------------------------------------------------------------------


def _check_index(index: int, size: int) -> None:
    _check_size(size, "tree size")
    if size == 0:
        raise ProofError("the empty tree has no leaves to prove inclusion of")
    if index < 0 or index >= size:
        raise ProofError(f"leaf index {index} is outside a tree of size {size}")


def inclusion_proof(index: int, size: int, get_node: NodeGetter) -> list[bytes]:
    """Return the audit path of leaf ``index`` in the tree of ``size`` leaves."""
    _check_index(index, size)
    return _path_hashes(_path_shape(0, index, size), size, get_node)


def root_from_inclusion_proof(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes]
) -> bytes:
    """Return the root implied by an inclusion proof, checking its shape.

    Raises :class:`ProofError` if the parameters are out of range, the proof
    has the wrong number of hashes, or any hash has the wrong length.
    """
    _check_index(index, size)
    _check_hash(leaf, "leaf hash")
    shape = _path_shape(0, index, size)
    if len(proof) != shape.length:
        raise ProofError(
            f"inclusion proof has {len(proof)} hashes, expected {shape.length} "
            f"for leaf {index} in a tree of size {size}"
        )
    _check_proof_hashes(proof)
    root, _ = _fold_path(leaf, shape, proof)
    return root


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf`` (a leaf hash) is leaf ``index`` of the tree ``root``.

    Returns ``None`` on success and raises :class:`ProofError` otherwise.
    """
    _check_hash(root, "root hash")
    computed = root_from_inclusion_proof(leaf, index, size, proof)
    if computed != root:
        raise ProofError(
            f"inclusion proof for leaf {index} in a tree of size {size} leads to "
            f"root {computed.hex()}, expected {root.hex()}"
        )


# --------------------------------------------------------------------------
# Consistency proofs (RFC 9162 §2.1.4)
# --------------------------------------------------------------------------
#
# For 0 < m < n, let t be the number of trailing zero bits of m.  The old tree
# ends with the perfect subtree (t, m/2^t - 1).  The proof is that node (left
# out when m is a power of two: it is then the old root itself) followed by
# the audit path of that node in the new tree.  Folding the path gives the new
# root; folding only its left siblings gives the old root.  This is exactly
# the RFC 9162 SUBPROOF(m, D[n], true) output, computed iteratively.


def _consistency_start(old_size: int) -> tuple[int, int]:
    level = _trailing_zeros(old_size)
    return level, (old_size >> level) - 1


def _check_sizes(old_size: int, new_size: int) -> None:
    _check_size(old_size, "old tree size")
    _check_size(new_size, "new tree size")
    if old_size > new_size:
        raise ProofError(f"old tree size {old_size} exceeds new tree size {new_size}")


def consistency_proof(old_size: int, new_size: int, get_node: NodeGetter) -> list[bytes]:
    """Return the consistency proof from ``old_size`` to ``new_size``.

    The proof is empty when the sizes are equal or ``old_size`` is 0.
    """
    _check_sizes(old_size, new_size)
    if old_size in (0, new_size):
        return []
    level, index = _consistency_start(old_size)
    proof = [] if index == 0 else [_get(get_node, level, index)]
    shape = _path_shape(level, index, new_size)
    return proof + _path_hashes(shape, new_size, get_node)


def _verify_equal_sizes(
    size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    if proof:
        raise ProofError(f"both trees have size {size}, so the proof must be empty")
    if size == 0 and old_root != EMPTY_ROOT:
        raise ProofError("a tree of size 0 must have the empty root SHA-256()")
    if old_root != new_root:
        raise ProofError(f"roots of two trees of the same size {size} differ")


def _verify_from_empty(old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> None:
    if proof:
        raise ProofError("a consistency proof from the empty tree must be empty")
    if old_root != EMPTY_ROOT:
        raise ProofError("a tree of size 0 must have the empty root SHA-256()")
    _check_hash(new_root, "new root hash")


def verify_consistency(
    old_size: int,
    new_size: int,
    old_root: bytes,
    new_root: bytes,
    proof: Sequence[bytes],
) -> None:
    """Check that the tree ``new_root`` extends the tree ``old_root``.

    Returns ``None`` on success and raises :class:`ProofError` otherwise.
    Equal sizes need an empty proof and equal roots.  The empty tree (size 0,
    root ``EMPTY_ROOT``) is a prefix of every tree; its proof must be empty,
    as c2sp.org/tlog-witness requires for ``old 0``.
    """
    _check_sizes(old_size, new_size)
    if old_size == new_size:
        _verify_equal_sizes(old_size, old_root, new_root, proof)
        return
    if old_size == 0:
        _verify_from_empty(old_root, new_root, proof)
        return
    _check_hash(old_root, "old root hash")
    _check_hash(new_root, "new root hash")
    level, index = _consistency_start(old_size)
    shape = _path_shape(level, index, new_size)
    expected = shape.length + (0 if index == 0 else 1)
    if len(proof) != expected:
        raise ProofError(
            f"consistency proof has {len(proof)} hashes, expected {expected} "
            f"from size {old_size} to size {new_size}"
        )
    _check_proof_hashes(proof)
    seed, path = (old_root, proof) if index == 0 else (proof[0], proof[1:])
    computed_new, computed_old = _fold_path(seed, shape, path)
    if computed_old != old_root:
        raise ProofError(
            f"consistency proof leads to old root {computed_old.hex()} at size "
            f"{old_size}, expected {old_root.hex()}"
        )
    if computed_new != new_root:
        raise ProofError(
            f"consistency proof leads to new root {computed_new.hex()} at size "
            f"{new_size}, expected {new_root.hex()}"
        )


# --------------------------------------------------------------------------
# Batch inclusion proofs (many leaves, one proof)
# --------------------------------------------------------------------------
#
# Proving k leaves one audit path at a time costs k * log2(n) hashes.  A batch
# proof instead lists, in a fixed depth-first order, the roots of the maximal
# RFC 9162 subtrees that contain none of the proven leaves; the verifier walks
# the same recursion, uses its own leaf hashes where it has them and the listed
# hashes elsewhere, and must land on the checkpoint's root.  For a contiguous
# page of k leaves this is about 2 * log2(n) hashes instead of k * log2(n).
# The recursion splits [lo, hi) at the largest power of two below hi - lo, as
# RFC 9162 MTH does, so subtrees are aligned and perfect except on the right edge.


def _split(lo: int, hi: int) -> int:
    return lo + (1 << ((hi - lo - 1).bit_length() - 1))


def batch_inclusion_proof(indices: Sequence[int], size: int, get_node: NodeGetter) -> list[bytes]:
    """The hashes proving leaves ``indices`` (sorted, distinct) in the tree of ``size``."""
    _check_batch(indices, size)
    out: list[bytes] = []
    stack = [(0, size, 0, len(indices))]  # range, and the slice of indices inside it
    while stack:
        lo, hi, first, last = stack.pop()
        if first == last:
            out.append(_subtree_root(lo, hi, get_node))
        elif hi - lo > 1:
            mid = _split(lo, hi)
            cut = bisect.bisect_left(indices, mid, first, last)
            stack.append((mid, hi, cut, last))  # right after left: depth-first, left first
            stack.append((lo, mid, first, cut))
    return out


def root_from_batch_proof(leaves: Sequence[tuple[int, bytes]], size: int, proof: Sequence[bytes]) -> bytes:
    """The root implied by ``leaves`` ((index, leaf hash), sorted by index) and a batch proof."""
    indices = [i for i, _ in leaves]
    _check_batch(indices, size)
    _check_proof_hashes(proof)
    hashes = iter(proof)

    def walk(lo: int, hi: int, first: int, last: int) -> bytes:
        if first == last:
            node = next(hashes, None)
            if node is None:
                raise ProofError("batch proof is too short")
            return node
        if hi - lo == 1:
            return leaves[first][1]
        mid = _split(lo, hi)
        cut = bisect.bisect_left(indices, mid, first, last)
        left = walk(lo, mid, first, cut)
        return node_hash(left, walk(mid, hi, cut, last))

    root = walk(0, size, 0, len(indices))
    if next(hashes, None) is not None:
        raise ProofError("batch proof has hashes left over")
    return root


def verify_batch_inclusion(leaves: Sequence[tuple[int, bytes]], size: int, proof: Sequence[bytes], root: bytes) -> None:
    """Raise ProofError unless every (index, leaf hash) is in the tree ``root`` of ``size``."""
    _check_hash(root, "root hash")
    for _, leaf in leaves:
        _check_hash(leaf, "leaf hash")
    computed = root_from_batch_proof(leaves, size, proof)
    if computed != root:
        raise ProofError(
            f"batch inclusion proof for {len(leaves)} leaves in a tree of size {size} leads to "
            f"root {computed.hex()}, expected {root.hex()}"
        )


def _check_batch(indices: Sequence[int], size: int) -> None:
    _check_size(size, "tree size")
    if not indices:
        raise ProofError("a batch proof proves at least one leaf")
    if any(b <= a for a, b in zip(indices, indices[1:])):
        raise ProofError("batch proof indices must be sorted and distinct")
    if indices[0] < 0 or indices[-1] >= size:
        raise ProofError(f"leaf indices must lie in [0, {size})")
