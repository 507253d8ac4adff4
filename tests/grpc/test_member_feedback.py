"""The moderation workflow and the feedback loop against a real exchange: decisions become
signed opinions, policy uses them, the publisher sees them, expiry withdraws items."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from exchange.program.cli import main
from clients.feedback import OutboxState, feedback_report
from clients.media import hash_file
from clients.policy import Policy
from clients.queue import State
from exchange.core.errors import InvalidInput
from tests.conftest import GROUP_ALL, TaskForce, accepted

ENQUEUE = 'default = "enqueue"\ndefault_priority = 1\n'
FEEDBACK = ENQUEUE + "[feedback]\npublish_on_decision = true\n"


def _image(path: Path, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray((rng.random((32, 32, 3)) * 255).astype("uint8")).resize((256, 256), Image.NEAREST).save(path)
    return path


def _claim_and_decide(client: object, decision: str, reviewer: str = "ana", **kwargs: object) -> object:
    queue = client.queue  # type: ignore[attr-defined]
    (item,) = [i for i in queue.items() if i.state is State.PENDING]
    queue.claim(item.id, reviewer)
    return client.decide(item.id, reviewer, decision, reason=f"looked at it: {decision}", **kwargs)  # type: ignore[attr-defined]


def test_decisions_publish_opinions_and_the_publisher_sees_them(
    taskforce: TaskForce, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    img = _image(tmp_path / "up.png", 1)
    h = hash_file(img)
    alice = taskforce.client("alice", state=True)
    accepted(alice.publish([alice.signal("md5", h.md5, groups=[GROUP_ALL], signal_id="a-md5", labels=["spam"])]))

    bob = taskforce.client("bob", state=True, policy=Policy.from_toml(FEEDBACK))
    carol = taskforce.client("carol", state=True, policy=Policy.from_toml(FEEDBACK))
    for member in (bob, carol):
        member.sync()
        (fm,) = member.match_files([img])
        assert [m.signal.signal_id for m, _ in fm.matches] == ["a-md5"]

    item = _claim_and_decide(bob, "actioned")
    assert item.state is State.ACTIONED and item.reviewer == "ana" and item.reason == "looked at it: actioned"
    assert item.claimed_at_ms is not None and item.decided_at_ms is not None
    assert [e.state for e in bob.queue.history(item.id)] == [State.PENDING, State.IN_REVIEW, State.ACTIONED]
    sent = bob.outbox.get("alice", "a-md5")
    assert sent is not None and (sent.verdict, sent.state) == ("true_positive", OutboxState.SENT)
    assert sent.ledger_index is not None and sent.item_id == item.id

    _claim_and_decide(carol, "dismissed")
    assert carol.outbox.get("alice", "a-md5").verdict == "false_positive"  # type: ignore[union-attr]

    alice.sync()
    report = feedback_report(alice.bank, "alice")
    (entry,) = report["signals"]  # type: ignore[misc]
    assert entry["signal_id"] == "a-md5"
    assert entry["counts"] == {"true_positive": 1, "false_positive": 1}
    assert entry["by_member"] == {"bob": "true_positive", "carol": "false_positive"}
    assert report["totals"] == {"true_positive": 1, "false_positive": 1}
    assert report["by_member"] == {"bob": {"true_positive": 1}, "carol": {"false_positive": 1}}

    # the same through the CLI, as the publisher's T&S team runs it
    key = tmp_path / "alice.key"
    key.write_text(taskforce.signers["alice"].seed.hex())
    code = main(["member", "feedback", "--exchange", taskforce.target, "--member-id", "alice", "--key-file", str(key),
                 "--operator-public-key", taskforce.operator.public_key.hex(), "--log-key", taskforce.log_key,
                 "--state", str(tmp_path / "alice-cli.db"), "--json"])
    assert code == 0
    cli = json.loads(capsys.readouterr().out)
    assert cli["signals"][0]["by_member"] == {"bob": "true_positive", "carol": "false_positive"}

    # a decided item cannot be claimed or decided again
    with pytest.raises(InvalidInput):
        bob.queue.claim(item.id, "lead")
    with pytest.raises(InvalidInput):
        bob.decide(item.id, "lead", "dismissed")


def test_policy_settings_control_feedback_and_use_opinion_counts(taskforce: TaskForce, tmp_path: Path) -> None:
    img = _image(tmp_path / "a.png", 2)
    h = hash_file(img)
    alice = taskforce.client("alice")
    accepted(alice.publish([alice.signal("sha256", h.sha256, groups=[GROUP_ALL], signal_id="s1")]))

    quiet = Policy.from_toml(ENQUEUE + "[feedback]\npublish_on_decision = false\npublish_seen_on_match = true\n")
    bob = taskforce.client("bob", state=True, policy=quiet)
    bob.sync()
    bob.match_files([img])
    seen = bob.outbox.get("alice", "s1")
    assert seen is not None and (seen.verdict, seen.state) == ("seen", OutboxState.SENT)
    _claim_and_decide(bob, "dismissed")
    assert bob.outbox.get("alice", "s1").verdict == "seen"  # type: ignore[union-attr]  # nothing published
    # publish=True overrides the policy for one decision; escalated is not a verdict
    img2 = _image(tmp_path / "b.png", 3)
    accepted(alice.publish([alice.signal("md5", hash_file(img2).md5, groups=[GROUP_ALL], signal_id="s2")]))
    bob.sync()
    bob.match_files([img2])
    _claim_and_decide(bob, "escalated", publish=True)
    assert bob.outbox.get("alice", "s2") is not None  # the seen from the match
    assert bob.outbox.get("alice", "s2").verdict == "seen"  # type: ignore[union-attr]
    escalated = [i for i in bob.queue.items() if i.state is State.ESCALATED][0]
    bob.queue.claim(escalated.id, "lead")  # a senior reviewer picks the escalation up
    bob.decide(escalated.id, "lead", "dismissed", publish=True)
    assert bob.outbox.get("alice", "s2").verdict == "false_positive"  # type: ignore[union-attr]

    # two members marked s2 false_positive: carol's policy ignores it
    carol_fp = taskforce.client("carol")
    accepted(carol_fp.publish([carol_fp.opinion("alice", "s2", "false_positive")]))
    policy = Policy.from_toml(
        '[[rule]]\nname = "disputed"\nmin_false_positive = 2\naction = "ignore"\n\n'
        '[[rule]]\nname = "rest"\naction = "enqueue"\npriority = 0\n'
    )
    carol = taskforce.client("carol", state=True, policy=policy)
    carol.sync()
    (fm,) = carol.match_files([img2])
    ((m, decision),) = fm.matches
    assert decision.rule == "disputed" and carol.queue.items() == []
    (fm,) = carol.match_files([img])
    assert fm.matches[0][1].rule == "rest" and len(carol.queue.items()) == 1


def test_expiry_withdraws_pending_items_on_sync_and_sweep(taskforce: TaskForce, tmp_path: Path) -> None:
    img = _image(tmp_path / "e.png", 4)
    h = hash_file(img)
    alice = taskforce.client("alice")
    now = alice._clock_ms()
    accepted(alice.publish([
        alice.signal("md5", h.md5, groups=[GROUP_ALL], signal_id="short", valid_until_ms=now + 60_000),
        alice.signal("sha256", h.sha256, groups=[GROUP_ALL], signal_id="long"),
    ]))
    clock = {"now": now}
    bob = taskforce.client("bob", state=True, policy=Policy.from_toml(ENQUEUE), clock_ms=lambda: clock["now"])
    assert bob.sync().expired == 0
    bob.match_files([img])
    (item,) = bob.queue.items()  # one file: one item, both signals its evidence
    assert item.state is State.PENDING and {e.signal_id for e in item.evidence} == {"short", "long"}
    bob.queue.claim(item.id, "ana")  # claimed but undecided: its expired evidence is withdrawn

    clock["now"] = now + 60_001
    report = bob.sync()
    assert (report.expired, report.withdrawn) == (1, 0)  # the item stands on "long"
    kept = bob.queue.get(item.id)
    assert kept.state is State.IN_REVIEW and kept.live_signals() == [("alice", "long")]
    assert bob.sweep_expired() == 0 and bob.sync().expired == 0
    (fm,) = bob.match_files([img])
    assert [m.signal.signal_id for m, _ in fm.matches] == ["long"]


def test_rebuild_bank_from_the_ledger_keeps_the_queue(taskforce: TaskForce, tmp_path: Path) -> None:
    img = _image(tmp_path / "r.png", 5)
    h = hash_file(img)
    alice = taskforce.client("alice")
    accepted(alice.publish([
        alice.signal("pdq", h.pdq, groups=[GROUP_ALL], signal_id="p"),  # type: ignore[arg-type]
        alice.signal("md5", h.md5, groups=[GROUP_ALL], signal_id="m"),
        alice.retraction("m", "error"),
    ]))
    bob = taskforce.client("bob", state=True, policy=Policy.from_toml(ENQUEUE))
    bob.sync()
    bob.match_files([img])
    before = bob.bank.stats()
    queue_before = bob.queue.items()
    report = bob.rebuild_bank()
    assert report.signals == 2 and report.retractions == 1 and report.quarantined == 0
    assert bob.bank.stats() == before
    # open items are kept; replaying a signal that was later retracted leaves it only as withdrawn evidence
    def open_items() -> list[tuple[int, State, list[tuple[str, str]]]]:
        return [(i.id, i.state, i.live_signals()) for i in bob.queue.items() if i.state is not State.WITHDRAWN]
    assert open_items() == [(i.id, i.state, i.live_signals()) for i in queue_before] == [
        (queue_before[0].id, State.PENDING, [("alice", "p")])]
    assert [s.signal_id for s, _ in bob.bank.search_pdq(h.pdq)] == ["p"]  # type: ignore[arg-type]


def test_a_file_matching_its_md5_and_its_sha256_is_one_item_and_both_publishers_hear_the_verdict(
    taskforce: TaskForce, tmp_path: Path
) -> None:
    img = _image(tmp_path / "both.png", 5)
    h = hash_file(img)
    alice = taskforce.client("alice", state=True)
    carol = taskforce.client("carol", state=True)
    accepted(alice.publish([alice.signal("md5", h.md5, groups=[GROUP_ALL], signal_id="f-md5")]))
    accepted(carol.publish([carol.signal("sha256", h.sha256, groups=[GROUP_ALL], signal_id="f-sha256")]))

    bob = taskforce.client("bob", state=True, policy=Policy.from_toml(FEEDBACK))
    bob.sync()
    (fm,) = bob.match_files([img])
    assert {m.signal.signal_id for m, _ in fm.matches} == {"f-md5", "f-sha256"}
    (item,) = bob.queue.items()
    assert [(e.publisher, e.signal_id, e.type) for e in item.evidence] == [
        ("alice", "f-md5", "md5"), ("carol", "f-sha256", "sha256")]
    assert bob.match_files([img]) and len(bob.queue.items()) == 1  # matching again adds nothing

    decided = _claim_and_decide(bob, "actioned")
    assert decided.id == item.id and decided.state is State.ACTIONED
    for publisher, signal_id in (("alice", "f-md5"), ("carol", "f-sha256")):
        sent = bob.outbox.get(publisher, signal_id)
        assert sent is not None and (sent.verdict, sent.state, sent.item_id) == (
            "true_positive", OutboxState.SENT, item.id)
    alice.sync()
    carol.sync()
    assert feedback_report(alice.bank, "alice")["totals"] == {"true_positive": 1}
    assert feedback_report(carol.bank, "carol")["totals"] == {"true_positive": 1}
