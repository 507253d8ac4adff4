"""Stream engines behind one small registry.

An engine is a package that returns a :class:`~exchange.server.ledger.Ledger` for a
config; adding one means registering its opener here and running the ledger
contract suite (tests/ledger_contract.py) against it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from exchange.core.errors import ConfigError
from exchange.server.config import ServerConfig
from exchange.server.ledger import Ledger, SqliteLedger

__all__ = ["ENGINES", "EngineOpener", "open_ledger", "register"]

EngineOpener = Callable[[ServerConfig, Callable[[], int]], Ledger]


def _sqlite(config: ServerConfig, clock_ms: Callable[[], int]) -> Ledger:
    Path(config.ledger_path).parent.mkdir(parents=True, exist_ok=True)
    return SqliteLedger(config.ledger_path, clock_ms=clock_ms)


def _kafka(config: ServerConfig, clock_ms: Callable[[], int]) -> Ledger:
    try:
        from exchange.server.kafka import KafkaLedger, settings_from_config
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("confluent_kafka"):
            raise
        raise ConfigError("engine kafka needs the kafka extra: pip install 'trustwire[kafka]'") from exc
    return KafkaLedger(settings_from_config(config), clock_ms=clock_ms)


ENGINES: dict[str, EngineOpener] = {"sqlite": _sqlite, "kafka": _kafka}


def register(name: str, opener: EngineOpener) -> None:
    """Make ``engine = name`` open ledgers with ``opener``."""
    ENGINES[name] = opener


def open_ledger(config: ServerConfig, clock_ms: Callable[[], int]) -> Ledger:
    opener = ENGINES.get(config.engine)
    if opener is None:
        raise ConfigError(f"unknown engine {config.engine!r}; choose one of {', '.join(sorted(ENGINES))}")
    return opener(config, clock_ms)
