"""Faults on a real broker with real ``trustwire serve`` processes, in bounded time.

1. kill -9 of the sequencing exchange while members publish;
2. the broker paused (SIGSTOP) for longer than the publish deadline, then resumed;
3. a subscriber process killed -9 mid-stream and restarted;
4. two replicas, and a member alternating between them.

Wall-clock figures (failover time) are printed, never asserted.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from clients.member import MemberClient
from clients.store import MemberStore
from exchange.core.errors import OutOfRange, TrustwireError
from exchange.core.records import Receipt
from exchange.core.verify import VerifiedEntry
from exchange.pb.trustwire.v1 import entries_pb2 as pb
from tests.conftest import GROUP_ALL, MEMBERS
from tests.kafka.broker import Broker
from tests.kafka.cluster import REPO, Cluster, Publisher, Tally, check_ledger, ledger_records, wait_for

N_KEY_EVENTS = 2 + 2 * len(MEMBERS)

pytestmark = pytest.mark.timeout(240)


class Follower(threading.Thread):
    """A member following the stream into its state file, moving to the next replica
    when its replica goes away (it resumes from its persisted cursor)."""

    def __init__(self, cluster: Cluster, member: str, targets: list[str], state: Path) -> None:
        super().__init__(daemon=True, name=f"follower-{state.name}")
        self.cluster, self.member, self.targets, self.state = cluster, member, targets, state
        self.stop_flag = threading.Event()
        self.switches = 0
        self.cursor = 0

    def run(self) -> None:
        which = 0
        while not self.stop_flag.is_set():
            client = self.cluster.member(self.member, self.targets[which], state=self.state)
            try:
                assert client.store is not None
                store = client.store

                def stop() -> bool:
                    self.cursor = store.cursor
                    return self.stop_flag.is_set()

                client.sync(follow=True, stop=stop)
            except TrustwireError:
                which = (which + 1) % len(self.targets)
                self.switches += 1
                time.sleep(0.1)
            finally:
                client.close()


def _bank_has(cluster: Cluster, state: Path, signal_ids: set[tuple[str, str]]) -> set[tuple[str, str]]:
    store = MemberStore(state)
    try:
        rows = store.conn.execute("SELECT publisher, signal_id FROM signals").fetchall()
    finally:
        store.close()
    return signal_ids - {(p, s) for p, s in rows}


def _signal_ids(envelopes: set[bytes]) -> set[tuple[str, str]]:
    from exchange.core.dsse import Envelope
    from exchange.core.entries import decode_entry

    out = set()
    for raw in envelopes:
        env = Envelope.decode(raw)
        _, entry = decode_entry(env.payload_type, env.payload)
        assert isinstance(entry, pb.Signal)
        out.add((entry.member_id, entry.signal_id))
    return out


# -- 1. kill -9 of the sequencer ------------------------------------------------------------------


def test_kill9_of_the_sequencer_loses_nothing_and_another_replica_takes_over(cluster: Cluster, tmp_path: Path) -> None:
    sequencer, survivor, epochs_before = cluster.two_replicas()

    followers = [
        Follower(cluster, "carol", [sequencer.target, survivor.target], tmp_path / "carol-on-sequencer.db"),
        Follower(cluster, "carol", [survivor.target, sequencer.target], tmp_path / "carol-on-survivor.db"),
    ]
    tally = Tally()
    publishers = [
        Publisher(cluster, "alice", [sequencer.target, survivor.target], tally, batches=30, batch=4, pause_s=0.05),
        Publisher(cluster, "bob", [survivor.target, sequencer.target], tally, batches=30, batch=4, pause_s=0.05),
    ]
    for t in [*followers, *publishers]:
        t.start()
    wait_for(lambda: len(tally.acked) >= 40, 60, "publishing to get going")

    killed_at = time.monotonic()
    sequencer.kill9()
    takeover_s = wait_for(lambda: survivor.epochs_started() > epochs_before, 60, "the survivor to take over")
    for p in publishers:
        p.join(120)
        assert not p.is_alive(), "a publisher did not finish"
    after = sorted(t for p in publishers for t, _ in p.acks if t > killed_at)
    assert after, "nothing was acknowledged after the failover"

    records = ledger_records(cluster, survivor.target)
    where = check_ledger(records)  # contiguous, no envelope twice
    acknowledged = {**tally.acked, **tally.retried_ok}
    assert len(acknowledged) == 2 * 30 * 4
    for envelope, receipt in acknowledged.items():
        assert where.get(envelope) == receipt.index, "an acknowledged entry is missing or moved"
    assert not tally.errors, tally.errors
    assert len(records) == N_KEY_EVENTS + len(acknowledged)

    published = _signal_ids(set(acknowledged))
    head = len(records)
    for f in followers:
        wait_for(lambda f=f: f.cursor >= head, 60, f"{f.name} to resume and catch up")
        f.stop_flag.set()
    for f in followers:
        f.join(15)
        assert not _bank_has(cluster, f.state, published), f"{f.name} misses entries"
    assert followers[0].switches >= 1  # it lost its replica and resumed on the other one

    print(
        f"\nfailover after kill -9 of the sequencer (session.timeout.ms={cluster.session_ms}): "
        f"survivor sequencing after {takeover_s:.2f} s; first publish acknowledged after the kill "
        f"at {after[0] - killed_at:.2f} s; {len(tally.failed)} envelope(s) needed a retry"
    )


# -- 2. the broker paused longer than the publish deadline -----------------------------------------


def test_broker_paused_past_the_deadline_fails_cleanly_or_succeeds_once(
    own_broker: Broker, topic_prefix: str, tmp_path: Path
) -> None:
    cluster = Cluster(bootstrap=own_broker.bootstrap, prefix=topic_prefix, workdir=tmp_path, publish_deadline_s=3.0)
    try:
        a = cluster.start("a")
        cluster.enrol(a.target)
        tally = Tally()
        publishers = [
            Publisher(cluster, m, [a.target], tally, batches=10_000, batch=3, pause_s=0.02, retry=False)
            for m in ("alice", "bob")
        ]
        for p in publishers:
            p.start()
        wait_for(lambda: len(tally.acked) >= 30, 60, "publishing to get going")
        acked_before = len(tally.acked)
        own_broker.pause()
        time.sleep(cluster.publish_deadline_s * 2.5)
        own_broker.resume()
        resumed = time.monotonic()
        wait_for(lambda: sum(t > resumed for p in publishers for t, _ in p.acks) >= 10, 90,
                 "publishes to succeed again, several of them")
        for p in publishers:
            p.stop_flag.set()
        for p in publishers:
            p.join(60)
            assert not p.is_alive()

        assert tally.failed, "nothing was in flight during the pause"
        statuses = {err.split(":")[0] for _, err in tally.failed}
        assert statuses <= {"UNAVAILABLE", "DEADLINE_EXCEEDED"}, statuses
        assert not tally.errors, tally.errors

        records = ledger_records(cluster, a.target)
        where = check_ledger(records)
        for envelope, receipt in tally.acked.items():
            assert where.get(envelope) == receipt.index, "an acknowledged entry was lost"
        failed = {e for e, _ in tally.failed}
        landed = {e for e in failed if e in where}

        # a client that saw a failure publishes again: exactly once, whatever happened before
        retried: dict[bytes, Receipt] = {}
        with cluster.member("alice", a.target) as alice, cluster.member("bob", a.target) as bob:
            members = {"alice": alice, "bob": bob}
            for e in failed:
                ((publisher, _),) = _signal_ids({e})
                (outcome,) = members[publisher].publish_envelopes([e])
                assert isinstance(outcome, Receipt), outcome
                retried[e] = outcome
        after = ledger_records(cluster, a.target)
        where_after = check_ledger(after)
        for e in landed:
            assert retried[e].index == where[e], "a re-publish of a landed entry got a new index"
        assert len(after) == len(records) + len(failed - landed)
        for e, r in retried.items():
            assert where_after[e] == r.index
        print(
            f"\nbroker paused {cluster.publish_deadline_s * 2.5:.1f} s (publish deadline {cluster.publish_deadline_s:.0f} s): "
            f"{len(tally.acked) - acked_before} batch entries acknowledged around the pause, {len(failed)} failed "
            f"({sorted(statuses)}); of those {len(failed - landed)} had no effect and {len(landed)} had been "
            "sequenced anyway (unknown fate); every re-publish was exactly once; nothing acknowledged was lost"
        )
    finally:
        cluster.stop()


# -- 3. a subscriber process killed -9 mid-stream ---------------------------------------------------


def test_a_subscriber_killed_mid_stream_queues_everything_once(cluster: Cluster, tmp_path: Path) -> None:
    a = cluster.start("a")
    cluster.enrol(a.target)
    n = 60
    content = tmp_path / "bob-content"
    content.mkdir()
    md5s = []
    for i in range(n):
        data = f"bob's own upload #{i}\n".encode()
        (content / f"upload-{i:03d}.txt").write_bytes(data)
        md5s.append(hashlib.md5(data).hexdigest())
    state = tmp_path / "bob-state.db"
    lines: list[str] = []

    def subscriber() -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.kafka.subscriber_proc", a.target, str(state), str(content), str(n),
             cluster.operator.public_key.hex(), cluster.vkey()],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO,
        )
        assert proc.stdout is not None
        out = proc.stdout
        threading.Thread(target=lambda: lines.extend(iter(out.readline, "")), daemon=True).start()
        return proc

    def queued() -> int:
        counts = [int(line.split()[3]) for line in lines if line.startswith("cursor ")]
        return counts[-1] if counts else -1

    first = subscriber()
    wait_for(lambda: queued() >= 0, 60, "the subscriber to start")
    receipts: dict[str, Receipt] = {}

    def publish() -> None:
        with cluster.member("alice", a.target) as alice:
            for start in range(0, n, 4):
                batch = [alice.signal("md5", md5s[i], groups=[GROUP_ALL], signal_id=f"up-{i}") for i in range(start, start + 4)]
                for s, r in zip(batch, alice.publish(batch), strict=True):
                    assert isinstance(r, Receipt), r
                    receipts[s.signal_id] = r
                time.sleep(0.25)  # paced so the kill lands mid-stream (a fast subscriber otherwise queues all n first)

    publisher = threading.Thread(target=publish, daemon=True)
    publisher.start()
    wait_for(lambda: queued() >= n // 3, 60, "the subscriber to queue a third")
    first.kill()
    first.wait(10)
    killed_at_queue = queued()
    lines.append("--- killed ---\n")
    publisher.join(60)
    assert len(receipts) == n
    second = subscriber()
    assert second.wait(90) == 0, "".join(lines[-20:])

    store = MemberStore(state)
    try:
        items = store.conn.execute("SELECT publisher, signal_id, signal_idx FROM queue").fetchall()
        events = store.conn.execute("SELECT item_id, COUNT(*) FROM queue_events GROUP BY item_id").fetchall()
        cursor = store.cursor
    finally:
        store.close()
    assert len(items) == n, f"{len(items)} queue items for {n} signals"
    assert {(p, s) for p, s, _ in items} == {("alice", f"up-{i}") for i in range(n)}  # no duplicate, none missing
    assert {s: i for _, s, i in items} == {s: r.index for s, r in receipts.items()}
    assert all(count == 1 for _, count in events)  # each queued once
    assert cursor == N_KEY_EVENTS + n
    assert 0 <= killed_at_queue < n


# -- 4. two replicas, one member alternating ----------------------------------------------------------


def _sync_with_retry(client: MemberClient) -> None:
    """A replica a few ms behind the other refuses a checkpoint it has not reached yet."""
    def synced() -> bool:
        try:
            client.sync()
        except OutOfRange:
            return False
        return True

    wait_for(synced, 10, "a replica to reach the checkpoint the member trusts")


def test_a_member_alternating_between_two_replicas_sees_one_order(cluster: Cluster, tmp_path: Path) -> None:
    a = cluster.start("a")
    cluster.enrol(a.target)
    b = cluster.start("b")
    replicas = [a, b]
    state = tmp_path / "alice.db"
    seen: dict[int, bytes] = {}
    indices: list[int] = []
    for k in range(12):
        publish_via, read_via = replicas[k % 2], replicas[(k + 1) % 2]
        with cluster.member("alice", publish_via.target) as alice:
            (r,) = alice.publish([alice.signal("md5", hashlib.md5(b"%d" % k).hexdigest(), groups=[GROUP_ALL],
                                               signal_id=f"alt-{k}")])
            assert isinstance(r, Receipt), r
            indices.append(r.index)
        with cluster.member("alice", read_via.target, state=state) as alice:
            _sync_with_retry(alice)  # verifies every proof and checkpoint consistency across replicas
        with cluster.member("carol", read_via.target) as carol:
            entries: list[VerifiedEntry] = []

            def caught_up() -> bool:
                entries[:] = list(carol.subscribe(follow=False))
                return bool(entries) and entries[-1].index >= r.index

            wait_for(caught_up, 10, "the replica to serve the last entry")
            for v in entries:
                assert seen.setdefault(v.index, v.record) == v.record, f"entry {v.index} differs between replicas"
            assert entries[-1].index == r.index and isinstance(entries[-1].entry, pb.Signal)
            assert entries[-1].entry.signal_id == f"alt-{k}"
    assert indices == sorted(indices) and len(set(indices)) == len(indices)
    assert indices == list(range(N_KEY_EVENTS, N_KEY_EVENTS + 12))
    via_a, via_b = ledger_records(cluster, a.target), ledger_records(cluster, b.target)
    assert via_a == via_b
    check_ledger(via_a)
    store = MemberStore(state)
    try:
        banked = dict(store.conn.execute("SELECT signal_id, idx FROM signals").fetchall())
        assert store.cursor == len(via_a)
    finally:
        store.close()
    assert banked == {f"alt-{k}": indices[k] for k in range(12)}
