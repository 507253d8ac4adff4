"""Member settings for the ``trustwire member`` CLI (layered like the exchange's)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["MemberConfig"]


@dataclass(frozen=True, slots=True, kw_only=True)
class MemberConfig:
    member_id: str
    key_file: Path
    """File holding the member's Ed25519 seed in hex (mode 0600)."""
    operator_public_key: str
    """Hex Ed25519 public key of the operator: the trust anchor for key events."""
    log_key: str
    """The log's verifier key (signed-note vkey): the trust anchor for checkpoints."""
    exchange: str = "127.0.0.1:7443"
    """host:port of the exchange; plaintext unless tls_ca_file is set (loopback/dev only)."""
    state: Path = Path("trustwire-member.db")
    policy: Path | None = None
    account_secret_file: Path | None = None
    witnesses: tuple[str, ...] = ()
    """Witness verifier keys (tlog-cosignature vkeys) whose cosignatures count."""
    witness_quorum: int = 0
    tls_ca_file: Path | None = None
    """PEM CA certificate that issued the exchange's certificate; enables TLS."""
    tls_cert_file: Path | None = None
    """PEM client certificate naming member_id (CN or DNS SAN), for mutual TLS."""
    tls_key_file: Path | None = None
    """PEM private key of tls_cert_file (keep it 0600)."""
