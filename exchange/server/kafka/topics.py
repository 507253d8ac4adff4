"""The engine's topics, created if missing, and checked before use.

    <prefix>.ledger       1 partition; retention.ms = retention.bytes = -1,
                          cleanup.policy = delete: the ledger is never deleted;
                          replication factor >= 3 and min.insync.replicas >= 2
                          (refused otherwise, unless allow_unreplicated)
    <prefix>.submissions  1 partition (one owner at a time: the sequencer)
    <prefix>.results      1 partition
    group <prefix>.sequencer

Topics are always created explicitly: auto-created topics get the broker's default
partition count and retention, both wrong here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicCollection
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._config import ConfigResource
from confluent_kafka.cimpl import NewTopic

from exchange.core.errors import ConfigError, Unavailable
from exchange.server.kafka.settings import MIN_INSYNC, MIN_REPLICATION, KafkaSettings

__all__ = ["Topics", "LEDGER_CONFIG", "ensure_topics", "ledger_topic_id"]

log = logging.getLogger(__name__)

LEDGER_CONFIG = {"retention.ms": "-1", "retention.bytes": "-1", "cleanup.policy": "delete"}
SUBMISSIONS_CONFIG = {"retention.ms": str(7 * 24 * 3600 * 1000), "cleanup.policy": "delete"}
RESULTS_CONFIG = {"retention.ms": str(24 * 3600 * 1000), "cleanup.policy": "delete"}


@dataclass(frozen=True, slots=True)
class Topics:
    ledger: str
    submissions: str
    results: str
    sequencer_group: str

    @classmethod
    def for_prefix(cls, prefix: str) -> Topics:
        return cls(f"{prefix}.ledger", f"{prefix}.submissions", f"{prefix}.results", f"{prefix}.sequencer")

    def configs(self) -> dict[str, dict[str, str]]:
        return {self.ledger: LEDGER_CONFIG, self.submissions: SUBMISSIONS_CONFIG, self.results: RESULTS_CONFIG}


def ensure_topics(admin: AdminClient, topics: Topics, settings: KafkaSettings) -> None:
    """Create missing topics; refuse topics with more than one partition, and a ledger
    topic that retention or compaction could delete or one broker's loss could lose."""
    timeout_s = settings.ready_timeout_s
    try:
        cluster = admin.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        raise Unavailable(f"cannot reach the Kafka cluster: {exc.args[0]}") from exc
    existing = cluster.topics
    factor, insync = settings.replication_factor, MIN_INSYNC
    if settings.allow_unreplicated:  # a single-broker cluster cannot hold 3 replicas
        factor = min(factor, len(cluster.brokers)) if factor > 0 else factor
        insync = min(insync, factor) if factor > 0 else 1
    configs = {**topics.configs(), topics.ledger: {**LEDGER_CONFIG, "min.insync.replicas": str(insync)}}
    missing = [
        NewTopic(name, num_partitions=1, replication_factor=factor, config=config)
        for name, config in configs.items()
        if name not in existing
    ]
    if missing:
        for name, future in admin.create_topics(missing, request_timeout=timeout_s).items():
            try:
                future.result(timeout_s)
                log.info("created topic %s", name)
            except KafkaException as exc:
                err: KafkaError = exc.args[0]
                if err.code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise Unavailable(f"cannot create topic {name}: {err.str()}") from exc
        existing = admin.list_topics(timeout=timeout_s).topics
    for name in topics.configs():
        meta = existing.get(name)
        if meta is None or meta.error is not None:
            raise Unavailable(f"topic {name} is not available: {meta.error if meta else 'missing'}")
        if len(meta.partitions) != 1:
            raise ConfigError(f"topic {name} has {len(meta.partitions)} partitions; the Kafka engine needs exactly 1")
    values = _ledger_config(admin, topics.ledger, timeout_s)
    _check_ledger_retention(topics.ledger, values)
    # distinct brokers: a single-broker test broker (tansu) lists one broker three times
    replicas = len(set(next(iter(existing[topics.ledger].partitions.values())).replicas))
    _check_ledger_replication(topics.ledger, replicas, values, settings.allow_unreplicated)


def ledger_topic_id(admin: AdminClient, topic: str, timeout_s: float) -> str | None:
    """The topic's id (Kafka >= 2.8), None when the cluster does not report one.

    Raises KafkaException with UNKNOWN_TOPIC_OR_PART when the topic does not exist."""
    future = admin.describe_topics(TopicCollection([topic]), request_timeout=timeout_s)[topic]
    topic_id = future.result(timeout_s).topic_id
    text = str(topic_id) if topic_id is not None else ""
    return text if text.strip("A=0-") else None


def _ledger_config(admin: AdminClient, topic: str, timeout_s: float) -> dict[str, str | None]:
    try:
        future = admin.describe_configs([ConfigResource("topic", topic)], request_timeout=timeout_s)
        entries: dict[str, Any] = next(iter(future.values())).result(timeout_s)
    except KafkaException as exc:
        raise Unavailable(f"cannot read the configuration of topic {topic}: {exc.args[0]}") from exc
    return {name: entry.value for name, entry in entries.items()}


def _check_ledger_replication(topic: str, replicas: int, values: dict[str, str | None], allowed: bool) -> None:
    """Replication factor >= 3 and min.insync.replicas >= 2, or the explicit opt-out."""
    problems = []
    if replicas < MIN_REPLICATION:
        problems.append(f"replication factor {replicas} (needs >= {MIN_REPLICATION})")
    insync = values.get("min.insync.replicas")
    if insync is None or not insync.isdigit() or int(insync) < MIN_INSYNC:
        problems.append(f"min.insync.replicas={insync or 'unknown'} (needs >= {MIN_INSYNC})")
    if not problems:
        return
    if allowed:
        log.warning("ledger topic %s is not replicated safely (%s); allowed by kafka_allow_unreplicated",
                    topic, "; ".join(problems))
        return
    raise ConfigError(
        f"ledger topic {topic} could lose acknowledged entries with one broker: {'; '.join(problems)}. "
        "Fix the topic, or set kafka_allow_unreplicated = true for a single-broker test cluster"
    )


def _check_ledger_retention(topic: str, values: dict[str, str | None]) -> None:
    problems = []
    if values.get("retention.ms") not in (None, "-1"):
        problems.append(f"retention.ms={values['retention.ms']}")
    if values.get("retention.bytes") not in (None, "-1"):
        problems.append(f"retention.bytes={values['retention.bytes']}")
    if "compact" in (values.get("cleanup.policy") or ""):
        problems.append(f"cleanup.policy={values['cleanup.policy']}")
    if problems:
        raise ConfigError(
            f"topic {topic} could lose ledger entries ({', '.join(problems)}); "
            "set retention.ms=-1, retention.bytes=-1, cleanup.policy=delete"
        )
