"""A consistent copy of an embedded-engine ledger for an auditor, taken while it serves.

Copying ``ledger.db`` by hand misses what is still in its write-ahead log (``-wal``):
the copy can be a few-KB stub. SQLite's online backup API copies a consistent
snapshot, WAL included, without stopping the exchange. The signed checkpoints
(``checkpoints.db`` in the audit directory) are copied *first*, so every checkpoint
in the snapshot signs a prefix of the ledger in it (the ledger only grows).

The result is laid out as ``audit verify --ledger OUT/ledger.db`` expects by default:
``OUT/ledger.db`` and ``OUT/ledger.db.audit/checkpoints.db``.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from exchange.core.errors import InvalidInput, LedgerCorrupt

__all__ = ["Snapshot", "snapshot_ledger"]


@dataclass(frozen=True, slots=True)
class Snapshot:
    ledger: Path
    checkpoints: Path
    entries: int
    checkpoint_count: int


def _backup(source: Path, target: Path, what: str) -> None:
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
    except sqlite3.DatabaseError as exc:
        raise LedgerCorrupt(f"cannot copy {what} {source}: {exc}") from exc
    finally:
        dst.close()
        src.close()


def _count(path: Path, sql: str) -> int:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return int(conn.execute(sql).fetchone()[0])
    except sqlite3.DatabaseError as exc:
        raise LedgerCorrupt(f"{path} is not a Trustwire ledger or checkpoint file ({exc})") from exc
    finally:
        conn.close()


def snapshot_ledger(ledger: Path, out: Path, audit_dir: Path | None = None) -> Snapshot:
    """Copy ``ledger`` and its checkpoints into the new directory ``out``."""
    checkpoints = (audit_dir or Path(str(ledger) + ".audit")) / "checkpoints.db"
    for path, what in ((ledger, "ledger file"), (checkpoints, "checkpoint file")):
        if not path.is_file():
            raise InvalidInput(f"{what} {path} does not exist")
    if out.exists() and any(out.iterdir()):
        raise InvalidInput(f"{out} is not empty: give a new directory for the snapshot")
    out_ledger = out / "ledger.db"
    out_checkpoints = out / "ledger.db.audit" / "checkpoints.db"
    out_checkpoints.parent.mkdir(parents=True, exist_ok=True)
    _backup(checkpoints, out_checkpoints, "checkpoint file")
    _backup(ledger, out_ledger, "ledger file")
    return Snapshot(
        ledger=out_ledger,
        checkpoints=out_checkpoints,
        entries=_count(out_ledger, "SELECT COUNT(*) FROM records"),
        checkpoint_count=_count(out_checkpoints, "SELECT COUNT(*) FROM checkpoints"),
    )
