"""kill -9 of a process in the middle of group commits (issue 18): several threads
append to one SQLite ledger at once, their batches grouped into shared transactions;
after the kill, every batch that was acknowledged is in the file at the index its
receipt named, and the indices are contiguous. Real process, real SIGKILL, real file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from exchange.server.ledger import SqliteLedger

ROOT = Path(__file__).resolve().parents[2]
WAIT_S = 60.0


def _run_and_kill(ledger: Path, acks_wanted: int) -> tuple[dict[int, str], int, int]:
    """Start the writer, kill it once it acknowledged ``acks_wanted`` entries, had
    groups of several batches, and has batches in flight; (acknowledged index →
    digest, batches in flight at the kill, most batches seen in one group)."""
    proc = subprocess.Popen([sys.executable, "-m", "tests.faults.group_writer", str(ledger), "4", "25"],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    acked: dict[int, str] = {}
    sent = done = grouped = 0
    timer = threading.Timer(WAIT_S, proc.kill)  # bounded: a stuck writer fails the test
    timer.start()
    try:
        for line in proc.stdout:
            word, _, rest = line.partition(" ")
            if word == "sent":
                sent += 1
            elif word == "ack":
                groups, batches, *pairs = rest.split()
                grouped = max(grouped, int(batches) - int(groups))
                done += 1
                for pair in pairs:
                    index, digest = pair.split(":")
                    acked[int(index)] = digest
            if len(acked) >= acks_wanted and grouped > 0 and sent - done >= 2:
                os.kill(proc.pid, signal.SIGKILL)
                break
    finally:
        timer.cancel()
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the writer stopped before it was killed"
    return acked, sent - done, grouped


def test_kill9_mid_group_commit_loses_nothing_acknowledged(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    for cycle in range(2):
        acked, in_flight, grouped = _run_and_kill(path, 1000 * (cycle + 1))
        assert in_flight >= 2 and grouped > 0  # batches were waiting to be grouped when it died
        ledger = SqliteLedger(path)
        try:
            ledger.verify_structure()  # every index from 0 to the head, every page sound
            stored = {r.index: r for r in ledger.read(0, ledger.head())}
            assert len(stored) == ledger.head()
            missing = [i for i in acked if i not in stored]
            assert not missing, f"acknowledged entries lost: {missing[:5]}"
            for index, digest in acked.items():
                assert ledger.receipt_for(bytes.fromhex(digest)).index == index  # type: ignore[union-attr]
        finally:
            ledger.close()
