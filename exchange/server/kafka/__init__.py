"""The Kafka engine: the ledger on a Kafka cluster, for many exchange replicas.

    settings.py   KafkaSettings and the librdkafka configurations (logs → "trustwire.kafka")
    topics.py     the topics (ledger never deleted, replicated), created and checked
    throttle.py   repeating fault lines, throttled
    wire.py       the messages on them (proto/exchange/pb/trustwire/v1/kafka.proto)
    layout.py     the hot messages' byte layouts, built and split without protobuf objects
    rule.py       which ledger-topic messages are ledger entries (pure; every reader)
    view.py       a replica's local SQLite view of the ledger, and its tailer
    watch.py      the ledger topic's identity, watched (a lost topic stops the replica)
    produce.py    an idempotent producer that replaces itself once fenced
    sequencer.py  the one writer, elected by a consumer group, fenced by the rule
    results.py    the sequencer's answers, routed to waiting publishers
    ledger.py     KafkaLedger: the Ledger seam (reads: view; appends: sequencer)

Requires the ``kafka`` extra (confluent-kafka).
"""

from exchange.server.kafka.ledger import KafkaLedger
from exchange.server.kafka.settings import KAFKA_LOG_NAME, KafkaSettings, read_properties, settings_from_config

__all__ = ["KAFKA_LOG_NAME", "KafkaLedger", "KafkaSettings", "read_properties", "settings_from_config"]
