"""The recipient's own right to receive retractions and opinions (issue 12): a fake
exchange serves bob what the real one served alice, and bob quarantines the
retraction and the opinion of a signal he never received (corruption, never banked)
while the ones about a signal shared with him are applied. Real exchange, real
records; only the audience is wrong."""

from __future__ import annotations

from pathlib import Path

from exchange.pb.trustwire.v1 import exchange_pb2 as xpb
from tests.conftest import GROUP_ALL, GROUP_NCII, TaskForce, accepted
from tests.grpc.conftest import MD5_A, MD5_B, Stubs
from tests.grpc.test_malicious_exchange import FakeExchange, _bob_on


def _recorded(taskforce: TaskForce, stubs: Stubs) -> tuple[list[xpb.SubscribeResponse], xpb.GetKeyDirectoryResponse]:
    alice, carol = taskforce.client("alice"), taskforce.client("carol")
    accepted(alice.publish([
        alice.signal("md5", MD5_A, groups=[GROUP_NCII], tlp="amber+strict", signal_id="ncii"),
        alice.signal("md5", MD5_B, groups=[GROUP_ALL], signal_id="for-all"),
    ]))
    accepted(alice.publish([alice.opinion("alice", "ncii", "true_positive"), alice.retraction("ncii")]))
    accepted(carol.publish([carol.opinion("alice", "for-all", "false_positive")]))
    accepted(alice.publish([alice.retraction("for-all")]))
    stub = stubs.member("alice")
    pages = list(stub.Subscribe(xpb.SubscribeRequest(from_index=0, stop_at_head=True)))
    assert sum(len(p.records) for p in pages) == taskforce.server.ledger.head()
    return pages, stub.GetKeyDirectory(xpb.GetKeyDirectoryRequest(until_index=0))


def test_retraction_and_opinion_of_a_signal_never_received_are_quarantined(
    taskforce: TaskForce, stubs: Stubs, tmp_path: Path
) -> None:
    """leak-retraction / leak-opinion: the NCII signal, its opinion and its retraction
    reach bob, who is not in the group; all three are quarantined."""
    pages, directory = _recorded(taskforce, stubs)
    bob, server = _bob_on(FakeExchange(pages, directory), taskforce, tmp_path)
    try:
        report = bob.sync()
        assert (report.quarantined, report.corrupt, report.compromised) == (3, 3, 0)
        reasons = report.quarantine_reasons
        assert all("not-for-recipient" in r for r in reasons)
        assert any("a signal of alice" in r for r in reasons)
        assert any("an opinion of alice" in r for r in reasons) and any("a retraction of alice" in r for r in reasons)
        assert bob.bank is not None and bob.bank.get("alice", "ncii") is None
        assert bob.bank.opinions("alice", "ncii") == {}
        # what was for bob is applied: carol's opinion, alice's retraction of the shared signal
        assert bob.bank.opinions("alice", "for-all") == {"carol": "false_positive"}
        assert bob.bank.get("alice", "for-all").retracted_index is not None  # type: ignore[union-attr]
    finally:
        bob.close()
        server.stop(None)


def test_the_real_exchange_serves_bob_nothing_to_quarantine(taskforce: TaskForce, stubs: Stubs) -> None:
    """The same history through the real exchange: bob's view passes his own checks."""
    _recorded(taskforce, stubs)
    bob = taskforce.client("bob", state=True)
    report = bob.sync()
    assert report.quarantined == 0 and report.opinions == 1 and report.retractions == 1
