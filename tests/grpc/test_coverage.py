"""Answers about entries the audit log has not yet checkpointed, and waiting for coverage.

The checkpoint lag is made real and deterministic by pausing the exchange's own
checkpointer: the test holds the lock its catch-up step takes, so receipts run ahead
of the latest signed checkpoint until the test lets go.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import grpc
import pytest

from clients.transport import connect
from exchange.core import merkle
from exchange.core.errors import CheckpointPending, OutOfRange
from exchange.core.records import leaf_hash
from exchange.pb.trustwire.v1 import audit_pb2 as apb
from exchange.pb.trustwire.v1 import audit_pb2_grpc as agrpc
from tests.conftest import GROUP_ALL, TaskForce, accepted, wait_until
from tests.grpc.conftest import MD5_A, MD5_B, RPC_TIMEOUT_S, assert_rpc_error


@contextmanager
def paused_checkpointer(tf: TaskForce) -> Iterator[threading.Event]:
    """Hold the checkpointer's catch-up until the yielded event is set (or the block ends)."""
    release = threading.Event()
    lock = tf.server.checkpoints._lock  # noqa: SLF001  the real checkpointer, paused, not replaced
    held = threading.Event()

    def hold() -> None:
        with lock:
            held.set()
            release.wait(RPC_TIMEOUT_S)

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    held.wait(RPC_TIMEOUT_S)
    try:
        yield release
    finally:
        release.set()
        holder.join(RPC_TIMEOUT_S)


def _checkpointed(tf: TaskForce) -> int:
    latest = tf.server.checkpoints.latest()
    return 0 if latest is None else latest.size


def test_entry_ahead_of_the_checkpoint_is_pending_not_hidden(taskforce: TaskForce) -> None:
    tf = taskforce
    bob = tf.client("bob")
    accepted(bob.publish([bob.signal("md5", MD5_A, groups=[GROUP_ALL], signal_id="warm")]))
    wait_until(lambda: _checkpointed(tf) == tf.server.ledger.head())
    channel = connect(tf.target, tf.signers["bob"], "bob", origin=tf.origin)
    audit = agrpc.AuditServiceStub(channel)
    with paused_checkpointer(tf) as release:
        (receipt,) = accepted(bob.publish([bob.signal("md5", MD5_B, groups=[GROUP_ALL], signal_id="lag")]))
        assert _checkpointed(tf) <= receipt.index
        with pytest.raises(grpc.RpcError) as info:
            audit.GetCheckpoint(apb.GetCheckpointRequest(covering_index=receipt.index, wait_ms=100),
                                timeout=RPC_TIMEOUT_S)
        assert_rpc_error(info.value, grpc.StatusCode.UNAVAILABLE, "checkpoint-pending",
                         f"entry {receipt.index} is in the ledger")
        # the plain GetCheckpoint still answers at once, with the older checkpoint
        assert audit.GetCheckpoint(apb.GetCheckpointRequest(), timeout=RPC_TIMEOUT_S).size <= receipt.index
        # an index past the head is out of range, not pending and not hidden
        with pytest.raises(grpc.RpcError) as info:
            audit.GetCheckpoint(apb.GetCheckpointRequest(covering_index=receipt.index + 1), timeout=RPC_TIMEOUT_S)
        assert_rpc_error(info.value, grpc.StatusCode.OUT_OF_RANGE, "out-of-range", "beyond the ledger head")
        # GetInclusionProof waits for coverage: let the checkpointer go while it waits
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(audit.GetInclusionProof, apb.GetInclusionProofRequest(index=receipt.index),
                                  timeout=RPC_TIMEOUT_S)
            release.set()
            proof = pending.result()
        assert proof.index == receipt.index and proof.tree_size > receipt.index
        cp = audit.GetCheckpoint(apb.GetCheckpointRequest(covering_index=receipt.index), timeout=RPC_TIMEOUT_S)
        record = tf.server.ledger.read(receipt.index, 1)[0].record
        root = tf.server.checkpoints.tree.root(proof.tree_size)
        merkle.verify_inclusion(leaf_hash(record), receipt.index, proof.tree_size, list(proof.hashes), root)
        assert cp.size >= proof.tree_size
    channel.close()


def test_sdk_waits_until_a_checkpoint_covers_a_receipt(taskforce: TaskForce) -> None:
    tf = taskforce
    bob = tf.client("bob", state=True)
    first = bob.wait_for_checkpoint(0)  # enrolment is checkpointed
    with paused_checkpointer(tf) as release:
        (receipt,) = accepted(bob.publish([bob.signal("md5", MD5_A, groups=[GROUP_ALL], signal_id="x")]))
        with pytest.raises(CheckpointPending):
            bob.wait_for_checkpoint(receipt.index, timeout_s=0.3)
        with ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(bob.wait_for_checkpoint, receipt.index, 10.0)
            release.set()
            covering = waiting.result()
    assert covering.size > receipt.index >= first.size
    assert bob.log_view.trusted is not None and bob.log_view.trusted.size == covering.size
    assert bob.store is not None and bob.store.get_meta("trusted_checkpoint") == covering.note
    with pytest.raises(OutOfRange):
        bob.wait_for_checkpoint(10_000, timeout_s=0.3)
