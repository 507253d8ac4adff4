"""A process that appends to a SQLite ledger from several threads at once, for the
group-commit kill -9 test (tests/faults/test_group_commit.py).

    python -m tests.faults.group_writer LEDGER THREADS BATCH

Every thread appends batches of fresh signals without pause; after each append
returns it prints ``ack <index> <digest hex> …`` for the whole batch (one line),
before it ``sent <n>``, and the ledger's group figures with each ack. The parent
kills it with SIGKILL at some moment and checks the file.
"""

from __future__ import annotations

import sys
import threading

from exchange.core.records import Receipt
from exchange.server.ledger import SqliteLedger
from tests.ledger_contract import G1, signal, task_force

_out = threading.Lock()


def _say(line: str) -> None:
    with _out:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def main() -> None:
    path, threads, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    ledger = SqliteLedger(path)
    if ledger.head() == 0:
        ledger.append(task_force())

    def run(t: int) -> None:
        n = 0
        while True:
            subs = [signal("alice", f"t{t}-{n + i}", [G1], value=f"{t:08x}{n + i:024x}") for i in range(batch)]
            n += batch
            _say(f"sent {len(subs)}")
            outcomes = ledger.append(subs)
            assert all(isinstance(o, Receipt) for o in outcomes), outcomes[:2]
            pairs = " ".join(f"{o.index}:{s.digest.hex()}" for o, s in zip(outcomes, subs, strict=True))  # type: ignore[union-attr]
            _say(f"ack {ledger.groups_committed} {ledger.batches_committed} {pairs}")

    for t in range(threads):
        threading.Thread(target=run, args=(t,), daemon=True).start()
    threading.Event().wait()


if __name__ == "__main__":
    main()
