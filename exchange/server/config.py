"""Exchange settings (``trustwire serve``); see exchange.core.settings for layering."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["ServerConfig"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerConfig:
    operator_public_key: str
    """Hex Ed25519 public key of the operator: the trust anchor of the key directory."""
    log_key_file: Path
    """File holding the log key's hex Ed25519 seed; the log key signs checkpoints."""
    listen: str = "127.0.0.1:7443"
    """host:port. Without the tls_* settings the exchange speaks plaintext gRPC: for
    loopback and development only (see exchange.server.tls)."""
    engine: str = "sqlite"
    """Stream engine: "sqlite" (embedded, one file) or "kafka" (a Kafka cluster, many replicas)."""
    ledger_path: Path = Path("trustwire-ledger.db")
    """sqlite: the ledger file. kafka: where this replica's files go by default."""
    kafka_bootstrap: str = ""
    """kafka: the cluster's bootstrap servers, host:port[,host:port…]."""
    kafka_topic_prefix: str = "trustwire"
    """kafka: topics <prefix>.ledger/.submissions/.results and group <prefix>.sequencer."""
    kafka_view_path: Path | None = None
    """kafka: this replica's local view of the ledger (default: <ledger_path>.kafka-view)."""
    kafka_group_session_ms: int = 6000
    """kafka: session timeout of the sequencer group (at least 6000); failover takes about 1.5 times this."""
    kafka_fetch_wait_ms: int = 100
    """kafka: fetch.wait.max.ms of the consumers (a waiting fetch returns as soon as data arrives)."""
    kafka_replication_factor: int = 3
    """kafka: replication factor of topics the exchange creates."""
    kafka_allow_unreplicated: bool = False
    """kafka: accept a ledger topic with < 3 replicas or min.insync.replicas < 2 (single-broker test setups only)."""
    kafka_client_properties: Path | None = None
    """kafka: a .properties file of extra librdkafka settings (security.protocol, sasl.*, ssl.*)."""
    publish_deadline_s: float = 10.0
    """kafka: a publish the sequencer has not confirmed within this fails with UNAVAILABLE."""
    name: str = "trustwire.invalid/exchange"
    """The log's origin line in checkpoints, and its key name: name the exchange."""
    audit_dir: Path | None = None
    """Tree and checkpoint store (default: <ledger_path>.audit)."""
    witnesses: tuple[str, ...] = ()
    """Witnesses asked to cosign each checkpoint, each "<url> <cosignature vkey>"."""
    checkpoint_interval_ms: int = 1000
    """The log signs a grown tree at most this often; followers receive an entry once a
    signed checkpoint covers it, so this is the delivery latency floor. Lower it for
    lower latency at the cost of a longer checkpoint history (one row per signature)."""
    max_batch: int = 1000
    """Envelopes per Publish call, per member (overridable per member)."""
    publish_rate: float = 2000.0
    """Entries per second each member may publish (token bucket refill)."""
    publish_burst: int = 20000
    quota_overrides: tuple[str, ...] = ()
    """Per-member quotas, each "member:rate:burst:max_batch"."""
    max_message_bytes: int = 32 * 1024 * 1024
    call_window_s: int = 120
    verify_workers: int = 0
    """Verification worker processes (phase 1 of admission for batches of 64 or more;
    smaller ones are checked inline); 0 = one per core."""
    rpc_workers: int = 16
    """Threads for blocking work (SQLite, signature checks); calls and streams hold none."""
    streams_per_principal: int = 64
    """Open Subscribe streams per principal; more fail RESOURCE_EXHAUSTED."""
    streams_per_connection: int = 128
    """Open Subscribe streams per client connection."""
    unauthenticated_streams: int = 64
    """Open health Watch and reflection streams, overall."""
    unauthenticated_streams_per_connection: int = 8
    """Open health Watch and reflection streams per connection."""
    replay_path: Path | None = None
    """SQLite file of accepted call nonces (default <audit_dir>/calls.db). Replicas of one
    exchange must share it, so a call captured on one is refused by every other one."""
    subscribe_rate: float = 5.0
    """Subscribe starts per second per principal (token bucket refill)."""
    subscribe_burst: int = 100
    proof_rate: float = 200.0
    """Inclusion and consistency proofs per second per principal."""
    proof_burst: int = 2000
    all_entries_rate: float = 20.0
    """GetAllEntries pages per second per principal."""
    all_entries_burst: int = 200
    subscribe_heartbeat_s: float = 5.0
    """An idle follow-mode Subscribe stream gets an empty page (with the latest checkpoint) this often."""
    witness_deadline_s: float = 10.0
    """Total time one cosignature request to a witness may take (not per socket read)."""
    metrics_listen: str = "127.0.0.1:9464"
    """host:port of the Prometheus endpoint (/metrics, plaintext HTTP); port 0 picks a free
    port; "off" disables it. If the default address is taken the exchange runs without
    metrics and logs a warning; any other address that cannot be bound is an error."""
    tls_cert_file: Path | None = None
    """PEM server certificate (chain); with tls_key_file, enables TLS."""
    tls_key_file: Path | None = None
    """PEM private key of tls_cert_file (unencrypted; keep it 0600)."""
    tls_client_ca_file: Path | None = None
    """PEM CA certificate(s); enables mutual TLS: every connection must present a client
    certificate from this CA, and each call's principal must be the certificate's CN or
    a DNS SAN. Needs tls_cert_file and tls_key_file."""
