"""``add-checkpoint`` without HTTP (c2sp.org/tlog-witness): the checks, in order,
and the cosignature."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Final, NamedTuple

import nacl.signing

from clients.witness.config import WitnessConfig, read_signing_key
from clients.witness.state import Conflict, CosignedCheckpoint, WitnessState
from exchange.core.errors import ConfigError
from exchange.core.merkle import EMPTY_ROOT, ProofError, verify_consistency
from exchange.core.note import CosignatureSigner, NoteError, NoteVerifier, open_note
from exchange.core.witness_protocol import (
    MAX_REQUEST_SIZE,
    SIGNATURES_CONTENT_TYPE,
    SIZE_CONTENT_TYPE,
    AddCheckpointRequest,
    WitnessProtocolError,
    format_cosignatures,
    format_size,
    parse_add_checkpoint,
)

log = logging.getLogger(__name__)

TEXT_CONTENT_TYPE: Final = "text/plain; charset=utf-8"


class WitnessResponse(NamedTuple):
    """An HTTP response: status code, Content-Type and body."""

    status: int
    content_type: str
    body: bytes


def text_response(status: int, message: str) -> WitnessResponse:
    return WitnessResponse(status, TEXT_CONTENT_TYPE, (message + "\n").encode("utf-8"))


class _Refusal(Exception):
    """Ends a transaction early with a response (after recording any conflict)."""

    def __init__(self, response: WitnessResponse) -> None:
        super().__init__(response.status)
        self.response = response


class Witness:
    """The add-checkpoint logic of a witness, without HTTP.

    ``logs`` maps each trusted origin to the log's verifier keys; a
    checkpoint needs a valid signature from at least one of them.
    """

    def __init__(
        self,
        name: str,
        signing_key: nacl.signing.SigningKey,
        logs: Mapping[str, Sequence[NoteVerifier]],
        state: WitnessState | Path | str,
    ) -> None:
        self._signer = CosignatureSigner(name, signing_key)
        self._logs = MappingProxyType({origin: tuple(keys) for origin, keys in logs.items()})
        for origin, keys in self._logs.items():
            if not keys:
                raise ConfigError(f"log {origin!r} has no verifier keys")
        self.state = state if isinstance(state, WitnessState) else WitnessState(state)

    @classmethod
    def from_config(cls, config: WitnessConfig) -> Witness:
        """Build a witness from its configuration (reads the key file)."""
        logs = {origin: config.log_verifiers(origin) for origin in config.logs}
        return cls(config.name, read_signing_key(config.key_file), logs, config.state)

    @property
    def name(self) -> str:
        return self._signer.name

    @property
    def verifier_key(self) -> str:
        """The witness's cosigner vkey (type 0x04), to give to logs and clients."""
        return self._signer.verifier_key()

    def add_checkpoint(self, body: bytes, now: int) -> WitnessResponse:
        """Handle one add-checkpoint request body; ``now`` is the POSIX time of the cosignature."""
        if len(body) > MAX_REQUEST_SIZE:
            return text_response(413, f"request body is larger than {MAX_REQUEST_SIZE} bytes")
        try:
            request = parse_add_checkpoint(body)
        except WitnessProtocolError as exc:
            return text_response(400, str(exc))
        checkpoint = request.checkpoint
        verifiers = self._logs.get(checkpoint.origin)
        if verifiers is None:
            return text_response(404, f"unknown log origin {checkpoint.origin!r}")
        try:
            open_note(request.note, verifiers)
        except NoteError as exc:
            return text_response(403, f"no valid signature from a trusted key of this log: {exc}")
        if request.old_size > checkpoint.size:
            return text_response(
                400, f"old size {request.old_size} is larger than the checkpoint size {checkpoint.size}"
            )
        try:
            self._check_and_store(request, now)
        except _Refusal as refusal:
            return refusal.response
        cosignature = self._signer.sign(checkpoint, now)
        return WitnessResponse(200, SIGNATURES_CONTENT_TYPE, format_cosignatures([cosignature]))

    def _check_and_store(self, request: AddCheckpointRequest, now: int) -> None:
        """Compare with the record and replace it, atomically; raise :class:`_Refusal` to refuse."""
        checkpoint = request.checkpoint
        refusal: _Refusal | None = None
        with self.state.transaction() as db:
            stored = WitnessState.read_latest(db, checkpoint.origin)
            stored_size = 0 if stored is None else stored.size
            stored_root = EMPTY_ROOT if stored is None else stored.root
            if request.old_size != stored_size:
                raise _Refusal(WitnessResponse(409, SIZE_CONTENT_TYPE, format_size(stored_size)))
            refusal = self._find_conflict(request, stored, stored_root, now, db)
            if refusal is None:
                record = CosignedCheckpoint(
                    origin=checkpoint.origin,
                    size=checkpoint.size,
                    root=checkpoint.root_hash,
                    note=request.note,
                )
                WitnessState.write_latest(db, record, now)
        # Raised after the commit, so the recorded conflict is kept.
        if refusal is not None:
            raise refusal

    def _find_conflict(
        self,
        request: AddCheckpointRequest,
        stored: CosignedCheckpoint | None,
        stored_root: bytes,
        now: int,
        db: sqlite3.Connection,
    ) -> _Refusal | None:
        """Check the root (same size) or the consistency proof; record what contradicts."""
        checkpoint = request.checkpoint
        if request.old_size == checkpoint.size and checkpoint.root_hash != stored_root:
            kind, response = "same-size-fork", text_response(
                409,
                f"checkpoint of size {checkpoint.size} has a different root hash than the one"
                " already cosigned",
            )
        else:
            try:
                verify_consistency(
                    request.old_size, checkpoint.size, stored_root, checkpoint.root_hash, request.proof
                )
                return None
            except ProofError as exc:
                kind, response = "inconsistent", text_response(422, f"consistency proof does not verify: {exc}")
        log.warning(
            "possible misbehaviour of log %r: validly signed checkpoint of size %d refused (%s,"
            " old size %d); evidence recorded",
            checkpoint.origin,
            checkpoint.size,
            kind,
            request.old_size,
        )
        conflict = Conflict(
            origin=checkpoint.origin,
            kind=kind,
            old_size=request.old_size,
            proof=request.proof,
            cosigned_note=None if stored is None else stored.note,
            refused_note=request.note,
            recorded_at=now,
        )
        WitnessState.write_conflict(db, conflict)
        return _Refusal(response)
