"""The tree store appends a batch level by level (issue 18: the checkpointer's cost per
entry); its files and frontier must be exactly what appending leaf by leaf gives."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange.core import merkle
from exchange.server.tree import TreeStore


def _leaves(n: int, salt: int = 0) -> list[bytes]:
    return [merkle.leaf_hash(f"{salt}:{i}".encode()) for i in range(n)]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=70), min_size=1, max_size=8))
def test_batches_give_the_tree_of_single_leaves(batches: list[int]) -> None:
    leaves = _leaves(sum(batches))
    with tempfile.TemporaryDirectory() as tmp:
        store = TreeStore(Path(tmp) / "tree")
        at = 0
        for n in batches:
            assert store.append(leaves[at : at + n]) == at + n
            at += n
            assert store.root() == merkle.root_from_leaf_hashes(leaves[:at])
        reference = merkle.TreeFrontier()
        nodes = {(node.level, node.index): node.hash for leaf in leaves for node in reference.append(leaf)}
        assert all(store.get_node(level, index) == h for (level, index), h in nodes.items())
        for size in range(1, at + 1):  # every proof the log serves is read from these nodes
            assert store.root(size) == merkle.root_from_leaf_hashes(leaves[:size])
        store.close()
        reopened = TreeStore(Path(tmp) / "tree")
        assert reopened.size == at and reopened.root() == store.root()
        reopened.close()


def test_a_leaf_of_the_wrong_size_is_refused_and_nothing_written(tmp_path: Path) -> None:
    store = TreeStore(tmp_path / "tree")
    store.append(_leaves(5))
    with pytest.raises(merkle.ProofError):
        store.append([*_leaves(3, salt=1), hashlib.sha1(b"short").digest()])
    assert store.size == 5 and store.root() == merkle.root_from_leaf_hashes(_leaves(5))
    store.close()
