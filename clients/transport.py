"""Channels to the exchange: per-call signatures and errors mapped back to the tree."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from clients.tls_files import check_pem_files
from exchange.core.callauth import origin_of_log_key, sign_call
from exchange.core.entries import timestamp_to_ms
from exchange.core.errors import ConfigError, TrustwireError, Unavailable, error_for
from exchange.core.keys import Signer
from exchange.core.records import Receipt
from exchange.pb.trustwire.v1 import exchange_pb2 as xpb
from exchange.pb.trustwire.v1 import exchange_pb2_grpc as xgrpc

__all__ = [
    "ClientTls", "DEFAULT_ORIGIN", "PublishOutcome", "REASON_HEADER", "client_tls", "connect", "origin_of_log_key",
    "publish_envelopes", "translate_errors",
]

REASON_HEADER = "tw-reason"
DEFAULT_ORIGIN = "trustwire.invalid/exchange"
"""The origin of an exchange whose ``name`` setting was left at its default."""
PUBLISH_TIMEOUT_S = 60.0
PublishOutcome = Receipt | TrustwireError


class _CallSigner(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):  # type: ignore[misc]
    """Adds fresh call credentials (call-auth v3: origin, timestamp, nonce, signature) to every call.

    The signature covers the request bytes the channel sends: the stub's serializer is
    ``SerializeToString()``, the same call made here.
    """

    def __init__(self, signer: Signer, principal: str, origin: str) -> None:
        self._signer = signer
        self._principal = principal
        self._origin = origin

    def _details(self, details: Any, request: Any) -> Any:
        body = request.SerializeToString()
        signed = sign_call(self._signer, self._principal, details.method, self._origin, body)
        metadata = list(details.metadata or []) + signed
        return details._replace(metadata=metadata) if hasattr(details, "_replace") else _Details(details, metadata)

    def intercept_unary_unary(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        return continuation(self._details(details, request), request)

    def intercept_unary_stream(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        return continuation(self._details(details, request), request)


class _Details(grpc.ClientCallDetails):  # type: ignore[misc]
    def __init__(self, base: Any, metadata: list[tuple[str, str]]) -> None:
        self.method = base.method
        self.timeout = base.timeout
        self.metadata = metadata
        self.credentials = base.credentials
        self.wait_for_ready = getattr(base, "wait_for_ready", None)
        self.compression = getattr(base, "compression", None)


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientTls:
    """TLS settings of a channel: the CA that issued the exchange's certificate and,
    for mutual TLS, this principal's client certificate and key (all PEM bytes).

    TLS adds to the per-call signatures; it does not replace them. Under mutual TLS
    the certificate must name the principal the calls are signed as.
    """

    root_certificates: bytes
    certificate_chain: bytes | None = None
    private_key: bytes | None = None
    server_name: str | None = None
    """Expected name in the exchange's certificate, when it differs from the target host (tests)."""

    def __post_init__(self) -> None:
        if (self.certificate_chain is None) != (self.private_key is None):
            raise ConfigError("a TLS client certificate and its private key go together: give both or neither")

    @classmethod
    def from_files(
        cls,
        ca_file: Path,
        cert_file: Path | None = None,
        key_file: Path | None = None,
        server_name: str | None = None,
    ) -> ClientTls:
        """Read and check PEM files (settings tls_ca_file, tls_cert_file, tls_key_file)."""
        files = check_pem_files(ca_file, cert_file, key_file)
        return cls(root_certificates=files.ca, certificate_chain=files.cert, private_key=files.key, server_name=server_name)

    @property
    def mutual(self) -> bool:
        return self.certificate_chain is not None


def client_tls(ca_file: Path | None, cert_file: Path | None = None, key_file: Path | None = None) -> ClientTls | None:
    """The TLS of a client's settings: None (plaintext) without ``tls_ca_file``."""
    if ca_file is not None:
        return ClientTls.from_files(ca_file, cert_file, key_file)
    if cert_file is not None or key_file is not None:
        raise ConfigError("tls_cert_file/tls_key_file need tls_ca_file (the CA of the exchange's certificate)")
    return None


def connect(
    target: str,
    signer: Signer,
    principal: str,
    max_message_bytes: int = 32 * 1024 * 1024,
    *,
    tls: ClientTls | None = None,
    origin: str = DEFAULT_ORIGIN,
) -> grpc.Channel:
    """A channel to ``target`` that signs every call as ``principal`` for the exchange
    named ``origin`` (its log name; :func:`origin_of_log_key` reads it from the log key).

    Plaintext without ``tls`` (loopback and development only); with it, TLS that
    verifies the exchange against ``tls.root_certificates`` and, when ``tls`` holds a
    client certificate, mutual TLS.
    """
    options: list[tuple[str, Any]] = [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
    ]
    if tls is None:
        channel = grpc.insecure_channel(target, options=options)
    else:
        if tls.server_name:
            options.append(("grpc.ssl_target_name_override", tls.server_name))
        credentials = grpc.ssl_channel_credentials(
            root_certificates=tls.root_certificates,
            private_key=tls.private_key,
            certificate_chain=tls.certificate_chain,
        )
        channel = grpc.secure_channel(target, credentials, options=options)
    return grpc.intercept_channel(channel, _CallSigner(signer, principal, origin))


_TLS_HINTS = (
    ("Hostname Verification", "the exchange's certificate does not name the host of --exchange"),
    ("CERTIFICATE_VERIFY_FAILED", "the exchange's certificate was not issued by tls_ca_file, or has expired"),
    ("WRONG_VERSION_NUMBER", "the exchange does not speak TLS at this address: drop tls_ca_file or fix --exchange"),
    (
        "Socket closed",
        "the exchange closed the connection during set-up: if it serves TLS, set tls_ca_file; under mutual TLS "
        "it also needs tls_cert_file and tls_key_file from the CA it trusts for clients",
    ),
)


def _tls_hint(details: str) -> str | None:
    """What a transport failure most likely means, for a person (gRPC says only "Socket closed")."""
    for marker, hint in _TLS_HINTS:
        if marker in details:
            return f"{hint} ({details.rsplit(': ', 1)[-1]})"
    return None


def rpc_error(exc: grpc.RpcError) -> TrustwireError:
    """The TrustwireError an RpcError stands for."""
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    details = exc.details() if hasattr(exc, "details") else str(exc)
    reason = ""
    trailing = exc.trailing_metadata() if hasattr(exc, "trailing_metadata") else None
    for key, value in trailing or ():
        if key == REASON_HEADER:
            reason = value
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED) and not reason:
        hint = _tls_hint(details or "")
        return Unavailable(f"exchange unavailable ({code.name}): {hint or details}")
    return error_for(code.name, reason, details or code.name)


@contextmanager
def translate_errors() -> Iterator[None]:
    """Re-raise grpc.RpcError as the matching TrustwireError subclass."""
    try:
        yield
    except grpc.RpcError as exc:
        raise rpc_error(exc) from None


def publish_envelopes(
    stub: xgrpc.ExchangeServiceStub, envelopes: Sequence[bytes], batch_size: int = 500
) -> list[PublishOutcome]:
    """Publish signed envelopes in batches; one outcome per envelope, in order."""
    out: list[PublishOutcome] = []
    for start in range(0, len(envelopes), batch_size):
        chunk = list(envelopes[start : start + batch_size])
        with translate_errors():
            response = stub.Publish(xpb.PublishRequest(envelopes=chunk), timeout=PUBLISH_TIMEOUT_S)
        for r in response.results:
            if r.HasField("receipt"):
                out.append(
                    Receipt(
                        index=r.receipt.index,
                        accepted_at_ms=timestamp_to_ms(r.receipt.accepted_at),
                        leaf_hash=r.receipt.leaf_hash,
                    )
                )
            else:
                err = error_for(r.error.status, r.error.reason, r.error.message)
                err.correlation_id = r.error.correlation_id or None
                out.append(err)
    return out
