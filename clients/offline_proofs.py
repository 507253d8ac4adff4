"""Inclusion and consistency proofs built from a ledger file, for an auditor offline.

The auditor holds a copy of the ledger (see :mod:`clients.snapshot`) and the log's
signed checkpoints; the proofs are computed from the records themselves and checked
against the signed roots exactly as the online ones are, so the results have the
same shape (``trustwire-inclusion-proof-v1``, ``trustwire-consistency-proof-v1``).
The tree is held in memory (32 bytes per entry per level, about 64 bytes an entry).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from exchange.core import merkle
from exchange.core.errors import InvalidInput, SecurityError
from exchange.core.logview import LogView, TrustedCheckpoint

__all__ = ["consistency_offline", "consistency_result", "inclusion_result", "latest_checkpoint", "prove_offline"]


def latest_checkpoint(checkpoints: Iterable[str], log_key: str) -> str:
    """The largest checkpoint that verifies against ``log_key`` (notes that do not are skipped)."""
    view, best, best_size = LogView(log_key), None, -1
    for note in checkpoints:
        try:
            size = view.open(note).size
        except Exception:  # noqa: BLE001 - a note that does not verify is not a candidate
            continue
        if size > best_size:
            best, best_size = note, size
    if best is None:
        raise InvalidInput("no checkpoint signed by the log key")
    return best


class _Tree:
    """Every level of the tree of a ledger file's first ``size`` records."""

    def __init__(self, records: Iterable[bytes], size: int) -> None:
        self.records: list[bytes] = []
        level = []
        for raw in records:
            self.records.append(raw)
            level.append(merkle.leaf_hash(raw))
        if len(level) < size:
            raise SecurityError(f"the ledger file holds {len(level)} entries, the checkpoint signs {size}")
        self.levels = [level]
        while len(level) > 1:
            level = [merkle.node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
            self.levels.append(level)

    def node(self, level: int, index: int) -> bytes:
        return self.levels[level][index]


def inclusion_result(record: bytes, index: int, proof: Sequence[bytes], trusted: TrustedCheckpoint) -> dict[str, Any]:
    """The machine-readable result of a verified inclusion proof."""
    return {
        "format": "trustwire-inclusion-proof-v1",
        "index": index,
        "tree_size": trusted.size,
        "leaf_hash": merkle.leaf_hash(record).hex(),
        "record": base64.b64encode(record).decode(),
        "proof": [h.hex() for h in proof],
        "root": trusted.root.hex(),
        "checkpoint": trusted.note,
        "verified": True,
    }


def consistency_result(old: TrustedCheckpoint, new: TrustedCheckpoint, proof: Sequence[bytes]) -> dict[str, Any]:
    """The machine-readable result of a verified consistency proof."""
    return {
        "format": "trustwire-consistency-proof-v1",
        "old_size": old.size,
        "new_size": new.size,
        "old_root": old.root.hex(),
        "new_root": new.root.hex(),
        "proof": [h.hex() for h in proof],
        "consistent": True,
    }


Reader = Callable[[int], Iterable[bytes]]
"""``read(n)``: the first ``n`` records of the ledger."""


def prove_offline(read: Reader, note: str, log_key: str, index: int) -> dict[str, Any]:
    """Prove and check that entry ``index`` of the ledger is in the checkpoint ``note``."""
    view = LogView(log_key, trusted_note=note)
    trusted = view.trusted
    assert trusted is not None
    if not 0 <= index < trusted.size:
        raise InvalidInput(f"entry {index} is not in the checkpoint of size {trusted.size}")
    tree = _Tree(read(trusted.size), trusted.size)
    proof = merkle.inclusion_proof(index, trusted.size, tree.node)
    view.check_inclusion(tree.records[index], index, trusted.size, proof)
    return inclusion_result(tree.records[index], index, proof, trusted)


def consistency_offline(read: Reader, old_note: str, new_note: str, log_key: str) -> dict[str, Any]:
    """Prove and check that ``new_note`` extends ``old_note``, from the ledger's records."""
    view = LogView(log_key, trusted_note=old_note)
    old = view.trusted
    assert old is not None
    new = LogView(log_key).open(new_note)
    if new.size < old.size:
        raise InvalidInput(f"the new checkpoint ({new.size}) is smaller than the old one ({old.size})")
    tree = _Tree(read(new.size), new.size)
    proof = merkle.consistency_proof(old.size, new.size, tree.node)
    view.advance(new_note, old.size, proof)
    return consistency_result(old, new, proof)

