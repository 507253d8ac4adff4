"""A verifier's view of the audit log: the last checkpoint it trusts, and the rules to
move on from it.

A new checkpoint is accepted only if it is signed by the pinned log key (and by a
quorum of trusted witnesses, if required), names the expected origin, and is
provably an extension of the trusted one (RFC 6962 consistency proof). Anything
else is a fork or a rollback: a :class:`LogForked` error that shows both notes, so
the evidence can be handed to the operator, the witnesses and the other members.
Records are then checked against the trusted checkpoint with inclusion proofs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from exchange.core import merkle
from exchange.core import note as notes
from exchange.core.errors import LogForked, SecurityError  # re-exported
from exchange.core.records import leaf_hash

__all__ = ["LogForked", "LogView", "TrustedCheckpoint"]


@dataclass(frozen=True, slots=True)
class TrustedCheckpoint:
    checkpoint: notes.Checkpoint
    note: str

    @property
    def size(self) -> int:
        return self.checkpoint.size

    @property
    def root(self) -> bytes:
        return self.checkpoint.root_hash


class LogView:
    def __init__(
        self,
        log_key: str,
        witnesses: Sequence[str] = (),
        quorum: int = 0,
        trusted_note: str | None = None,
    ) -> None:
        self._log = notes.NoteVerifier.from_string(log_key)
        self._witnesses = [notes.CosignatureVerifier.from_string(w) for w in witnesses]
        self._quorum = quorum
        self.trusted: TrustedCheckpoint | None = None
        if trusted_note:
            self.trusted = self.open(trusted_note)

    @property
    def origin(self) -> str:
        return self._log.name

    def open(self, note: str) -> TrustedCheckpoint:
        """Verify a checkpoint note's signatures and origin (not yet its history)."""
        signed = notes.open_checkpoint(note, [self._log], self._witnesses, self._quorum)
        if signed.checkpoint.origin != self._log.name:
            raise notes.CheckpointError(
                f"checkpoint origin {signed.checkpoint.origin!r} is not the log's {self._log.name!r}"
            )
        return TrustedCheckpoint(signed.checkpoint, note)

    def advance(self, note: str, old_size: int, proof: Sequence[bytes]) -> TrustedCheckpoint:
        """Move trust to ``note`` if it extends the trusted checkpoint; raise LogForked otherwise."""
        new = self.open(note)
        old = self.trusted
        if old is not None:
            if new.size < old.size:
                raise LogForked(self._evidence("the log went back to a smaller tree", old, new))
            if new.size == old.size:
                if new.root != old.root:
                    raise LogForked(self._evidence("two different roots for the same tree size", old, new))
            else:
                if old_size != old.size:
                    raise LogForked(
                        self._evidence(f"consistency was proven from size {old_size}, not from ours", old, new)
                    )
                try:
                    merkle.verify_consistency(old.size, new.size, old.root, new.root, list(proof))
                except merkle.ProofError as exc:
                    raise LogForked(self._evidence(f"consistency proof fails: {exc.message}", old, new)) from exc
        self.trusted = new
        return new

    def check_inclusion(self, record: bytes, index: int, tree_size: int, proof: Sequence[bytes]) -> None:
        """Raise unless ``record`` is entry ``index`` of the trusted checkpoint's tree."""
        trusted = self.trusted
        if trusted is None:
            raise SecurityError("no trusted checkpoint to check inclusion against")
        if tree_size != trusted.size:
            raise SecurityError(
                f"entry {index}: inclusion proven in a tree of size {tree_size}, the checkpoint has {trusted.size}"
            )
        try:
            merkle.verify_inclusion(leaf_hash(record), index, trusted.size, list(proof), trusted.root)
        except merkle.ProofError as exc:
            raise SecurityError(
                f"entry {index} is not in the log's checkpoint of size {trusted.size}: {exc.message}"
            ) from exc

    def check_batch_inclusion(self, records: Sequence[bytes], indices: Sequence[int], tree_size: int,
                              proof: Sequence[bytes]) -> None:
        """Raise unless every record is the entry at its index in the trusted checkpoint's tree."""
        trusted = self.trusted
        if trusted is None:
            raise SecurityError("no trusted checkpoint to check inclusion against")
        if tree_size != trusted.size:
            raise SecurityError(f"inclusion proven in a tree of size {tree_size}, the checkpoint has {trusted.size}")
        leaves = [(i, leaf_hash(r)) for i, r in zip(indices, records, strict=True)]
        try:
            merkle.verify_batch_inclusion(leaves, trusted.size, list(proof), trusted.root)
        except merkle.ProofError as exc:
            raise SecurityError(
                f"entries {indices[0]}..{indices[-1]} are not all in the log's checkpoint of size {trusted.size}: "
                f"{exc.message}"
            ) from exc

    @staticmethod
    def _evidence(what: str, old: TrustedCheckpoint, new: TrustedCheckpoint) -> str:
        return f"log fork detected: {what}\n--- trusted checkpoint ---\n{old.note}--- new checkpoint ---\n{new.note}"
