"""The one acceptance rule: the exchange's admission and the SDK's verifier agree.

Each attack is checked on the stateless half directly (what admission runs) and on
the record level (what the member SDK and auditors run, via EntryVerifier).
"""

from __future__ import annotations

import pytest

from exchange.core.acceptance import check_signed, find_key
from exchange.core.entries import Entry, encode_entry, ms_to_timestamp
from exchange.core.errors import ForgedSignature, TrustwireError, UnknownKey, UntrustedEntry, WrongMember
from exchange.core.keydir import KeyDirectory
from exchange.core.keys import Signer
from exchange.core.dsse import Envelope, sign_envelope
from exchange.core.records import encode_record
from exchange.pb.trustwire.v1 import envelope_pb2
from exchange.core.verify import EntryVerifier
from exchange.pb.trustwire.v1 import entries_pb2 as pb
from tests.conftest import insecure_signer

OPERATOR_KEY = insecure_signer("operator")
ALICE, BOB = insecure_signer("alice"), insecure_signer("bob")
T = 1_700_000_000_000
GROUP = "all-members"
KEYS = {ALICE.keyid: ("alice", ALICE.public_key), BOB.keyid: ("bob", BOB.public_key)}


def _signal(member: str) -> pb.Signal:
    return pb.Signal(
        signal_id="s1", member_id=member, type="md5", value="d41d8cd98f00b204e9800998ecf8427e",
        sharing=pb.Sharing(groups=[GROUP], tlp=pb.TLP_AMBER), confidence=50, severity=pb.SEVERITY_MEDIUM,
        created_at=ms_to_timestamp(T),
    )


def _signed(entry: Entry, signer: Signer) -> bytes:
    return sign_envelope(*encode_entry(entry), signer).raw


def _sdk_cause(envelope: bytes) -> str:
    """The cause the member SDK's verifier reports for this envelope at index 0."""
    directory = KeyDirectory()
    t = ms_to_timestamp(T)
    events = [pb.KeyEvent(created_at=t, group_created=pb.GroupCreated(group_id=GROUP, display_name="All", max_tlp=pb.TLP_RED))]
    for member, signer in [("alice", ALICE), ("bob", BOB)]:
        events.append(pb.KeyEvent(created_at=t, member_enrolled=pb.MemberEnrolled(
            member_id=member, display_name=member, groups=[GROUP], role=pb.ROLE_MEMBER)))
        events.append(pb.KeyEvent(created_at=t, key_added=pb.KeyAdded(
            member_id=member, public_key=signer.public_key, valid_from=t)))
    for index, event in enumerate(events):
        directory.apply(event, index)
    verifier = EntryVerifier(OPERATOR_KEY.public_key, directory)
    verifier.last_index = len(events) - 1
    with pytest.raises(UntrustedEntry) as info:
        verifier.verify(encode_record(len(events), T + 1, envelope))
    return info.value.cause


def test_accepts_a_member_entry_signed_by_its_own_key() -> None:
    signed = check_signed(_signed(_signal("alice"), ALICE), OPERATOR_KEY.public_key, KEYS, principal="alice")
    assert signed.publisher == "alice" and signed.envelope.keyid == ALICE.keyid


@pytest.mark.parametrize(
    ("attack", "envelope", "error"),
    [
        ("key_of_another_member", lambda: _signed(_signal("alice"), BOB), WrongMember),
        ("operator_signs_member_entry", lambda: _signed(_signal("alice"), OPERATOR_KEY), WrongMember),
        ("unknown_key", lambda: _signed(_signal("alice"), insecure_signer("mallory")), UnknownKey),
        ("swapped_signature", lambda: _swap_signature(), ForgedSignature),
    ],
)
def test_attack_is_refused_by_admission_and_by_the_sdk(
    attack: str, envelope: object, error: type[TrustwireError]
) -> None:
    raw = envelope()  # type: ignore[operator]
    with pytest.raises(error):
        check_signed(raw, OPERATOR_KEY.public_key, KEYS)
    assert _sdk_cause(raw) == error.reason


def test_caller_impersonating_the_publisher_is_refused_at_admission() -> None:
    with pytest.raises(WrongMember, match="caller bob cannot publish"):
        check_signed(_signed(_signal("alice"), ALICE), OPERATOR_KEY.public_key, KEYS, principal="bob")


def test_find_key_prefers_the_pinned_operator_key() -> None:
    assert find_key(OPERATOR_KEY.keyid, OPERATOR_KEY.public_key, {}) == ("operator", OPERATOR_KEY.public_key)
    with pytest.raises(UnknownKey):
        find_key(ALICE.keyid, OPERATOR_KEY.public_key, {})


def _swap_signature() -> bytes:
    """Alice's envelope carrying the signature of a different payload."""
    good = Envelope.decode(_signed(_signal("alice"), ALICE))
    other = _signal("alice")
    other.value = "0cc175b9c0f1b6a831c399e269772661"
    forged = Envelope.decode(_signed(other, ALICE))
    msg = envelope_pb2.Envelope()
    msg.ParseFromString(good.raw)
    msg.signatures[0].sig = envelope_pb2.Envelope.FromString(forged.raw).signatures[0].sig
    return msg.SerializeToString(deterministic=True)
