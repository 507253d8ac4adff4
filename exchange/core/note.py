"""C2SP signed notes, checkpoints and witness cosignatures (Ed25519 only).

Signed note (c2sp.org/signed-note, "Format"): UTF-8 text ending in a newline,
a blank line, then one or more signature lines
``U+2014 U+0020 <key name> U+0020 base64(key ID || signature) U+000A``.  No
control characters other than newline are allowed anywhere.  The text is
separated from the signatures by the *last* blank line.  Key names are
non-empty and contain neither Unicode spaces nor ``+``.

Key ID ("Signatures"): the first four bytes of
``SHA-256(key name || 0x0A || signature type || public key)``; this module
calls it ``key_hash``.  Two signature types are supported: ``0x01``
("Ed25519 signatures", over the note text) and ``0x04`` (c2sp.org/
tlog-cosignature, below).  Verifier keys ("Verifier keys") are
``<name>+<hex key ID>+base64(type || public key)``.

Opening a note ignores signatures whose (name, key ID) pair matches no
configured verifier, rejects the whole note if a matching signature fails,
and requires a minimum number of distinct verified keys (at least one).

Checkpoint (c2sp.org/tlog-checkpoint, "Note text"): origin line, decimal tree
size without leading zeroes, base64 of the 32-byte RFC 6962 root, then
optional non-empty extension lines; every line ends in a newline.

Cosignature (c2sp.org/tlog-cosignature v1, "Format" and "Signed message"): a
note signature of type ``0x04`` whose payload is ``uint64_be(timestamp) ||
Ed25519 signature`` over ``"cosignature/v1\\ntime <timestamp>\\n" ||
checkpoint text``, with ``timestamp <= 2**63 - 1`` in POSIX seconds.
c2sp.org/tlog-witness returns such lines; :func:`parse_signatures` reads them
and :func:`append_signatures` adds them to a note.

All failures raise :class:`NoteError` (or :class:`CheckpointError`) naming the
reason.  Nothing here performs I/O or reads a clock.
"""

from __future__ import annotations

from exchange.core.errors import CheckpointError, NoteError  # re-exported

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Final, Protocol, Self

import nacl.exceptions
import nacl.signing

from exchange.core.merkle import HASH_SIZE, MAX_TREE_SIZE

__all__ = [
    "COSIGNATURE_HEADER",
    "EM_DASH",
    "MAX_NOTE_SIZE",
    "MAX_SIGNATURES",
    "MAX_SIGNATURE_SIZE",
    "MAX_TIMESTAMP",
    "SIG_TYPE_COSIGNATURE_V1",
    "SIG_TYPE_ED25519",
    "Checkpoint",
    "CheckpointError",
    "CosignatureSigner",
    "CosignatureVerifier",
    "Note",
    "NoteError",
    "NoteSigner",
    "NoteVerifier",
    "ParsedNote",
    "Signature",
    "SignedCheckpoint",
    "Signer",
    "VerifiedSignature",
    "Verifier",
    "append_signatures",
    "compute_key_hash",
    "cosignature_message",
    "open_checkpoint",
    "open_note",
    "parse_note",
    "parse_signatures",
    "parse_verifier_key",
    "sign_note",
    "validate_key_name",
]

EM_DASH: Final = "\u2014"
SIG_TYPE_ED25519: Final = 0x01
SIG_TYPE_COSIGNATURE_V1: Final = 0x04
COSIGNATURE_HEADER: Final = "cosignature/v1"

MAX_NOTE_SIZE: Final = 1 << 20
"""Largest encoded note accepted or produced, in bytes."""

MAX_SIGNATURES: Final = 100
"""Most signature lines per note (the spec requires accepting at least 16)."""

MAX_SIGNATURE_SIZE: Final = 8192
"""Largest decoded signature after the key ID (post-quantum ones are ~5 kB)."""

MAX_TIMESTAMP: Final = (1 << 63) - 1

_KEY_HASH_SIZE: Final = 4
_ED25519_KEY_SIZE: Final = 32
_ED25519_SIG_SIZE: Final = 64
_COSIGNATURE_SIZE: Final = 8 + _ED25519_SIG_SIZE
_SIG_PREFIX: Final = EM_DASH + " "
_DECIMAL: Final = re.compile(r"0|[1-9][0-9]{0,19}")
_HEX_KEY_HASH: Final = re.compile(r"[0-9a-f]{8}")
_CONTROL: Final = re.compile(r"[\x00-\x09\x0b-\x1f]")


# --------------------------------------------------------------------------
# Encoding helpers
# --------------------------------------------------------------------------


def _b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64decode(value: str, what: str) -> bytes:
    """Strict standard base64: padded, canonical, no stray characters."""
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise NoteError(f"{what} is not valid base64") from exc
    if _b64encode(data) != value:
        raise NoteError(f"{what} is not canonical base64")
    return data


def _check_no_controls(text: str, what: str) -> None:
    found = _CONTROL.search(text)
    if found:
        raise NoteError(f"{what} contains control character U+{ord(found.group()):04X}")


def _as_text(note: str | bytes) -> str:
    if isinstance(note, bytes):
        if len(note) > MAX_NOTE_SIZE:
            raise NoteError(f"note is larger than {MAX_NOTE_SIZE} bytes")
        try:
            return note.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise NoteError("note is not valid UTF-8") from exc
    _encoded_size(note, "note")
    return note


def _encoded_size(text: str, what: str) -> int:
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise NoteError(f"{what} is not valid UTF-8 (lone surrogate)") from exc
    if size > MAX_NOTE_SIZE:
        raise NoteError(f"{what} is larger than {MAX_NOTE_SIZE} bytes")
    return size


def validate_key_name(name: str) -> None:
    """Raise :class:`NoteError` unless ``name`` is a valid key name."""
    if not name:
        raise NoteError("key name is empty")
    for char in name:
        if char.isspace() or char == "+" or char < " ":
            raise NoteError(f"key name {name!r} contains forbidden U+{ord(char):04X}")
    _encoded_size(name, "key name")


def compute_key_hash(name: str, signature_type: int, public_key: bytes) -> bytes:
    """Key ID: ``SHA-256(name || 0x0A || type || public key)[:4]``."""
    material = name.encode("utf-8") + b"\n" + bytes([signature_type]) + public_key
    return hashlib.sha256(material).digest()[:_KEY_HASH_SIZE]


def _verifier_key_string(name: str, key_hash: bytes, sig_type: int, key: bytes) -> str:
    return f"{name}+{key_hash.hex()}+{_b64encode(bytes([sig_type]) + key)}"


def _parse_verifier_key(vkey: str) -> tuple[str, bytes, int, bytes]:
    """Split a vkey into (name, key hash, signature type, key), checking all."""
    parts = vkey.split("+", 2)
    if len(parts) != 3:
        raise NoteError("verifier key must be <name>+<hex key ID>+<base64 key>")
    name, hex_hash, material = parts
    validate_key_name(name)
    if not _HEX_KEY_HASH.fullmatch(hex_hash):
        raise NoteError("verifier key ID must be 8 lowercase hex digits")
    raw = _b64decode(material, "verifier key material")
    if len(raw) != 1 + _ED25519_KEY_SIZE:
        raise NoteError(
            f"verifier key material is {len(raw)} bytes, expected "
            f"{1 + _ED25519_KEY_SIZE} (type byte and Ed25519 key)"
        )
    sig_type, key = raw[0], raw[1:]
    key_hash = bytes.fromhex(hex_hash)
    if compute_key_hash(name, sig_type, key) != key_hash:
        raise NoteError(f"verifier key ID {hex_hash} does not match the key")
    return name, key_hash, sig_type, key


def _verify_key(public_key: bytes) -> nacl.signing.VerifyKey:
    if len(public_key) != _ED25519_KEY_SIZE:
        raise NoteError(
            f"Ed25519 public key is {len(public_key)} bytes, expected {_ED25519_KEY_SIZE}"
        )
    return nacl.signing.VerifyKey(public_key)


def _ed25519_verify(
    key: nacl.signing.VerifyKey, message: bytes, signature: bytes, name: str
) -> None:
    if len(signature) != _ED25519_SIG_SIZE:
        raise NoteError(
            f"signature by {name} is {len(signature)} bytes, expected {_ED25519_SIG_SIZE}"
        )
    try:
        key.verify(message, signature)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError) as exc:
        raise NoteError(f"signature by {name} does not verify") from exc


# --------------------------------------------------------------------------
# Signature lines
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Signature:
    """One signature line: key name, key ID and the signature bytes after it."""

    name: str
    key_hash: bytes
    signature: bytes

    def __post_init__(self) -> None:
        validate_key_name(self.name)
        if len(self.key_hash) != _KEY_HASH_SIZE:
            raise NoteError(f"key ID is {len(self.key_hash)} bytes, expected 4")
        if not 1 <= len(self.signature) <= MAX_SIGNATURE_SIZE:
            raise NoteError(
                f"signature by {self.name} is {len(self.signature)} bytes, "
                f"expected 1 to {MAX_SIGNATURE_SIZE}"
            )

    @classmethod
    def parse_line(cls, line: str) -> Signature:
        """Parse a signature line without its trailing newline."""
        if not line.startswith(_SIG_PREFIX):
            raise NoteError("signature line must start with an em dash and a space")
        name, space, encoded = line[len(_SIG_PREFIX) :].partition(" ")
        if not space:
            raise NoteError("signature line must be '— <name> <base64>'")
        validate_key_name(name)
        raw = _b64decode(encoded, f"signature by {name}")
        if len(raw) <= _KEY_HASH_SIZE:
            raise NoteError(f"signature by {name} is shorter than its key ID")
        return cls(name, raw[:_KEY_HASH_SIZE], raw[_KEY_HASH_SIZE:])

    def to_line(self) -> str:
        """The signature line, including its trailing newline."""
        return f"{_SIG_PREFIX}{self.name} {_b64encode(self.key_hash + self.signature)}\n"


@dataclass(frozen=True, slots=True)
class VerifiedSignature:
    """A signature that verified against a configured key."""

    name: str
    key_hash: bytes
    signature_type: int
    timestamp: int | None = None
    """Cosignature time (POSIX seconds) for type 0x04, else ``None``."""


class Verifier(Protocol):
    """Anything that can check note signatures for one (name, key ID)."""

    @property
    def name(self) -> str: ...

    @property
    def key_hash(self) -> bytes: ...

    def verify(self, text: str, signature: bytes) -> VerifiedSignature:
        """Verify ``signature`` (after the key ID) over ``text``, or raise."""
        ...


class Signer(Protocol):
    """Anything that signs note text under one (name, key ID)."""

    @property
    def name(self) -> str: ...

    @property
    def key_hash(self) -> bytes: ...

    def sign(self, text: str) -> Signature:
        """Sign the note text and return the signature line."""
        ...


# --------------------------------------------------------------------------
# Ed25519 note keys (signature type 0x01)
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Ed25519Verifier:
    """What both Ed25519 verifier kinds share: a named key, its key hash and vkey,
    for the signature type ``sig_type`` of the subclass."""

    sig_type: ClassVar[int]
    name: str
    public_key: bytes
    key_hash: bytes = field(init=False)
    _key: nacl.signing.VerifyKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        validate_key_name(self.name)
        object.__setattr__(self, "_key", _verify_key(self.public_key))
        key_hash = compute_key_hash(self.name, self.sig_type, self.public_key)
        object.__setattr__(self, "key_hash", key_hash)

    @classmethod
    def from_string(cls, vkey: str) -> Self:
        """Parse a ``<name>+<hex>+<base64>`` verifier key of this class's type."""
        name, _, sig_type, key = _parse_verifier_key(vkey)
        if sig_type != cls.sig_type:
            raise NoteError(f"verifier key type is 0x{sig_type:02x}, expected 0x{cls.sig_type:02x}")
        return cls(name, key)

    def verifier_key(self) -> str:
        """The verifier key string (vkey) of this key."""
        return _verifier_key_string(self.name, self.key_hash, self.sig_type, self.public_key)


@dataclass(frozen=True, slots=True)
class NoteVerifier(_Ed25519Verifier):
    """Ed25519 (type 0x01) note verifier."""

    sig_type: ClassVar[int] = SIG_TYPE_ED25519

    def verify(self, text: str, signature: bytes) -> VerifiedSignature:
        """Verify an Ed25519 signature over the UTF-8 note text."""
        _ed25519_verify(self._key, text.encode("utf-8"), signature, self.name)
        return VerifiedSignature(self.name, self.key_hash, SIG_TYPE_ED25519)


@dataclass(frozen=True, slots=True, eq=False)
class NoteSigner:
    """Ed25519 (type 0x01) note signer."""

    name: str
    signing_key: nacl.signing.SigningKey = field(repr=False)
    verifier: NoteVerifier = field(init=False)

    def __post_init__(self) -> None:
        public_key = bytes(self.signing_key.verify_key.encode())
        object.__setattr__(self, "verifier", NoteVerifier(self.name, public_key))

    @property
    def key_hash(self) -> bytes:
        """The 4-byte key ID."""
        return self.verifier.key_hash

    def verifier_key(self) -> str:
        """The verifier key string (vkey) matching this signer."""
        return self.verifier.verifier_key()

    def sign(self, text: str) -> Signature:
        """Sign note text (which must end in a newline)."""
        _check_note_text(text)
        signed = self.signing_key.sign(text.encode("utf-8"))
        return Signature(self.name, self.key_hash, bytes(signed.signature))


# --------------------------------------------------------------------------
# Notes
# --------------------------------------------------------------------------


def _check_note_text(text: str) -> None:
    if not text.endswith("\n"):
        raise NoteError("note text must end with a newline")
    _check_no_controls(text, "note text")
    _encoded_size(text, "note text")


@dataclass(frozen=True, slots=True)
class ParsedNote:
    """A syntactically valid note whose signatures are NOT yet verified.

    The text must be ignored until :func:`open_note` has verified it.
    """

    text: str
    signatures: tuple[Signature, ...]


@dataclass(frozen=True, slots=True)
class Note:
    """A note with at least the required number of verified signatures."""

    text: str
    verified: tuple[VerifiedSignature, ...]
    unverified: tuple[Signature, ...]
    """Signatures from unknown keys, kept verbatim (e.g. other cosigners)."""

    def is_signed_by(self, verifier: Verifier) -> bool:
        """Whether a signature from ``verifier``'s key verified."""
        return any(
            sig.name == verifier.name and sig.key_hash == verifier.key_hash
            for sig in self.verified
        )


def parse_signatures(block: str) -> tuple[Signature, ...]:
    """Parse one or more newline-terminated signature lines.

    This is the note signature block, and also the body of a
    c2sp.org/tlog-witness ``add-checkpoint`` response.
    """
    if not block:
        raise NoteError("note has no signature lines")
    if not block.endswith("\n"):
        raise NoteError("signature lines must end with a newline")
    _check_no_controls(block, "signature lines")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"note has {len(lines)} signatures, limit is {MAX_SIGNATURES}")
    return tuple(Signature.parse_line(line) for line in lines)


def parse_note(note: str | bytes) -> ParsedNote:
    """Split a signed note into text and signatures, checking the syntax only."""
    data = _as_text(note)
    _check_no_controls(data, "note")
    if not data.endswith("\n"):
        raise NoteError("note must end with a newline")
    split = data.rfind("\n\n")
    if split < 0:
        raise NoteError("note has no blank line before its signatures")
    return ParsedNote(data[: split + 1], parse_signatures(data[split + 2 :]))


def sign_note(text: str, signers: Sequence[Signer]) -> str:
    """Return ``text`` signed by every signer, in order."""
    _check_note_text(text)
    if not signers:
        raise NoteError("at least one signer is required")
    if len(signers) > MAX_SIGNATURES:
        raise NoteError(f"{len(signers)} signers exceed the limit of {MAX_SIGNATURES}")
    note = text + "\n" + "".join(signer.sign(text).to_line() for signer in signers)
    _encoded_size(note, "signed note")
    return note


def append_signatures(note: str | bytes, signatures: Iterable[Signature]) -> str:
    """Add signature lines (e.g. witness cosignatures) to a signed note.

    Lines already present are not repeated.  Nothing is verified here.
    """
    parsed = parse_note(note)
    merged = list(parsed.signatures)
    for signature in signatures:
        if signature not in merged:
            merged.append(signature)
    if len(merged) > MAX_SIGNATURES:
        raise NoteError(f"note would have {len(merged)} signatures, limit is {MAX_SIGNATURES}")
    result = parsed.text + "\n" + "".join(sig.to_line() for sig in merged)
    _encoded_size(result, "signed note")
    return result


def _index_verifiers(verifiers: Iterable[Verifier]) -> dict[tuple[str, bytes], Verifier]:
    index: dict[tuple[str, bytes], Verifier] = {}
    for verifier in verifiers:
        key = (verifier.name, verifier.key_hash)
        if key in index and index[key] != verifier:
            raise NoteError(
                f"two verifiers share name {verifier.name} and key ID {verifier.key_hash.hex()}"
            )
        index[key] = verifier
    return index


def open_note(note: str | bytes, verifiers: Iterable[Verifier], require: int = 1) -> Note:
    """Verify a signed note and return its text and signatures.

    Signatures whose (name, key ID) match no verifier are kept in
    ``unverified``.  A matching signature that fails to verify rejects the
    note.  At least ``require`` distinct keys (``require >= 1``) must verify.
    """
    if require < 1:
        raise ValueError("require must be at least 1")
    parsed = parse_note(note)
    known = _index_verifiers(verifiers)
    verified: dict[tuple[str, bytes], VerifiedSignature] = {}
    unverified: list[Signature] = []
    for signature in parsed.signatures:
        key = (signature.name, signature.key_hash)
        verifier = known.get(key)
        if verifier is None:
            unverified.append(signature)
            continue
        result = verifier.verify(parsed.text, signature.signature)
        verified.setdefault(key, result)
    if len(verified) < require:
        raise NoteError(
            f"note has {len(verified)} verified signature(s) from known keys, "
            f"{require} required"
        )
    return Note(parsed.text, tuple(verified.values()), tuple(unverified))


# --------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A transparency log checkpoint body (c2sp.org/tlog-checkpoint)."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_line(self.origin, "checkpoint origin")
        if not 0 <= self.size <= MAX_TREE_SIZE:
            raise CheckpointError(f"checkpoint size {self.size} is outside [0, 2^64-1]")
        if len(self.root_hash) != HASH_SIZE:
            raise CheckpointError(
                f"checkpoint root hash is {len(self.root_hash)} bytes, expected {HASH_SIZE}"
            )
        for extension in self.extensions:
            _check_line(extension, "checkpoint extension line")

    def to_text(self) -> str:
        """The note text: origin, size, base64 root, extensions, each + newline."""
        lines = [self.origin, str(self.size), _b64encode(self.root_hash), *self.extensions]
        return "".join(line + "\n" for line in lines)

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """Parse a checkpoint note text strictly."""
        if not text.endswith("\n"):
            raise CheckpointError("checkpoint text must end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise CheckpointError("checkpoint needs origin, size and root hash lines")
        origin, size_line, root_line, *extensions = lines
        if not _DECIMAL.fullmatch(size_line):
            raise CheckpointError(f"checkpoint size {size_line!r} is not canonical decimal")
        try:
            root_hash = _b64decode(root_line, "checkpoint root hash")
        except NoteError as exc:
            raise CheckpointError(str(exc)) from exc
        return cls(origin, int(size_line), root_hash, tuple(extensions))


def _check_line(line: str, what: str) -> None:
    if not line:
        raise CheckpointError(f"{what} is empty")
    if "\n" in line:
        raise CheckpointError(f"{what} contains a newline")
    try:
        _check_no_controls(line, what)
        _encoded_size(line, what)
    except NoteError as exc:
        raise CheckpointError(str(exc)) from exc


# --------------------------------------------------------------------------
# Cosignatures (signature type 0x04)
# --------------------------------------------------------------------------


def _check_timestamp(timestamp: int) -> None:
    if not 0 <= timestamp <= MAX_TIMESTAMP:
        raise NoteError(f"cosignature timestamp {timestamp} is outside [0, 2^63-1]")


def cosignature_message(text: str, timestamp: int) -> bytes:
    """The message a cosignature/v1 signs over a checkpoint ``text``."""
    _check_timestamp(timestamp)
    header = f"{COSIGNATURE_HEADER}\ntime {timestamp}\n"
    return (header + text).encode("utf-8")


@dataclass(frozen=True, slots=True)
class CosignatureVerifier(_Ed25519Verifier):
    """Verifier for timestamped Ed25519 cosignatures (type 0x04)."""

    sig_type: ClassVar[int] = SIG_TYPE_COSIGNATURE_V1

    def verify(self, text: str, signature: bytes) -> VerifiedSignature:
        """Verify a 72-byte ``timestamped_signature`` over checkpoint ``text``."""
        if len(signature) != _COSIGNATURE_SIZE:
            raise NoteError(
                f"cosignature by {self.name} is {len(signature)} bytes, "
                f"expected {_COSIGNATURE_SIZE}"
            )
        timestamp = int.from_bytes(signature[:8], "big")
        if timestamp > MAX_TIMESTAMP:
            raise NoteError(f"cosignature by {self.name} has timestamp above 2^63-1")
        message = cosignature_message(text, timestamp)
        _ed25519_verify(self._key, message, signature[8:], self.name)
        return VerifiedSignature(self.name, self.key_hash, SIG_TYPE_COSIGNATURE_V1, timestamp)


@dataclass(frozen=True, slots=True, eq=False)
class CosignatureSigner:
    """Produces cosignature/v1 lines for checkpoints."""

    name: str
    signing_key: nacl.signing.SigningKey = field(repr=False)
    verifier: CosignatureVerifier = field(init=False)

    def __post_init__(self) -> None:
        public_key = bytes(self.signing_key.verify_key.encode())
        object.__setattr__(self, "verifier", CosignatureVerifier(self.name, public_key))

    @property
    def key_hash(self) -> bytes:
        """The 4-byte key ID (computed with type byte 0x04)."""
        return self.verifier.key_hash

    def verifier_key(self) -> str:
        """The verifier key string (vkey) matching this cosigner."""
        return self.verifier.verifier_key()

    def sign(self, checkpoint: Checkpoint, timestamp: int) -> Signature:
        """Cosign ``checkpoint`` as of ``timestamp`` (POSIX seconds)."""
        message = cosignature_message(checkpoint.to_text(), timestamp)
        signed = self.signing_key.sign(message)
        payload = timestamp.to_bytes(8, "big") + bytes(signed.signature)
        return Signature(self.name, self.key_hash, payload)

    def sign_line(self, checkpoint: Checkpoint, timestamp: int) -> str:
        """The cosignature line, including its trailing newline."""
        return self.sign(checkpoint, timestamp).to_line()


def parse_verifier_key(vkey: str) -> NoteVerifier | CosignatureVerifier:
    """Parse a vkey of type 0x01 or 0x04 into the matching verifier."""
    name, _, sig_type, key = _parse_verifier_key(vkey)
    if sig_type == SIG_TYPE_ED25519:
        return NoteVerifier(name, key)
    if sig_type == SIG_TYPE_COSIGNATURE_V1:
        return CosignatureVerifier(name, key)
    raise NoteError(f"unsupported verifier key type 0x{sig_type:02x}")


# --------------------------------------------------------------------------
# Checkpoint notes with witness quorum
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SignedCheckpoint:
    """A checkpoint whose log signature and cosigner quorum verified."""

    checkpoint: Checkpoint
    note: Note

    @property
    def cosignatures(self) -> tuple[VerifiedSignature, ...]:
        """The verified cosignatures, with their timestamps."""
        return tuple(
            sig for sig in self.note.verified if sig.signature_type == SIG_TYPE_COSIGNATURE_V1
        )


def open_checkpoint(
    note: str | bytes,
    log_verifiers: Sequence[NoteVerifier],
    cosigners: Sequence[CosignatureVerifier] = (),
    quorum: int = 0,
) -> SignedCheckpoint:
    """Open a checkpoint note signed by the log and cosigned by a quorum.

    At least one of ``log_verifiers`` must have signed, and at least
    ``quorum`` distinct ``cosigners`` must have cosigned.  Signatures from
    other keys are ignored (kept in ``note.unverified``).  The caller picks
    ``log_verifiers`` for the expected origin; whether the key name equals
    the origin line (a SHOULD in the spec) is not enforced.
    """
    if not log_verifiers:
        raise ValueError("at least one log verifier is required")
    if not 0 <= quorum <= len(cosigners):
        raise ValueError(f"quorum {quorum} is outside [0, {len(cosigners)}]")
    opened = open_note(note, [*log_verifiers, *cosigners], require=1)
    if not any(opened.is_signed_by(verifier) for verifier in log_verifiers):
        raise NoteError("checkpoint is not signed by the log key")
    cosigned = sum(1 for cosigner in set(cosigners) if opened.is_signed_by(cosigner))
    if cosigned < quorum:
        raise NoteError(f"checkpoint has {cosigned} cosignature(s), quorum is {quorum}")
    return SignedCheckpoint(Checkpoint.parse(opened.text), opened)
