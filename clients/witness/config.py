"""The witness's TOML configuration and its signing key file."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

import nacl.signing

from exchange.core.errors import ConfigError
from exchange.core.keyfiles import read_seed_file
from exchange.core.note import NoteError, NoteVerifier, validate_key_name
from exchange.core.settings import parse_toml, refuse_unknown_keys


def read_signing_key(path: Path) -> nacl.signing.SigningKey:
    """Read a hex Ed25519 seed (32 bytes) from ``path``."""
    return read_seed_file(path).signing_key


_CONFIG_KEYS: Final = frozenset({"name", "key_file", "state", "listen", "prefix", "logs"})


@dataclass(frozen=True, slots=True, kw_only=True)
class WitnessConfig:
    """Settings of a witness, e.g. from TOML::

        name = "witness.example/w1"
        key_file = "witness.key"        # hex Ed25519 seed
        state = "witness.db"
        listen = "127.0.0.1:7380"
        prefix = ""                     # submission prefix path

        [logs]
        "trustwire.example/log" = ["trustwire.example/log+1a2b3c4d+AQ..."]
    """

    name: str
    key_file: Path
    state: Path = Path("trustwire-witness.db")
    listen: str = "127.0.0.1:7380"
    prefix: str = ""
    logs: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Trusted origin → the log's verifier keys (vkeys of type 0x01)."""

    def __post_init__(self) -> None:
        try:
            validate_key_name(self.name)
        except NoteError as exc:
            raise ConfigError(f"witness name: {exc}") from exc
        split_listen(self.listen)
        check_prefix(self.prefix)
        for origin in self.logs:
            self.log_verifiers(origin)

    def log_verifiers(self, origin: str) -> tuple[NoteVerifier, ...]:
        """The parsed verifier keys of one configured log."""
        vkeys = self.logs[origin]
        if not vkeys:
            raise ConfigError(f"log {origin!r} has no verifier keys")
        try:
            return tuple(NoteVerifier.from_string(vkey) for vkey in vkeys)
        except NoteError as exc:
            raise ConfigError(f"log {origin!r}: {exc}") from exc

    @classmethod
    def from_toml(cls, text: str, source: str = "witness config") -> WitnessConfig:
        """Parse TOML text; unknown keys are errors, name and key_file are required."""
        data = parse_toml(text, source)
        refuse_unknown_keys(data, _CONFIG_KEYS, source)
        missing = sorted({"name", "key_file"} - set(data))
        if missing:
            raise ConfigError(f"{source}: missing key(s) {', '.join(missing)}")
        values: dict[str, Any] = {k: _string(data, k, source) for k in data if k != "logs"}
        for key in ("key_file", "state"):
            if key in values:
                values[key] = Path(values[key])
        return cls(**values, logs=_logs_table(data.get("logs", {}), source))

    @classmethod
    def load(cls, path: Path) -> WitnessConfig:
        """Read and parse a TOML file."""
        try:
            return cls.from_toml(Path(path).read_text(), str(path))
        except FileNotFoundError as exc:
            raise ConfigError(f"witness config {path} does not exist") from exc


def _string(data: Mapping[str, Any], key: str, source: str) -> str:
    value = data[key]
    if not isinstance(value, str):
        raise ConfigError(f"{source}: {key} must be a string")
    return value


def _logs_table(table: Any, source: str) -> Mapping[str, tuple[str, ...]]:
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: logs must be a table of origin = [vkeys]")
    logs: dict[str, tuple[str, ...]] = {}
    for origin, vkeys in table.items():
        if not isinstance(vkeys, list) or not all(isinstance(v, str) for v in vkeys):
            raise ConfigError(f"{source}: logs.{origin} must be a list of verifier key strings")
        logs[origin] = tuple(vkeys)
    return MappingProxyType(logs)


def split_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ConfigError(f"listen address {listen!r} must be host:port")
    return host.strip("[]"), int(port)


def check_prefix(prefix: str) -> str:
    if prefix and (not prefix.startswith("/") or prefix.endswith("/")):
        raise ConfigError(f"prefix {prefix!r} must start with '/' and not end with '/'")
    return prefix
