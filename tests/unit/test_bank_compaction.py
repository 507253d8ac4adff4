"""The member's state grows with live signals: dead versions keep only what counts need."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from clients.bank import KEYID_CHARS, Bank
from clients.store import MemberStore
from exchange.core.entries import MemberId
from exchange.core.keydir import KeyInfo
from exchange.core.keys import KeyId
from tests.unit.test_bank import NOW, Clock, _signal

KEYID = hashlib.sha256(b"a key").hexdigest()


@pytest.fixture
def bank(tmp_path: Path) -> Bank:
    return Bank(MemberStore(tmp_path / "state.db"), clock_ms=Clock())


def _raw(bank: Bank, sid: str) -> tuple[str, str, str, str]:
    row = bank._store.conn.execute(
        "SELECT value, labels, groups, keyid FROM signals WHERE signal_id = ?", (sid,)
    ).fetchone()
    return (row[0], row[1], row[2], row[3])


def test_a_retracted_signal_keeps_its_place_not_its_payload(bank: Bank) -> None:
    bank.add_signal(_signal("r", "md5", "a" * 32, labels=("csam",)), index=1, keyid=KEYID)
    assert bank.retract("alice", "r", index=2)
    assert _raw(bank, "r") == ("", "[]", "[]", "")
    assert bank.lookup("md5", "a" * 32) == []
    assert bank.stats()["retracted"] == 1
    assert bank.add_signal(_signal("r", "md5", "b" * 32), index=3)  # a new version restores it
    assert [s.value for s in bank.lookup("md5", "b" * 32)] == ["b" * 32]


def test_an_expired_signal_is_compacted_when_swept(bank: Bank) -> None:
    clock: Clock = bank._clock_ms  # type: ignore[assignment]
    bank.add_signal(_signal("e", "url", "https://x.example/a", until=NOW + 10), index=1, keyid=KEYID)
    clock.now = NOW + 10
    swept = bank.sweep_expired()
    assert [s.value for s in swept] == ["https://x.example/a"]  # the caller still sees what expired
    assert _raw(bank, "e")[0] == ""
    assert bank.stats()["expired"] == 1


def test_the_bank_keeps_a_short_key_id_and_still_finds_what_a_compromised_key_signed(bank: Bank) -> None:
    bank.add_signal(_signal("new", "md5", "c" * 32), index=5, keyid=KEYID)
    bank._store.conn.execute(  # a row written by an older release, with the full key id
        "INSERT INTO signals (publisher, signal_id, idx, type, value, labels, confidence, severity, groups, tlp,"
        " created_at_ms, keyid, accepted_at_ms) VALUES ('alice', 'old', 4, 'md5', ?, '[]', 1, 0, '[]', 0, 0, ?, ?)",
        ("d" * 32, KEYID, NOW),
    )
    assert len(_raw(bank, "new")[3]) == KEYID_CHARS
    key = KeyInfo(keyid=KeyId(KEYID), member_id=MemberId("alice"), public_key=b"\0" * 32, valid_from_ms=0,
                  added_index=0, revoked_index=9, compromised=True, compromised_since_index=1)
    assert sorted(sid for _, _, sid in bank.drop_tainted(key)) == ["new", "old"]
