"""Key material from configuration: hex seeds and hex public keys, parsed once.

Errors name the file or setting, never the secret.
"""

from __future__ import annotations

from pathlib import Path

from exchange.core.errors import ConfigError, InvalidValue, TrustwireError
from exchange.core.keys import Signer, parse_public_key

__all__ = ["signer_from_hex", "read_seed_file", "public_key_from_hex"]


def signer_from_hex(text: str) -> Signer:
    """A Signer from a hex Ed25519 seed (surrounding whitespace ignored)."""
    try:
        seed = bytes.fromhex(text.strip())
    except ValueError as exc:
        raise InvalidValue("an Ed25519 seed is 64 hex characters") from exc
    return Signer.from_seed(seed)


def read_seed_file(path: str | Path, what: str = "key file", hint: str = "") -> Signer:
    """The Signer whose hex seed ``path`` holds; ConfigError naming ``what`` otherwise
    (``hint`` is appended when the file does not exist)."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError as exc:
        raise ConfigError(f"{what} {path} does not exist{hint}") from exc
    try:
        return signer_from_hex(text)
    except InvalidValue as exc:
        raise ConfigError(f"{what} {path} must hold a 32-byte hex Ed25519 seed") from exc


def public_key_from_hex(
    text: str, what: str = "operator_public_key", error: type[TrustwireError] = ConfigError
) -> bytes:
    """An acceptable Ed25519 public key from hex (InvalidValue if not a valid point)."""
    try:
        raw = bytes.fromhex(text)
    except ValueError as exc:
        raise error(f"{what} must be 64 hex characters") from exc
    return parse_public_key(raw)
