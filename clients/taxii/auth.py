"""Who may read the TAXII server: HTTP Basic users whose password is an API token.

The users file (TOML) stores only SHA-256 digests of the tokens (random tokens of
at least 128 bits, so a fast hash is enough), and optionally the sharing groups a
user may read (default: every collection)::

    [users.misp]
    token_sha256 = "9f86d0…"             # trustwire member taxii-token prints one
    groups = ["hash-sharing"]              # optional

Tokens are compared in constant time and never logged.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from exchange.core.errors import ConfigError

__all__ = ["TaxiiUser", "load_users", "new_token", "authenticate"]


@dataclass(frozen=True, slots=True, kw_only=True)
class TaxiiUser:
    name: str
    token_sha256: bytes
    groups: frozenset[str] | None = None  # None: every collection

    def may_read(self, group: str | None) -> bool:
        """``group`` None is the collection of everything: only for users without a group list."""
        return self.groups is None or (group is not None and group in self.groups)


def new_token() -> tuple[str, str]:
    """A fresh token and the digest to put in the users file."""
    token = secrets.token_urlsafe(24)
    return token, hashlib.sha256(token.encode()).hexdigest()


def load_users(path: Path) -> dict[str, TaxiiUser]:
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"TAXII users file {path}: {exc}") from exc
    unknown = set(data) - {"users"}
    if unknown:
        raise ConfigError(f"TAXII users file {path}: unknown key(s) {', '.join(sorted(unknown))}")
    users: dict[str, TaxiiUser] = {}
    for name, spec in (data.get("users") or {}).items():
        if not isinstance(spec, Mapping) or set(spec) - {"token_sha256", "groups"}:
            raise ConfigError(f"TAXII user {name!r}: only token_sha256 and groups are allowed")
        try:
            digest = bytes.fromhex(str(spec["token_sha256"]))
        except (KeyError, ValueError) as exc:
            raise ConfigError(f"TAXII user {name!r} needs token_sha256 (64 hex characters)") from exc
        if len(digest) != 32:
            raise ConfigError(f"TAXII user {name!r}: token_sha256 must be 64 hex characters")
        groups = spec.get("groups")
        users[name] = TaxiiUser(
            name=name, token_sha256=digest, groups=None if groups is None else frozenset(map(str, groups))
        )
    if not users:
        raise ConfigError(f"TAXII users file {path} names no user: the server would refuse everyone")
    return users


def authenticate(header: str | None, users: Mapping[str, TaxiiUser]) -> TaxiiUser | None:
    """The user an ``Authorization: Basic …`` header proves, else None."""
    if not header or not header.startswith("Basic "):
        return None
    try:
        name, _, token = base64.b64decode(header[6:], validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user = users.get(name)
    digest = hashlib.sha256(token.encode()).digest()
    if user is None:
        hmac.compare_digest(digest, digest)  # same work whether or not the name exists
        return None
    return user if hmac.compare_digest(digest, user.token_sha256) else None
