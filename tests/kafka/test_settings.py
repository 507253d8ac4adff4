"""Kafka settings through every layer (TOML, TRUSTWIRE_* environment, flags); no broker."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from exchange.core.errors import ConfigError
from exchange.core.settings import load_settings
from exchange.server import cli
from exchange.server.config import ServerConfig
from exchange.server.kafka import KAFKA_LOG_NAME, read_properties, settings_from_config

REQUIRED = {"operator_public_key": "00" * 32, "log_key_file": "log.key"}


def test_environment_and_file_layers(tmp_path: Path) -> None:
    toml = tmp_path / "exchange.toml"
    toml.write_text('engine = "kafka"\nkafka_topic_prefix = "coalition-a"\npublish_deadline_s = 4.5\n')
    config = load_settings(
        ServerConfig, file=toml, overrides=REQUIRED,
        env={"TRUSTWIRE_KAFKA_BOOTSTRAP": "k1:9092,k2:9092", "TRUSTWIRE_KAFKA_GROUP_SESSION_MS": "9000",
             "TRUSTWIRE_LEDGER_PATH": str(tmp_path / "r1")},
    )
    s = settings_from_config(config)
    assert (s.bootstrap, s.topic_prefix, s.group_session_ms, s.publish_deadline_s) == (
        "k1:9092,k2:9092", "coalition-a", 9000, 4.5)
    assert s.view_path == tmp_path / "r1.kafka-view"
    assert s.group_config("g")["session.timeout.ms"] == 9000
    assert s.producer_config("x", 1000)["acks"] == "all"
    assert s.producer_config("x", 1000)["enable.idempotence"] is True
    assert s.tail_config("t")["logger"].name == KAFKA_LOG_NAME


def test_serve_flags(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    cli.add_parser(parser.add_subparsers())
    args = parser.parse_args(["serve", "--engine", "kafka", "--bootstrap", "127.0.0.1:9092",
                              "--kafka-topic-prefix", "tf", "--kafka-view-path", str(tmp_path / "v.db")])
    config = cli.config_from_args(args, {"TRUSTWIRE_OPERATOR_PUBLIC_KEY": "00" * 32, "TRUSTWIRE_LOG_KEY_FILE": "k"})
    s = settings_from_config(config)
    assert (config.engine, s.bootstrap, s.topic_prefix, s.view_path) == ("kafka", "127.0.0.1:9092", "tf", tmp_path / "v.db")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({}, "kafka_bootstrap is required"),
        ({"kafka_bootstrap": "h:1", "kafka_topic_prefix": "has space"}, "kafka_topic_prefix"),
        ({"kafka_bootstrap": "h:1", "kafka_group_session_ms": 10}, "kafka_group_session_ms"),
        ({"kafka_bootstrap": "h:1", "kafka_group_session_ms": 5999}, r"at least 6000 \(Kafka's minimum"),
        ({"kafka_bootstrap": "h:1", "kafka_replication_factor": 0}, "kafka_replication_factor"),
        ({"kafka_bootstrap": "h:1", "publish_deadline_s": 0}, "publish_deadline_s"),
    ],
)
def test_bad_settings_are_refused(overrides: dict[str, object], message: str) -> None:
    config = load_settings(ServerConfig, overrides={**REQUIRED, "engine": "kafka", **overrides})
    with pytest.raises(ConfigError, match=message):
        settings_from_config(config)


def test_client_properties_file(tmp_path: Path) -> None:
    props = tmp_path / "kafka.properties"
    props.write_text("# managed cluster\nsecurity.protocol=SASL_SSL\nsasl.mechanisms = PLAIN\n\nsasl.username=tw\n")
    assert read_properties(props) == {"security.protocol": "SASL_SSL", "sasl.mechanisms": "PLAIN", "sasl.username": "tw"}
    props.write_text("acks=1\n")
    with pytest.raises(ConfigError, match="acks is set by trustwire"):
        read_properties(props)
    props.write_text("no equals sign\n")
    with pytest.raises(ConfigError, match="expected key=value"):
        read_properties(props)


def test_safe_defaults_for_every_client(tmp_path: Path) -> None:
    """No client may create a topic; tailers never jump over a lost position; fetches
    wait ~100 ms; a ledger topic must be replicated unless the opt-out says otherwise."""
    config = load_settings(ServerConfig, overrides={**REQUIRED, "engine": "kafka", "kafka_bootstrap": "h:1"})
    s = settings_from_config(config)
    assert (s.group_session_ms, s.fetch_wait_ms, s.replication_factor, s.allow_unreplicated) == (6000, 100, 3, False)
    clients = [s.producer_config("p", 1000), s.tail_config("t"), s.group_config("g")]
    assert all(c["allow.auto.create.topics"] is False for c in clients)
    assert s.tail_config("t")["auto.offset.reset"] == "error"
    assert all(c["fetch.wait.max.ms"] == 100 for c in clients[1:])
    opted = load_settings(ServerConfig, overrides={**REQUIRED, "engine": "kafka", "kafka_bootstrap": "h:1"},
                          env={"TRUSTWIRE_KAFKA_ALLOW_UNREPLICATED": "true"})
    assert settings_from_config(opted).allow_unreplicated is True
