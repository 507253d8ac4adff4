"""The engine's topics, created if missing, and checked before use.

    <prefix>.ledger       1 partition; retention.ms = retention.bytes = -1,
                          cleanup.policy = delete: the ledger is never deleted
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

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._config import ConfigResource
from confluent_kafka.cimpl import NewTopic

from exchange.core.errors import ConfigError, Unavailable

__all__ = ["Topics", "LEDGER_CONFIG", "ensure_topics"]

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


def ensure_topics(admin: AdminClient, topics: Topics, replication_factor: int, timeout_s: float) -> None:
    """Create missing topics; refuse topics with more than one partition, and a ledger
    topic that retention or compaction could delete."""
    try:
        existing = admin.list_topics(timeout=timeout_s).topics
    except KafkaException as exc:
        raise Unavailable(f"cannot reach the Kafka cluster: {exc.args[0]}") from exc
    missing = [
        NewTopic(name, num_partitions=1, replication_factor=replication_factor, config=config)
        for name, config in topics.configs().items()
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
    _check_ledger_retention(admin, topics.ledger, timeout_s)


def _check_ledger_retention(admin: AdminClient, topic: str, timeout_s: float) -> None:
    try:
        future = admin.describe_configs([ConfigResource("topic", topic)], request_timeout=timeout_s)
        entries: dict[str, Any] = next(iter(future.values())).result(timeout_s)
    except KafkaException as exc:
        log.warning("cannot read the configuration of %s (%s); make sure retention cannot delete it", topic, exc)
        return
    values = {name: entry.value for name, entry in entries.items()}
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
