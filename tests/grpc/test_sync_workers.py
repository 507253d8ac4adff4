"""A member's catch-up with its pages verified in worker processes (clients.verify_pool)
banks exactly what a one-process catch-up banks, and still quarantines what it must:
a key added mid-stream, a key revoked as compromised, a forged record."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from clients import verify_pool
from clients.member import MemberClient
from exchange.core.dsse import Envelope
from exchange.core.entries import EntryKind
from exchange.core.errors import SecurityError
from exchange.core.keys import Signer
from exchange.core.records import Record
from exchange.pb.trustwire.v1 import exchange_pb2 as xpb
from tests.conftest import GROUP_ALL, KEYS_VALID_FROM_MS, TaskForce, accepted
from tests.grpc.conftest import Stubs
from tests.grpc.test_malicious_exchange import FakeExchange, _bob_on

PAGE = 1000  # the exchange's page: each catch-up below reads several full pages


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def _reader(tf: TaskForce, state: Path, workers: int) -> MemberClient:
    return MemberClient(tf.target, member_id="bob", signer=tf.signers["bob"], operator_key=tf.operator.public_key,
                        log_key=tf.log_key, state=state, verify_workers=workers)


def _publish(tf: TaskForce, signer: Signer, prefix: str, n: int) -> None:
    alice = MemberClient(tf.target, member_id="alice", signer=signer, operator_key=tf.operator.public_key,
                         log_key=tf.log_key)
    try:
        accepted(alice.publish([alice.signal("md5", _md5(f"{prefix}{i}"), groups=[GROUP_ALL], signal_id=f"{prefix}{i}")
                                for i in range(n)], batch_size=500))
    finally:
        alice.close()


def test_worker_catch_up_banks_what_one_process_banks(taskforce: TaskForce, tmp_path: Path) -> None:
    second = Signer.from_seed(hashlib.sha256(b"sync-workers-alice-2-INSECURE").digest())
    _publish(taskforce, taskforce.signers["alice"], "a", 700)
    op = taskforce.operator_client()
    accepted(op.publish([op.add_key("alice", second.public_key, KEYS_VALID_FROM_MS)]))  # mid-page key event
    _publish(taskforce, second, "b", 800)
    head = taskforce.server.ledger.head()
    compromised_from = head - 300  # the last 300 of the second key's signals were signed by a thief
    accepted(op.publish([op.revoke_key("alice", second.keyid, compromised_since_index=compromised_from)]))
    op.close()

    reports, banks = [], []
    for workers in (1, 2):
        reader = _reader(taskforce, tmp_path / f"bob-{workers}.db", workers)
        if workers == 2:  # started before the sync: pages go to them from the first one
            assert reader.exchange.verify_pool.wait_started(120)
        try:
            reports.append(reader.sync())
            if workers == 2:
                assert reader.exchange.verify_pool._pool is not None  # workers really ran
            assert reader.bank is not None
            banks.append(sorted((s.signal_id, s.index) for s in reader.bank.signals_of_type("md5")))
        finally:
            reader.close()
    one, many = reports
    assert (many.verified, many.signals, many.quarantined, many.compromised, many.next_index) == (
        one.verified, one.signals, one.quarantined, one.compromised, one.next_index)
    assert many.compromised == 300 and many.signals == 1500
    assert banks[0] == banks[1] and len(banks[1]) == 1200
    assert verify_pool.MIN_PAGE <= PAGE


def test_a_bad_page_read_ahead_is_refused_in_its_turn(taskforce: TaskForce, stubs: Stubs, tmp_path: Path) -> None:
    """Catching up, pages are read (and checked on the workers) ahead of the one being
    applied, on another thread. A page whose inclusion proof is forged is refused when its
    turn comes: every page before it is committed (cursor and bank), nothing of it."""
    _publish(taskforce, taskforce.signers["alice"], "r", 2 * PAGE + 500)
    stub = stubs.member("bob")
    pages = list(stub.Subscribe(xpb.SubscribeRequest(from_index=0, stop_at_head=True)))
    directory = stub.GetKeyDirectory(xpb.GetKeyDirectoryRequest(until_index=0))
    assert len(pages) >= 3 and len(pages[2].proof.hashes) > 0
    bad = [xpb.SubscribeResponse() for _ in pages]
    for b, p in zip(bad, pages, strict=True):
        b.CopyFrom(p)
    forged = bytearray(bad[2].proof.hashes[0])
    forged[0] ^= 1
    bad[2].proof.hashes[0] = bytes(forged)
    bob, server = _bob_on(FakeExchange(bad, directory), taskforce, tmp_path)
    try:
        with pytest.raises(SecurityError, match="not all in the log"):
            bob.sync()
        assert bob.store is not None and bob.bank is not None
        assert bob.store.cursor == pages[1].next_index
        signals = sum(1 for p in pages[:2] for raw in p.records
                      if Envelope.decode(Record.decode(raw).envelope).payload_type == EntryKind.SIGNAL.payload_type)
        assert len(bob.bank.signals_of_type("md5")) == signals > PAGE
    finally:
        bob.close()
        server.stop(None)
