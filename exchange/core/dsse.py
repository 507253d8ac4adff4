"""DSSE v1 envelopes: sign and verify exact bytes.

``sig = Ed25519(PAE(payload_type, payload))`` with
``PAE = "DSSEv1" SP len(type) SP type SP len(payload) SP payload`` (lengths in ASCII
decimal). Envelopes travel as canonically encoded protobuf bytes; a decoder refuses
anything whose re-encoding differs, so the ledger stores one byte string per
envelope and nothing can hide in unknown fields.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from google.protobuf.message import DecodeError

from exchange.core.errors import InvalidValue, MalformedEnvelope
from exchange.core.keys import KeyId, Signer, parse_key_id, verify_signature
from exchange.pb.trustwire.v1 import envelope_pb2

__all__ = ["Envelope", "pae", "sign_envelope", "signature_of", "MAX_ENVELOPE_BYTES"]

MAX_ENVELOPE_BYTES = 64 * 1024
MAX_PAYLOAD_TYPE = 128


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding."""
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


@dataclass(frozen=True, slots=True, kw_only=True)
class Envelope:
    """A decoded DSSE envelope with exactly one signature (Trustwire v1)."""

    payload_type: str
    payload: bytes
    keyid: KeyId
    sig: bytes
    raw: bytes

    @property
    def digest(self) -> bytes:
        """SHA-256 of the envelope bytes: the idempotency key of a publish."""
        return hashlib.sha256(self.raw).digest()

    def verify(self, public_key: bytes) -> None:
        """Raise ForgedSignature unless the signature covers these exact bytes."""
        verify_signature(public_key, pae(self.payload_type, self.payload), self.sig)

    @classmethod
    def decode(cls, raw: bytes) -> Envelope:
        if len(raw) > MAX_ENVELOPE_BYTES:
            raise MalformedEnvelope(f"envelope is {len(raw)} bytes; the limit is {MAX_ENVELOPE_BYTES}")
        msg = envelope_pb2.Envelope()
        try:
            msg.ParseFromString(raw)
        except DecodeError as exc:
            raise MalformedEnvelope("envelope bytes are not a DSSE Envelope protobuf") from exc
        # protobuf keeps unknown fields and re-emits them; drop them so they fail the check
        msg.DiscardUnknownFields()
        if msg.SerializeToString(deterministic=True) != raw:
            raise MalformedEnvelope(
                "envelope is not canonically encoded (PROTOCOL.md §2: fields in number order, "
                "no explicit default values, no unknown or repeated fields)"
            )
        payload_type = msg.payload_type  # each field read once: a read builds a new object
        keyid, sig = signature_of(payload_type, msg.signatures)
        return cls(payload_type=payload_type, payload=msg.payload, keyid=keyid, sig=sig, raw=raw)


_known_keyid = functools.lru_cache(maxsize=1024)(parse_key_id)  # a ledger repeats a few (only valid ones are kept)


def signature_of(payload_type: str, signatures: Sequence[envelope_pb2.Signature]) -> tuple[KeyId, bytes]:
    """(keyid, sig) of a parsed envelope's one signature, after the checks on its
    fields; raise MalformedEnvelope."""
    if len(signatures) != 1:
        raise MalformedEnvelope(f"envelope must carry exactly one signature, found {len(signatures)}")
    if not payload_type or len(payload_type) > MAX_PAYLOAD_TYPE:
        raise MalformedEnvelope("envelope payload_type is missing or too long")
    sig = signatures[0]
    try:
        keyid = _known_keyid(sig.keyid)
    except InvalidValue as exc:
        raise MalformedEnvelope(f"envelope signature keyid is invalid: {exc}") from exc
    return keyid, sig.sig


def sign_envelope(payload_type: str, payload: bytes, signer: Signer) -> Envelope:
    """Sign ``payload`` and return the envelope with its canonical bytes."""
    sig = signer.sign(pae(payload_type, payload))
    msg = envelope_pb2.Envelope(
        payload=payload,
        payload_type=payload_type,
        signatures=[envelope_pb2.Signature(sig=sig, keyid=signer.keyid)],
    )
    raw = msg.SerializeToString(deterministic=True)
    return Envelope(payload_type=payload_type, payload=payload, keyid=signer.keyid, sig=sig, raw=raw)
