"""The persistent Merkle tree of the ledger: one flat file of hashes per level.

``level-NN.bin`` holds the 32-byte hashes of the perfect subtrees of height NN in
index order (level 00 = leaf hashes), the same layout C2SP tlog-tiles serves. A tree
of n leaves takes 32·(n + n/2 + n/4 + …) ≈ 64 bytes per entry; an append writes one
leaf hash plus the parents it completes; a proof reads O(log n) hashes with pread.

The tree is a pure function of the ledger. Files are not fsynced: after a crash
:meth:`TreeStore.open` trims torn writes, recomputes missing parents from the level
below, and the checkpointer appends whatever the ledger holds beyond the tree.
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Sequence
from pathlib import Path

from exchange.core import merkle
from exchange.core.errors import LedgerCorrupt

__all__ = ["TreeStore"]

HASH = merkle.HASH_SIZE
MAX_LEVEL = 64


class TreeStore:
    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._fds: dict[int, int] = {}
        self._size = self._recover()
        self._frontier = merkle.TreeFrontier.from_store(self._size, self.get_node)

    # -- files ------------------------------------------------------------------------------

    def _path(self, level: int) -> Path:
        return self.directory / f"level-{level:02d}.bin"

    def _fd(self, level: int) -> int:
        fd = self._fds.get(level)
        if fd is None:
            fd = os.open(self._path(level), os.O_RDWR | os.O_CREAT, 0o644)
            self._fds[level] = fd
        return fd

    def _count(self, level: int) -> int:
        return os.fstat(self._fd(level)).st_size // HASH

    def _recover(self) -> int:
        """Make every level file consistent with level 0 and return the size."""
        size = self._count(0)
        os.ftruncate(self._fd(0), size * HASH)
        for level in range(1, MAX_LEVEL):
            want = size >> level
            if want == 0:
                if self._path(level).exists():
                    os.ftruncate(self._fd(level), 0)
                continue
            have = min(self._count(level), want)
            os.ftruncate(self._fd(level), have * HASH)
            for index in range(have, want):  # parents lost in a crash
                left = self.get_node(level - 1, 2 * index)
                right = self.get_node(level - 1, 2 * index + 1)
                os.pwrite(self._fd(level), merkle.node_hash(left, right), index * HASH)
        return size

    def sync(self) -> None:
        """Make every hash written so far durable (before a watermark names it)."""
        with self._lock:
            for fd in self._fds.values():
                os.fsync(fd)

    def close(self) -> None:
        with self._lock:
            for fd in self._fds.values():
                os.fsync(fd)
                os.close(fd)
            self._fds.clear()

    # -- reads ------------------------------------------------------------------------------

    @property
    def size(self) -> int:
        return self._size

    def get_node(self, level: int, index: int) -> bytes:
        data = os.pread(self._fd(level), HASH, index * HASH)
        if len(data) != HASH:
            raise LedgerCorrupt(f"tree node ({level}, {index}) is missing from {self.directory}")
        return data

    def holds(self, level: int, first: int, hashes: bytes) -> bool:
        """Whether the stored nodes of ``level`` from index ``first`` on are exactly ``hashes``."""
        return os.pread(self._fd(level), len(hashes), first * HASH) == hashes

    def root(self, size: int | None = None) -> bytes:
        n = self._size if size is None else size
        if n == self._size:
            return self._frontier.root()
        return merkle.tree_root(n, self.get_node)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        self._check_size(size)
        return merkle.inclusion_proof(index, size, self.get_node)

    def batch_inclusion_proof(self, indices: Sequence[int], size: int) -> list[bytes]:
        self._check_size(size)
        return merkle.batch_inclusion_proof(indices, size, self.get_node)

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        self._check_size(new_size)
        return merkle.consistency_proof(old_size, new_size, self.get_node)

    def _check_size(self, size: int) -> None:
        if size > self._size:
            raise merkle.ProofError(f"tree size {size} is beyond the tree ({self._size} leaves)")

    # -- writes -----------------------------------------------------------------------------

    def append(self, leaf_hashes: Sequence[bytes]) -> int:
        """Append leaf hashes (in ledger order) and return the new size.

        Level by level, not leaf by leaf: the new nodes of a level are its new leaves
        (or children) paired up, with the old frontier's node of that level as the left
        sibling of the first one when it needs one."""
        with self._lock:
            old = self._frontier
            start, size = old.size, old.size + len(leaf_hashes)
            if size > merkle.MAX_TREE_SIZE:
                raise merkle.ProofError("tree is full")
            if any(len(h) != HASH for h in leaf_hashes):
                raise merkle.ProofError(f"a leaf hash must be {HASH} bytes")
            edge = dict(zip([lvl for lvl in range(MAX_LEVEL - 1, -1, -1) if start >> lvl & 1], old.hashes, strict=True))
            written: dict[int, tuple[int, list[bytes]]] = {}  # level -> (first index, new nodes)
            nodes, level = list(leaf_hashes), 0
            while nodes:
                first = start >> level
                written[level] = (first, nodes)
                pairs = [edge[level], *nodes] if first & 1 else nodes
                nodes = [merkle.node_hash(pairs[i], pairs[i + 1]) for i in range(0, len(pairs) - 1, 2)]
                level += 1
            # grow a copy: if a write fails (a full disk), memory stays level with the files
            for lvl, (first, hashes) in written.items():
                data = b"".join(hashes)
                if os.pwrite(self._fd(lvl), data, first * HASH) != len(data):
                    raise OSError(errno.ENOSPC, f"short write to {self._path(lvl)}")
            roots = []
            for lvl in range(MAX_LEVEL - 1, -1, -1):  # the new frontier: one perfect subtree per bit of size
                if size >> lvl & 1:
                    first, hashes = written.get(lvl, (size, []))
                    index = (size >> lvl) - 1
                    roots.append(hashes[index - first] if index >= first else edge[lvl])
            self._frontier = merkle.TreeFrontier.from_hashes(size, roots)
            self._size = size
            return self._size

    def truncate(self, size: int) -> None:
        """Keep the first ``size`` leaves (and their parents); the rest is appended again."""
        with self._lock:
            size = min(size, self._size)
            for level in range(MAX_LEVEL):
                if self._path(level).exists():
                    os.ftruncate(self._fd(level), (size >> level) * HASH)
            self._size = size
            self._frontier = merkle.TreeFrontier.from_store(size, self.get_node)

    def reset(self) -> None:
        """Forget everything (the tree is then rebuilt from the ledger)."""
        with self._lock:
            for level in range(MAX_LEVEL):
                if self._path(level).exists():
                    os.ftruncate(self._fd(level), 0)
            self._size = 0
            self._frontier = merkle.TreeFrontier()
