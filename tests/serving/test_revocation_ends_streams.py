"""An open Subscribe stream ends when access ends, and delivers nothing accepted after the change.

Each attack: a member follows the ledger, then the operator suspends it, retires or
revokes its key, flags the key as compromised, drops it from a group the stream
reads, or the key simply expires. The stream must end PERMISSION_DENIED or
UNAUTHENTICATED (bounded wait) and must not have delivered any entry whose index is
after the change, though such entries are published right after it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from clients.operator import OperatorClient
from tests.conftest import wait_until
from tests.serving.conftest import GROUP, SIDE, Follower, Served, serve

ENDED = (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED)

Change = Callable[[OperatorClient, Served], object]

CHANGES: dict[str, Change] = {
    "suspended-member-keeps-reading": lambda op, s: op.suspend("bob"),
    "retired-key-keeps-reading": lambda op, s: op.revoke_key("bob", s.signers["bob"].keyid),
    "compromised-key-keeps-reading": lambda op, s: op.revoke_key(
        "bob", s.signers["bob"].keyid, compromised_since_index=1
    ),
    "removed-from-group-keeps-reading": lambda op, s: op.set_groups("bob", [SIDE]),
}


@pytest.mark.parametrize("attack", sorted(CHANGES))
def test_stream_ends_when_access_ends(tmp_path: Path, attack: str) -> None:
    served = serve(tmp_path / "exchange")
    try:
        served.publish("alice", "a" * 32)
        follower = Follower(served.stub("bob"))
        head = served.exchange.all_records()[-1].index + 1
        wait_until(lambda: follower.next_index >= head, timeout=30)

        op = served.exchange.operator_client()
        try:
            (receipt,) = op.publish([CHANGES[attack](op, served)])
        finally:
            op.close()
        change_index = receipt.index  # type: ignore[union-attr]
        after = [served.publish("alice", f"{i:032x}") for i in range(3)]
        assert min(after) > change_index

        assert follower.ended.wait(30), f"{attack}: the stream is still open"
        assert follower.code in ENDED, (follower.code, follower.reason)
        delivered_after = [i for i in follower.indices if i > change_index]
        assert delivered_after == [], f"{attack}: entries accepted after the change were delivered"
    finally:
        served.close()


def test_stream_ends_when_key_expires_with_time(tmp_path: Path) -> None:
    """No ledger entry wakes this stream: the key is retired at a time in the near future."""
    served = serve(tmp_path / "exchange")
    try:
        op = served.exchange.operator_client()
        try:
            retire_at = int(time.time() * 1000) + 2_000
            (receipt,) = op.publish([op.revoke_key("bob", served.signers["bob"].keyid, at_ms=retire_at)])
        finally:
            op.close()
        follower = Follower(served.stub("bob"))
        wait_until(lambda: follower.next_index > receipt.index, timeout=30)  # type: ignore[union-attr]
        assert follower.ended.wait(30), "the stream outlived its key"
        assert follower.code in ENDED, (follower.code, follower.reason)
        assert int(time.time() * 1000) >= retire_at
    finally:
        served.close()


def test_other_streams_are_not_affected(tmp_path: Path) -> None:
    served = serve(tmp_path / "exchange", {"alice": [GROUP], "bob": [GROUP], "carol": [GROUP]})
    try:
        bob, carol = Follower(served.stub("bob")), Follower(served.stub("carol"))
        op = served.exchange.operator_client()
        try:
            op.publish([op.suspend("bob")])
        finally:
            op.close()
        index = served.publish("alice", "c" * 32)
        assert bob.ended.wait(30)
        wait_until(lambda: index in carol.indices, timeout=30)
        assert not carol.ended.is_set()
        carol.cancel()
    finally:
        served.close()
