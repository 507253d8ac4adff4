"""`trustwire serve` says whether TLS is on."""

from __future__ import annotations

from pathlib import Path

from exchange.server.cli import transport_banner
from exchange.server.config import ServerConfig


def _config(**tls: Path) -> ServerConfig:
    return ServerConfig(operator_public_key="00" * 32, log_key_file=Path("log.key"), **tls)  # type: ignore[arg-type]


def test_banner_names_the_transport() -> None:
    assert transport_banner(_config()).startswith("plaintext, TLS off")
    tls = {"tls_cert_file": Path("s.pem"), "tls_key_file": Path("s.key")}
    assert transport_banner(_config(**tls)).startswith("TLS on")
    assert transport_banner(_config(**tls, tls_client_ca_file=Path("ca.pem"))).startswith("mutual TLS on")
