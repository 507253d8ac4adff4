"""Wire format of the C2SP tlog-witness ``add-checkpoint`` call (pure, no I/O).

Request body (c2sp.org/tlog-witness, "add-checkpoint")::

    old <decimal size, no leading zeroes>\\n
    <base64 consistency proof hash>\\n        (0 to 63 lines)
    \\n
    <signed checkpoint note>

The header ends at the first empty line; everything after it is the signed
checkpoint note (c2sp.org/signed-note + c2sp.org/tlog-checkpoint).  The proof
must be empty when the old size is 0.  Parsing checks the syntax only: the
checkpoint in an :class:`AddCheckpointRequest` is *unverified* until the
witness has checked the note's signature against a trusted log key.

Responses: ``409 Conflict`` carries the witness's latest cosigned size as
``<decimal>\\n`` with ``Content-Type: text/x.tlog.size``; ``200`` carries one
or more note signature lines (cosignatures), each ending in a newline.

Every parsing failure raises :class:`WitnessProtocolError` (an
:class:`~exchange.core.errors.InvalidInput`) naming the problem.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from exchange.core.errors import WitnessProtocolError  # re-exported
from exchange.core.merkle import HASH_SIZE, MAX_TREE_SIZE
from exchange.core.note import (
    Checkpoint,
    NoteError,
    ParsedNote,
    Signature,
    parse_note,
    parse_signatures,
)

__all__ = [
    "ADD_CHECKPOINT_PATH",
    "MAX_PROOF_LINES",
    "MAX_REQUEST_SIZE",
    "MAX_RESPONSE_SIZE",
    "SIZE_CONTENT_TYPE",
    "SIGNATURES_CONTENT_TYPE",
    "AddCheckpointRequest",
    "WitnessProtocolError",
    "encode_add_checkpoint",
    "format_cosignatures",
    "format_size",
    "parse_add_checkpoint",
    "parse_cosignatures",
    "parse_size",
]

ADD_CHECKPOINT_PATH: Final = "/add-checkpoint"
"""Appended to the witness's submission prefix."""

SIZE_CONTENT_TYPE: Final = "text/x.tlog.size"
"""Content-Type of a ``409 Conflict`` body carrying the latest cosigned size."""

SIGNATURES_CONTENT_TYPE: Final = "text/plain; charset=utf-8"
"""Content-Type used for a ``200`` body of cosignature lines (not mandated)."""

MAX_PROOF_LINES: Final = 63
"""A client MUST NOT send more consistency proof lines than this."""

MAX_REQUEST_SIZE: Final = 1 << 20
"""Largest add-checkpoint body accepted, in bytes (a note is at most 1 MiB too)."""

MAX_RESPONSE_SIZE: Final = 64 << 10
"""Largest add-checkpoint response body a client reads, in bytes."""

_OLD_PREFIX: Final = b"old "
_DECIMAL: Final = re.compile(rb"0|[1-9][0-9]{0,19}")
_HASH_LINE_LENGTH: Final = 44  # base64 of 32 bytes, with one '=' of padding


@dataclass(frozen=True, slots=True, kw_only=True)
class AddCheckpointRequest:
    """A syntactically valid add-checkpoint request.

    ``note`` and ``checkpoint`` are NOT verified: the witness must check the
    note's signature against its trusted log keys before believing them.
    """

    old_size: int
    proof: tuple[bytes, ...]
    note: str
    """The signed checkpoint note, verbatim."""
    parsed: ParsedNote
    checkpoint: Checkpoint
    """The checkpoint body of ``note`` (unverified)."""

    def encode(self) -> bytes:
        """The request body, byte for byte as :func:`encode_add_checkpoint` builds it."""
        return encode_add_checkpoint(self.old_size, self.proof, self.note)


# --------------------------------------------------------------------------
# Requests
# --------------------------------------------------------------------------


def _check_proof(old_size: int, proof: Sequence[bytes]) -> None:
    if len(proof) > MAX_PROOF_LINES:
        raise WitnessProtocolError(
            f"consistency proof has {len(proof)} hashes, at most {MAX_PROOF_LINES} are allowed"
        )
    if old_size == 0 and proof:
        raise WitnessProtocolError("the consistency proof must be empty when the old size is 0")
    for position, item in enumerate(proof):
        if len(item) != HASH_SIZE:
            raise WitnessProtocolError(
                f"consistency proof hash #{position} is {len(item)} bytes, expected {HASH_SIZE}"
            )


def _check_old_size(old_size: int) -> None:
    if not 0 <= old_size <= MAX_TREE_SIZE:
        raise WitnessProtocolError(f"old size {old_size} is outside [0, 2^64-1]")


def _parse_checkpoint_note(note: str | bytes) -> tuple[ParsedNote, Checkpoint]:
    try:
        parsed = parse_note(note)
        return parsed, Checkpoint.parse(parsed.text)
    except NoteError as exc:
        raise WitnessProtocolError(f"the checkpoint note is malformed: {exc}") from exc


def encode_add_checkpoint(old_size: int, proof: Sequence[bytes], note: str) -> bytes:
    """Build an add-checkpoint request body, checking every rule a client must follow."""
    _check_old_size(old_size)
    _check_proof(old_size, proof)
    _parse_checkpoint_note(note)
    header = [f"old {old_size}\n".encode("ascii")]
    header.extend(base64.b64encode(item) + b"\n" for item in proof)
    body = b"".join(header) + b"\n" + note.encode("utf-8")
    if len(body) > MAX_REQUEST_SIZE:
        raise WitnessProtocolError(f"request body is larger than {MAX_REQUEST_SIZE} bytes")
    return body


def _parse_old_line(line: bytes) -> int:
    if not line.startswith(_OLD_PREFIX):
        raise WitnessProtocolError("the first line must be 'old <size>'")
    digits = line[len(_OLD_PREFIX) :]
    if not _DECIMAL.fullmatch(digits):
        raise WitnessProtocolError(
            "the old size must be a decimal number without leading zeroes or spaces"
        )
    old_size = int(digits)
    _check_old_size(old_size)
    return old_size


def _parse_hash_line(line: bytes, position: int) -> bytes:
    what = f"consistency proof line #{position}"
    if len(line) != _HASH_LINE_LENGTH:
        raise WitnessProtocolError(
            f"{what} is {len(line)} characters, expected {_HASH_LINE_LENGTH} (base64 of a hash)"
        )
    try:
        value = base64.b64decode(line, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise WitnessProtocolError(f"{what} is not valid base64") from exc
    if base64.b64encode(value) != line:
        raise WitnessProtocolError(f"{what} is not canonical base64")
    return value


def _split_header(body: bytes) -> tuple[list[bytes], bytes]:
    """Header lines (without newlines) and the note that follows the first empty line."""
    end = body.find(b"\n\n")
    if end < 0:
        raise WitnessProtocolError("the request has no empty line before the checkpoint")
    lines = body[:end].split(b"\n")
    if len(lines) > 1 + MAX_PROOF_LINES:
        raise WitnessProtocolError(
            f"consistency proof has {len(lines) - 1} lines, at most {MAX_PROOF_LINES} are allowed"
        )
    return lines, body[end + 2 :]


def parse_add_checkpoint(body: bytes) -> AddCheckpointRequest:
    """Parse an add-checkpoint request body strictly (syntax only, nothing verified)."""
    if len(body) > MAX_REQUEST_SIZE:
        raise WitnessProtocolError(f"request body is larger than {MAX_REQUEST_SIZE} bytes")
    if b"\r" in body:
        raise WitnessProtocolError("lines must end in a bare newline (U+000A), not CR LF")
    lines, note_bytes = _split_header(body)
    old_size = _parse_old_line(lines[0])
    proof = tuple(_parse_hash_line(line, i) for i, line in enumerate(lines[1:]))
    _check_proof(old_size, proof)
    parsed, checkpoint = _parse_checkpoint_note(note_bytes)
    note = note_bytes.decode("utf-8")  # parse_note has checked it is UTF-8
    return AddCheckpointRequest(
        old_size=old_size, proof=proof, note=note, parsed=parsed, checkpoint=checkpoint
    )


# --------------------------------------------------------------------------
# Responses
# --------------------------------------------------------------------------


def format_size(size: int) -> bytes:
    """The ``409 Conflict`` body: the latest cosigned size and a newline."""
    if not 0 <= size <= MAX_TREE_SIZE:
        raise WitnessProtocolError(f"tree size {size} is outside [0, 2^64-1]")
    return f"{size}\n".encode("ascii")


def parse_size(body: bytes) -> int:
    """Parse a ``text/x.tlog.size`` body: canonical decimal then one newline."""
    if not body.endswith(b"\n"):
        raise WitnessProtocolError("the size body must end with a newline")
    digits = body[:-1]
    if not _DECIMAL.fullmatch(digits):
        raise WitnessProtocolError("the size body must be a decimal number without leading zeroes")
    size = int(digits)
    if size > MAX_TREE_SIZE:
        raise WitnessProtocolError(f"tree size {size} is above 2^64-1")
    return size


def format_cosignatures(signatures: Iterable[Signature]) -> bytes:
    """The ``200`` body: one signature line (with its newline) per signature."""
    body = "".join(signature.to_line() for signature in signatures)
    if not body:
        raise WitnessProtocolError("a cosignature response needs at least one signature")
    return body.encode("utf-8")


def parse_cosignatures(body: bytes) -> tuple[Signature, ...]:
    """Parse a ``200`` body into signature lines (nothing is verified here)."""
    if len(body) > MAX_RESPONSE_SIZE:
        raise WitnessProtocolError(f"response body is larger than {MAX_RESPONSE_SIZE} bytes")
    try:
        return parse_signatures(body.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise WitnessProtocolError("the response is not valid UTF-8") from exc
    except NoteError as exc:
        raise WitnessProtocolError(f"the response is not signature lines: {exc}") from exc
