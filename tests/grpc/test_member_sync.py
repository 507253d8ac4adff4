"""MemberClient.sync() against a real exchange: cursor, bank, queue, quarantine."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clients.media import hash_file
from clients.member import MemberClient
from clients.policy import Policy
from clients.queue import State
from exchange.core.records import Record
from exchange.pb.trustwire.v1 import envelope_pb2
from exchange.pb.trustwire.v1 import exchange_pb2 as xpb
from tests.conftest import GROUP_ALL, GROUP_NCII, MEMBERS, TaskForce, accepted
from tests.grpc.conftest import MD5_A, MD5_B, MD5_C

N_KEY_EVENTS = 2 + 2 * len(MEMBERS)
ENQUEUE_ALL = Policy.from_toml('default = "enqueue"\ndefault_priority = 1\n')


def _member(tf: TaskForce, name: str, state: Path, **kwargs: object) -> MemberClient:
    return MemberClient(
        tf.target, member_id=name, signer=tf.signers[name], operator_key=tf.operator.public_key,
        log_key=tf.log_key, state=state,
        **kwargs,  # type: ignore[arg-type]
    )


def _image(path: Path, seed: int) -> Path:
    """A blocky noise image: PDQ quality 100, unique MD5."""
    rng = np.random.default_rng(seed)
    pixels = (rng.random((32, 32, 3)) * 255).astype("uint8")
    Image.fromarray(pixels).resize((256, 256), Image.NEAREST).save(path)
    return path


# -- cursor ----------------------------------------------------------------------------------


def test_sync_persists_cursor_and_resumes(taskforce: TaskForce, tmp_path: Path) -> None:
    alice = taskforce.client("alice")
    accepted(alice.publish([
        alice.signal("md5", MD5_A, groups=[GROUP_ALL], signal_id="s1"),
        alice.signal("md5", MD5_B, groups=[GROUP_NCII], signal_id="hidden"),  # not for bob
    ]))
    head = taskforce.server.ledger.head()
    state = tmp_path / "bob-state.db"

    bob = _member(taskforce, "bob", state)
    try:
        report = bob.sync()
        assert report.quarantined == 0
        assert report.key_events == N_KEY_EVENTS
        assert report.signals == 1
        assert report.verified == N_KEY_EVENTS + 1
        assert report.next_index == head  # the trailing invisible record is skipped, not re-read
        assert bob.store is not None and bob.store.cursor == head
        assert bob.bank is not None and bob.bank.get("alice", "s1") is not None
        assert bob.bank.get("alice", "hidden") is None

        again = bob.sync()  # same process: nothing new
        assert (again.verified, again.signals, again.next_index) == (0, 0, head)
    finally:
        bob.close()

    # a new process on the same state file starts at the persisted cursor
    bob = _member(taskforce, "bob", state)
    try:
        assert bob.store is not None and bob.store.cursor == head
        nothing = bob.sync()
        assert (nothing.verified, nothing.key_events, nothing.next_index) == (0, 0, head)

        # new entries: only they are delivered, and verified with the stored key directory
        (r,) = accepted(alice.publish([alice.signal("md5", MD5_C, groups=[GROUP_ALL], signal_id="s2")]))
        later = bob.sync()
        assert (later.verified, later.signals, later.quarantined) == (1, 1, 0)
        assert later.next_index == r.index + 1 == bob.store.cursor
        assert bob.bank is not None and bob.bank.get("alice", "s2") is not None
    finally:
        bob.close()


# -- retraction → queue ----------------------------------------------------------------------


def test_retraction_withdraws_pending_queue_items(taskforce: TaskForce, tmp_path: Path) -> None:
    img = _image(tmp_path / "upload.png", seed=7)
    h = hash_file(img)
    assert h.pdq is not None and (h.pdq_quality or 0) >= 50

    alice = taskforce.client("alice")
    accepted(alice.publish([
        alice.signal("md5", h.md5, groups=[GROUP_ALL], labels=["ncii"], signal_id="img-md5"),
        alice.signal("pdq", h.pdq, groups=[GROUP_ALL], labels=["ncii"], signal_id="img-pdq"),
    ]))
    bob = taskforce.client("bob", state=True, policy=ENQUEUE_ALL)
    assert bob.queue is not None
    assert bob.sync().signals == 2

    (fm,) = bob.match_files([img])
    assert {m.signal.signal_id for m, _ in fm.matches} == {"img-md5", "img-pdq"}
    # one file, two signals: ONE queue item with both matches as its evidence
    (item,) = bob.queue.items()
    assert item.state is State.PENDING and item.content_ref == str(img)
    assert {(e.signal_id, e.distance, e.withdrawn) for e in item.evidence} == {
        ("img-md5", 0, False), ("img-pdq", 0, False)}
    assert item.signal_id == item.evidence[0].signal_id  # the item's own signal comes first
    # a reviewer already picked it up; it is still open
    bob.queue.claim(item.id, "reviewer-1")

    accepted(alice.publish([alice.retraction("img-md5", "false_positive")]))
    report = bob.sync()
    assert (report.retractions, report.withdrawn) == (1, 0)  # the pdq match still stands
    still = bob.queue.get(item.id)
    assert still.state is State.IN_REVIEW and still.reviewer == "reviewer-1"
    assert still.live_signals() == [("alice", "img-pdq")]
    assert "evidence alice/img-md5 withdrawn: retracted: false_positive" in [
        e.reason for e in bob.queue.history(item.id)]
    # the retracted signal no longer matches
    (fm,) = bob.match_files([img])
    assert [m.signal.signal_id for m, _ in fm.matches] == ["img-pdq"]

    accepted(alice.publish([alice.retraction("img-pdq", "error")]))
    assert bob.sync().withdrawn == 1
    gone = bob.queue.get(item.id)
    assert gone.state is State.WITHDRAWN and gone.reason == "retracted: error" and gone.live_signals() == []
    # re-syncing and re-matching queue nothing new
    assert bob.sync().withdrawn == 0
    (fm,) = bob.match_files([img])
    assert fm.matches == []
    assert len(bob.queue.items()) == 1


def test_a_retraction_with_an_undeclared_reason_does_not_stop_members_syncing(
    taskforce: TaskForce, tmp_path: Path
) -> None:
    """The attack: a member publishes a retraction whose reason is a number the enum does
    not declare (entry enums are open; PROTOCOL.md §1 asks only for a non-zero reason).
    The exchange accepts it, so every member's sync must take it: a member that failed
    on it would fail on the same page at every retry, for good. The fuzz campaign found
    one that did."""
    img = _image(tmp_path / "upload.png", seed=11)
    alice = taskforce.client("alice")
    accepted(alice.publish([alice.signal("md5", hash_file(img).md5, groups=[GROUP_ALL], signal_id="odd-reason")]))
    bob = taskforce.client("bob", state=True, policy=ENQUEUE_ALL)
    assert bob.queue is not None
    bob.sync()
    bob.match_files([img])
    (item,) = bob.queue.items()
    odd = alice.retraction("odd-reason")
    odd.reason = 2**31 - 1  # type: ignore[assignment]
    accepted(alice.publish([odd, alice.signal("md5", MD5_C, groups=[GROUP_ALL], signal_id="after-it")]))
    report = bob.sync()
    assert (report.retractions, report.withdrawn, report.signals) == (1, 1, 1)  # and the page went on
    gone = bob.queue.get(item.id)
    assert gone.state is State.WITHDRAWN and gone.reason == "retracted: 2147483647"
    assert bob.match_files([img])[0].matches == []

def test_signal_arriving_after_hashing_is_queued_on_sync(taskforce: TaskForce, tmp_path: Path) -> None:
    img = _image(tmp_path / "old-upload.png", seed=11)
    bob = taskforce.client("bob", state=True, policy=ENQUEUE_ALL)
    assert bob.queue is not None
    (fm,) = bob.match_files([img])
    assert fm.matches == []

    alice = taskforce.client("alice")
    h = hash_file(img)
    accepted(alice.publish([alice.signal("md5", h.md5, groups=[GROUP_ALL], signal_id="late-md5")]))
    report = bob.sync()
    assert report.queued == 1
    (item,) = bob.queue.items()
    assert (item.signal_id, item.state) == ("late-md5", State.PENDING)
    assert bob.sync().queued == 0  # at least once delivery, exactly once queueing


# -- tampered records ------------------------------------------------------------------------


def _tamper(client: MemberClient, monkeypatch: pytest.MonkeyPatch, mutate: Callable[[bytes], bytes]) -> None:
    """Route the client's stream through ``mutate`` (a man in the middle / lying exchange)."""
    original = client.exchange.pages

    def pages(start: int, follow: bool, view: object) -> Iterator[xpb.SubscribeResponse]:
        # after the inclusion checks: the record is in the log but fails entry verification
        for page in original(start, follow, view):
            tampered = xpb.SubscribeResponse()
            tampered.CopyFrom(page)
            del tampered.records[:]
            tampered.records.extend(mutate(r) for r in page.records)
            yield tampered

    monkeypatch.setattr(client.exchange, "pages", pages)


def _flip_byte_of(needle: bytes) -> Callable[[bytes], bytes]:
    """Flip one byte inside ``needle`` wherever a record contains it."""

    def mutate(raw: bytes) -> bytes:
        at = raw.find(needle)
        if at < 0:
            return raw
        b = bytearray(raw)
        b[at + len(needle) // 2] ^= 0x01
        return bytes(b)

    return mutate


def test_tampered_record_is_quarantined_and_sync_goes_on(
    taskforce: TaskForce, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = taskforce.client("alice")
    receipts = accepted(alice.publish([
        alice.signal("md5", MD5_A, groups=[GROUP_ALL], signal_id="before"),
        alice.signal("md5", MD5_B, groups=[GROUP_ALL], signal_id="tampered"),
        alice.signal("md5", MD5_C, groups=[GROUP_ALL], signal_id="after"),
    ]))
    bob = taskforce.client("bob", state=True)
    assert bob.store is not None and bob.bank is not None
    # flip one byte of the signed value inside the stored record bytes
    _tamper(bob, monkeypatch, _flip_byte_of(MD5_B.encode()))

    report = bob.sync()
    assert report.quarantined == 1
    assert report.verified == N_KEY_EVENTS + 2
    assert report.signals == 2
    (reason,) = report.quarantine_reasons
    assert f"entry {receipts[1].index}" in reason and "forged-signature" in reason
    assert bob.store.quarantined() == [(receipts[1].index, reason)]
    assert bob.bank.get("alice", "tampered") is None
    assert bob.bank.get("alice", "before") is not None and bob.bank.get("alice", "after") is not None
    assert bob.store.cursor == taskforce.server.ledger.head()

    # the stream after the bad record is unaffected
    (r,) = accepted(alice.publish([alice.signal("domain", "example.org", groups=[GROUP_ALL], signal_id="next")]))
    later = bob.sync()
    assert (later.verified, later.quarantined, later.next_index) == (1, 0, r.index + 1)


def test_each_tampered_record_is_quarantined_under_its_own_index(
    taskforce: TaskForce, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two bad records in a row, after a record bob may not see, keep separate evidence."""
    alice = taskforce.client("alice")
    receipts = accepted(alice.publish([
        alice.signal("md5", MD5_C, groups=[GROUP_NCII], signal_id="invisible-to-bob"),
        alice.signal("md5", MD5_A, groups=[GROUP_ALL], signal_id="bad-1"),
        alice.signal("md5", MD5_B, groups=[GROUP_ALL], signal_id="bad-2"),
        alice.signal("domain", "example.org", groups=[GROUP_ALL], signal_id="good"),
    ]))
    bob = taskforce.client("bob", state=True)
    assert bob.store is not None and bob.bank is not None

    def corrupt_signatures(raw: bytes) -> bytes:
        rec = Record.decode(raw)
        if rec.index not in (receipts[1].index, receipts[2].index):
            return raw
        env = envelope_pb2.Envelope.FromString(rec.envelope)
        sig = bytearray(env.signatures[0].sig)
        sig[0] ^= 0x80
        env.signatures[0].sig = bytes(sig)
        from exchange.core.records import encode_record

        return encode_record(rec.index, rec.accepted_at_ms, env.SerializeToString(deterministic=True))

    _tamper(bob, monkeypatch, corrupt_signatures)
    report = bob.sync()
    assert report.quarantined == 2
    assert [idx for idx, _ in bob.store.quarantined()] == [receipts[1].index, receipts[2].index]
    assert all("forged-signature" in reason for _, reason in bob.store.quarantined())
    assert bob.bank.get("alice", "good") is not None
    assert bob.store.cursor == taskforce.server.ledger.head()
