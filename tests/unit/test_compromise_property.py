"""Property (issue 12): over random histories with a compromise event, a member that
synced incrementally (page by page, the compromise arriving after what the thief
signed), a member that rebuilt its bank from index 0, and a member that replayed the
ledger *without* the tainted entries all hold the same bank (PROTOCOL.md §8). Real
SQLite ledger and state files; the member's verifier and ingester as they run in sync."""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clients.bank import Bank
from clients.content import ContentStore
from clients.feedback import Outbox
from clients.ingest import Ingester, SyncReport
from clients.policy import Policy
from clients.queue import ModerationQueue
from clients.routing import Router
from clients.store import MemberStore
from exchange.core.dsse import sign_envelope
from exchange.core.entries import Entry, encode_entry, ms_to_timestamp
from exchange.core.keydir import KeyDirectory
from exchange.core.keys import Signer
from exchange.core.verify import EntryVerifier
from exchange.pb.trustwire.v1 import entries_pb2 as pb
from exchange.server.ledger import SqliteLedger, Submission

T = 1_700_000_000_000
OPERATOR = Signer.from_seed(hashlib.sha256(b"trustwire-test-INSECURE:operator").digest())
SIGNERS = {m: Signer.from_seed(hashlib.sha256(f"trustwire-test-INSECURE:{m}".encode()).digest())
           for m in ("alice", "carol")}
VALUES = ["0" * 31 + str(i) for i in range(4)]
IDS = ["s0", "s1", "s2"]


@dataclass(frozen=True)
class Op:
    actor: str  # alice (whose key is stolen) or carol
    kind: str  # signal | retraction | opinion
    signal_id: str
    value: int


OPS = st.builds(Op, st.sampled_from(["alice", "carol"]), st.sampled_from(["signal", "signal", "retraction", "opinion"]),
                st.sampled_from(IDS), st.integers(0, 3))


def _env(entry: Entry, signer: Signer) -> bytes:
    return sign_envelope(*encode_entry(entry), signer).raw


def _event(n: int, **event: object) -> bytes:
    return _env(pb.KeyEvent(created_at=ms_to_timestamp(T + n), **event), OPERATOR)  # type: ignore[arg-type]


def _entry(op: Op, n: int) -> Entry:
    at = ms_to_timestamp(T + 1000 + n)
    if op.kind == "signal":
        return pb.Signal(signal_id=op.signal_id, member_id=op.actor, type="md5", value=VALUES[op.value], confidence=n % 100,
                         severity=pb.SEVERITY_MEDIUM, sharing=pb.Sharing(groups=["all"], tlp=pb.TLP_AMBER),
                         created_at=at, value_rule=2)
    if op.kind == "retraction":
        return pb.Retraction(member_id=op.actor, signal=pb.SignalRef(member_id=op.actor, signal_id=op.signal_id),
                             reason=pb.RETRACTION_REASON_ERROR, created_at=at)
    other = "carol" if op.actor == "alice" else "alice"
    return pb.Opinion(member_id=op.actor, signal=pb.SignalRef(member_id=other, signal_id=op.signal_id),
                      verdict=[pb.VERDICT_SEEN, pb.VERDICT_TRUE_POSITIVE, pb.VERDICT_FALSE_POSITIVE][op.value % 3],
                      created_at=at)


class Member:
    """A member's state file with the rooms sync uses."""

    def __init__(self, path: Path) -> None:
        self.store = MemberStore(path)
        self.bank = Bank(self.store, clock_ms=lambda: T)
        queue = ModerationQueue(self.store, clock_ms=lambda: T)
        router = Router("bob", Policy(rules=()), self.bank, queue, Outbox(self.store, clock_ms=lambda: T), None)
        self.ingester = Ingester(self.store, self.bank, queue, ContentStore(self.store), router, lambda: T)
        self.verifier = EntryVerifier(OPERATOR.public_key, KeyDirectory())

    def apply(self, records: list[bytes]) -> SyncReport:
        report = SyncReport()
        with self.store.transaction():
            for raw, v in zip(records, self.verifier.verify_many(records), strict=True):
                self.ingester.apply(raw, v, self.verifier, report)
        return report

    def rebuild(self, records: list[bytes]) -> SyncReport:
        self.bank.clear()
        self.verifier = EntryVerifier(OPERATOR.public_key, KeyDirectory())
        return self.apply(records)

    def state(self) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
        c = self.store.conn
        return (c.execute("SELECT publisher, signal_id, idx, value, retracted_idx FROM signals ORDER BY 1, 2").fetchall(),
                c.execute("SELECT publisher, signal_id, author, verdict, idx FROM opinions ORDER BY 1, 2, 3").fetchall())


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=st.lists(OPS, min_size=1, max_size=14), theft_at=st.integers(0, 13), page=st.integers(1, 6),
       after=st.lists(OPS.filter(lambda o: o.actor == "carol"), max_size=3))
def test_compromise_undo_is_the_replay_without_tainted_entries(
    history: list[Op], theft_at: int, page: int, after: list[Op]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ledger = SqliteLedger(Path(tmp) / "ledger.db", clock_ms=lambda: T + 5000)
        setup = [_event(0, group_created=pb.GroupCreated(group_id="all", display_name="All", max_tlp=pb.TLP_AMBER))]
        for n, (name, signer) in enumerate(SIGNERS.items()):
            setup.append(_event(n, member_enrolled=pb.MemberEnrolled(member_id=name, display_name=name, groups=["all"],
                                                                     role=pb.ROLE_MEMBER)))
            setup.append(_event(n, key_added=pb.KeyAdded(member_id=name, public_key=signer.public_key,
                                                         valid_from=ms_to_timestamp(T))))
        envs = setup + [_env(_entry(op, n), SIGNERS[op.actor]) for n, op in enumerate(history)]
        ledger.append([Submission(envelope=e, digest=hashlib.sha256(e).digest()) for e in envs])
        since = len(setup) + min(theft_at, len(history) - 1)
        revoke = _event(99, key_revoked=pb.KeyRevoked(member_id="alice", keyid=SIGNERS["alice"].keyid,
                                                      compromised=True, compromised_since_index=since))
        tail = [revoke] + [_env(_entry(op, 100 + n), SIGNERS["carol"]) for n, op in enumerate(after)]
        ledger.append([Submission(envelope=e, digest=hashlib.sha256(e).digest()) for e in tail])
        records = [s.record for s in ledger.read(0, ledger.head())]
        tainted = {len(setup) + n for n, op in enumerate(history) if op.actor == "alice" and len(setup) + n >= since}
        ledger.close()

        incremental = Member(Path(tmp) / "incremental.db")
        cut = len(setup) + len(history)  # everything the thief signed arrives before the revocation
        pages = [records[i:min(i + page, cut)] for i in range(0, cut, page)] + [records[cut:]]
        reports = [incremental.apply(p) for p in pages]
        assert sum(r.corrupt for r in reports) == 0

        rebuilt = Member(Path(tmp) / "rebuilt.db")
        rebuilt.apply(records)
        assert rebuilt.rebuild(records).corrupt == 0

        model = Member(Path(tmp) / "model.db")  # the ledger as if the thief had never signed
        assert model.apply([r for i, r in enumerate(records) if i not in tainted]).quarantined == 0

        assert incremental.state() == rebuilt.state() == model.state()
        for m in (incremental, rebuilt, model):
            m.store.close()
