"""The member SDK against a malicious exchange (issue 12): a fake exchange replays what
a real one served to another member, tampered, and the SDK refuses or quarantines it.

The fake is a real gRPC server on 127.0.0.1:0 serving Subscribe and GetKeyDirectory
from pages recorded from the real exchange (so checkpoints, proofs and signatures are
genuine); only the field under attack is changed."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from clients.member import MemberClient
from exchange.core.errors import SecurityError
from exchange.pb.trustwire.v1 import exchange_pb2 as xpb
from exchange.pb.trustwire.v1 import exchange_pb2_grpc as xgrpc
from tests.conftest import GROUP_ALL, GROUP_NCII, TaskForce, accepted, wait_until
from tests.grpc.conftest import MD5_A, MD5_B, Stubs


class FakeExchange(xgrpc.ExchangeServiceServicer):
    def __init__(self, pages: list[xpb.SubscribeResponse], directory: xpb.GetKeyDirectoryResponse) -> None:
        self.pages = pages
        self.directory = directory

    def Subscribe(self, request: xpb.SubscribeRequest, context: grpc.ServicerContext) -> Iterator[xpb.SubscribeResponse]:
        yield from (p for p in self.pages if p.next_index > request.from_index or not p.records)

    def GetKeyDirectory(self, request: xpb.GetKeyDirectoryRequest, context: grpc.ServicerContext) -> xpb.GetKeyDirectoryResponse:
        return self.directory


@pytest.fixture
def recorded(taskforce: TaskForce, stubs: Stubs) -> tuple[list[xpb.SubscribeResponse], xpb.GetKeyDirectoryResponse]:
    """What the real exchange serves alice: her NCII (TLP:AMBER+STRICT) signal and an all-members one."""
    alice = taskforce.client("alice")
    accepted(alice.publish([
        alice.signal("md5", MD5_A, groups=[GROUP_NCII], tlp="amber+strict", signal_id="red-ncii"),
        alice.signal("md5", MD5_B, groups=[GROUP_ALL], signal_id="for-all"),
    ]))
    stub = stubs.member("alice")
    pages = [p for p in stub.Subscribe(xpb.SubscribeRequest(from_index=0, stop_at_head=True))]
    directory = stub.GetKeyDirectory(xpb.GetKeyDirectoryRequest(until_index=0))
    assert sum(len(p.records) for p in pages) == taskforce.server.ledger.head()
    return pages, directory


def _bob_on(
    fake: FakeExchange, taskforce: TaskForce, tmp_path: Path, member: str = "bob"
) -> tuple[MemberClient, grpc.Server]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    xgrpc.add_ExchangeServiceServicer_to_server(fake, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    bob = MemberClient(f"127.0.0.1:{port}", member_id=member, signer=taskforce.signers[member],
                       operator_key=taskforce.operator.public_key, log_key=taskforce.log_key,
                       state=tmp_path / f"{member}.db")
    return bob, server


def test_next_index_beyond_the_checkpoint_is_refused(
    recorded: tuple[list[xpb.SubscribeResponse], xpb.GetKeyDirectoryResponse], taskforce: TaskForce, tmp_path: Path
) -> None:
    """brick-the-cursor: a page whose next_index is 10^12 would make every later sync
    fail OutOfRange; the SDK refuses it and keeps its cursor."""
    pages, directory = recorded
    bad = [xpb.SubscribeResponse() for _ in pages]
    for b, p in zip(bad, pages, strict=True):
        b.CopyFrom(p)
    bad[-1].next_index = 10**12
    bob, server = _bob_on(FakeExchange(bad, directory), taskforce, tmp_path)
    try:
        with pytest.raises(SecurityError, match="next_index"):
            bob.sync()
        assert bob.store is not None and bob.store.cursor < 10**12
    finally:
        bob.close()
        server.stop(None)


def test_next_index_below_the_last_record_is_refused(
    recorded: tuple[list[xpb.SubscribeResponse], xpb.GetKeyDirectoryResponse], taskforce: TaskForce, tmp_path: Path
) -> None:
    """replay-the-cursor: a next_index at or below a record already delivered is refused."""
    pages, directory = recorded
    bad = [xpb.SubscribeResponse() for _ in pages]
    for b, p in zip(bad, pages, strict=True):
        b.CopyFrom(p)
    bad[-1].next_index = 0
    bob, server = _bob_on(FakeExchange(bad, directory), taskforce, tmp_path)
    try:
        with pytest.raises(SecurityError, match="next_index"):
            bob.sync()
    finally:
        bob.close()
        server.stop(None)


def test_entry_of_a_group_the_member_is_not_in_is_quarantined(
    recorded: tuple[list[xpb.SubscribeResponse], xpb.GetKeyDirectoryResponse], taskforce: TaskForce, tmp_path: Path
) -> None:
    """leak-to-non-member: the exchange serves bob alice's AMBER+STRICT signal of the NCII
    group, which bob is not in; bob quarantines it (corruption), banks the rest."""
    pages, directory = recorded
    bob, server = _bob_on(FakeExchange(pages, directory), taskforce, tmp_path)
    try:
        report = bob.sync()
        assert report.quarantined == 1 and report.corrupt == 1 and report.compromised == 0
        assert "not-for-recipient" in report.quarantine_reasons[0]
        assert bob.bank is not None and bob.bank.get("alice", "red-ncii") is None
        assert bob.bank.get("alice", "for-all") is not None
    finally:
        bob.close()
        server.stop(None)


def stolen_then_revoked(tf: TaskForce) -> int:
    """Bob's key signs a signal, then is revoked as compromised from it; the revocation's index."""
    bob = tf.client("bob")
    (stolen,) = accepted(bob.publish([bob.signal("md5", MD5_A, groups=[GROUP_ALL], signal_id="stolen")]))
    op = tf.operator_client()
    (revoked,) = accepted(op.publish([op.revoke_key("bob", bob.signer.keyid, compromised_since_index=stolen.index)]))
    op.close()
    return revoked.index


def withheld_page(tf: TaskForce, stub: xgrpc.ExchangeServiceStub, hidden: int) -> xpb.SubscribeResponse:
    """The one page the real exchange serves ``stub``'s member once a checkpoint covers
    the head, without the record at ``hidden``, with a valid batch proof for the rest."""
    head = tf.server.ledger.head()
    wait_until(lambda: (cp := tf.server.checkpoints.latest()) is not None and cp.size == head)
    pages = list(stub.Subscribe(xpb.SubscribeRequest(from_index=0, stop_at_head=True)))
    assert pages[0].next_index == head and all(not p.records for p in pages[1:])
    page = xpb.SubscribeResponse()
    page.CopyFrom(pages[0])
    kept = [(i, r) for i, r in enumerate(pages[0].records) if i != hidden]
    del page.records[:]
    page.records.extend(r for _, r in kept)
    page.proof.hashes[:] = tf.server.checkpoints.tree.batch_inclusion_proof([i for i, _ in kept], head)
    return page


def test_withheld_compromise_revocation_is_detected(taskforce: TaskForce, stubs: Stubs, tmp_path: Path) -> None:
    """withhold-key-revoked: the exchange hides bob's compromise revocation from carol
    (a valid proof for the other records, and a key directory without it); the
    checkpoint commits to the key directory, so carol's sync fails with a SecurityError."""
    stub = stubs.member("carol")
    page = withheld_page(taskforce, stub, stolen_then_revoked(taskforce))
    directory = stub.GetKeyDirectory(xpb.GetKeyDirectoryRequest(until_index=0))
    del directory.records[-1]  # the revocation is the last key event
    carol, server = _bob_on(FakeExchange([page], directory), taskforce, tmp_path, member="carol")
    try:
        with pytest.raises(SecurityError, match="withheld or altered a key event"):
            carol.sync()
        assert carol.bank is not None and carol.bank.get("bob", "stolen") is None  # nothing committed
    finally:
        carol.close()
        server.stop(None)
