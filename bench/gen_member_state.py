"""Generate a realistic member state file (a synced bank) without syncing entries.

    python bench/gen_member_state.py /tmp/member-10m.db --size 10000000

Writes ``size`` banked signals straight into the schema :class:`clients.store.MemberStore`
creates (executemany, one transaction per 200k rows): 40% md5, 20% sha256, 40% PDQ,
from 12 publishers (each with its own key id), uuid4-hex signal ids, a handful of label
and group sets, confidence 50..100, severity 1..5, 5% with a validity end in the future
and 1% with opinions from other members. The cursor is set past the last entry. Values
come from a seeded generator, so the load generator (:func:`values`) can rebuild them
and plant hits. Used by bench_matchsvc.py (``--state``); it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SHARES = (("md5", 0.4, 16), ("sha256", 0.2, 32), ("pdq", 0.4, 32))  # type, share, bytes
PUBLISHERS = [f"member-{i:02d}" for i in range(12)]
LABELS = [["csam"], ["csam", "sextortion"], ["terrorism"], ["ncii"], ["spam", "scam"], ["violent_extremism"]]
GROUPS = [["g-all"], ["g-all", "g-eu"], ["g-csam"]]
CHUNK = 200_000
NOW_MS = 1_800_000_000_000


def counts(size: int) -> dict[str, int]:
    """Signals per type for a bank of ``size``."""
    n = {t: int(size * share) for t, share, _ in SHARES}
    n["md5"] += size - sum(n.values())
    return n


def values(size: int, type_name: str, seed: int = 21) -> list[str]:
    """The hex values of one type, as written (reproducible from size and seed)."""
    width = dict((t, b) for t, _, b in SHARES)[type_name]
    rng = np.random.default_rng([seed, [t for t, _, _ in SHARES].index(type_name)])
    raw = rng.bytes(width * counts(size)[type_name]).hex()
    step = 2 * width
    return [raw[i : i + step] for i in range(0, len(raw), step)]


def _rows(size: int, seed: int) -> Iterator[tuple[object, ...]]:
    rng = np.random.default_rng(seed)
    keyids = {p: n for n, p in enumerate(PUBLISHERS, start=1)}  # key_ids numbers (see generate)
    idx = 0
    for type_name, _, _ in SHARES:
        vals = values(size, type_name, seed)
        for start in range(0, len(vals), CHUNK):
            part = vals[start : start + CHUNK]
            n = len(part)
            pubs = rng.integers(0, len(PUBLISHERS), n)
            labels = rng.integers(0, len(LABELS), n)
            groups = rng.integers(0, len(GROUPS), n)
            conf = rng.integers(50, 101, n)
            sev = rng.integers(1, 6, n)
            until = rng.random(n) < 0.05
            ids = rng.bytes(16 * n).hex()
            for i, v in enumerate(part):
                p = PUBLISHERS[int(pubs[i])]
                created = NOW_MS - 86_400_000 * 30 + idx
                yield (p, ids[32 * i : 32 * i + 32], idx, type_name, v, json.dumps(LABELS[int(labels[i])]),
                       int(conf[i]), int(sev[i]), json.dumps(GROUPS[int(groups[i])]), 2, None,
                       NOW_MS + 86_400_000 * 365 if until[i] else None, created, None, keyids[p], created + 50)
                idx += 1


def generate(path: Path, size: int, seed: int = 21) -> dict[str, float]:
    """Write the state file; returns how long it took and its size."""
    from clients.store import MemberStore

    started = time.monotonic()
    store = MemberStore(path)
    conn = store.conn
    conn.execute("PRAGMA synchronous=OFF")
    rng = np.random.default_rng(seed)
    with store.transaction():  # one signing key per publisher, numbered 1..12 as _rows expects
        conn.executemany("INSERT INTO key_ids (n, keyid) VALUES (?, ?)",
                         [(n, rng.bytes(32).hex()) for n, _ in enumerate(PUBLISHERS, start=1)])
    insert = ("INSERT INTO signals (publisher, signal_id, idx, type, value, labels, confidence, severity, groups,"
              " tlp, valid_from_ms, valid_until_ms, created_at_ms, retracted_idx, key_no, accepted_at_ms)"
              " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
    batch: list[tuple[object, ...]] = []
    opinions: list[tuple[object, ...]] = []
    written = 0
    for row in _rows(size, seed):
        batch.append(row)
        if row[2] % 100 == 0:  # 1%: an opinion from another member
            opinions.append((row[0], row[1], PUBLISHERS[(PUBLISHERS.index(str(row[0])) + 1) % 12],
                             2 if row[2] % 300 else 3, size + len(opinions), 0, NOW_MS))
        if len(batch) >= CHUNK:
            with store.transaction():
                conn.executemany(insert, batch)
            written += len(batch)
            batch = []
    with store.transaction():
        conn.executemany(insert, batch)
        conn.executemany("INSERT INTO opinions (publisher, signal_id, author, verdict, idx, key_no, accepted_at_ms)"
                         " VALUES (?, ?, ?, ?, ?, ?, ?)", opinions)
    store.set_meta("cursor", str(size + len(opinions)))
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return {"signals": written + len(batch), "opinions": len(opinions), "seconds": time.monotonic() - started,
            "file_mib": path.stat().st_size / 2**20}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("path", type=Path)
    p.add_argument("--size", type=int, default=1_000_000)
    p.add_argument("--seed", type=int, default=21)
    args = p.parse_args()
    print(json.dumps(generate(args.path, args.size, args.seed)))


if __name__ == "__main__":
    main()
