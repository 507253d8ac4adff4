"""The checkpoint store is written without an fsync per checkpoint (issue 18: one disk
sync less between a commit and its followers). What a power loss can take from it,
the last rows, must come back byte for byte: the synced ledger fixes the root, and
the note and its Ed25519 signature are deterministic.

Real SQLite files; the loss is the rows a power cut would drop, deleted in place.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.faults.test_watermark import Site


def _drop_rows_from(audit: Path, size: int) -> None:
    db = sqlite3.connect(audit / "checkpoints.db")
    with db:
        db.execute("DELETE FROM checkpoints WHERE size >= ?", (size,))
    db.close()


def test_a_lost_checkpoint_is_signed_again_byte_for_byte(tmp_path: Path) -> None:
    site = Site(tmp_path / "exchange")
    site.grow(100)
    site.grow(100, start=100)
    ledger, log = site.open()
    lost = log.latest()
    earlier = log.checkpoints(0, 100)
    site.close(ledger, log)
    assert lost is not None and len(earlier) >= 2

    _drop_rows_from(site.audit, lost.size)  # the unsynced tail of the store is gone

    ledger, log = site.open()
    try:
        log.catch_up()
        again = log.latest()
        assert again is not None
        assert (again.size, again.root, again.note) == (lost.size, lost.root, lost.note)
        assert [c.note for c in log.checkpoints(0, 100)] == [c.note for c in earlier]
    finally:
        site.close(ledger, log)
