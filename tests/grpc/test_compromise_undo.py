"""A compromise undoes what the stolen key did after the compromise point (issue 12),
against a real exchange and real state files: the thief's new version of a signal is
replaced by the last untainted one, the thief's opinion by the author's earlier one,
and queue items are withdrawn or matched again; incremental sync, a rebuild and a
member syncing from scratch agree."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from clients.media import hash_file
from clients.member import MemberClient
from clients.policy import Policy
from clients.queue import State
from tests.conftest import GROUP_ALL, TaskForce, accepted

ENQUEUE = 'default = "enqueue"\ndefault_priority = 1\n'
CLEAN_MD5 = "0123456789abcdef0123456789abcdef"


def _image(path: Path, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray((rng.random((32, 32, 3)) * 255).astype("uint8")).resize((64, 64), Image.NEAREST).save(path)
    return path


def _state(member: MemberClient) -> tuple[object, ...]:
    assert member.bank is not None
    s = member.bank.get("bob", "s")
    return (None if s is None else (s.index, s.value, s.retracted_index)), member.bank.opinions("alice", "a1")


def test_thief_overwrite_and_opinion_are_undone_by_the_compromise(taskforce: TaskForce, tmp_path: Path) -> None:
    """thief-rewrites: a stolen key publishes a new version of its member's signal (one
    that matches carol's content) and overwrites the member's opinion."""
    img = _image(tmp_path / "up.png", 7)
    alice, bob = taskforce.client("alice"), taskforce.client("bob")
    accepted(alice.publish([alice.signal("md5", "f" * 32, groups=[GROUP_ALL], signal_id="a1")]))
    (clean,) = accepted(bob.publish([bob.signal("md5", CLEAN_MD5, groups=[GROUP_ALL], signal_id="s")]))
    accepted(bob.publish([bob.opinion("alice", "a1", "true_positive")]))
    carol = taskforce.client("carol", state=True, policy=Policy.from_toml(ENQUEUE))
    carol.sync()
    assert carol.match_files([img])[0].matches == []
    before = _state(carol)

    # the thief: a new version that matches carol's file, and a contrary opinion
    (theft, _) = accepted(bob.publish([
        bob.signal("md5", hash_file(img).md5, groups=[GROUP_ALL], signal_id="s"),
        bob.opinion("alice", "a1", "false_positive"),
    ]))
    report = carol.sync()
    assert report.queued == 1 and _state(carol) != before
    assert carol.queue is not None
    (item,) = [i for i in carol.queue.items() if i.state is State.PENDING]

    op = taskforce.operator_client()
    accepted(op.publish([op.revoke_key("bob", bob.signer.keyid, compromised_since_index=theft.index)]))
    op.close()
    report = carol.sync()
    assert (report.compromised, report.corrupt, report.withdrawn) == (1, 0, 1)
    assert _state(carol) == before == ((clean.index, CLEAN_MD5, None), {"bob": "true_positive"})
    assert carol.queue.get(item.id).state is State.WITHDRAWN  # type: ignore[union-attr]

    assert carol.rebuild_bank().corrupt == 0 and _state(carol) == before
    fresh = taskforce.client("dave" if "dave" in taskforce.signers else "carol", state=True)
    assert fresh.sync().corrupt == 0 and _state(fresh) == before


def test_restored_version_is_matched_again(taskforce: TaskForce, tmp_path: Path) -> None:
    """thief-rewrites-away: the thief moves a matching signal to another value; once undone,
    the member's content matches the restored version again."""
    img = _image(tmp_path / "up.png", 8)
    bob = taskforce.client("bob")
    accepted(bob.publish([bob.signal("md5", hash_file(img).md5, groups=[GROUP_ALL], signal_id="s")]))
    carol = taskforce.client("carol", state=True, policy=Policy.from_toml(ENQUEUE))
    carol.sync()
    assert [m.signal.signal_id for m, _ in carol.match_files([img])[0].matches] == ["s"]
    (theft,) = accepted(bob.publish([bob.signal("md5", CLEAN_MD5, groups=[GROUP_ALL], signal_id="s")]))
    carol.sync()
    assert carol.bank is not None and carol.bank.get("bob", "s").value == CLEAN_MD5  # type: ignore[union-attr]
    op = taskforce.operator_client()
    accepted(op.publish([op.revoke_key("bob", bob.signer.keyid, compromised_since_index=theft.index)]))
    op.close()
    report = carol.sync()
    assert report.compromised == 1 and report.queued == 1
    assert carol.bank.get("bob", "s").value == hash_file(img).md5  # type: ignore[union-attr]
    assert carol.queue is not None
    assert [i.signal_id for i in carol.queue.items() if i.state is State.PENDING] == ["s"]
