"""The one error tree of Trustwire, shared by the exchange, the SDK and the CLIs.

Every error knows its gRPC status name, its CLI exit code, a stable machine-readable
``reason`` (sent on the wire, so the client can raise the same class again) and a
message a human can act on. Messages never carry secrets, payloads or account
identifiers.

    TrustwireError                      INTERNAL
    ├── InvalidInput                    INVALID_ARGUMENT
    │   ├── MalformedEnvelope           malformed-envelope
    │   ├── MalformedEntry              malformed-entry
    │   ├── MalformedRecord             malformed-record
    │   ├── InvalidValue                invalid-value
    │   │   ├── NonNormalizedValue      non-normalized-value
    │   │   └── BroadValue              broad-value  (a value that would mass-match)
    │   ├── InvalidKeyEvent             invalid-key-event
    │   ├── WitnessProtocolError        bad-witness-message
    │   └── ConfigError                 invalid-config
    ├── AuthenticationError             UNAUTHENTICATED
    │   ├── ForgedSignature             forged-signature
    │   ├── UnknownKey                  unknown-key
    │   ├── MissingCredentials          missing-credentials
    │   ├── BadCallSignature            bad-call-signature
    │   ├── ReplayedCall                replayed-call
    │   ├── ExpiredCall                 expired-call
    │   └── CertificateMismatch         certificate-mismatch
    ├── PermissionDenied                PERMISSION_DENIED
    │   ├── WrongMember                 wrong-member
    │   ├── KeyNotValid                 key-not-valid
    │   ├── MemberSuspended             member-suspended
    │   ├── GroupNotAllowed             group-not-allowed
    │   ├── TlpNotAllowed               tlp-not-allowed
    │   └── ClaimedByOther              claim-owned  (a queue item another reviewer holds)
    ├── NotFound                        NOT_FOUND
    ├── OutOfRange                      OUT_OF_RANGE
    ├── ResourceExhausted               RESOURCE_EXHAUSTED
    │   ├── BatchTooLarge               oversized-batch
    │   └── QuotaExceeded               quota-exceeded  (carries retry_after_ms)
    ├── Unavailable                     UNAVAILABLE
    │   ├── CheckpointPending           checkpoint-pending  (accepted, not yet checkpointed: retry)
    │   ├── WitnessUnavailable          witness-unavailable
    │   └── NotReady                    not-ready  (a match service behind the exchange)
    ├── WitnessRejected                 FAILED_PRECONDITION  witness-rejected
    ├── NotServed                       UNIMPLEMENTED  (no such method, or a kind the exchange does not authenticate)
    ├── SecurityError                   DATA_LOSS  (a verifier caught the exchange lying)
    │   ├── UntrustedEntry              untrusted-entry
    │   ├── LedgerGap                   ledger-gap
    │   ├── LogForked                   log-fork
    │   ├── ProofError                  bad-proof
    │   ├── NoteError                   bad-note
    │   │   └── CheckpointError         bad-checkpoint
    │   ├── WitnessConflict             witness-conflict
    │   └── BadCosignature              bad-cosignature
    └── LedgerCorrupt                   DATA_LOSS
"""

from __future__ import annotations

from enum import IntEnum
from typing import ClassVar

__all__ = [
    "AuthenticationError",
    "BadCallSignature",
    "BadCosignature",
    "BatchTooLarge",
    "BroadValue",
    "CheckpointPending",
    "ClaimedByOther",
    "CertificateMismatch",
    "CheckpointError",
    "ConfigError",
    "ExitCode",
    "ExpiredCall",
    "ForgedSignature",
    "GroupNotAllowed",
    "InvalidInput",
    "InvalidKeyEvent",
    "InvalidValue",
    "NotServed",
    "KeyNotValid",
    "LedgerCorrupt",
    "LedgerGap",
    "LogForked",
    "MalformedEntry",
    "MalformedEnvelope",
    "MalformedRecord",
    "MemberSuspended",
    "MissingCredentials",
    "NonNormalizedValue",
    "NotFound",
    "NotReady",
    "NoteError",
    "OutOfRange",
    "PermissionDenied",
    "ProofError",
    "QuotaExceeded",
    "ReplayedCall",
    "ResourceExhausted",
    "SecurityError",
    "StateBusy",
    "TlpNotAllowed",
    "TrustwireError",
    "Unavailable",
    "UnknownKey",
    "UntrustedEntry",
    "WitnessConflict",
    "WitnessProtocolError",
    "WitnessRejected",
    "WitnessUnavailable",
    "WrongMember",
    "error_for",
]


class ExitCode(IntEnum):
    """Process exit codes of the ``trustwire`` CLI."""

    OK = 0
    FAILURE = 1
    USAGE = 2
    INVALID_INPUT = 3
    UNAUTHENTICATED = 4
    PERMISSION_DENIED = 5
    NOT_FOUND = 6
    UNAVAILABLE = 7
    SECURITY = 8
    RESOURCE_EXHAUSTED = 9
    INTERRUPTED = 130


class TrustwireError(Exception):
    """Base of every error Trustwire raises on purpose."""

    status: ClassVar[str] = "INTERNAL"
    reason: ClassVar[str] = "internal"
    exit_code: ClassVar[ExitCode] = ExitCode.FAILURE
    correlation_id: str | None = None  # set where the exchange recorded the rejection

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidInput(TrustwireError):
    status = "INVALID_ARGUMENT"
    reason = "invalid-input"
    exit_code = ExitCode.INVALID_INPUT


class MalformedEnvelope(InvalidInput):
    reason = "malformed-envelope"


class MalformedEntry(InvalidInput):
    reason = "malformed-entry"


class MalformedRecord(InvalidInput):
    reason = "malformed-record"


class InvalidValue(InvalidInput):
    reason = "invalid-value"


class NonNormalizedValue(InvalidValue):
    reason = "non-normalized-value"


class BroadValue(InvalidValue):
    """A signal value that would match far too much: a text phrase under the minimum
    length, a domain that is a public suffix (PROTOCOL.md §5)."""

    reason = "broad-value"


class InvalidKeyEvent(InvalidInput):
    reason = "invalid-key-event"


class WitnessProtocolError(InvalidInput):
    """An add-checkpoint request or response does not follow c2sp.org/tlog-witness."""

    reason = "bad-witness-message"


class ConfigError(InvalidInput):
    reason = "invalid-config"
    exit_code = ExitCode.USAGE


class AuthenticationError(TrustwireError):
    status = "UNAUTHENTICATED"
    reason = "unauthenticated"
    exit_code = ExitCode.UNAUTHENTICATED


class ForgedSignature(AuthenticationError):
    reason = "forged-signature"


class UnknownKey(AuthenticationError):
    reason = "unknown-key"


class MissingCredentials(AuthenticationError):
    reason = "missing-credentials"


class BadCallSignature(AuthenticationError):
    reason = "bad-call-signature"


class ReplayedCall(AuthenticationError):
    reason = "replayed-call"


class ExpiredCall(AuthenticationError):
    reason = "expired-call"


class CertificateMismatch(AuthenticationError):
    """Under mutual TLS, the call's principal is not the one the client certificate names."""

    reason = "certificate-mismatch"


class PermissionDenied(TrustwireError):
    status = "PERMISSION_DENIED"
    reason = "permission-denied"
    exit_code = ExitCode.PERMISSION_DENIED


class WrongMember(PermissionDenied):
    reason = "wrong-member"


class KeyNotValid(PermissionDenied):
    reason = "key-not-valid"


class MemberSuspended(PermissionDenied):
    reason = "member-suspended"


class GroupNotAllowed(PermissionDenied):
    reason = "group-not-allowed"


class TlpNotAllowed(PermissionDenied):
    reason = "tlp-not-allowed"


class ClaimedByOther(PermissionDenied):
    """A reviewer tried to act on a queue item another reviewer has claimed."""

    reason = "claim-owned"


class NotFound(TrustwireError):
    status = "NOT_FOUND"
    reason = "not-found"
    exit_code = ExitCode.NOT_FOUND


class OutOfRange(TrustwireError):
    status = "OUT_OF_RANGE"
    reason = "out-of-range"
    exit_code = ExitCode.INVALID_INPUT


class ResourceExhausted(TrustwireError):
    status = "RESOURCE_EXHAUSTED"
    reason = "resource-exhausted"
    exit_code = ExitCode.RESOURCE_EXHAUSTED


class BatchTooLarge(ResourceExhausted):
    reason = "oversized-batch"


class QuotaExceeded(ResourceExhausted):
    """A member published faster than its quota; retry after ``retry_after_ms``."""

    reason = "quota-exceeded"

    def __init__(self, message: str, retry_after_ms: int = 1000) -> None:
        super().__init__(message)
        self.retry_after_ms = retry_after_ms


class Unavailable(TrustwireError):
    status = "UNAVAILABLE"
    reason = "unavailable"
    exit_code = ExitCode.UNAVAILABLE


class NotReady(Unavailable):
    """A member's match service that is not caught up with the exchange's head."""

    reason = "not-ready"


class StateBusy(Unavailable):
    """Another process holds the member's state file (a SQLite lock): retry once it is done."""

    reason = "state-busy"


class CheckpointPending(Unavailable):
    """The entry is in the ledger but no signed checkpoint covers it yet (retry)."""

    reason = "checkpoint-pending"


class WitnessUnavailable(Unavailable):
    """The witness could not be reached, timed out or failed internally (5xx)."""

    reason = "witness-unavailable"


class WitnessRejected(TrustwireError):
    """The witness refused the checkpoint with an HTTP status the client cannot fix."""

    status = "FAILED_PRECONDITION"
    reason = "witness-rejected"

    def __init__(self, message: str, http_status: int = 0) -> None:
        super().__init__(message)
        self.http_status = http_status


class NotServed(TrustwireError):
    """A method the exchange does not serve: unknown, or of a kind its gate does not authenticate."""

    status = "UNIMPLEMENTED"
    reason = "not-served"


class SecurityError(TrustwireError):
    """A verifier caught the exchange (or a publisher) breaking the protocol."""

    status = "DATA_LOSS"
    reason = "security-error"
    exit_code = ExitCode.SECURITY


class UntrustedEntry(SecurityError):
    """A ledger record that fails end-to-end verification; ``cause`` is the precise reason."""

    reason = "untrusted-entry"

    def __init__(self, message: str, cause: str = "untrusted-entry") -> None:
        super().__init__(message)
        self.cause = cause


class LedgerGap(SecurityError):
    reason = "ledger-gap"


class LogForked(SecurityError):
    """Two signed checkpoints that cannot both be true."""

    reason = "log-fork"


class ProofError(SecurityError):
    """A Merkle proof, or the parameters it is checked against, is invalid."""

    reason = "bad-proof"


class NoteError(SecurityError):
    """A note, signature or key is malformed or fails verification."""

    reason = "bad-note"


class CheckpointError(NoteError):
    """A checkpoint body does not follow c2sp.org/tlog-checkpoint."""

    reason = "bad-checkpoint"


class WitnessConflict(SecurityError):
    """The witness cosigned a checkpoint that this checkpoint does not extend."""

    reason = "witness-conflict"


class BadCosignature(SecurityError):
    """The witness answered 200 without a valid cosignature from its configured key."""

    reason = "bad-cosignature"


class LedgerCorrupt(TrustwireError):
    status = "DATA_LOSS"
    reason = "ledger-corrupt"
    exit_code = ExitCode.SECURITY


def _all_subclasses(cls: type[TrustwireError]) -> list[type[TrustwireError]]:
    out = [cls]
    for sub in cls.__subclasses__():
        out.extend(_all_subclasses(sub))
    return out


_BY_REASON: dict[str, type[TrustwireError]] = {c.reason: c for c in _all_subclasses(TrustwireError)}
_BY_STATUS: dict[str, type[TrustwireError]] = {}
for _cls in reversed(_all_subclasses(TrustwireError)):
    _BY_STATUS[_cls.status] = _cls  # the shallowest class wins for each status


def error_for(status: str, reason: str, message: str) -> TrustwireError:
    """Rebuild the error a peer reported (by reason, else by status)."""
    cls = _BY_REASON.get(reason) or _BY_STATUS.get(status) or TrustwireError
    return cls(message)
