"""One time base for key validity (issue 12): admission reads the clock once per batch,
the ledger stamps ``accepted_at`` later; the append re-checks the key at the stamped
(index, accepted_at), so an entry whose key is not valid then is never acknowledged.

Real admission over a real SQLite ledger file; the two clocks are the exchange's own
clock read at two moments (admission's reading, then the append's), pinned here."""

from __future__ import annotations

import hashlib
from pathlib import Path

from exchange.core.dsse import sign_envelope
from exchange.core.entries import encode_entry, ms_to_timestamp
from exchange.core.errors import KeyNotValid
from exchange.core.keys import Signer
from exchange.core.records import Receipt
from exchange.core.verify import EntryVerifier
from exchange.core.keydir import KeyDirectory
from exchange.pb.trustwire.v1 import entries_pb2 as pb
from exchange.server.admission import Admission
from exchange.server.ledger import Ledger, SqliteLedger
from exchange.server.quotas import Quota, Quotas
from exchange.server.verification import VerifierPool

T = 1_700_000_000_000
REVOKED_AT = T + 60_000
OPERATOR = Signer.from_seed(hashlib.sha256(b"trustwire-test-INSECURE:operator").digest())
ALICE = Signer.from_seed(hashlib.sha256(b"trustwire-test-INSECURE:alice").digest())


def _event(**event: object) -> bytes:
    e = pb.KeyEvent(created_at=ms_to_timestamp(T), **event)  # type: ignore[arg-type]
    return sign_envelope(*encode_entry(e), OPERATOR).raw


def signal(n: int) -> bytes:
    s = pb.Signal(signal_id=f"s{n}", member_id="alice", type="md5", value=f"{n:032x}", confidence=50,
                  severity=pb.SEVERITY_MEDIUM, sharing=pb.Sharing(groups=["all"], tlp=pb.TLP_AMBER),
                  created_at=ms_to_timestamp(T))
    return sign_envelope(*encode_entry(s), ALICE).raw


def exchange_on(ledger: Ledger, clock: dict[str, int]) -> Admission:
    """Admission over ``ledger`` (whose clock reads ``clock["ledger"]``), enrolled: alice's
    key is retired at REVOKED_AT."""
    quotas = Quotas(Quota(rate=1e9, burst=10**9, max_batch=10**6), {}, clock_s=lambda: T / 1000)
    admission = Admission(ledger, OPERATOR.public_key, lambda: clock["admission"], quotas, VerifierPool(workers=1))
    setup = [
        _event(group_created=pb.GroupCreated(group_id="all", display_name="All", max_tlp=pb.TLP_AMBER)),
        _event(member_enrolled=pb.MemberEnrolled(member_id="alice", display_name="A", groups=["all"],
                                                 role=pb.ROLE_MEMBER)),
        _event(key_added=pb.KeyAdded(member_id="alice", public_key=ALICE.public_key, valid_from=ms_to_timestamp(T))),
        _event(key_revoked=pb.KeyRevoked(member_id="alice", keyid=ALICE.keyid,
                                         revoked_at=ms_to_timestamp(REVOKED_AT))),  # a rotation's overlap end
    ]
    assert all(isinstance(o, Receipt) for o in admission.publish("operator", setup))
    return admission


def straddle(ledger: Ledger, clock: dict[str, int]) -> None:
    """revoked-at-straddle: admission read the clock just before revoked_at, the append
    stamps at revoked_at; the batch is refused, nothing is stored, the ledger verifies."""
    admission = exchange_on(ledger, clock)
    clock.update(admission=REVOKED_AT - 1, ledger=REVOKED_AT)
    head = ledger.head()
    outcomes = admission.publish("alice", [signal(n) for n in range(200)])
    assert all(isinstance(o, KeyNotValid) for o in outcomes), outcomes[:3]
    assert ledger.head() == head
    replay_verifies(ledger)


def test_batch_straddling_revoked_at_is_not_acknowledged(tmp_path: Path) -> None:
    clock = {"admission": T + 1000, "ledger": T + 1000}
    ledger = SqliteLedger(tmp_path / "ledger.db", clock_ms=lambda: clock["ledger"])
    straddle(ledger, clock)
    ledger.close()


def test_batch_before_revoked_at_is_acknowledged_with_a_valid_stamp(tmp_path: Path) -> None:
    clock = {"admission": REVOKED_AT - 2, "ledger": REVOKED_AT - 1}
    ledger = SqliteLedger(tmp_path / "ledger.db", clock_ms=lambda: clock["ledger"])
    admission = exchange_on(ledger, clock)
    outcomes = admission.publish("alice", [signal(n) for n in range(50)])
    assert all(isinstance(o, Receipt) and o.accepted_at_ms < REVOKED_AT for o in outcomes)
    replay_verifies(ledger)
    ledger.close()


def replay_verifies(ledger: Ledger) -> None:
    """Every acknowledged record passes the members' acceptance rule at its own stamp."""
    verifier = EntryVerifier(OPERATOR.public_key, KeyDirectory())
    for stored in ledger.read(0, 10_000):
        verifier.verify(stored.record)
