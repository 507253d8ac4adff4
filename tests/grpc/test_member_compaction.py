"""``trustwire member compact`` (issue 20) on real state files synced from a real exchange:
the state shrinks, sync continues and matches the same live signals, a retracted signal
stays unmatched and still exports as a revoked STIX indicator, a compromise after
compaction still withdraws, and a locked state file is refused without a change."""

from __future__ import annotations

import json
import random
import sqlite3
import time
from pathlib import Path

import pytest

from clients.cli.main import main
from clients.compaction import compact, state_bytes
from clients.member import MemberClient
from clients.stix.feed import feed
from exchange.core.errors import ExitCode
from tests.conftest import GROUP_ALL, TaskForce, accepted

DAY_MS = 86_400_000
LABELS = [f"campaign-{i:03d}-with-a-long-descriptive-label" for i in range(8)]


def _md5(i: int) -> str:
    return f"{i:032x}"


def _reopen(tf: TaskForce, name: str, state: Path, **kwargs: object) -> MemberClient:
    c = MemberClient(tf.target, member_id=name, signer=tf.signers[name], operator_key=tf.operator.public_key,
                     log_key=tf.log_key, state=state, **kwargs)  # type: ignore[arg-type]
    tf._clients.append(c)
    return c


def compromised_then_reopened(tf: TaskForce, thief: str, since: int, name: str, state: Path) -> MemberClient:
    """The operator revokes ``thief``'s key as compromised since ``since``; ``name``'s
    compacted state is reopened (its next sync applies the compromise)."""
    op = tf.operator_client()
    accepted(op.publish([op.revoke_key(thief, tf.signers[thief].keyid, compromised_since_index=since)]))
    op.close()
    c = _reopen(tf, name, state)
    assert c.bank is not None
    return c


def _now() -> int:
    return int(time.time() * 1000)


def _synced_state(tf: TaskForce) -> Path:
    """carol's state file, synced to the head and closed (compaction is an offline step)."""
    carol = tf.client("carol", state=True)
    assert carol.sync().corrupt == 0
    assert carol.store is not None
    state = carol.store.path
    carol.close()
    tf._clients.remove(carol)
    return state


def _compact_cli(state: Path, *extra: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, object]]:
    code = main(["member", "compact", "--state", str(state), "--json", *extra])
    out = capsys.readouterr().out
    return code, json.loads(out)


def _publish_mix(tf: TaskForce, n: int) -> MemberClient:
    """bob publishes n labelled md5 signals, a newer version of every 4th (history kept by
    members), and retracts every odd one."""
    bob = tf.client("bob")
    for start in range(0, n, 100):
        accepted(bob.publish([bob.signal("md5", _md5(i), groups=[GROUP_ALL], signal_id=f"s{i}", labels=LABELS)
                              for i in range(start, min(n, start + 100))]))
    accepted(bob.publish([bob.signal("md5", _md5(i), groups=[GROUP_ALL], signal_id=f"s{i}", labels=LABELS[:2])
                          for i in range(0, n, 4)]))
    accepted(bob.publish([bob.retraction(f"s{i}") for i in range(1, n, 2)]))
    return bob


def test_compaction_shrinks_state_and_keeps_sync_matches_and_export(taskforce: TaskForce, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    n = 400
    bob = _publish_mix(taskforce, n)
    carol = taskforce.client("carol", state=True)
    assert carol.sync().corrupt == 0
    assert carol.store is not None and carol.bank is not None
    state = carol.store.path
    live_before = {s.signal_id for s in carol.bank.iter_signals() if s.live_at(_now())}
    assert live_before == {f"s{i}" for i in range(0, n, 2)}
    carol.close()
    taskforce._clients.remove(carol)

    code, first = _compact_cli(state, "--drop-history", capsys=capsys)
    assert code == 0
    assert first["tombstoned_retracted"] == n // 2 and first["versions_dropped"] == n // 4
    assert int(first["bytes_after"]) < int(first["bytes_before"])  # type: ignore[call-overload]
    code, again = _compact_cli(state, "--drop-history", capsys=capsys)  # idempotent
    assert code == 0 and (again["tombstoned_retracted"], again["versions_dropped"]) == (0, 0)
    assert again["bytes_after"] == first["bytes_after"]

    carol = _reopen(taskforce, "carol", state)
    assert carol.bank is not None
    assert {s.signal_id for s in carol.bank.iter_signals() if s.live_at(_now())} == live_before
    s0 = carol.bank.get("bob", "s0")
    assert s0 is not None and s0.labels == tuple(sorted(LABELS[:2]))  # live bodies untouched
    assert [m.signal.signal_id for m in carol.bank.match_value("md5", _md5(1), "c1")] == []  # retracted: no match
    assert [m.signal.signal_id for m in carol.bank.match_value("md5", _md5(2), "c2")] == ["s2"]

    # the export still shows the compacted signal as a revoked indicator of its value
    objs = {o.obj.get("pattern"): o.obj for o in feed(carol.bank, limit=10_000) if o.obj["type"] == "indicator"}
    revoked = objs[f"[file:hashes.MD5 = '{_md5(1)}']"]
    assert revoked["revoked"] is True
    assert objs[f"[file:hashes.MD5 = '{_md5(2)}']"].get("revoked") in (None, False)

    # sync continues after compaction: a new signal and a new retraction arrive
    accepted(bob.publish([bob.signal("md5", _md5(n), groups=[GROUP_ALL], signal_id="late")]))
    accepted(bob.publish([bob.retraction("s2")]))
    assert carol.sync().corrupt == 0
    assert [m.signal.signal_id for m in carol.bank.match_value("md5", _md5(n), "c3")] == ["late"]
    assert carol.bank.match_value("md5", _md5(2), "c2") == []


def test_default_compaction_tombstones_expired_and_keeps_history(taskforce: TaskForce) -> None:
    bob = taskforce.client("bob")
    until = _now() + DAY_MS
    accepted(bob.publish([bob.signal("md5", _md5(i), groups=[GROUP_ALL], signal_id=f"e{i}", labels=LABELS,
                                     valid_until_ms=until) for i in range(50)]))
    accepted(bob.publish([bob.signal("md5", _md5(99), groups=[GROUP_ALL], signal_id="r", labels=LABELS)]))
    accepted(bob.publish([bob.retraction("r")]))
    state = _synced_state(taskforce)
    r = compact(state, now_ms=until + 1)
    assert (r.tombstoned_expired, r.tombstoned_retracted, r.versions_dropped) == (50, 0, 0)
    carol = _reopen(taskforce, "carol", state)
    assert carol.bank is not None
    e0, kept = carol.bank.get("bob", "e0"), carol.bank.get("bob", "r")
    assert e0 is not None and (e0.value, e0.labels, e0.valid_until_ms) == (_md5(0), (), until)
    assert kept is not None and kept.labels == tuple(sorted(LABELS))  # a retraction can still be undone
    pattern = f"[file:hashes.MD5 = '{_md5(0)}']"
    exported = [o.obj for o in feed(carol.bank, limit=1000) if o.obj.get("pattern") == pattern]
    assert len(exported) == 1 and "valid_until" in exported[0]  # the tombstone still exports its expiry


@pytest.mark.parametrize("drop_history", [False, True])
def test_compromise_after_compaction_still_withdraws(taskforce: TaskForce, drop_history: bool) -> None:
    """thief-after-compaction: the thief's version, banked before the member compacted,
    is withdrawn by the compromise; the untainted version comes back unless the operator
    dropped history."""
    bob = taskforce.client("bob")
    (clean,) = accepted(bob.publish([bob.signal("md5", _md5(7), groups=[GROUP_ALL], signal_id="s")]))
    (theft,) = accepted(bob.publish([bob.signal("md5", _md5(8), groups=[GROUP_ALL], signal_id="s")]))
    state = _synced_state(taskforce)
    compact(state, drop_history=drop_history)
    carol = compromised_then_reopened(taskforce, "bob", theft.index, "carol", state)
    assert carol.sync().compromised == 1
    assert carol.bank.match_value("md5", _md5(8), "c") == []  # the thief's value is withdrawn
    back = carol.bank.get("bob", "s")
    if drop_history:
        assert back is None
    else:
        assert back is not None and (back.index, back.value) == (clean.index, _md5(7))


def test_old_quarantine_is_dropped_and_recent_kept(taskforce: TaskForce) -> None:
    """A compromised key's entry is quarantined when the member syncs; compaction keeps the
    record for ``--quarantine-days`` and drops it afterwards."""
    bob = taskforce.client("bob")
    (clean,) = accepted(bob.publish([bob.signal("md5", _md5(7), groups=[GROUP_ALL], signal_id="s")]))
    op = taskforce.operator_client()
    accepted(op.publish([op.revoke_key("bob", bob.signer.keyid, compromised_since_index=clean.index)]))
    op.close()
    state = _synced_state(taskforce)
    carol = _reopen(taskforce, "carol", state)
    assert carol.store is not None
    held = carol.store.quarantined()
    assert held
    carol.close()
    taskforce._clients.remove(carol)
    assert compact(state, quarantine_days=30).quarantine_dropped == 0
    r = compact(state, quarantine_days=30, now_ms=_now() + 31 * DAY_MS)
    assert r.quarantine_dropped == len(held)
    assert sqlite3.connect(state).execute("SELECT COUNT(*) FROM quarantine").fetchone()[0] == 0


def test_pdq_matches_survive_compaction_of_a_saved_index(taskforce: TaskForce) -> None:
    """VACUUM may renumber rowids, the saved PDQ index's ids: after compaction the index
    is rebuilt, so each live hash still finds its own signal and no retracted one."""
    rng = random.Random(20)
    hashes = [f"{rng.getrandbits(256):064x}" for _ in range(40)]
    bob = taskforce.client("bob")
    accepted(bob.publish([bob.signal("pdq", h, groups=[GROUP_ALL], signal_id=f"p{i}") for i, h in enumerate(hashes)]))
    accepted(bob.publish([bob.retraction(f"p{i}") for i in range(0, 40, 3)]))
    carol = taskforce.client("carol", state=True)
    carol.sync()
    assert carol.bank is not None and carol.store is not None
    assert len(carol.bank.pdq_index()) == 40 - 14 and carol.bank.save_index(force=True)
    state = carol.store.path
    carol.close()
    taskforce._clients.remove(carol)
    compact(state, drop_history=True)
    carol = _reopen(taskforce, "carol", state)
    assert carol.bank is not None
    for i, h in enumerate(hashes):
        found = [s.signal_id for s, d in carol.bank.search_pdq(h, threshold=0)]
        assert found == ([] if i % 3 == 0 else [f"p{i}"]), i


def test_compact_refuses_a_locked_state(taskforce: TaskForce, capsys: pytest.CaptureFixture[str]) -> None:
    """compact-while-syncing: another process holds the state's write lock: a clear error, nothing changed."""
    bob = taskforce.client("bob")
    accepted(bob.publish([bob.signal("md5", _md5(1), groups=[GROUP_ALL], signal_id="s", labels=LABELS)]))
    accepted(bob.publish([bob.retraction("s")]))
    state = _synced_state(taskforce)
    holder = sqlite3.connect(state, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        code = main(["member", "compact", "--state", str(state), "--json", "--drop-history"])
        captured = capsys.readouterr()
        assert code == int(ExitCode.UNAVAILABLE)
        assert json.loads(captured.out)["error"]["reason"] == "state-busy"
        assert len(captured.err.strip().splitlines()) == 1
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    labels = sqlite3.connect(state).execute("SELECT labels FROM signals").fetchone()[0]
    assert json.loads(labels) == sorted(LABELS)  # no side effect


def test_compact_of_a_missing_state_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["member", "compact", "--state", str(tmp_path / "nope.db"), "--json"])
    assert code == int(ExitCode.NOT_FOUND)
    assert json.loads(capsys.readouterr().out)["error"]["reason"] == "not-found"
    assert not (tmp_path / "nope.db").exists()
    assert state_bytes(tmp_path / "nope.db") == 0


def test_compact_rejects_negative_retention(taskforce: TaskForce, capsys: pytest.CaptureFixture[str]) -> None:
    bob = taskforce.client("bob")
    accepted(bob.publish([bob.signal("md5", _md5(1), groups=[GROUP_ALL], signal_id="s")]))
    state = _synced_state(taskforce)
    before = state.read_bytes()
    code = main(["member", "compact", "--state", str(state), "--json", "--quarantine-days", "-1"])
    assert code == int(ExitCode.INVALID_INPUT)
    assert json.loads(capsys.readouterr().out)["error"]["reason"] == "invalid-input"
    assert state.read_bytes() == before
