"""The replay guard replicas share (exchange.server.replay): real SQLite files, injected times."""

from __future__ import annotations

from pathlib import Path

import pytest

from exchange.core.errors import ReplayedCall
from exchange.server.replay import PRUNE_EVERY, SqliteReplayGuard

WINDOW = 1000


def test_replayed_call_on_another_replica_is_refused(tmp_path: Path) -> None:
    one, two = SqliteReplayGuard(tmp_path / "calls.db", WINDOW), SqliteReplayGuard(tmp_path / "calls.db", WINDOW)
    one.remember("alice", "n1", 0, now_ms=0)
    with pytest.raises(ReplayedCall):
        two.remember("alice", "n1", 0, now_ms=10)
    two.remember("bob", "n1", 0, now_ms=10)  # the pair is (principal, nonce)
    one.close()
    two.close()


def test_replayed_call_after_restart_is_refused(tmp_path: Path) -> None:
    guard = SqliteReplayGuard(tmp_path / "calls.db", WINDOW)
    guard.remember("alice", "n1", 0, now_ms=0)
    guard.close()
    restarted = SqliteReplayGuard(tmp_path / "calls.db", WINDOW)
    with pytest.raises(ReplayedCall):
        restarted.remember("alice", "n1", 0, now_ms=2 * WINDOW)  # still within twice the window
    restarted.remember("alice", "n1", 0, now_ms=2 * WINDOW + 1)  # older: the clock window refuses it anyway
    restarted.close()


def test_old_nonces_are_pruned(tmp_path: Path) -> None:
    guard = SqliteReplayGuard(tmp_path / "calls.db", WINDOW)
    for i in range(PRUNE_EVERY):
        guard.remember("alice", f"old{i}", 0, now_ms=0)
    for i in range(PRUNE_EVERY):
        guard.remember("alice", f"new{i}", 0, now_ms=10 * WINDOW)
    guard.close()
    import sqlite3

    with sqlite3.connect(tmp_path / "calls.db") as db:
        (rows,) = db.execute("SELECT count(*) FROM call_nonces").fetchone()
    assert rows == PRUNE_EVERY
