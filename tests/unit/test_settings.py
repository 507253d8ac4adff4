"""Layered settings (exchange.core.settings): defaults < TOML file < TRUSTWIRE_* env < overrides."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import pytest

from exchange.core.errors import ConfigError
from exchange.core.settings import load_settings


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    secret: str
    port: int = 7443
    ratio: float = 0.5
    debug: bool = False
    path: Path = Path("default.db")
    maybe: Path | None = None
    tags: tuple[str, ...] = ()
    name: str = "default"


REQUIRED = {"secret": "s3cret"}


def toml_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "settings.toml"
    path.write_text(text)
    return path


# -- layering ----------------------------------------------------------------------------


def test_defaults() -> None:
    s = load_settings(Settings, overrides=REQUIRED)
    assert s == Settings(secret="s3cret")


def test_layers_in_order(tmp_path: Path) -> None:
    file = toml_file(tmp_path, 'secret = "from-file"\nport = 1\nname = "file"\nratio = 0.1\n')
    env = {"TRUSTWIRE_PORT": "2", "TRUSTWIRE_NAME": "env"}
    overrides = {"port": 3}

    s = load_settings(Settings, file=file, env=env, overrides=overrides)
    assert (s.port, s.name, s.ratio, s.secret) == (3, "env", 0.1, "from-file")
    s = load_settings(Settings, file=file, env=env)
    assert (s.port, s.name) == (2, "env")
    s = load_settings(Settings, file=file)
    assert (s.port, s.name) == (1, "file")
    s = load_settings(Settings, env=env, overrides=REQUIRED)
    assert (s.port, s.name, s.ratio) == (2, "env", 0.5)


def test_override_none_means_not_given(tmp_path: Path) -> None:
    file = toml_file(tmp_path, 'secret = "x"\nport = 1\n')
    s = load_settings(Settings, file=file, env={"TRUSTWIRE_NAME": "env"}, overrides={"port": None, "name": None})
    assert (s.port, s.name) == (1, "env")


def test_other_environment_variables_are_ignored() -> None:
    env = {"PORT": "1", "trustwire_port": "2", "TRUSTWIRE_SECRET": "e", "HOME": "/root"}
    s = load_settings(Settings, env=env)
    assert (s.port, s.secret) == (7443, "e")


def test_custom_env_prefix() -> None:
    s = load_settings(Settings, env={"TW_PORT": "9", "TRUSTWIRE_PORT": "8", "TW_SECRET": "x"}, env_prefix="TW_")
    assert (s.port, s.secret) == (9, "x")


def test_section(tmp_path: Path) -> None:
    file = toml_file(tmp_path, 'port = 1\n[server]\nsecret = "x"\nport = 2\n[member]\nport = 3\n')
    s = load_settings(Settings, file=file, section="server")
    assert (s.secret, s.port) == ("x", 2)
    with pytest.raises(ConfigError):  # the section is missing: the secret is missing
        load_settings(Settings, file=file, section="auditor")


# -- coercion ----------------------------------------------------------------------------


def test_env_strings_are_coerced() -> None:
    env = {
        "TRUSTWIRE_SECRET": "x",
        "TRUSTWIRE_PORT": "8080",
        "TRUSTWIRE_RATIO": "0.25",
        "TRUSTWIRE_DEBUG": "yes",
        "TRUSTWIRE_PATH": "/var/lib/tw.db",
        "TRUSTWIRE_MAYBE": "policy.toml",
        "TRUSTWIRE_TAGS": " a, b,,c ",
    }
    s = load_settings(Settings, env=env)
    assert s == Settings(
        secret="x", port=8080, ratio=0.25, debug=True, path=Path("/var/lib/tw.db"), maybe=Path("policy.toml"),
        tags=("a", "b", "c"),
    )
    assert isinstance(s.port, int) and isinstance(s.path, Path)


@pytest.mark.parametrize(
    ("text", "value"),
    [("1", True), ("true", True), ("TRUE", True), ("yes", True), ("on", True),
     ("0", False), ("false", False), ("No", False), ("off", False)],
)
def test_bool_words(text: str, value: bool) -> None:
    assert load_settings(Settings, env={"TRUSTWIRE_DEBUG": text}, overrides=REQUIRED).debug is value


def test_empty_optional_is_none(tmp_path: Path) -> None:
    s = load_settings(Settings, env={"TRUSTWIRE_MAYBE": ""}, overrides=REQUIRED)
    assert s.maybe is None
    file = toml_file(tmp_path, 'secret = "x"\nmaybe = "p.toml"\n')
    assert load_settings(Settings, file=file).maybe == Path("p.toml")


def test_toml_types_are_kept(tmp_path: Path) -> None:
    file = toml_file(tmp_path, 'secret = "x"\nport = 9\nratio = 2\ndebug = true\ntags = ["a", "b"]\n')
    s = load_settings(Settings, file=file)
    assert (s.port, s.ratio, s.debug, s.tags) == (9, 2.0, True, ("a", "b"))


def test_overrides_are_coerced_too() -> None:
    s = load_settings(Settings, overrides={"secret": "x", "port": "10", "debug": "on", "path": "p.db"})
    assert (s.port, s.debug, s.path) == (10, True, Path("p.db"))


# -- errors ------------------------------------------------------------------------------


def test_unknown_key_in_file(tmp_path: Path) -> None:
    file = toml_file(tmp_path, 'secret = "x"\nprot = 1\n')
    with pytest.raises(ConfigError) as info:
        load_settings(Settings, file=file)
    assert "prot" in str(info.value)


def test_unknown_table_in_file(tmp_path: Path) -> None:
    file = toml_file(tmp_path, 'secret = "x"\n[server]\nport = 1\n')
    with pytest.raises(ConfigError):
        load_settings(Settings, file=file)


def test_unknown_override() -> None:
    with pytest.raises(ConfigError):
        load_settings(Settings, overrides={"secret": "x", "prot": 1})


def test_missing_required() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(Settings, env={"TRUSTWIRE_PORT": "1"})
    assert "secret" in str(info.value)
    assert "TRUSTWIRE_" in str(info.value)


@pytest.mark.parametrize(
    "source", ["file", "env", "override"],
)
def test_required_from_any_layer(tmp_path: Path, source: str) -> None:
    file = toml_file(tmp_path, 'secret = "f"\n') if source == "file" else None
    env = {"TRUSTWIRE_SECRET": "e"} if source == "env" else {}
    overrides = {"secret": "o"} if source == "override" else {}
    assert load_settings(Settings, file=file, env=env, overrides=overrides).secret == source[0]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        load_settings(Settings, file=tmp_path / "nope.toml", overrides=REQUIRED)


def test_invalid_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        load_settings(Settings, file=toml_file(tmp_path, "secret = \n"))


@pytest.mark.parametrize(
    ("layer", "key", "value"),
    [
        ("env", "port", "abc"),
        ("env", "port", "1.5"),
        ("env", "port", ""),
        ("env", "ratio", "fast"),
        ("env", "debug", "maybe"),
        ("env", "debug", "2"),
        ("file", "port", "true"),
        ("file", "port", "1.5"),
        ("file", "port", '"many"'),
        ("file", "port", "[1]"),
        ("file", "ratio", '"x"'),
        ("file", "ratio", "true"),
        ("file", "debug", "1"),
        ("file", "debug", '"perhaps"'),
        ("file", "path", "5"),
        ("file", "path", "true"),
        ("file", "maybe", "[1, 2]"),
        ("file", "name", "true"),
        ("file", "name", "[1]"),
        ("file", "name", "{ a = 1 }"),
    ],
)
def test_coercion_errors(tmp_path: Path, layer: str, key: str, value: str) -> None:
    if layer == "env":
        kwargs: dict[str, object] = {"env": {f"TRUSTWIRE_{key.upper()}": value}, "overrides": REQUIRED}
    else:
        kwargs = {"file": toml_file(tmp_path, f'secret = "x"\n{key} = {value}\n')}
    with pytest.raises(ConfigError):
        load_settings(Settings, **kwargs)  # type: ignore[arg-type]


# -- the real settings classes -----------------------------------------------------------


def test_member_config_requires_its_trust_anchor_and_identity() -> None:
    from clients.config import MemberConfig

    required = {f.name for f in dataclasses.fields(MemberConfig) if f.default is dataclasses.MISSING}
    assert {"member_id", "key_file", "operator_public_key"} <= required
    known = {"member_id": "alice", "key_file": "/keys/alice.key", "operator_public_key": "ab" * 32}
    env = {f"TRUSTWIRE_{name.upper()}": known.get(name, "x") for name in required}
    config = load_settings(MemberConfig, env=env)
    assert (config.member_id, config.key_file, config.operator_public_key) == ("alice", Path("/keys/alice.key"), "ab" * 32)
    for name in known:
        partial = {k: v for k, v in env.items() if k != f"TRUSTWIRE_{name.upper()}"}
        with pytest.raises(ConfigError) as info:
            load_settings(MemberConfig, env=partial)
        assert name in str(info.value)


def test_server_config_requires_the_operator_key() -> None:
    from exchange.server.config import ServerConfig

    with pytest.raises(ConfigError) as info:
        load_settings(ServerConfig, env={})
    assert "operator_public_key" in str(info.value)
