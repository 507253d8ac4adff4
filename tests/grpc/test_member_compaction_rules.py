"""The compaction rules added for issue 20 on real state files from a real exchange:
withdrawn queue items no reviewer touched and the envelopes of opinions sent long ago
are forgotten, while open items, every item a reviewer touched (the console's history)
and unsent opinions survive; the ``history_days`` policy bounds what a later compromise
can restore, and inside the window the undo is whole."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clients.compaction import compact
from clients.feedback import OutboxState
from clients.media import hash_file
from clients.member import MemberClient
from clients.policy import Policy
from clients.queue import State
from tests.conftest import GROUP_ALL, TaskForce, accepted
from tests.grpc.test_member_compaction import _now, _reopen, compromised_then_reopened

DAY_MS = 86_400_000
FEEDBACK = 'default = "enqueue"\ndefault_priority = 1\n[feedback]\npublish_on_decision = true\n'


def _image(path: Path, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray((rng.random((32, 32, 3)) * 255).astype("uint8")).resize((256, 256), Image.NEAREST).save(path)
    return path


def _close(tf: TaskForce, c: MemberClient) -> Path:
    assert c.store is not None
    state = c.store.path
    c.close()
    tf._clients.remove(c)
    return state


def test_closed_queue_items_and_sent_envelopes_are_forgotten_open_work_survives(
        taskforce: TaskForce, tmp_path: Path) -> None:
    files = [_image(tmp_path / f"f{i}.png", i) for i in range(4)]
    alice = taskforce.client("alice")
    accepted(alice.publish([alice.signal("md5", hash_file(f).md5, groups=[GROUP_ALL], signal_id=f"s{i}")
                            for i, f in enumerate(files)]))
    policy = Policy.from_toml(FEEDBACK)
    bob = taskforce.client("bob", state=True, policy=policy)
    bob.sync()
    bob.match_files(files)
    assert bob.queue is not None and bob.outbox is not None
    item = {i.signal_id: i for i in bob.queue.items()}
    bob.queue.claim(item["s0"].id, "ana")
    bob.decide(item["s0"].id, "ana", "actioned", reason="seen it")  # an opinion, signed and sent
    bob.queue.claim(item["s2"].id, "ana")  # a reviewer touched s2, then it was withdrawn
    accepted(alice.publish([alice.retraction("s2"), alice.retraction("s3")]))
    bob.sync()
    assert bob.outbox.want("alice", "s1", "false_positive")  # an opinion not sent yet (sync sends it)
    state = _close(taskforce, bob)

    fresh = compact(state, closed_days=30)  # nothing is old enough yet
    assert (fresh.queue_dropped, fresh.envelopes_dropped) == (0, 0)
    r = compact(state, closed_days=30, now_ms=_now() + 31 * DAY_MS)
    assert (r.queue_dropped, r.envelopes_dropped) == (1, 1)

    bob = _reopen(taskforce, "bob", state, policy=policy)
    assert bob.queue is not None and bob.outbox is not None
    after = {i.signal_id: i for i in bob.queue.items()}
    assert set(after) == {"s0", "s1", "s2"}  # s3's withdrawn item, untouched by anyone, is gone
    assert after["s1"].state is State.PENDING  # open work is never forgotten
    assert after["s2"].state is State.WITHDRAWN
    assert [e.state for e in bob.queue.history(after["s0"].id)] == [State.PENDING, State.IN_REVIEW, State.ACTIONED]
    assert [e.reviewer for e in bob.queue.history(after["s2"].id)][1] == "ana"
    assert {e.item_id for e in bob.queue.events("ana")} == {after["s0"].id, after["s2"].id}  # the console history
    sent = bob.outbox.get("alice", "s0")
    assert sent is not None and sent.state is OutboxState.SENT and sent.envelope is None
    assert sent.verdict == "true_positive" and sent.ledger_index is not None
    assert not bob.outbox.want("alice", "s0", "seen")  # the verdict still stops a repeated "seen"
    unsent = bob.outbox.get("alice", "s1")
    assert unsent is not None and unsent.state is OutboxState.PENDING
    bob.sync()  # the unsent opinion is sent after compaction
    unsent = bob.outbox.get("alice", "s1")
    assert unsent is not None and unsent.state is OutboxState.SENT and unsent.envelope is not None


@pytest.mark.parametrize("aged", [False, True])
def test_history_policy_bounds_what_a_compromise_restores(taskforce: TaskForce, aged: bool) -> None:
    """thief-after-history-pruning: inside the ``history_days`` window the stolen key's
    version and retraction are undone into the full earlier bodies; past it the thief's
    entries are still withdrawn, but what comes back is nothing (an overwrite) or a
    tombstone (a retraction) — the stated consequence of the policy."""
    bob = taskforce.client("bob")
    labels = ["campaign-a", "campaign-b"]
    (clean,) = accepted(bob.publish([bob.signal("md5", f"{7:032x}", groups=[GROUP_ALL], signal_id="v", labels=labels)]))
    accepted(bob.publish([bob.signal("md5", f"{9:032x}", groups=[GROUP_ALL], signal_id="r", labels=labels)]))
    (theft,) = accepted(bob.publish([bob.signal("md5", f"{8:032x}", groups=[GROUP_ALL], signal_id="v")]))
    accepted(bob.publish([bob.retraction("r")]))
    carol = taskforce.client("carol", state=True)
    assert carol.sync().corrupt == 0
    state = _close(taskforce, carol)
    now = _now() + (31 * DAY_MS if aged else 0)
    r = compact(state, history_days=30, now_ms=now)
    assert (r.versions_dropped, r.tombstoned_retracted) == ((1, 1) if aged else (0, 0))
    carol = compromised_then_reopened(taskforce, "bob", theft.index, "carol", state)
    assert carol.bank is not None
    assert carol.sync().compromised == 2
    assert carol.bank.match_value("md5", f"{8:032x}", "c") == []  # the thief's value is withdrawn either way
    back, undone = carol.bank.get("bob", "v"), carol.bank.get("bob", "r")
    assert undone is not None and undone.retracted_index is None  # the thief's retraction is undone
    assert [m.signal.signal_id for m in carol.bank.match_value("md5", f"{9:032x}", "c")] == ["r"]
    if aged:
        assert back is None and undone.labels == ()
    else:
        assert back is not None and (back.index, back.value) == (clean.index, f"{7:032x}")
        assert undone.labels == tuple(sorted(labels))


def test_tombstone_policy_deletes_old_tombstones_and_their_export(taskforce: TaskForce) -> None:
    """With ``tombstone_days`` the revocations older than the window leave the state and the
    STIX export (the policy's stated consequence); live signals and newer tombstones stay."""
    from clients.stix.feed import feed

    bob = taskforce.client("bob")
    accepted(bob.publish([bob.signal("md5", f"{i:032x}", groups=[GROUP_ALL], signal_id=f"s{i}") for i in range(6)]))
    accepted(bob.publish([bob.retraction(f"s{i}") for i in (1, 3)]))
    carol = taskforce.client("carol", state=True)
    assert carol.sync().corrupt == 0
    state = _close(taskforce, carol)
    assert compact(state, tombstone_days=30).tombstones_dropped == 0  # still inside the window
    r = compact(state, tombstone_days=30, now_ms=_now() + 31 * DAY_MS)
    assert r.tombstones_dropped == 2 and r.signals == 4
    carol = _reopen(taskforce, "carol", state)
    assert carol.bank is not None
    assert carol.bank.get("bob", "s1") is None and carol.bank.get("bob", "s0") is not None
    patterns = {o.obj.get("pattern") for o in feed(carol.bank, limit=1000) if o.obj["type"] == "indicator"}
    assert patterns == {f"[file:hashes.MD5 = '{i:032x}']" for i in (0, 2, 4, 5)}
    assert [m.signal.signal_id for m in carol.bank.match_value("md5", f"{4:032x}", "c")] == ["s4"]
    accepted(bob.publish([bob.retraction("s4")]))
    assert carol.sync().corrupt == 0  # sync continues; a new retraction becomes a (fresh) tombstone
    assert carol.bank.match_value("md5", f"{4:032x}", "c") == []
