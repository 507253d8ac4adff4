"""Values that cannot mass-match or evade (issue 12), one test per attack, against a
real exchange on 127.0.0.1:0 with real SQLite files: the publish is refused with
INVALID_ARGUMENT and a ``tw-reason`` and the ledger is unchanged; spellings of one URL
are one value; an entry written under value rule 1 keeps verifying (PROTOCOL.md §5)."""

from __future__ import annotations

import hashlib
import time

import pytest

from exchange.core.dsse import sign_envelope
from exchange.core.entries import encode_entry, ms_to_timestamp
from exchange.core.errors import BroadValue, NonNormalizedValue
from exchange.core.records import Receipt
from exchange.core.verify import EntryVerifier
from exchange.core.keydir import KeyDirectory
from exchange.pb.trustwire.v1 import entries_pb2 as pb
from exchange.server.ledger import Submission
from tests.conftest import GROUP_ALL, TaskForce, accepted
from tests.grpc.conftest import Stubs, assert_entry_error, publish_raw, sign


def _signal(member: str, type_: str, value: str, signal_id: str, rule: int = 2) -> pb.Signal:
    """A signal built by hand (no client-side normalization), naming value rule ``rule``."""
    return pb.Signal(
        signal_id=signal_id, member_id=member, type=type_, value=value, confidence=50,
        severity=pb.SEVERITY_MEDIUM, sharing=pb.Sharing(groups=[GROUP_ALL], tlp=pb.TLP_AMBER),
        created_at=ms_to_timestamp(int(time.time() * 1000)), value_rule=rule,
    )


def _refused(tf: TaskForce, stubs: Stubs, entries: list[pb.Signal], reason: str, message: str) -> None:
    before = tf.ledger_snapshot()
    envs = [sign(e, tf.signers["bob"]) for e in entries]
    for result in publish_raw(stubs.member("bob"), envs):
        assert_entry_error(result, "INVALID_ARGUMENT", reason, message)
    assert tf.ledger_snapshot() == before


# -- text ----------------------------------------------------------------------------------


@pytest.mark.parametrize("rule", [2, 0], ids=["rule-2", "rule-1"])
def test_one_char_text_mass_match(taskforce: TaskForce, stubs: Stubs, rule: int) -> None:
    """A one-character phrase would match nearly every text: refused whatever rule it names."""
    entries = [_signal("bob", "text", v, f"short-{i}", rule) for i, v in enumerate(["a", "ab c", "!!!!!"])]
    _refused(taskforce, stubs, entries, "broad-value", "text needs at least 4 letters or digits")
    bob = taskforce.client("bob")
    with pytest.raises(BroadValue):
        bob.signal("text", "A", groups=[GROUP_ALL])  # the SDK refuses before signing


def test_text_matches_whole_words_only(taskforce: TaskForce) -> None:
    alice, bob = taskforce.client("alice"), taskforce.client("bob", state=True)
    accepted(alice.publish([alice.signal("text", "Cheap Followers", groups=[GROUP_ALL], signal_id="t1")]))
    bob.sync()
    assert bob.bank is not None
    hits = lambda content: [m.signal.signal_id for m in bob.bank.match_value("text", content, "ref")]  # noqa: E731
    assert hits("Buy CHEAP followers, now!") == ["t1"]
    assert hits("cheapfollowers") == [] and hits("cheap fake followers") == [] and hits("cheap followership") == []


# -- domains -------------------------------------------------------------------------------


@pytest.mark.parametrize("rule", [2, 0], ids=["rule-2", "rule-1"])
def test_co_uk_domain_mass_match(taskforce: TaskForce, stubs: Stubs, rule: int) -> None:
    """A public suffix alone (ICANN or private section) would match every domain under it."""
    entries = [_signal("bob", "domain", v, f"psl-{i}", rule) for i, v in enumerate(["co.uk", "com", "github.io"])]
    _refused(taskforce, stubs, entries, "broad-value", "is a public suffix")


def test_domain_suffix_matching_stops_at_the_registrable_domain(taskforce: TaskForce) -> None:
    alice, bob = taskforce.client("alice"), taskforce.client("bob", state=True)
    accepted(alice.publish([alice.signal("domain", "Example.co.uk", groups=[GROUP_ALL], signal_id="d1")]))
    bob.sync()
    assert bob.bank is not None
    hits = lambda t, content: [m.signal.signal_id for m in bob.bank.match_value(t, content, "ref")]  # noqa: E731
    assert hits("domain", "a.b.example.co.uk") == ["d1"]
    assert hits("url", "https://cdn.Example.co.uk/x") == ["d1"]
    assert hits("domain", "other.co.uk") == [] and hits("domain", "co.uk") == []


# -- URL spellings ---------------------------------------------------------------------------

SPELLINGS = [
    "http://user@192.168.1.1/", "http://user:pw@192.168.1.1/", "http://3232235777/", "http://0xC0A80101/",
    "http://0300.0250.01.01/", "http://192.168.257/", "http://192.168.1.1./#frag",
]


@pytest.mark.parametrize("value", ["http://user@example.com/", "http://user:pass@example.com/x"])
def test_userinfo_url_spelling(taskforce: TaskForce, stubs: Stubs, value: str) -> None:
    """userinfo makes one URL many values: not canonical under rule 2, and an entry
    naming rule 1 must still be canonical under rule 2 to be admitted."""
    entries = [_signal("bob", "url", value, "ui-2"), _signal("bob", "url", value, "ui-1", rule=0)]
    _refused(taskforce, stubs, entries, "non-normalized-value", "url value is not in canonical form")


@pytest.mark.parametrize("value", ["http://3232235777/", "http://0xc0a80101/", "http://0300.0250.01.01/"])
def test_numeric_ip_url_spelling(taskforce: TaskForce, stubs: Stubs, value: str) -> None:
    entries = [_signal("bob", "url", value, "ip-2"), _signal("bob", "url", value, "ip-1", rule=0)]
    _refused(taskforce, stubs, entries, "non-normalized-value", "url value is not in canonical form")


def test_url_spellings_are_one_value(taskforce: TaskForce) -> None:
    alice, bob = taskforce.client("alice"), taskforce.client("bob", state=True)
    built = [alice.signal("url", s, groups=[GROUP_ALL], signal_id=f"u{i}") for i, s in enumerate(SPELLINGS)]
    assert {s.value for s in built} == {"http://192.168.1.1/"}
    accepted(alice.publish(built[:1]))
    bob.sync()
    assert bob.bank is not None
    for spelling in SPELLINGS:
        assert [m.signal.signal_id for m in bob.bank.match_value("url", spelling, "ref")] == ["u0"], spelling


# -- versioned rules -------------------------------------------------------------------------


def test_entry_written_under_rule_1_still_verifies(taskforce: TaskForce) -> None:
    """Rule-1 entries (no value_rule) already in a ledger: a URL with userinfo, a numeric
    host and a one-letter text were valid then. Written straight into the ledger file as
    the exchange of that time admitted them, they still verify for a syncing member, a
    rebuild and a replay, and the rule-1 text never matches."""
    old = [
        _signal("alice", "url", "http://user@example.com/", "old-url", rule=0),
        _signal("alice", "url", "http://3232235777/", "old-ip", rule=0),
        _signal("alice", "text", "a", "old-text", rule=0),
        _signal("alice", "domain", "co.uk", "old-psl", rule=0),
    ]
    envs = [sign_envelope(*encode_entry(e), taskforce.signers["alice"]).raw for e in old]
    outcomes = taskforce.server.ledger.append(
        [Submission(envelope=env, digest=hashlib.sha256(env).digest()) for env in envs])
    assert all(isinstance(o, Receipt) for o in outcomes), outcomes
    bob = taskforce.client("bob", state=True)
    report = bob.sync()
    assert report.signals == len(old) and report.quarantined == 0
    assert bob.bank is not None
    assert bob.bank.get("alice", "old-url") is not None and bob.bank.get("alice", "old-ip") is not None
    assert bob.bank.match_value("text", "a a a a", "ref") == []
    assert bob.bank.match_value("domain", "anything.co.uk", "ref") == []
    assert bob.rebuild_bank().signals == len(old)
    verifier = EntryVerifier(taskforce.operator.public_key, KeyDirectory())
    for stored in taskforce.server.ledger.read(0, taskforce.server.ledger.head()):
        verifier.verify(stored.record)
    # the same values, published anew, are refused
    (outcome,) = taskforce.client("alice").publish([old[0]])
    assert isinstance(outcome, NonNormalizedValue)
