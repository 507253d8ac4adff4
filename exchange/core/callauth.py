"""Per-call authentication: an Ed25519 signature over method, principal, key,
timestamp and nonce, carried in gRPC metadata.

Signed message (UTF-8, each line ends in ``\\n``)::

    trustwire-call-v2
    <full method, e.g. /trustwire.v1.ExchangeService/Publish>
    <principal id>
    <keyid>
    <unix time in milliseconds>
    <nonce: 32 lowercase hex>
    <lowercase hex SHA-256 of the deterministically serialized request message>

The server first checks the signature with the key ``keyid`` names (so nobody
without a key learns anything about keys or members), then that the principal may
use that key now, that the timestamp is within the replay window of its clock and
that the nonce was not seen within that window. Nonces are remembered only for
validly signed calls, so nobody can fill the cache without a key. Binding the
request digest stops a man in the middle from reusing fresh credentials with
another request body.
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

from exchange.core.errors import (
    BadCallSignature,
    ExpiredCall,
    ForgedSignature,
    MissingCredentials,
    ReplayedCall,
    ResourceExhausted,
)
from exchange.core.keys import KeyId, Signer, verify_signature

__all__ = ["CallAuthenticator", "CallCredentials", "NonceCache", "sign_call", "HEADERS"]

VERSION = "trustwire-call-v2"
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


def request_digest(request: bytes) -> str:
    return hashlib.sha256(request).hexdigest()


def call_message(method: str, principal: str, keyid: str, timestamp_ms: int, nonce: str, digest: str) -> bytes:
    return f"{VERSION}\n{method}\n{principal}\n{keyid}\n{timestamp_ms}\n{nonce}\n{digest}\n".encode()


def sign_call(
    signer: Signer, principal: str, method: str, request: bytes = b"", now_ms: int | None = None
) -> list[tuple[str, str]]:
    """The metadata that authenticates one call to ``method`` as ``principal``.

    ``request`` is the deterministically serialized request message.
    """
    ts = int(time.time() * 1000) if now_ms is None else now_ms
    nonce = secrets.token_hex(16)
    sig = signer.sign(call_message(method, principal, signer.keyid, ts, nonce, request_digest(request)))
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


class NonceCache:
    """Nonces seen within the replay window, bounded in size."""

    def __init__(self, window_ms: int, max_entries: int = 1_000_000) -> None:
        self._window_ms = window_ms
        self._max = max_entries
        self._seen: OrderedDict[tuple[str, str], int] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, principal: str, nonce: str, timestamp_ms: int, now_ms: int) -> None:
        """Record a nonce or raise ReplayedCall if it was already used."""
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
    """Verify call metadata.

    ``key_for(keyid)`` returns the public key a key id names (or raises UnknownKey);
    ``authorize(principal, keyid)`` raises unless the principal may use that key now.
    """

    def __init__(
        self,
        key_for: Callable[[KeyId], bytes],
        authorize: Callable[[str, KeyId], None],
        window_ms: int = 120_000,
        clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self._key_for = key_for
        self._authorize = authorize
        self._window_ms = window_ms
        self._clock_ms = clock_ms
        self._nonces = NonceCache(window_ms)

    def authenticate(self, method: str, metadata: Mapping[str, str], request: bytes = b"") -> CallCredentials:
        missing = [h for h in HEADERS if not metadata.get(h)]
        if missing:
            raise MissingCredentials("call is not authenticated: missing " + ", ".join(missing))
        principal, keyid = metadata[H_PRINCIPAL], metadata[H_KEYID]
        ts_text, nonce = metadata[H_TIMESTAMP], metadata[H_NONCE]
        well_formed = _PRINCIPAL.match(principal) and _KEYID.match(keyid) and _NONCE.match(nonce)
        if not (well_formed and _TIMESTAMP.match(ts_text)):
            raise MissingCredentials("call credentials are malformed")
        try:
            sig = base64.b64decode(metadata[H_SIGNATURE], validate=True)
        except ValueError as exc:
            raise MissingCredentials("call signature is not base64") from exc
        ts = int(ts_text)
        public_key = self._key_for(KeyId(keyid))
        message = call_message(method, principal, keyid, ts, nonce, request_digest(request))
        try:
            verify_signature(public_key, message, sig)
        except ForgedSignature as exc:
            raise BadCallSignature("call signature does not verify (wrong key, method or request body)") from exc
        self._authorize(principal, KeyId(keyid))
        now = self._clock_ms()
        if abs(now - ts) > self._window_ms:
            raise ExpiredCall(
                f"call timestamp is {abs(now - ts) // 1000}s away from the exchange clock; "
                f"the window is {self._window_ms // 1000}s (check the client clock)"
            )
        self._nonces.remember(principal, nonce, ts, now)
        return CallCredentials(principal, KeyId(keyid))
