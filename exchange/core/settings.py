"""Layered configuration: defaults → TOML file → ``TRUSTWIRE_*`` environment → flags.

Pure: callers read the file and pass the environment. Unknown keys are errors, and
fields without a default (secrets, trust anchors) must come from some layer.
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

from exchange.core.errors import ConfigError

__all__ = ["load_settings", "parse_toml", "refuse_unknown_keys"]


def parse_toml(text: str, source: str) -> dict[str, Any]:
    """TOML text as a table, or ConfigError naming ``source``."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source} is not valid TOML: {exc}") from exc


def refuse_unknown_keys(table: Mapping[str, Any], known: Iterable[str], where: str) -> None:
    """ConfigError listing every key of ``table`` not in ``known`` (unknown keys are errors)."""
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")

T = TypeVar("T")


def _coerce(name: str, tp: Any, value: Any) -> Any:
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if value is None or value == "":
            return None
        return _coerce(name, args[0], value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            return value.lower() in ("1", "true", "yes", "on")
        raise ConfigError(f"setting {name} must be true or false")
    if tp is int:
        if isinstance(value, bool | float):
            raise ConfigError(f"setting {name} must be an integer")
        try:
            return int(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"setting {name} must be an integer") from exc
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"setting {name} must be a number")
        try:
            return float(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"setting {name} must be a number") from exc
    if tp is Path:
        if not isinstance(value, str | Path):
            raise ConfigError(f"setting {name} must be a path")
        return Path(value)
    if origin is tuple:
        items = value.split(",") if isinstance(value, str) else list(value)
        return tuple(str(i).strip() for i in items if str(i).strip())
    if tp is str:
        if not isinstance(value, str | int) or isinstance(value, bool):
            raise ConfigError(f"setting {name} must be a string")
        return str(value)
    return value


def load_settings(
    cls: type[T],
    *,
    file: Path | None = None,
    env: Mapping[str, str] | None = None,
    env_prefix: str = "TRUSTWIRE_",
    overrides: Mapping[str, Any] | None = None,
    section: str | None = None,
) -> T:
    """Build ``cls`` (a dataclass) from the layers; later layers win."""
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    values: dict[str, Any] = {}
    if file is not None:
        try:
            data = tomllib.loads(Path(file).read_text())
        except FileNotFoundError as exc:
            raise ConfigError(f"config file {file} does not exist") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {file} is not valid TOML: {exc}") from exc
        if section is not None:
            data = data.get(section, {})
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise ConfigError(f"unknown setting(s) in {file}: {', '.join(unknown)}")
        values.update(data)
    for name in fields:
        key = env_prefix + name.upper()
        if env is not None and key in env:
            values[name] = env[key]
    for name, value in (overrides or {}).items():
        if name not in fields:
            raise ConfigError(f"unknown setting {name}")
        if value is not None:
            values[name] = value
    missing = [
        n
        for n, f in fields.items()
        if n not in values and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(
            "missing setting(s): " + ", ".join(missing) + f" (config file, {env_prefix}<NAME> or a flag)"
        )
    coerced = {n: _coerce(n, hints[n], v) for n, v in values.items()}
    return cls(**coerced)
