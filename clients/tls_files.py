"""The client's TLS files, checked before any connection: what exactly is wrong with them.

gRPC reports a bad certificate only as "Socket closed" or a handshake failure; these
checks name the file and the fault instead (unreadable, not PEM, expired, not yet
valid, encrypted, or a key that is not the certificate's).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from exchange.core.errors import ConfigError

__all__ = ["TlsFiles", "check_pem_files", "read_pem"]


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """The PEM bytes of a client's TLS settings, checked by :func:`check_pem_files`."""

    ca: bytes
    cert: bytes | None
    key: bytes | None


def read_pem(path: Path, setting: str) -> bytes:
    """The bytes of ``path``, or a ConfigError naming ``setting`` and the fault."""
    try:
        return Path(path).expanduser().read_bytes()
    except FileNotFoundError as exc:
        raise ConfigError(f"{setting} {path} does not exist") from exc
    except (IsADirectoryError, PermissionError) as exc:
        raise ConfigError(f"{setting} {path} is not a readable file") from exc


def _certificates(data: bytes, setting: str, path: Path) -> list[x509.Certificate]:
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise ConfigError(f"{setting} {path} does not hold a PEM certificate") from exc
    return certs


def _check_validity(cert: x509.Certificate, setting: str, path: Path, now: datetime.datetime) -> None:
    if now < cert.not_valid_before_utc:
        raise ConfigError(f"{setting} {path} is not valid before {cert.not_valid_before_utc.isoformat()}")
    if now > cert.not_valid_after_utc:
        raise ConfigError(f"{setting} {path} expired at {cert.not_valid_after_utc.isoformat()}")


def check_pem_files(
    ca_file: Path, cert_file: Path | None = None, key_file: Path | None = None, *, now: datetime.datetime | None = None
) -> TlsFiles:
    """Read and check a client's TLS files; a ConfigError names the first fault found."""
    if (cert_file is None) != (key_file is None):
        raise ConfigError("tls_cert_file and tls_key_file go together: set both for mutual TLS")
    moment = now or datetime.datetime.now(datetime.UTC)
    ca = read_pem(ca_file, "tls_ca_file")
    cas = _certificates(ca, "tls_ca_file", ca_file)
    for c in cas:
        _check_validity(c, "tls_ca_file", ca_file, moment)
    if cert_file is None or key_file is None:
        return TlsFiles(ca, None, None)
    cert = read_pem(cert_file, "tls_cert_file")
    leaf = _certificates(cert, "tls_cert_file", cert_file)[0]
    _check_validity(leaf, "tls_cert_file", cert_file, moment)
    key = read_pem(key_file, "tls_key_file")
    try:
        private = serialization.load_pem_private_key(key, password=None)
    except TypeError as exc:
        raise ConfigError(f"tls_key_file {key_file} is encrypted: give an unencrypted PEM key") from exc
    except ValueError as exc:
        raise ConfigError(f"tls_key_file {key_file} does not hold a PEM private key") from exc
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    if private.public_key().public_bytes(serialization.Encoding.DER, public) != leaf.public_key().public_bytes(
        serialization.Encoding.DER, public
    ):
        raise ConfigError(f"tls_key_file {key_file} is not the private key of tls_cert_file {cert_file}")
    return TlsFiles(ca, cert, key)

