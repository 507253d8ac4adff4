"""Settings of the Kafka engine and the librdkafka configurations derived from them.

Every client routes librdkafka's own log lines into Python :mod:`logging` (logger
``trustwire.kafka``) and reports client errors there too; nothing is printed.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exchange.core.errors import ConfigError
from exchange.server.config import ServerConfig
from exchange.server.kafka.throttle import Throttled

__all__ = [
    "KafkaSettings", "KAFKA_LOG", "KAFKA_LOG_NAME", "MIN_INSYNC", "MIN_REPLICATION", "MIN_SESSION_MS", "drain",
    "read_properties", "settings_from_config",
]

KAFKA_LOG_NAME = "trustwire.kafka"
KAFKA_LOG = logging.getLogger(KAFKA_LOG_NAME)
"""librdkafka's log lines and client errors land here."""

MIN_SESSION_MS = 6000
"""Apache Kafka's default group.min.session.timeout.ms: a shorter session is refused by
the broker, and on a loaded host it loses the sequencer role for nothing."""
MIN_REPLICATION = 3
MIN_INSYNC = 2
"""The ledger topic must survive one broker's loss with acks=all still succeeding."""

_PREFIX = re.compile(r"^[A-Za-z0-9._-]{1,200}$")
_RESERVED = frozenset({"bootstrap.servers", "group.id", "enable.idempotence", "acks", "logger", "error_cb"})


def _default_replica_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


_client_errors = Throttled(KAFKA_LOG, 30.0)


def _log_client_error(err: Any) -> None:
    # transport errors repeat while a broker is away (expected during failover): throttled
    _client_errors.log(logging.WARNING, "kafka client error: %s", err)


def read_properties(path: Path) -> dict[str, str]:
    """A Java-style ``.properties`` file (``key=value`` lines, ``#`` comments) of extra
    librdkafka settings, e.g. ``security.protocol``, ``sasl.*``, ``ssl.*``."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"kafka_client_properties {path} is not readable: {exc.strerror}") from exc
    out: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith(("#", "!")):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{path}:{number}: expected key=value")
        if key.strip() in _RESERVED:
            raise ConfigError(f"{path}:{number}: {key.strip()} is set by trustwire and cannot be overridden")
        out[key.strip()] = value.strip()
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class KafkaSettings:
    bootstrap: str
    """Comma-separated host:port list of the cluster's brokers."""
    view_path: Path
    """This replica's local materialized view of the ledger (a SQLite file)."""
    topic_prefix: str = "trustwire"
    group_session_ms: int = MIN_SESSION_MS
    """Session timeout of the sequencer group (at least 6 s): a dead sequencer is
    replaced after about 1.5 times this."""
    fetch_wait_ms: int = 100
    """fetch.wait.max.ms of the consumers: how long a fetch waits when there is no data
    (a waiting fetch returns as soon as data arrives; shorter only adds idle fetches)."""
    publish_deadline_s: float = 10.0
    """A publish not confirmed by the sequencer within this fails with UNAVAILABLE."""
    replication_factor: int = MIN_REPLICATION
    """Replication factor of topics trustwire creates."""
    allow_unreplicated: bool = False
    """Accept a ledger topic with fewer than 3 replicas or min.insync.replicas < 2 (a
    single-broker test or demo cluster; an acknowledged entry then lives on one disk)."""
    client_properties: Mapping[str, str] = field(default_factory=dict)
    """Extra librdkafka settings for every client (security, TLS, SASL)."""
    replica_id: str = field(default_factory=_default_replica_id)
    ready_timeout_s: float = 30.0
    """How long start-up may wait for the cluster (topics, catching up)."""

    def __post_init__(self) -> None:
        if not self.bootstrap.strip():
            raise ConfigError("kafka_bootstrap is required with engine = kafka (host:port[,host:port…])")
        if not _PREFIX.match(self.topic_prefix):
            raise ConfigError("kafka_topic_prefix may hold only letters, digits, '.', '_' and '-' (1–200)")
        if self.group_session_ms < MIN_SESSION_MS:
            raise ConfigError(
                f"kafka_group_session_ms must be at least {MIN_SESSION_MS} (Kafka's minimum group session), "
                f"got {self.group_session_ms}"
            )
        if self.replication_factor < 1 and self.replication_factor != -1:
            raise ConfigError("kafka_replication_factor must be positive (or -1: the cluster's default)")
        if not 0 <= self.fetch_wait_ms <= 5000:
            raise ConfigError("kafka_fetch_wait_ms must be between 0 and 5000")
        if self.publish_deadline_s <= 0:
            raise ConfigError("publish_deadline_s must be positive")

    @property
    def publish_deadline_ms(self) -> int:
        return max(1, int(self.publish_deadline_s * 1000))

    def _common(self, role: str) -> dict[str, Any]:
        return {
            **self.client_properties,
            "bootstrap.servers": self.bootstrap,
            "client.id": f"trustwire-{role}-{self.replica_id}",
            "logger": KAFKA_LOG,
            "error_cb": _log_client_error,
        }

    def _client(self, role: str) -> dict[str, Any]:
        """Producers and consumers: topics are only ever created explicitly (topics.py)."""
        return {**self._common(role), "allow.auto.create.topics": False}

    def admin_config(self) -> dict[str, Any]:
        return self._common("admin")

    def producer_config(self, role: str, message_timeout_ms: int, errors_only: bool = False) -> dict[str, Any]:
        """Idempotent, acks=all: an acknowledged message is durable, in order, once.
        ``errors_only``: delivery callbacks only for failures (a flush that returns 0
        with no callback means every message was acknowledged)."""
        return {
            **self._client(role),
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 1,
            "message.timeout.ms": max(1000, message_timeout_ms),
            "message.max.bytes": 16 * 1024 * 1024,
            **({"delivery.report.only.error": True} if errors_only else {}),
        }

    def tail_config(self, role: str) -> dict[str, Any]:
        """A consumer that follows one partition with assign(): no group membership,
        no commits (the position is stored by the caller). A position the topic no
        longer has is an error, never a silent jump (auto.offset.reset=error)."""
        return {
            **self._client(role),
            "auto.offset.reset": "error",
            "group.id": f"{self.topic_prefix}.{role}.{self.replica_id}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            "fetch.wait.max.ms": self.fetch_wait_ms,
            "fetch.error.backoff.ms": 50,
            "isolation.level": "read_uncommitted",
            "fetch.message.max.bytes": 16 * 1024 * 1024,
        }

    def group_config(self, group: str) -> dict[str, Any]:
        """The sequencer election: one owner of the submissions partition."""
        return {
            **self._client("sequencer"),
            "group.id": group,
            "session.timeout.ms": self.group_session_ms,
            "heartbeat.interval.ms": max(100, self.group_session_ms // 6),
            "partition.assignment.strategy": "cooperative-sticky",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": self.fetch_wait_ms,
            "fetch.error.backoff.ms": 50,
            "fetch.message.max.bytes": 16 * 1024 * 1024,
        }


def settings_from_config(config: ServerConfig) -> KafkaSettings:
    """The Kafka engine's settings from ``trustwire serve``'s."""
    return KafkaSettings(
        bootstrap=config.kafka_bootstrap,
        topic_prefix=config.kafka_topic_prefix,
        view_path=config.kafka_view_path or Path(str(config.ledger_path) + ".kafka-view"),
        group_session_ms=config.kafka_group_session_ms,
        fetch_wait_ms=config.kafka_fetch_wait_ms,
        publish_deadline_s=config.publish_deadline_s,
        replication_factor=config.kafka_replication_factor,
        allow_unreplicated=config.kafka_allow_unreplicated,
        client_properties=read_properties(config.kafka_client_properties) if config.kafka_client_properties else {},
    )


def drain(consumer: Any, max_messages: int, timeout: float) -> list[Any]:
    """Wait up to ``timeout`` for one message, then take whatever else is already
    fetched (``consume(n, timeout)`` alone would wait for all n or the timeout)."""
    first = consumer.poll(timeout)
    if first is None:
        return []
    return [first, *consumer.consume(num_messages=max_messages - 1, timeout=0)] if max_messages > 1 else [first]
