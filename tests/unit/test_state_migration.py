"""An old state file is upgraded (issue 20): ``tests/fixtures/state-v1.db`` was written by
the code before key numbers and live-only match indexes (main at ca9c0c0, by the
property test's ``Member`` over the history below: alice's s0, s1, s2 and a newer s2,
s1 retracted, carol's opinion on s0). Opened by this code it is migrated in place, keeps
matching, keeps its key ids, and a compromise arriving afterwards still undoes what the
stolen key signed, to the state of the replay without the tainted entries."""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from pathlib import Path

from clients.store import SCHEMA_VERSION
from tests.unit.test_compromise_property import SIGNERS, VALUES, Member, Op, _ledger

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "state-v1.db"
HISTORY = [Op("alice", "signal", "s0", 0), Op("alice", "signal", "s1", 1), Op("alice", "signal", "s2", 2),
           Op("alice", "signal", "s2", 3), Op("alice", "retraction", "s1", 1), Op("carol", "opinion", "s0", 0)]


def _columns(path: Path, table: str) -> set[str]:
    with sqlite3.connect(path) as c:
        return {r[1] for r in c.execute(f"PRAGMA table_info({table})")}


def test_an_old_state_file_is_upgraded_keeps_matching_and_still_undoes_a_compromise() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "old.db"
        shutil.copy(FIXTURE, state)
        assert "keyid" in _columns(state, "signals")  # the fixture really is the old layout
        member = Member(state)
        c = member.store.conn
        assert int(c.execute("PRAGMA user_version").fetchone()[0]) == SCHEMA_VERSION
        for table in ("signals", "opinions", "signal_versions", "opinion_versions"):
            have = {r[1] for r in c.execute(f"PRAGMA table_info({table})")}
            assert "key_no" in have and "keyid" not in have and "retracted_keyid" not in have, table
        indexes = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert {"signals_live_value", "signals_key"} <= indexes and "signals_value" not in indexes

        bank = member.bank
        s0 = bank.get("alice", "s0")
        assert s0 is not None and s0.keyid == SIGNERS["alice"].keyid
        assert [s.signal_id for s in bank.lookup("md5", VALUES[0])] == ["s0"]
        assert bank.lookup("md5", VALUES[1]) == []  # retracted: out of the live index
        assert [s.signal_id for s in bank.lookup("md5", VALUES[3])] == ["s2"]

        # the same ledger (deterministic signatures), then alice's key revoked as compromised
        # since the newer s2: the newer s2 and the retraction of s1 are undone
        records, cut, tainted = _ledger(tmp, HISTORY, 3, [])
        member.apply(records[:cut])  # already applied: a no-op, and the verifier learns the keys
        assert member.apply(records[cut:]).compromised == 2
        model = Member(Path(tmp) / "model.db")
        model.apply([r for i, r in enumerate(records) if i not in tainted])
        assert member.state() == model.state()
        assert [s.signal_id for s in bank.lookup("md5", VALUES[2])] == ["s2"]  # the version kept before migration
        assert [s.signal_id for s in bank.lookup("md5", VALUES[1])] == ["s1"]
        assert bank.lookup("md5", VALUES[3]) == []
        expected = model.state()
        member.store.close()
        model.store.close()
        reopened = Member(state)  # a migrated file opens without migrating again
        assert reopened.state() == expected
        reopened.store.close()


def test_opening_a_current_state_takes_no_write_lock(tmp_path: Path) -> None:
    """reader-while-syncing: a reader (the match service) opens the state file while the
    member's sync holds the write lock; opening a migrated file must not need it."""
    from clients.store import MemberStore

    MemberStore(tmp_path / "s.db").close()  # created and migrated
    writer = sqlite3.connect(tmp_path / "s.db", isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    try:
        reader = MemberStore(tmp_path / "s.db")
        reader.conn.execute("PRAGMA busy_timeout=0")
        assert reader.conn.execute("SELECT COUNT(*) FROM signals").fetchone()[0] == 0
        reader.close()
    finally:
        writer.execute("ROLLBACK")
        writer.close()
