"""Start-up costs what changed: the verified watermark, and the damage it must still catch.

Real SQLite files and tree files, opened and closed as the exchange does; damage is
done in place (same inode), the way a stray write or an editor would.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import pytest

from exchange.core import merkle
from exchange.core import note as notes
from exchange.core.errors import LedgerCorrupt
from exchange.core.keys import Signer
from exchange.server.checkpoints import CheckpointLog
from exchange.server.integrity import VerificationState, forget_seals
from exchange.server.ledger import Cancel, Integrity, SqliteLedger
from tests.conftest import wait_until
from tests.ledger_contract import receipts, signal, task_force

ORIGIN = "example.org/watermark-test"
LOG_KEY = notes.NoteSigner(ORIGIN, Signer.from_seed(hashlib.sha256(b"watermark-log-INSECURE").digest()).signing_key)


def _value(i: int) -> str:
    return hashlib.md5(f"watermark-{i}".encode()).hexdigest()


class Site:
    """An exchange's files: a ledger and its audit directory."""

    def __init__(self, root: Path) -> None:
        self.ledger_path = root / "ledger.db"
        self.audit = root / "ledger.db.audit"
        self.audit.mkdir(parents=True, exist_ok=True)

    def open(self, interval_ms: int = 0) -> tuple[SqliteLedger, CheckpointLog]:
        ledger = SqliteLedger(self.ledger_path)
        try:
            return ledger, CheckpointLog(ledger, self.audit, LOG_KEY, ORIGIN, interval_ms=interval_ms)
        except BaseException:
            ledger.close()
            raise

    @staticmethod
    def close(ledger: SqliteLedger, log: CheckpointLog) -> None:
        log.stop()
        ledger.close()

    def grow(self, n: int, start: int = 0) -> None:
        ledger, log = self.open()
        try:
            if ledger.head() == 0:
                receipts(ledger.append(task_force()))
            batch = [signal("alice", f"sig-{i}", ["g-one"], value=_value(i)) for i in range(start, start + n)]
            receipts(ledger.append(batch))
            log.catch_up()
        finally:
            self.close(ledger, log)


@pytest.fixture
def site(tmp_path: Path) -> Site:
    s = Site(tmp_path / "exchange")
    s.grow(200)
    return s


def _flip(path: Path, offset: int) -> None:
    """Change one byte in place (the file keeps its inode)."""
    with path.open("r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x01]))


def test_clean_restart_rehashes_nothing(site: Site) -> None:
    ledger, log = site.open()
    try:
        assert ledger.integrity is Integrity.SEALED
        assert log.rehashed_at_start == 0
        assert log.verification.state is VerificationState.NOT_NEEDED
    finally:
        site.close(ledger, log)


def test_restart_rehashes_only_what_lies_beyond_the_watermark(site: Site) -> None:
    ledger, log = site.open(interval_ms=3_600_000)  # nothing more is signed while it runs
    try:
        receipts(ledger.append([signal("alice", f"late-{i}", ["g-one"]) for i in range(30)]))
        log.catch_up()
        assert log.latest() is not None and log.latest().size == 207  # type: ignore[union-attr]
        assert log.tree.size == 237
    finally:
        site.close(ledger, log)
    ledger, log = site.open()
    try:
        assert log.rehashed_at_start == 30
        assert log.latest().size == 237  # type: ignore[union-attr]
    finally:
        site.close(ledger, log)


def test_record_byte_flipped_in_place_is_refused(site: Site) -> None:
    _flip(site.ledger_path, site.ledger_path.read_bytes().index(_value(100).encode()) + 2)
    with pytest.raises(LedgerCorrupt, match="do not hash to the root the log signed"):
        site.open()


def test_record_byte_flipped_with_its_times_restored_is_refused(site: Site) -> None:
    """Putting the modification time back does not hide a write: the status-change time moves."""
    st = site.ledger_path.stat()
    _flip(site.ledger_path, site.ledger_path.read_bytes().index(_value(150).encode()) + 2)
    os.utime(site.ledger_path, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.raises(LedgerCorrupt, match="do not hash to the root the log signed"):
        site.open()


def test_tree_leaf_flipped_in_place_is_rebuilt(site: Site) -> None:
    _flip(site.audit / "tree" / "level-00.bin", 32 * 5 + 7)
    ledger, log = site.open()
    try:
        assert log.rehashed_at_start == ledger.head()  # the tree's seal no longer holds: a full pass
        size = log.tree.size
        root = log.tree.root()
        for index, stored in enumerate(ledger.read(0, size)):
            proof = log.tree.inclusion_proof(index, size)
            merkle.verify_inclusion(merkle.leaf_hash(stored.record), index, size, proof, root)
    finally:
        site.close(ledger, log)


def test_untouched_files_with_a_stale_seal_pass_a_full_check(site: Site) -> None:
    """A seal that no longer matches (here: the times moved, nothing else) costs a full pass, not an alarm."""
    os.utime(site.ledger_path)
    _starts_with_a_full_check(site)


def test_crash_restart_serves_at_once_and_checks_everything_in_the_background(site: Site) -> None:
    ledger, log = site.open()  # then "crash": nothing is closed, both seals stay open
    ledger2, log2 = site.open()
    try:
        assert ledger2.integrity is Integrity.CRASHED
        assert log2.rehashed_at_start == 0
        _wait_done(log2)
        assert log2.verification.state is VerificationState.OK
        assert log2.verification.checked == 207
        samples = {(m.name, tuple(m.labels.items())): m.value for m in log2.verification.engine_metrics()}
        assert samples[("verification_state", (("state", "ok"),))] == 1.0  # what /metrics exports
        assert samples[("verification_checked_entries", ())] == samples[("verification_total_entries", ())] == 207
    finally:
        site.close(ledger2, log2)
    del ledger, log


def test_damage_after_a_crash_is_found_by_the_background_pass_and_refused_next_start(site: Site) -> None:
    ledger, log = site.open()  # crash, then a stray write
    _flip(site.ledger_path, site.ledger_path.read_bytes().index(_value(42).encode()) + 2)
    ledger2, log2 = site.open()
    try:
        _wait_done(log2)
        assert log2.verification.state is VerificationState.FAILED
        assert "do not hash to the root the log signed" in log2.verification.message
    finally:
        site.close(ledger2, log2)
    with pytest.raises(LedgerCorrupt, match="do not hash to the root the log signed"):
        site.open()  # a failed pass leaves no watermark: the next start checks everything first
    del ledger, log


def test_stop_interrupts_a_structure_check_in_the_middle_of_quick_check(site: Site) -> None:
    """A SIGTERM during the background pass must not wait for ``quick_check`` to read the
    whole file (minutes at 10M entries): SQLite calls a progress handler only between
    steps, and the whole check is one step, so the check's connection is interrupted."""
    import sqlite3

    with sqlite3.connect(site.ledger_path) as conn:  # 96 MiB more pages for quick_check to walk
        conn.execute("CREATE TABLE ballast (b BLOB)")
        conn.executemany("INSERT INTO ballast VALUES (?)", ((os.urandom(3000),) for _ in range(32_000)))
    size = site.ledger_path.stat().st_size
    ledger = SqliteLedger(site.ledger_path)
    cancel, tid, outcome = Cancel(), [], {}

    def check() -> None:
        tid.append(threading.get_native_id())
        try:
            ledger.verify_structure(cancel)
        except LedgerCorrupt as exc:
            import traceback; traceback.print_exc()
            outcome["error"] = exc.message
        outcome["read"] = _thread_read_bytes(tid[0])

    thread = threading.Thread(target=check)
    try:
        thread.start()
        # quick_check is under way (polled without pause: from the page cache it reads ~2 GB/s)
        wait_until(lambda: tid and _thread_read_bytes(tid[0]) > 2 << 20, interval=0)
        cancel.set()
        thread.join(timeout=60)
        assert not thread.is_alive()
        assert "interrupted" in outcome["error"]
        assert outcome["read"] < size // 2  # stopped, not run to the end (the old code read it all)
    finally:
        cancel.set()
        thread.join(timeout=60)
        ledger.close()


def _thread_read_bytes(tid: int) -> int:
    """Bytes one thread of this process has read through read(2) (SQLite does not mmap by default)."""
    for line in Path(f"/proc/self/task/{tid}/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar")


def test_full_verify_forgets_the_seals(site: Site) -> None:
    forget_seals(site.ledger_path, site.audit)
    _starts_with_a_full_check(site)


def test_cadence_signs_at_most_once_per_interval_whatever_the_batches(tmp_path: Path) -> None:
    site = Site(tmp_path / "x")
    ledger, log = site.open(interval_ms=3_600_000)
    try:
        receipts(ledger.append(task_force()))
        log.catch_up()  # the empty tree was signed at start: this growth waits for the interval
        for i in range(20):  # twenty small batches inside one interval: no new checkpoint
            receipts(ledger.append([signal("alice", f"b-{i}", ["g-one"])]))
            log.catch_up()
        assert [cp.size for cp in log.checkpoints(0, 100)] == [0]
        assert log.tree.size == 27
    finally:
        site.close(ledger, log)
    ledger, log = site.open(interval_ms=0)
    try:  # the next start signs what was left unsigned
        assert [cp.size for cp in log.checkpoints(0, 100)] == [0, 27]
    finally:
        site.close(ledger, log)


def _starts_with_a_full_check(site: Site) -> None:
    ledger, log = site.open()
    try:
        assert ledger.integrity is Integrity.CHECKED
        assert log.rehashed_at_start == ledger.head()
    finally:
        site.close(ledger, log)


def _wait_done(log: CheckpointLog) -> None:
    thread = log.verification._thread
    assert thread is not None
    thread.join(timeout=60)
    assert not thread.is_alive()
