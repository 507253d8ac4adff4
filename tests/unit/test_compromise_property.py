"""Property (issue 12): over random histories with a compromise event, a member that
synced incrementally (page by page, the compromise arriving after what the thief
signed), a member that rebuilt its bank from index 0, and a member that replayed the
ledger *without* the tainted entries all hold the same bank (PROTOCOL.md §8). And a
page applied with batched writes (``Ingester.apply_page``) ends exactly as the same
entries applied one by one: bank, kept versions, queue and quarantine. Real SQLite
ledger and state files; the member's verifier and ingester as they run in sync."""

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
from clients.media import ContentHash
from clients.policy import Action, Policy
from clients.queue import ModerationQueue
from clients.routing import Router
from clients.store import MemberStore
from exchange.core.dsse import sign_envelope
from exchange.core.entries import Entry, encode_entry, ms_to_timestamp
from exchange.core.errors import UntrustedEntry
from exchange.core.keydir import KeyDirectory
from exchange.core.keys import Signer
from exchange.core.verify import EntryVerifier, VerifiedEntry
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
    """A member's state file with the rooms sync uses; ``batched``: pages applied as
    sync applies them, else entry by entry. It holds files whose md5 is ``VALUES[0]``
    and ``VALUES[1]``, and queues every match."""

    def __init__(self, path: Path, batched: bool = True, recipient_check: bool = False) -> None:
        self.store = MemberStore(path)
        self.bank = Bank(self.store, clock_ms=lambda: T)
        queue = ModerationQueue(self.store, clock_ms=lambda: T)
        policy = Policy(rules=(), default=Action.ENQUEUE)
        router = Router("bob", policy, self.bank, queue, Outbox(self.store, clock_ms=lambda: T), None)
        content = ContentStore(self.store)
        content.put_many([(f"file-{i}", [ContentHash("md5", VALUES[i])]) for i in (0, 1)], T)
        self.ingester = Ingester(self.store, self.bank, queue, content, router, lambda: T)
        self.verifier = EntryVerifier(OPERATOR.public_key, KeyDirectory())
        self.batched, self.recipient_check = batched, recipient_check

    def apply(self, records: list[bytes]) -> SyncReport:
        report = SyncReport()
        with self.store.transaction():
            results = list(zip(records, self.verifier.verify_many(records), strict=True))
            if self.batched:
                self.ingester.apply_page(results, self.verifier, report, self.admit)
            else:
                for raw, v in results:
                    self.ingester.apply(raw, self.admit(v), self.verifier, report)
        return report

    def admit(self, v: VerifiedEntry | UntrustedEntry) -> VerifiedEntry | UntrustedEntry:
        """With ``recipient_check``, like sync's, it reads the bank: a retraction or
        opinion of a signal not banked (yet) is refused."""
        if not self.recipient_check or isinstance(v, UntrustedEntry) or not isinstance(v.entry, (pb.Retraction, pb.Opinion)):
            return v
        ref = v.entry.signal
        if self.bank.get(ref.member_id, ref.signal_id) is not None:
            return v
        return UntrustedEntry(f"entry {v.index}: not-for-recipient: {ref.signal_id} not banked", cause="not-for-recipient")

    def rebuild(self, records: list[bytes]) -> SyncReport:
        self.bank.clear()
        self.verifier = EntryVerifier(OPERATOR.public_key, KeyDirectory())
        return self.apply(records)

    def state(self) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
        c = self.store.conn
        return (c.execute("SELECT publisher, signal_id, idx, value, retracted_idx FROM signals ORDER BY 1, 2").fetchall(),
                c.execute("SELECT publisher, signal_id, author, verdict, idx FROM opinions ORDER BY 1, 2, 3").fetchall())

    def everything(self) -> dict[str, list[tuple[object, ...]]]:
        """Every table a page writes, row for row (queue ids included: routing order)."""
        queries = {
            "signals": "SELECT * FROM signals ORDER BY publisher, signal_id",
            "opinions": "SELECT * FROM opinions ORDER BY publisher, signal_id, author",
            "signal_versions": "SELECT * FROM signal_versions ORDER BY publisher, signal_id, idx",
            "opinion_versions": "SELECT * FROM opinion_versions ORDER BY publisher, signal_id, author, idx",
            "queue": "SELECT * FROM queue ORDER BY id",
            "queue_evidence": "SELECT * FROM queue_evidence ORDER BY item_id, publisher, signal_id",
            "queue_events": "SELECT * FROM queue_events ORDER BY rowid",
            "quarantine": "SELECT idx, reason FROM quarantine ORDER BY idx",
            "key_events": "SELECT * FROM key_events ORDER BY idx",
        }
        return {name: self.store.conn.execute(q).fetchall() for name, q in queries.items()}


def setup_events() -> list[bytes]:
    """The operator's group "all" and the members, each enrolled with one key."""
    setup = [_event(0, group_created=pb.GroupCreated(group_id="all", display_name="All", max_tlp=pb.TLP_AMBER))]
    for n, (name, signer) in enumerate(SIGNERS.items()):
        setup.append(_event(n, member_enrolled=pb.MemberEnrolled(member_id=name, display_name=name, groups=["all"],
                                                                 role=pb.ROLE_MEMBER)))
        setup.append(_event(n, key_added=pb.KeyAdded(member_id=name, public_key=signer.public_key,
                                                     valid_from=ms_to_timestamp(T))))
    return setup


def _ledger(tmp: str, history: list[Op], theft_at: int, after: list[Op]) -> tuple[list[bytes], int, set[int]]:
    """The ledger's records (set-up, ``history``, alice's key revoked as compromised since
    ``theft_at``, then ``after``), where the revocation is and which entries it taints."""
    ledger = SqliteLedger(Path(tmp) / "ledger.db", clock_ms=lambda: T + 5000)
    setup = setup_events()
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
    return records, len(setup) + len(history), tainted


def _histories(size: int, page: int, after: int) -> dict[str, st.SearchStrategy[object]]:
    """A history of up to ``size`` entries, the theft in it, a page size, carol's entries after."""
    return {"history": st.lists(OPS, min_size=1, max_size=size), "theft_at": st.integers(0, size - 1),
            "page": st.integers(1, page), "after": st.lists(OPS.filter(lambda o: o.actor == "carol"), max_size=after)}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(**_histories(14, page=6, after=3))
def test_compromise_undo_is_the_replay_without_tainted_entries(
    history: list[Op], theft_at: int, page: int, after: list[Op]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        records, cut, tainted = _ledger(tmp, history, theft_at, after)
        incremental = Member(Path(tmp) / "incremental.db")
        # everything the thief signed arrives before the revocation (at ``cut``)
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


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(**_histories(20, page=40, after=4))
def test_a_batched_page_ends_as_its_entries_applied_one_by_one(
    history: list[Op], theft_at: int, page: int, after: list[Op]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        records, _, _ = _ledger(tmp, history, theft_at, after)
        batched = Member(Path(tmp) / "batched.db", recipient_check=True)
        single = Member(Path(tmp) / "single.db", batched=False, recipient_check=True)
        for i in range(0, len(records), page):
            assert batched.apply(records[i:i + page]) == single.apply(records[i:i + page])
        assert batched.everything() == single.everything()
        for m in (batched, single):
            m.store.close()


def test_a_page_with_a_signal_its_new_version_and_its_retraction_ends_as_one_by_one() -> None:
    """The later version and then the retraction win, within one page, as they would one by one."""
    history = [Op("alice", "signal", "s0", 0), Op("carol", "signal", "s1", 1), Op("alice", "signal", "s0", 1),
               Op("alice", "retraction", "s0", 0), Op("carol", "opinion", "s0", 1), Op("carol", "signal", "s2", 0)]
    with tempfile.TemporaryDirectory() as tmp:
        records, cut, _ = _ledger(tmp, history, theft_at=len(history), after=[])
        batched = Member(Path(tmp) / "batched.db", recipient_check=True)
        single = Member(Path(tmp) / "single.db", batched=False, recipient_check=True)
        report = batched.apply(records[:cut])  # one page, the revocation not yet
        assert report == single.apply(records[:cut])
        assert (report.signals, report.retractions, report.queued, report.withdrawn) == (4, 1, 3, 1)
        state = batched.everything()
        assert state == single.everything()
        s0 = batched.bank.get("alice", "s0")
        assert s0 is not None and (s0.value, s0.retracted_index) == (VALUES[1], s0.index + 1)
        assert [r[4] for r in state["signal_versions"]] == [VALUES[0]]  # the first version, kept
        assert {(r[1], r[3], r[10]) for r in state["queue"]} == {
            ("file-0", "s0", "withdrawn"), ("file-1", "s1", "pending"), ("file-0", "s2", "pending")}
        for m in (batched, single):
            m.store.close()
