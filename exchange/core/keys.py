"""Ed25519 keys: key ids, strict public-key parsing and signing.

The acceptance rule for signatures is exactly what libsodium (PyNaCl) accepts.
Public keys are refused at enrolment when they are not canonical encodings of a
point of the prime-order subgroup (small-order and mixed-order keys included), so a
signature that verifies here verifies with any conforming Ed25519 library.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass, field
from typing import NewType

import nacl.bindings
import nacl.exceptions
import nacl.signing

from exchange.core.errors import ForgedSignature, InvalidValue

__all__ = [
    "KeyId",
    "Signer",
    "key_id",
    "parse_key_id",
    "parse_public_key",
    "verify_signature",
]

KeyId = NewType("KeyId", str)
"""Lowercase hex SHA-256 of the raw 32-byte Ed25519 public key."""

PUBLIC_KEY_SIZE = 32
SIGNATURE_SIZE = 64
_KEY_ID = re.compile(r"^[0-9a-f]{64}\Z")


@functools.lru_cache(maxsize=1024)
def key_id(public_key: bytes) -> KeyId:
    """(Remembered: the operator key's id is asked for at every entry checked.)"""
    return KeyId(hashlib.sha256(public_key).hexdigest())


def parse_key_id(text: str) -> KeyId:
    if not _KEY_ID.match(text):
        raise InvalidValue("a key id is 64 lowercase hex characters (SHA-256 of the public key)")
    return KeyId(text)


def parse_public_key(raw: bytes) -> bytes:
    """Return ``raw`` if it is an acceptable member key, else raise InvalidValue."""
    if len(raw) != PUBLIC_KEY_SIZE:
        raise InvalidValue(f"an Ed25519 public key is {PUBLIC_KEY_SIZE} bytes, got {len(raw)}")
    # libsodium: canonical encoding, on the curve, not of small order, in the main subgroup.
    if not nacl.bindings.crypto_core_ed25519_is_valid_point(raw):
        raise InvalidValue("public key is not a canonical point of the Ed25519 prime-order subgroup")
    return raw


def verify_signature(public_key: bytes, message: bytes, signature: bytes) -> None:
    """Raise ForgedSignature unless ``signature`` is valid for ``message``."""
    if len(signature) != SIGNATURE_SIZE:
        raise ForgedSignature(f"signature must be {SIGNATURE_SIZE} bytes, got {len(signature)}")
    # PyNaCl's crypto_sign_open does not check the key length: libsodium would read 32
    # bytes from whatever it is given (ignoring extra bytes, over-reading short keys).
    if len(public_key) != PUBLIC_KEY_SIZE:
        raise ForgedSignature(f"an Ed25519 public key is {PUBLIC_KEY_SIZE} bytes, got {len(public_key)}")
    try:
        nacl.bindings.crypto_sign_open(signature + message, public_key)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, ValueError) as exc:
        raise ForgedSignature("signature does not verify with the signing key") from exc


@dataclass(frozen=True, slots=True)
class Signer:
    """A private Ed25519 key. Its repr never shows the secret."""

    _key: nacl.signing.SigningKey = field(repr=False)

    @classmethod
    def from_seed(cls, seed: bytes) -> Signer:
        if len(seed) != 32:
            raise InvalidValue("an Ed25519 seed is 32 bytes")
        return cls(nacl.signing.SigningKey(seed))

    @classmethod
    def generate(cls) -> Signer:
        return cls(nacl.signing.SigningKey.generate())

    @property
    def public_key(self) -> bytes:
        return bytes(self._key.verify_key)

    @property
    def keyid(self) -> KeyId:
        return key_id(self.public_key)

    @property
    def seed(self) -> bytes:
        return bytes(self._key)

    @property
    def signing_key(self) -> nacl.signing.SigningKey:
        return self._key

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message).signature

    def __repr__(self) -> str:
        return f"Signer(keyid={self.keyid[:16]}…)"
