"""Per-call authentication, version 3 (PROTOCOL.md §4): an Ed25519 signature over the
exchange's origin, the method, the caller's headers and the SHA-256 of the request
bytes exactly as sent.

Signed message (UTF-8, each line ends in ``\\n``)::

    trustwire-call-v3
    <origin: the exchange's log name, first line of its checkpoints>
    <full method, e.g. /trustwire.v1.ExchangeService/Publish>
    <principal id>
    <keyid>
    <unix time in milliseconds>
    <nonce: 32 lowercase hex>
    <lowercase hex SHA-256 of the request message bytes as sent on the wire>

The checks run in the normative order, the cheap ones first and from metadata
alone (:meth:`CallAuthenticator.precheck`: headers, clock window, known key) so an
unauthenticated caller's body is never read past a small limit; then
(:meth:`CallAuthenticator.verify`) the signature, the key directory and the replay
guard. Only then does the server parse the body. The replay guard is a
:class:`ReplayGuard`; the server's one persists and is shared by the replicas of an
exchange, so a captured call is worthless on another replica and after a restart.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from exchange.core.errors import (
    BadCallSignature,
    ExpiredCall,
    ForgedSignature,
    MissingCredentials,
    ReplayedCall,
    ResourceExhausted,
)
from exchange.core.keys import KeyId, Signer, verify_signature

__all__ = [
    "CallAuthenticator",
    "CallCredentials",
    "CallHeaders",
    "HEADERS",
    "NonceCache",
    "ReplayGuard",
    "SMALL_BODY_BYTES",
    "VERSION",
    "body_digest",
    "call_message",
    "origin_of_log_key",
    "parse_headers",
    "sign_call",
]

VERSION = "trustwire-call-v3"
SMALL_BODY_BYTES = 64 * 1024
"""Bodies of calls that fail the metadata checks are not read past this."""
H_PRINCIPAL = "tw-principal"
H_KEYID = "tw-keyid"
H_TIMESTAMP = "tw-timestamp"
H_NONCE = "tw-nonce"
H_SIGNATURE = "tw-signature"
HEADERS = (H_PRINCIPAL, H_KEYID, H_TIMESTAMP, H_NONCE, H_SIGNATURE)
_NONCE = re.compile(r"^[0-9a-f]{32}\Z")
_KEYID = re.compile(r"^[0-9a-f]{64}\Z")
_PRINCIPAL = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}\Z")
_TIMESTAMP = re.compile(r"^[0-9]{1,15}\Z")
_SIGNATURE = re.compile(r"^[A-Za-z0-9+/]{86}==\Z")  # 64 bytes, standard base64 with padding


def body_digest(body: bytes) -> str:
    """Lowercase hex SHA-256 of the request bytes as sent."""
    return hashlib.sha256(body).hexdigest()


def call_message(
    origin: str, method: str, principal: str, keyid: str, timestamp_ms: int, nonce: str, digest: str
) -> bytes:
    """The bytes a call signature covers (pure; conformance vectors are made from it)."""
    lines = (VERSION, origin, method, principal, keyid, str(timestamp_ms), nonce, digest)
    return "".join(line + "\n" for line in lines).encode()


def origin_of_log_key(log_key: str) -> str:
    """The origin a log verifier key ("name+hash+base64") names: its name (a key name has no "+")."""
    name, plus, rest = log_key.partition("+")
    if not (name and plus and "+" in rest):
        raise ValueError("a log key is name+hash+base64")
    return name


def sign_call(
    signer: Signer, principal: str, method: str, origin: str, body: bytes = b"", now_ms: int | None = None
) -> list[tuple[str, str]]:
    """The metadata that authenticates one call to ``method`` of exchange ``origin``.

    ``body`` is the request message exactly as it will be sent.
    """
    ts = int(time.time() * 1000) if now_ms is None else now_ms
    nonce = secrets.token_hex(16)
    sig = signer.sign(call_message(origin, method, principal, signer.keyid, ts, nonce, body_digest(body)))
    return [
        (H_PRINCIPAL, principal),
        (H_KEYID, signer.keyid),
        (H_TIMESTAMP, str(ts)),
        (H_NONCE, nonce),
        (H_SIGNATURE, base64.b64encode(sig).decode()),
    ]


@dataclass(frozen=True, slots=True)
class CallCredentials:
    """Who made an authenticated call, and with which key."""

    principal: str
    keyid: KeyId


@dataclass(frozen=True, slots=True, kw_only=True)
class CallHeaders:
    """Well-formed call headers (step 1), not yet checked against anything."""

    principal: str
    keyid: KeyId
    timestamp_ms: int
    nonce: str
    signature: bytes


def parse_headers(metadata: Mapping[str, str]) -> CallHeaders:
    """Step 1: every header present and well formed, else MissingCredentials."""
    missing = [h for h in HEADERS if not metadata.get(h)]
    if missing:
        raise MissingCredentials("call is not authenticated: missing " + ", ".join(missing))
    principal, keyid = metadata[H_PRINCIPAL], metadata[H_KEYID]
    ts_text, nonce, sig_text = metadata[H_TIMESTAMP], metadata[H_NONCE], metadata[H_SIGNATURE]
    well_formed = _PRINCIPAL.match(principal) and _KEYID.match(keyid) and _NONCE.match(nonce)
    if not (well_formed and _TIMESTAMP.match(ts_text)):
        raise MissingCredentials("call credentials are malformed")
    if not _SIGNATURE.match(sig_text):
        raise MissingCredentials("call signature is not base64 of 64 bytes (standard alphabet, padded)")
    return CallHeaders(
        principal=principal, keyid=KeyId(keyid), timestamp_ms=int(ts_text), nonce=nonce,
        signature=base64.b64decode(sig_text, validate=True),
    )


class ReplayGuard(Protocol):
    """Remembers accepted ``(principal, nonce)`` pairs for twice the replay window."""

    def remember(self, principal: str, nonce: str, timestamp_ms: int, now_ms: int) -> None:
        """Record the pair or raise ReplayedCall if it was accepted before."""


class NonceCache:
    """An in-memory :class:`ReplayGuard` for one process (tests and tools)."""

    def __init__(self, window_ms: int, max_entries: int = 1_000_000) -> None:
        self._window_ms = window_ms
        self._max = max_entries
        self._seen: OrderedDict[tuple[str, str], int] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, principal: str, nonce: str, timestamp_ms: int, now_ms: int) -> None:
        with self._lock:
            horizon = now_ms - 2 * self._window_ms
            while self._seen:
                key, seen_at = next(iter(self._seen.items()))
                if seen_at >= horizon:
                    break
                del self._seen[key]
            key = (principal, nonce)
            if key in self._seen:
                raise ReplayedCall("call was replayed: this nonce was already used")
            if len(self._seen) >= self._max:
                raise ResourceExhausted("too many calls in the replay window; retry shortly")
            self._seen[key] = now_ms


class CallAuthenticator:
    """Verify call metadata for the exchange named ``origin``, in the order of §4.

    ``key_for(keyid)`` returns the public key a key id names (or raises UnknownKey);
    ``authorize(principal, keyid)`` raises unless the principal may use that key now.
    """

    def __init__(
        self,
        origin: str,
        key_for: Callable[[KeyId], bytes],
        authorize: Callable[[str, KeyId], None],
        replay: ReplayGuard | None = None,
        window_ms: int = 120_000,
        clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self.origin = origin
        self._key_for = key_for
        self._authorize = authorize
        self._window_ms = window_ms
        self._clock_ms = clock_ms
        self._replay: ReplayGuard = replay or NonceCache(window_ms)

    def precheck(self, metadata: Mapping[str, str]) -> tuple[CallHeaders, bytes]:
        """Steps 1–3, from metadata alone: the headers and the public key they name."""
        headers = parse_headers(metadata)
        skew = abs(self._clock_ms() - headers.timestamp_ms)
        if skew > self._window_ms:
            raise ExpiredCall(
                f"call timestamp is {skew // 1000}s away from the exchange clock; "
                f"the window is {self._window_ms // 1000}s (check the client clock)"
            )
        return headers, self._key_for(headers.keyid)

    def verify(self, method: str, headers: CallHeaders, public_key: bytes, body: bytes) -> CallCredentials:
        """Steps 4–6: signature, key directory, replay; the body is not parsed."""
        message = call_message(
            self.origin, method, headers.principal, headers.keyid, headers.timestamp_ms, headers.nonce,
            body_digest(body),
        )
        try:
            verify_signature(public_key, message, headers.signature)
        except ForgedSignature as exc:
            raise BadCallSignature(
                f"call signature does not verify (wrong key, method, request body or origin; this exchange is {self.origin})"
            ) from exc
        self._authorize(headers.principal, headers.keyid)
        self._replay.remember(headers.principal, headers.nonce, headers.timestamp_ms, self._clock_ms())
        return CallCredentials(headers.principal, headers.keyid)

    def authenticate(self, method: str, metadata: Mapping[str, str], body: bytes = b"") -> CallCredentials:
        """All six steps at once."""
        headers, public_key = self.precheck(metadata)
        return self.verify(method, headers, public_key, body)
