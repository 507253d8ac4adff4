"""A full disk under the ledger: RESOURCE_EXHAUSTED, nothing acknowledged lost, recovery once freed.

Three layers: a real small filesystem (tmpfs, needs root and mount: CI runs as root on
the same kind of machine), SQLite's own limit (max_page_count on the writer, in-process,
runs everywhere) and the tree store's writes failing (ENOSPC injected into os.pwrite).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from exchange.core import merkle
from exchange.core.errors import ResourceExhausted
from exchange.core.records import Receipt
from exchange.server.tree import TreeStore
from reliability import faults
from tests.conftest import GROUP_ALL, start_taskforce, wait_until


def test_small_filesystem_fills_up(tmp_path: Path) -> None:
    # CI runs as root on the same kind of machine: a missing mount is a failure, not a skip
    assert faults.can_mount(), "this fault test needs root and `mount -t tmpfs`"
    result = faults.disk_full(tmp_path, size_mb=8)
    assert set(result["errors_when_full"]) <= {"RESOURCE_EXHAUSTED"}, result  # type: ignore[arg-type]
    assert "disk is full" in result["first_error"]  # type: ignore[operator]
    assert all(r["reads_while_full"] for r in result["rounds"])  # type: ignore[union-attr]
    assert result["audit"]["ok"] is True and result["lost"] == 0  # type: ignore[index]


def test_sqlite_full_is_resource_exhausted_and_recovers(tmp_path: Path) -> None:
    tf = start_taskforce(tmp_path)
    try:
        alice = tf.client("alice")
        conn = tf.server.ledger._conn  # type: ignore[attr-defined]
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages + 3}")  # the writer's disk is about to be full
        acked: list[Receipt] = []
        refused = None
        for b in range(100):
            batch = [alice.signal("md5", f"{b:08x}{i:024x}", groups=[GROUP_ALL], signal_id=f"full-{b}-{i}") for i in range(20)]
            try:
                outcomes = alice.publish(batch)
            except ResourceExhausted as exc:
                refused = exc
                break
            acked.extend(o for o in outcomes if isinstance(o, Receipt))
        assert refused is not None and "disk is full" in refused.message, refused
        before = tf.ledger_snapshot()
        with pytest.raises(ResourceExhausted):  # still full: refused again, nothing stored
            alice.publish([alice.signal("md5", f"{i:032x}", groups=[GROUP_ALL], signal_id=f"still-{i}") for i in range(40)])
        assert tf.ledger_snapshot() == before
        conn.execute("PRAGMA max_page_count = 1073741823")  # space freed
        (after,) = alice.publish([alice.signal("md5", "e" * 32, groups=[GROUP_ALL], signal_id="after")])
        assert isinstance(after, Receipt) and after.index == before[0]
        records = tf.ledger_snapshot()[1]
        assert all(records[r.index] == before[1][r.index] for r in acked)
        wait_until(lambda: (cp := tf.server.checkpoints.latest()) is not None and cp.size == after.index + 1)
    finally:
        tf.close()


def test_tree_write_failure_leaves_the_tree_consistent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ENOSPC in the middle of a tree append: nothing in memory moves, a retry appends exactly once.

    Before the fix the in-memory frontier had already grown, the retry appended the same
    leaves again, and the log went on to sign a checkpoint larger than the ledger.
    """
    leaves = [bytes([i]) * 32 for i in range(1, 40)]
    tree = TreeStore(tmp_path / "tree")
    tree.append(leaves[:10])
    real_pwrite = os.pwrite
    calls = {"n": 0}

    def failing_pwrite(fd: int, data: bytes, offset: int) -> int:
        calls["n"] += 1
        if calls["n"] == 2:  # the leaf level is written, a parent level is not
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", failing_pwrite)
    with pytest.raises(OSError):
        tree.append(leaves[10:20])
    assert tree.size == 10
    monkeypatch.setattr(os, "pwrite", lambda fd, data, offset: real_pwrite(fd, data[: len(data) // 2], offset))
    with pytest.raises(OSError):  # a short write is a failure too
        tree.append(leaves[10:20])
    assert tree.size == 10
    monkeypatch.setattr(os, "pwrite", real_pwrite)
    assert tree.append(leaves[10:20]) == 20
    expected = merkle.TreeFrontier()
    expected.extend(leaves[:20])
    assert tree.root() == expected.root()
    tree.close()
    reopened = TreeStore(tmp_path / "tree")
    assert reopened.size == 20 and reopened.root() == expected.root()
    assert reopened.inclusion_proof(13, 20) == merkle.inclusion_proof(13, 20, reopened.get_node)
    reopened.close()
