"""TLS for the match service's listeners, and mutual TLS for the upload pipeline.

``--serve-tls-cert-file``/``--serve-tls-key-file`` serve HTTPS and gRPC over TLS;
``--client-ca-file`` also makes both listeners require a client certificate issued by
that CA (the handshake fails without one, before any request is read). The files are
checked before listening, each fault named (:func:`clients.tls_files.check_pem_files`).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from clients.tls_files import check_pem_files
from exchange.core.errors import ConfigError

__all__ = ["ServeTls"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ServeTls:
    cert_file: Path
    key_file: Path
    client_ca_file: Path | None
    cert: bytes
    key: bytes
    client_ca: bytes | None

    @classmethod
    def load(cls, cert_file: Path | None, key_file: Path | None, client_ca_file: Path | None) -> ServeTls | None:
        """The checked files, or None for plaintext listeners (no setting given)."""
        if cert_file is None and key_file is None:
            if client_ca_file is not None:
                raise ConfigError(
                    "--client-ca-file (mutual TLS) also needs --serve-tls-cert-file and --serve-tls-key-file"
                )
            return None
        if cert_file is None or key_file is None:
            raise ConfigError("--serve-tls-cert-file and --serve-tls-key-file go together: give both to serve TLS")
        # without a client CA the certificate itself stands in for the CA file being checked
        files = check_pem_files(client_ca_file or cert_file, cert_file, key_file)
        assert files.cert is not None and files.key is not None
        return cls(cert_file=cert_file, key_file=key_file, client_ca_file=client_ca_file, cert=files.cert,
                   key=files.key, client_ca=files.ca if client_ca_file is not None else None)

    @property
    def mutual(self) -> bool:
        return self.client_ca is not None

    def uvicorn_options(self) -> dict[str, Any]:
        """Keyword arguments of ``uvicorn.Config`` for HTTPS (and client certificates)."""
        options: dict[str, Any] = {"ssl_certfile": str(self.cert_file), "ssl_keyfile": str(self.key_file)}
        if self.client_ca_file is not None:
            options.update(ssl_ca_certs=str(self.client_ca_file), ssl_cert_reqs=ssl.CERT_REQUIRED)
        return options

    def grpc_credentials(self) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials(
            [(self.key, self.cert)], root_certificates=self.client_ca, require_client_auth=self.mutual
        )
