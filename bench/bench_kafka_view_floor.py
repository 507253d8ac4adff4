"""Where a Kafka view's CPU per entry goes, and the floor of its SQLite work (no broker).

Pre-signed signals are sequenced into ledger messages exactly as the sequencer writes
them (``layout.seal_round``); then, each stage timed on its own (``time.thread_time``,
best of ``--repeat``) per entry:

- sequencer stages: decode the replicas' batches, look up known digests, plan (key
  check at the index), seal the round, encode the results;
- view stages: the rule (``accept_many``), the entry decode (``projection.decode``),
  ``project``, and the whole ``LedgerView.apply_batch`` (rule state included);
- the SQLite floor: the same rows (records with their indexes, and the signals upsert)
  written with bare ``executemany`` into the view's schema, batches of ``--view-batch``,
  one transaction each — what any view on this schema pays whatever its Python does.

    python bench/bench_kafka_view_floor.py [--entries 4000]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from exchange.core.records import leaf_hash  # noqa: E402
from exchange.server.kafka import layout, rule  # noqa: E402
from exchange.server.kafka.rule import RuleState  # noqa: E402
from exchange.server.kafka.view import LedgerView  # noqa: E402
from exchange.server.kafka.wire import Batch, decode_batch, encode_batch, encode_result  # noqa: E402
from exchange.server.ledger import _INSERT_RECORD, _SCHEMA, _UPSERT_SIGNAL, SqliteLedger  # noqa: E402
from exchange.server.projection import decode, project  # noqa: E402
from tests.ledger_contract import G1, as_admitted, signal, task_force  # noqa: E402


def best_us(fn: Callable[[], Any], entries: int, repeat: int) -> float:
    """Least thread CPU µs per entry over ``repeat`` runs of ``fn``."""
    best = float("inf")
    for _ in range(repeat):
        started = time.thread_time()
        fn()
        best = min(best, time.thread_time() - started)
    return best / entries * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=4000)
    parser.add_argument("--batch", type=int, default=250, help="envelopes per replica batch")
    parser.add_argument("--view-batch", type=int, default=2000, help="entries per view transaction")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    n, out = args.entries, {"entries": args.entries, "load_before": os.getloadavg()}
    subs = [as_admitted(signal("alice", f"floor-{i}", [G1], value=f"{i:032x}")) for i in range(n)]
    raw = [encode_batch(Batch(request_id=os.urandom(16), replica_id="r", submissions=tuple(subs[i:i + args.batch]),
                              deadline_ms=0)) for i in range(0, n, args.batch)]
    with tempfile.TemporaryDirectory(prefix="tw-view-floor-") as tmp_s:
        tmp = Path(tmp_s)
        genesis = SqliteLedger(tmp / "genesis.db")
        genesis.append(task_force())
        first = [s.record for s in genesis.read(0, 100)]
        genesis.close()
        view = LedgerView(tmp / "seq-view.db", "floor")
        view.apply_records(first)
        start, now_ms = len(first), 1_800_000_000_000
        batches = [decode_batch(r) for r in raw]
        out["seq_decode_batches_us"] = best_us(lambda: [decode_batch(r) for r in raw], n, args.repeat)
        digests = [d for b in batches if b is not None for d in b.digests]
        out["seq_known_lookup_us"] = best_us(lambda: view.receipts_for(digests), n, args.repeat)
        envelopes = [s.envelope for s in subs]
        out["seq_seal_us"] = best_us(lambda: layout.seal_round(start, now_ms, 1, envelopes), n, args.repeat)
        messages, records, receipts = layout.seal_round(start, now_ms, 1, envelopes)
        out["seq_results_us"] = best_us(
            lambda: [encode_result(b"r" * 16, "r", receipts[i:i + args.batch]) for i in range(0, n, args.batch)],
            n, args.repeat)
        values = list(enumerate(messages, 1))
        state = RuleState(offset=1, epoch=1, next_index=start)
        out["view_rule_us"] = best_us(lambda: rule.accept_many(state, values), n, args.repeat)
        after, accepted, _ = rule.accept_many(state, values)
        out["view_decode_us"] = best_us(lambda: [decode(r.envelope) for r in accepted], n, args.repeat)
        decoded = [decode(r.envelope) for r in accepted]
        out["view_project_us"] = best_us(
            lambda: [project(r.envelope, lambda p, s: None, d) for r, d in zip(accepted, decoded, strict=True)],
            n, args.repeat)
        target = LedgerView(tmp / "view.db", "floor")
        target.apply_records(first)
        started = time.thread_time()
        for i in range(0, n, args.view_batch):
            target.apply_batch(accepted[i:i + args.view_batch], after)
        out["view_apply_batch_us"] = (time.thread_time() - started) / n * 1e6
        # the floor: the same rows, bare executemany, the view's schema and pragmas
        conn = sqlite3.connect(tmp / "floor.db", isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.executescript(_SCHEMA)
        rows = [(start + i, r, hashlib.sha256(s.envelope).digest(), "signal", "alice", G1, now_ms, leaf_hash(r))
                for i, (r, s) in enumerate(zip(records, subs, strict=True))]
        signal_rows = [("alice", f"floor-{i}", G1, start + i) for i in range(n)]
        started = time.thread_time()
        for i in range(0, n, args.view_batch):
            conn.execute("BEGIN")
            conn.executemany(_INSERT_RECORD, rows[i:i + args.view_batch])
            conn.executemany(_UPSERT_SIGNAL, signal_rows[i:i + args.view_batch])
            conn.execute("COMMIT")
        out["view_sql_floor_us"] = (time.thread_time() - started) / n * 1e6
        conn.close()
        view.close()
        target.close()
    out["view_total_us"] = out["view_rule_us"] + out["view_apply_batch_us"]
    out["view_python_us"] = out["view_total_us"] - out["view_sql_floor_us"]  # what is not the SQLite floor
    out["load_after"] = os.getloadavg()
    for k, v in out.items():
        print(f"{k:24} {v:.2f}" if isinstance(v, float) else f"{k:24} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
