"""The verification pool's worker processes get the key table only when the key
directory changed (issue 18), so a key added since is used, and an unknown one refused.
Real worker processes (`python -m exchange.server.verification`)."""

from __future__ import annotations

import hashlib

from exchange.core.acceptance import Signed
from exchange.core.dsse import sign_envelope
from exchange.core.entries import encode_entry, ms_to_timestamp
from exchange.core.errors import UnknownKey
from exchange.core.keydir import KeyDirectory
from exchange.core.keys import Signer
from exchange.pb.trustwire.v1 import entries_pb2 as pb
from exchange.server.verification import VerifierPool
from tests.unit.test_time_base import ALICE, OPERATOR, T, signal

BOB = Signer.from_seed(hashlib.sha256(b"trustwire-test-INSECURE:bob").digest())


def _directory(*members: tuple[str, Signer]) -> KeyDirectory:
    directory = KeyDirectory()
    events = [pb.KeyEvent(group_created=pb.GroupCreated(group_id="all", display_name="All", max_tlp=pb.TLP_AMBER))]
    for name, signer in members:
        events += [
            pb.KeyEvent(member_enrolled=pb.MemberEnrolled(member_id=name, display_name=name, groups=["all"],
                                                          role=pb.ROLE_MEMBER)),
            pb.KeyEvent(key_added=pb.KeyAdded(member_id=name, public_key=signer.public_key,
                                              valid_from=ms_to_timestamp(T))),
        ]
    for index, event in enumerate(events):
        event.created_at.CopyFrom(ms_to_timestamp(T))
        directory.apply(event, index)
    return directory


def _bob_signals(n: int) -> list[bytes]:
    out = []
    for i in range(n):
        s = pb.Signal(signal_id=f"b{i}", member_id="bob", type="md5", value=f"{i:032x}", confidence=50,
                      severity=pb.SEVERITY_MEDIUM, sharing=pb.Sharing(groups=["all"], tlp=pb.TLP_AMBER),
                      created_at=ms_to_timestamp(T))
        out.append(sign_envelope(*encode_entry(s), BOB).raw)
    return out


def test_workers_use_a_key_added_after_their_first_batch() -> None:
    pool = VerifierPool(workers=2, threshold=4)
    try:
        before = _directory(("alice", ALICE))
        first = pool.check("alice", [signal(n) for n in range(8)], OPERATOR.public_key, before)
        assert all(isinstance(c, Signed) for c in first)
        assert all(isinstance(c, UnknownKey) for c in pool.check("bob", _bob_signals(8), OPERATOR.public_key, before))
        after = _directory(("alice", ALICE), ("bob", BOB))  # a new directory: bob's key was added
        assert all(isinstance(c, Signed) for c in pool.check("bob", _bob_signals(8), OPERATOR.public_key, after))
        assert len(pool._procs) == 2  # noqa: SLF001 - white-box: the workers really ran
    finally:
        pool.close()
