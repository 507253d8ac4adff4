"""How the upload pipeline authenticates: bearer tokens, client certificates, or both.

The match service is never open: :class:`PipelineAuth` refuses a configuration with
neither. With client certificates (mutual TLS, :mod:`clients.matchsvc.tls`) the TLS
handshake refuses a caller without a certificate from the pipeline's CA before any
request is read; with tokens every call also needs ``Authorization: Bearer <token>``.

The token file holds one token per line (blank lines and ``#`` comments ignored),
each at least 32 characters; keep it 0600. Only SHA-256 digests stay in memory and
presented tokens are compared in constant time. Tokens are never logged.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path

from exchange.core.errors import AuthenticationError, ConfigError, MissingCredentials

__all__ = ["TokenSet", "PipelineAuth", "MIN_TOKEN_LENGTH"]

MIN_TOKEN_LENGTH = 32


class TokenSet:
    def __init__(self, tokens: list[str]) -> None:
        if not tokens:
            raise ConfigError("the match service needs at least one bearer token (--token-file)")
        if any(len(t) < MIN_TOKEN_LENGTH for t in tokens):
            raise ConfigError(f"bearer tokens must be at least {MIN_TOKEN_LENGTH} characters")
        self._digests = [hashlib.sha256(t.encode()).digest() for t in tokens]

    @classmethod
    def load(cls, path: Path) -> TokenSet:
        try:
            lines = path.read_text().splitlines()
        except FileNotFoundError as exc:
            raise ConfigError(f"token file {path} does not exist") from exc
        return cls([ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")])

    def check(self, authorization: str | None) -> None:
        """Raise unless ``authorization`` is ``Bearer <a known token>``."""
        if not authorization:
            raise MissingCredentials("send Authorization: Bearer <token>")
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise MissingCredentials("send Authorization: Bearer <token>")
        digest = hashlib.sha256(token.strip().encode()).digest()
        if not any(hmac.compare_digest(digest, d) for d in self._digests):  # check all: no early exit
            raise AuthenticationError("unknown bearer token")


@dataclass(frozen=True, slots=True)
class PipelineAuth:
    """The pipeline's credentials: ``tokens`` (None: no token needed) and whether the
    listeners require client certificates. At least one of the two, always."""

    tokens: TokenSet | None
    client_certificates: bool

    def __post_init__(self) -> None:
        if self.tokens is None and not self.client_certificates:
            raise ConfigError(
                "the match service is never open: give --token-file, --client-ca-file (mutual TLS), or both"
            )

    def check(self, authorization: str | None) -> None:
        """Raise unless the call carries what this configuration asks of it (the
        certificate, if any, was already checked by the TLS handshake)."""
        if self.tokens is not None:
            self.tokens.check(authorization)
