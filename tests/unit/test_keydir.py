"""The key directory (exchange.core.keydir): a projection of KeyEvents in ledger order."""

from __future__ import annotations

import copy
import hashlib
import pytest

from exchange.core.entries import GroupId, MemberId, ms_to_timestamp
from exchange.core.errors import (
    GroupNotAllowed,
    InvalidKeyEvent,
    KeyNotValid,
    MemberSuspended,
    TlpNotAllowed,
    UnknownKey,
    WrongMember,
)
from exchange.core.keydir import KeyDirectory, KeyInfo
from exchange.core.keys import KeyId, Signer
from exchange.pb.trustwire.v1 import entries_pb2 as pb

T = 1_700_000_000_000
VALID_FROM = T + 1000
ALICE = Signer.from_seed(hashlib.sha256(b"trustwire-test-INSECURE:alice").digest())
ALICE2 = Signer.from_seed(hashlib.sha256(b"trustwire-test-INSECURE:alice-2").digest())
BOB = Signer.from_seed(hashlib.sha256(b"trustwire-test-INSECURE:bob").digest())
STRANGER = Signer.from_seed(hashlib.sha256(b"trustwire-test-INSECURE:stranger").digest())
ALL, NCII, OLD = GroupId("all-members"), GroupId("ncii-response"), GroupId("old-group")


def ev(**event: object) -> pb.KeyEvent:
    return pb.KeyEvent(created_at=ms_to_timestamp(T), **event)  # type: ignore[arg-type]


def create_group(gid: str, tlp: int = pb.TLP_AMBER, name: str = "A group") -> pb.KeyEvent:
    return ev(group_created=pb.GroupCreated(group_id=gid, display_name=name, max_tlp=tlp))


def enrol(mid: str, groups: list[str], role: int = pb.ROLE_MEMBER) -> pb.KeyEvent:
    return ev(member_enrolled=pb.MemberEnrolled(member_id=mid, display_name=mid.title(), groups=groups, role=role))


def add_key(mid: str, public_key: bytes, valid_from_ms: int = VALID_FROM) -> pb.KeyEvent:
    return ev(key_added=pb.KeyAdded(member_id=mid, public_key=public_key, valid_from=ms_to_timestamp(valid_from_ms)))


def revoke(
    mid: str, keyid: str, compromised: bool = False, since: int | None = None, at_ms: int = T + 5000
) -> pb.KeyEvent:
    revoked = pb.KeyRevoked(member_id=mid, keyid=keyid, revoked_at=ms_to_timestamp(at_ms), compromised=compromised)
    if since is not None:  # compromised_since_index is presence-aware
        revoked.compromised_since_index = since
    return ev(key_revoked=revoked)


def suspend(mid: str) -> pb.KeyEvent:
    return ev(member_suspended=pb.MemberSuspended(member_id=mid))


def reinstate(mid: str) -> pb.KeyEvent:
    return ev(member_reinstated=pb.MemberReinstated(member_id=mid))


def groups_set(mid: str, groups: list[str]) -> pb.KeyEvent:
    return ev(groups_set=pb.GroupsSet(member_id=mid, groups=groups))


def retire(gid: str) -> pb.KeyEvent:
    return ev(group_retired=pb.GroupRetired(group_id=gid))


SETUP = [
    create_group(ALL, pb.TLP_AMBER, "Everyone"),  # 0
    create_group(NCII, pb.TLP_AMBER_STRICT, "NCII response"),  # 1
    create_group(OLD, pb.TLP_GREEN, "Old"),  # 2
    enrol("alice", [ALL, NCII]),  # 3
    enrol("bob", [ALL]),  # 4
    add_key("alice", ALICE.public_key),  # 5
    add_key("bob", BOB.public_key),  # 6
]


def build(extra: list[pb.KeyEvent] | None = None) -> KeyDirectory:
    d = KeyDirectory()
    for i, e in enumerate(SETUP + (extra or [])):
        d.apply(e, i)
    return d


def snapshot(d: KeyDirectory) -> tuple[object, ...]:
    return (dict(d.keys), dict(d.members), dict(d.groups), d.last_index)


def sharing(groups: list[str], tlp: int = pb.TLP_AMBER) -> pb.Sharing:
    return pb.Sharing(groups=groups, tlp=tlp)


# -- projection --------------------------------------------------------------------------


def test_projection_of_the_setup() -> None:
    d = build()
    assert d.last_index == 6
    assert set(d.groups) == {ALL, NCII, OLD}
    g = d.groups[NCII]
    assert (g.display_name, g.max_tlp, g.created_index, g.retired) == ("NCII response", pb.TLP_AMBER_STRICT, 1, False)
    alice = d.members[MemberId("alice")]
    assert (alice.groups, alice.enrolled_index, alice.role, alice.suspended) == (
        frozenset({ALL, NCII}), 3, pb.ROLE_MEMBER, False
    )
    assert d.groups_of("bob") == frozenset({ALL})
    assert d.groups_of("nobody") == frozenset()
    k = d.keys[ALICE.keyid]
    assert (k.member_id, k.public_key, k.valid_from_ms, k.added_index) == ("alice", ALICE.public_key, VALID_FROM, 5)
    assert (k.revoked_index, k.revoked_at_ms, k.compromised_since_index) == (None, None, None)
    assert d.keys[BOB.keyid].added_index == 6


def test_second_key_for_a_member() -> None:
    d = build([add_key("alice", ALICE2.public_key, VALID_FROM + 10)])
    assert {k.keyid for k in d.keys.values() if k.member_id == "alice"} == {ALICE.keyid, ALICE2.keyid}
    assert d.keys[ALICE2.keyid].added_index == 7


def test_groups_set_replaces_groups() -> None:
    d = build([groups_set("bob", [NCII, OLD])])
    assert d.groups_of("bob") == frozenset({NCII, OLD})
    d.apply(groups_set("bob", []), 8)
    assert d.groups_of("bob") == frozenset()


def test_suspend_and_reinstate() -> None:
    d = build([suspend("bob")])
    assert d.members[MemberId("bob")].suspended
    d.apply(reinstate("bob"), 8)
    assert not d.members[MemberId("bob")].suspended


def test_revoke() -> None:
    d = build([revoke("bob", BOB.keyid, at_ms=T + 7777)])
    k = d.keys[BOB.keyid]
    assert (k.revoked_index, k.revoked_at_ms, k.compromised_since_index) == (7, T + 7777, None)


def test_revoke_compromised() -> None:
    d = build([revoke("bob", BOB.keyid, compromised=True, since=6)])
    assert d.keys[BOB.keyid].compromised_since_index == 6
    assert d.keys[BOB.keyid].revoked_index == 7


def test_compromised_since_is_refused_unless_compromised() -> None:
    d = build()
    with pytest.raises(InvalidKeyEvent, match="only for compromised keys"):
        d.apply(revoke("bob", BOB.keyid, compromised=False, since=3), 7)
    assert d.keys[BOB.keyid].revoked_index is None


def test_a_compromised_key_needs_a_since_point() -> None:
    d = build()
    with pytest.raises(InvalidKeyEvent, match="needs compromised_since"):
        d.apply(revoke("bob", BOB.keyid, compromised=True), 7)


def test_compromised_since_index_zero_means_from_the_first_entry() -> None:
    """An explicit 0 is "from index 0" (presence-aware field), not "unset"."""
    event = revoke("bob", BOB.keyid, compromised=True, since=0)
    assert event.key_revoked.HasField("compromised_since_index")
    d = build([event])
    k = d.keys[BOB.keyid]
    assert k.compromised_since_index == 0 and k.tainted(0, VALID_FROM) and k.tainted(6, VALID_FROM)


def test_retired_key_stays_valid_until_revoked_at_then_not() -> None:
    """A rotation's overlap: the old key signs until revoked_at, even after the event."""
    d = build([revoke("alice", ALICE.keyid, at_ms=VALID_FROM + 10_000)])
    d.signing_key(ALICE.keyid, MemberId("alice"), 9, VALID_FROM + 9_999)
    with pytest.raises(KeyNotValid):
        d.signing_key(ALICE.keyid, MemberId("alice"), 9, VALID_FROM + 10_000)


def test_compromised_since_time_taints_by_acceptance_time() -> None:
    event = revoke("alice", ALICE.keyid, compromised=True)
    event.key_revoked.compromised_since.CopyFrom(ms_to_timestamp(VALID_FROM + 500))
    d = build([event])
    k = d.keys[ALICE.keyid]
    assert not k.tainted(6, VALID_FROM + 499) and k.tainted(6, VALID_FROM + 500)


def test_compromised_since_may_equal_the_revocation_index() -> None:
    d = build([revoke("bob", BOB.keyid, compromised=True, since=7)])
    assert d.keys[BOB.keyid].compromised_since_index == 7


# -- monotone tightening: one test per transition ------------------------------------------


def test_rotation_then_compromise_tightens_the_key() -> None:
    """compromise after rotation: a thief may not keep publishing for the rest of the overlap."""
    d = build([revoke("alice", ALICE.keyid, at_ms=VALID_FROM + 10_000)])  # 7: rotation, overlap open
    d.signing_key(ALICE.keyid, MemberId("alice"), 8, VALID_FROM + 100)
    d.apply(revoke("alice", ALICE.keyid, compromised=True, since=8), 9)
    k = d.keys[ALICE.keyid]
    assert (k.revoked_index, k.end_index, k.compromised, k.compromised_index) == (7, 9, True, 9)
    assert k.tainted(8, VALID_FROM + 100) and not k.tainted(7, VALID_FROM + 100)
    with pytest.raises(KeyNotValid):
        d.signing_key(ALICE.keyid, MemberId("alice"), 10, VALID_FROM + 200)


def test_revoked_at_may_move_earlier() -> None:
    d = build([revoke("alice", ALICE.keyid, at_ms=VALID_FROM + 10_000)])
    d.apply(revoke("alice", ALICE.keyid, at_ms=VALID_FROM + 2_000), 8)
    assert d.keys[ALICE.keyid].revoked_at_ms == VALID_FROM + 2_000
    with pytest.raises(KeyNotValid):
        d.signing_key(ALICE.keyid, MemberId("alice"), 9, VALID_FROM + 2_000)


def test_loosening_revoked_at_is_refused() -> None:
    d = build([revoke("alice", ALICE.keyid, at_ms=VALID_FROM + 2_000)])
    before = snapshot(d)
    for later in (VALID_FROM + 2_000, VALID_FROM + 10_000):
        with pytest.raises(InvalidKeyEvent, match="only tighten"):
            d.apply(revoke("alice", ALICE.keyid, at_ms=later), 8)
    assert snapshot(d) == before


def test_immediate_revocation_closes_an_open_overlap() -> None:
    d = build([revoke("alice", ALICE.keyid, at_ms=VALID_FROM + 10_000)])
    event = revoke("alice", ALICE.keyid)
    event.key_revoked.ClearField("revoked_at")
    d.apply(event, 8)
    assert d.keys[ALICE.keyid].end_index == 8
    d.signing_key(ALICE.keyid, MemberId("alice"), 7, VALID_FROM + 100)
    with pytest.raises(KeyNotValid):
        d.signing_key(ALICE.keyid, MemberId("alice"), 8, VALID_FROM + 100)


def test_compromise_is_never_lifted_by_a_plain_revocation() -> None:
    d = build([revoke("bob", BOB.keyid, compromised=True, since=6)])
    event = revoke("bob", BOB.keyid)
    event.key_revoked.ClearField("revoked_at")
    before = snapshot(d)
    with pytest.raises(InvalidKeyEvent, match="only tighten"):
        d.apply(event, 8)
    assert snapshot(d) == before
    d.apply(revoke("bob", BOB.keyid, at_ms=T + 99_999), 8)  # a time bound on top: still compromised
    k = d.keys[BOB.keyid]
    assert (k.compromised, k.compromised_since_index, k.end_index) == (True, 6, 7)


def test_compromised_since_may_move_earlier_not_later() -> None:
    d = build([enrol("carol", [ALL]), add_key("carol", STRANGER.public_key)])  # 7, 8
    for i in range(9, 12):
        d.last_index = i
    d.apply(revoke("carol", STRANGER.keyid, compromised=True, since=11), 12)
    with pytest.raises(InvalidKeyEvent, match="only tighten"):
        d.apply(revoke("carol", STRANGER.keyid, compromised=True, since=12), 13)
    d.apply(revoke("carol", STRANGER.keyid, compromised=True, since=9), 13)
    k = d.keys[STRANGER.keyid]
    assert (k.compromised_since_index, k.compromised_index, k.end_index) == (9, 12, 12)


def test_compromised_since_time_adds_to_an_index_bound() -> None:
    d = build([revoke("bob", BOB.keyid, compromised=True, since=7)])
    event = revoke("bob", BOB.keyid, compromised=True)
    event.key_revoked.compromised_since.CopyFrom(ms_to_timestamp(VALID_FROM + 500))
    d.apply(event, 8)
    k = d.keys[BOB.keyid]
    assert k.tainted(6, VALID_FROM + 500) and not k.tainted(6, VALID_FROM + 499)


def test_retire_group() -> None:
    d = build([retire(OLD)])
    assert d.groups[OLD].retired


def test_indices_may_have_gaps_but_must_increase() -> None:
    d = build()
    d.apply(suspend("bob"), 100)  # other entries sit between key events
    assert d.last_index == 100


def test_operator_may_enrol_auditors_and_witnesses() -> None:
    d = build([enrol("auditor-1", [], pb.ROLE_AUDITOR), enrol("witness-1", [], pb.ROLE_WITNESS)])
    assert d.members[MemberId("auditor-1")].role == pb.ROLE_AUDITOR
    assert d.members[MemberId("witness-1")].role == pb.ROLE_WITNESS


# -- contradictions ----------------------------------------------------------------------

CONTRADICTIONS: list[tuple[str, list[pb.KeyEvent], pb.KeyEvent]] = [
    ("enrol-existing-member", [], enrol("alice", [ALL])),
    ("enrol-operator", [], enrol("operator", [ALL])),
    ("enrol-bad-member-id", [], enrol("Bad Id", [ALL])),
    ("enrol-without-role", [], enrol("carol", [ALL], pb.ROLE_UNSPECIFIED)),
    ("enrol-unknown-role", [], enrol("carol", [ALL], 42)),
    ("enrol-into-unknown-group", [], enrol("carol", [ALL, "no-such-group"])),
    ("enrol-into-retired-group", [retire(OLD)], enrol("carol", [OLD])),
    ("add-key-unknown-member", [], add_key("carol", STRANGER.public_key)),
    ("add-key-twice", [], add_key("alice", ALICE.public_key)),
    ("add-key-held-by-another-member", [], add_key("bob", ALICE.public_key)),
    ("add-key-small-order", [], add_key("alice", bytes(32))),
    ("add-key-identity", [], add_key("alice", b"\x01" + bytes(31))),
    ("add-key-wrong-length", [], add_key("alice", STRANGER.public_key[:31])),
    ("add-key-empty", [], add_key("alice", b"")),
    ("revoke-unknown-key", [], revoke("alice", STRANGER.keyid)),
    ("revoke-another-members-key", [], revoke("bob", ALICE.keyid)),
    ("revoke-twice", [revoke("bob", BOB.keyid)], revoke("bob", BOB.keyid)),
    ("compromised-since-after-revocation", [], revoke("bob", BOB.keyid, compromised=True, since=8)),
    ("suspend-unknown-member", [], suspend("carol")),
    ("suspend-twice", [suspend("bob")], suspend("bob")),
    ("reinstate-active-member", [], reinstate("bob")),
    ("groups-set-unknown-member", [], groups_set("carol", [ALL])),
    ("groups-set-unknown-group", [], groups_set("bob", [ALL, "no-such-group"])),
    ("groups-set-retired-group", [retire(OLD)], groups_set("bob", [ALL, OLD])),
    ("create-existing-group", [], create_group(ALL)),
    ("create-bad-group-id", [], create_group("Bad Group")),
    ("create-group-without-tlp", [], create_group("new-group", pb.TLP_UNSPECIFIED)),
    ("create-group-unknown-tlp", [], create_group("new-group", 42)),
    ("retire-unknown-group", [], retire("no-such-group")),
    ("no-event", [], pb.KeyEvent(created_at=ms_to_timestamp(T))),
]


@pytest.mark.parametrize(("before", "event"), [(b, e) for _, b, e in CONTRADICTIONS], ids=[n for n, _, _ in CONTRADICTIONS])
def test_contradictory_event_raises_and_changes_nothing(before: list[pb.KeyEvent], event: pb.KeyEvent) -> None:
    d = build(before)
    state = copy.deepcopy(snapshot(d))
    with pytest.raises(InvalidKeyEvent):
        d.check(event)
    assert snapshot(d) == state
    with pytest.raises(InvalidKeyEvent):
        d.apply(event, d.last_index + 1)
    assert snapshot(d) == state
    # and the directory still works afterwards
    d.apply(create_group("after-failure"), d.last_index + 1)


@pytest.mark.parametrize("index", [6, 5, 0, -1])
def test_events_must_come_after_the_last_index(index: int) -> None:
    d = build()
    state = snapshot(d)
    with pytest.raises(InvalidKeyEvent):
        d.apply(create_group("late-group"), index)
    assert snapshot(d) == state


def test_check_does_not_apply() -> None:
    d = build()
    state = snapshot(d)
    d.check(create_group("new-group"))
    assert snapshot(d) == state
    assert GroupId("new-group") not in d.groups


def test_clone_is_independent() -> None:
    d = build()
    c = d.clone()
    c.apply(suspend("bob"), 7)
    c.apply(revoke("alice", ALICE.keyid), 8)
    assert not d.members[MemberId("bob")].suspended
    assert d.keys[ALICE.keyid].revoked_index is None
    assert d.last_index == 6 and c.last_index == 8


# -- KeyInfo.usable_at -------------------------------------------------------------------


def key_info(**changes: object) -> KeyInfo:
    base: dict[str, object] = dict(
        keyid=KeyId("ab" * 32), member_id=MemberId("alice"), public_key=b"k" * 32, valid_from_ms=1000, added_index=5
    )
    base.update(changes)
    return KeyInfo(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "index", "at_ms", "usable"),
    [
        ({}, 5, 5000, False),  # the index of the key_added event itself
        ({}, 4, 5000, False),  # before it was added
        ({}, 6, 5000, True),
        ({}, 10**9, 5000, True),
        ({}, 6, 999, False),  # before valid_from
        ({}, 6, 1000, True),
        ({"revoked_index": 10, "end_index": 10}, 9, 5000, True),  # revoked from the event on (no revoked_at)
        ({"revoked_index": 10, "end_index": 10}, 10, 5000, False),
        ({"revoked_index": 10, "end_index": 10}, 11, 5000, False),
        ({"revoked_index": 10, "revoked_at_ms": 6000}, 11, 5999, True),  # rotation overlap
        ({"revoked_index": 10, "revoked_at_ms": 6000}, 11, 6000, False),
        ({"revoked_index": 10, "end_index": 10, "compromised": True, "compromised_since_index": 8}, 7, 5000, True),
        ({"revoked_index": 10, "end_index": 10, "compromised": True, "compromised_since_index": 8}, 8, 5000, False),
        ({"revoked_index": 10, "end_index": 10, "compromised": True, "compromised_since_index": 8}, 9, 5000, False),
        ({"revoked_index": 10, "end_index": 10, "compromised": True, "compromised_since_index": 8}, 11, 5000, False),
        ({"revoked_index": 10, "end_index": 10, "compromised": True, "compromised_since_index": 0}, 6, 5000, False),  # stolen from the start
        ({"revoked_index": 10, "end_index": 10, "compromised": True, "compromised_since_index": 8}, 7, 999, False),
    ],
)
def test_usable_at(changes: dict[str, object], index: int, at_ms: int, usable: bool) -> None:
    assert key_info(**changes).usable_at(index, at_ms) is usable


# -- signing_key -------------------------------------------------------------------------


def test_signing_key_accepts_a_valid_key() -> None:
    d = build()
    k = d.signing_key(ALICE.keyid, MemberId("alice"), 7, VALID_FROM)
    assert k.keyid == ALICE.keyid and k.public_key == ALICE.public_key


@pytest.mark.parametrize(
    ("extra", "keyid", "publisher", "index", "at_ms", "error"),
    [
        ([], STRANGER.keyid, "alice", 7, VALID_FROM, UnknownKey),
        ([], ALICE.keyid, "bob", 7, VALID_FROM, WrongMember),
        ([], ALICE.keyid, "operator", 7, VALID_FROM, WrongMember),
        ([], ALICE.keyid, "alice", 5, VALID_FROM, KeyNotValid),  # at the key_added index
        ([], ALICE.keyid, "alice", 3, VALID_FROM, KeyNotValid),  # before it
        ([], ALICE.keyid, "alice", 7, VALID_FROM - 1, KeyNotValid),  # before valid_from
        ([revoke("alice", ALICE.keyid, at_ms=VALID_FROM)], ALICE.keyid, "alice", 8, VALID_FROM, KeyNotValid),
        ([revoke("alice", ALICE.keyid, compromised=True, since=6)], ALICE.keyid, "alice", 6, VALID_FROM, KeyNotValid),
        ([suspend("alice")], ALICE.keyid, "alice", 8, VALID_FROM, MemberSuspended),
    ],
)
def test_signing_key_refusals(
    extra: list[pb.KeyEvent], keyid: KeyId, publisher: str, index: int, at_ms: int, error: type[Exception]
) -> None:
    d = build(extra)
    with pytest.raises(error):
        d.signing_key(keyid, MemberId(publisher), index, at_ms)


def test_signing_key_before_revocation_and_compromise() -> None:
    d = build([revoke("alice", ALICE.keyid)])  # revoked at 7
    d.signing_key(ALICE.keyid, MemberId("alice"), 6, VALID_FROM)
    d.signing_key(ALICE.keyid, MemberId("alice"), 7, VALID_FROM)
    d2 = build([revoke("alice", ALICE.keyid, compromised=True, since=6)])
    with pytest.raises(KeyNotValid):
        d2.signing_key(ALICE.keyid, MemberId("alice"), 6, VALID_FROM)
    with pytest.raises(KeyNotValid):
        d2.signing_key(ALICE.keyid, MemberId("alice"), 7, VALID_FROM)


def test_reinstated_member_may_sign_again() -> None:
    d = build([suspend("alice"), reinstate("alice")])
    d.signing_key(ALICE.keyid, MemberId("alice"), 9, VALID_FROM)


def test_other_key_still_works_after_one_is_revoked() -> None:
    d = build([add_key("alice", ALICE2.public_key), revoke("alice", ALICE.keyid, at_ms=VALID_FROM)])
    d.signing_key(ALICE2.keyid, MemberId("alice"), 9, VALID_FROM)
    with pytest.raises(KeyNotValid):
        d.signing_key(ALICE.keyid, MemberId("alice"), 9, VALID_FROM)


# -- check_sharing -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("publisher", "share"),
    [
        ("alice", sharing([ALL])),
        ("alice", sharing([ALL, NCII])),
        ("alice", sharing([NCII], pb.TLP_AMBER_STRICT)),
        ("alice", sharing([ALL], pb.TLP_CLEAR)),
        ("bob", sharing([ALL], pb.TLP_GREEN)),
    ],
)
def test_sharing_allowed(publisher: str, share: pb.Sharing) -> None:
    build().check_sharing(MemberId(publisher), share)


@pytest.mark.parametrize(
    ("extra", "publisher", "share", "error"),
    [
        ([], "bob", sharing([NCII]), GroupNotAllowed),  # not a member of the group
        ([], "bob", sharing([ALL, NCII]), GroupNotAllowed),  # one bad group spoils the lot
        ([], "alice", sharing(["no-such-group"]), GroupNotAllowed),
        ([], "carol", sharing([ALL]), GroupNotAllowed),  # not enrolled
        ([retire(ALL)], "alice", sharing([ALL]), GroupNotAllowed),
        ([groups_set("alice", [NCII])], "alice", sharing([ALL]), GroupNotAllowed),
        ([], "alice", sharing([ALL], pb.TLP_AMBER_STRICT), TlpNotAllowed),
        ([], "alice", sharing([ALL], pb.TLP_RED), TlpNotAllowed),
        ([], "alice", sharing([NCII], pb.TLP_RED), TlpNotAllowed),
        ([], "alice", sharing([NCII, ALL], pb.TLP_AMBER_STRICT), TlpNotAllowed),  # allowed in one, not the other
        ([], "alice", sharing([OLD], pb.TLP_CLEAR), GroupNotAllowed),  # alice is not in OLD
    ],
)
def test_sharing_refused(extra: list[pb.KeyEvent], publisher: str, share: pb.Sharing, error: type[Exception]) -> None:
    d = build(extra)
    with pytest.raises(error):
        d.check_sharing(MemberId(publisher), share)


def test_sharing_follows_groups_set() -> None:
    d = build([groups_set("bob", [ALL, NCII])])
    d.check_sharing(MemberId("bob"), sharing([NCII], pb.TLP_AMBER_STRICT))
