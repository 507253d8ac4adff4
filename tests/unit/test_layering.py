"""Imports point one way: generated → exchange.core → exchange.server / clients."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def _modules(package: str) -> list[Path]:
    return sorted(p for p in (REPO / package).rglob("*.py") if "pb" not in p.relative_to(REPO).parts)


@pytest.mark.parametrize("path", _modules("exchange/core"), ids=lambda p: p.name)
def test_core_imports_neither_server_nor_clients(path: Path) -> None:
    bad = {m for m in _imports(path) if m.startswith(("exchange.server", "clients"))}
    assert not bad, f"{path.name} imports {sorted(bad)}"


@pytest.mark.parametrize(
    "path", [p for p in _modules("clients") if "cli" not in p.parts], ids=lambda p: p.name
)
def test_sdk_never_imports_the_server(path: Path) -> None:
    bad = {m for m in _imports(path) if m.startswith("exchange.server")}
    assert not bad, f"{path.name} imports {sorted(bad)}"


@pytest.mark.parametrize("path", _modules("exchange/server"), ids=lambda p: p.name)
def test_server_never_imports_clients(path: Path) -> None:
    bad = {m for m in _imports(path) if m.startswith("clients")}
    assert not bad, f"{path.name} imports {sorted(bad)}"


def test_core_does_no_io() -> None:
    """The protocol core never opens files, sockets or databases."""
    forbidden = {"socket", "sqlite3", "grpc", "subprocess", "confluent_kafka", "requests", "urllib.request"}
    for path in _modules("exchange/core"):
        if path.name == "settings.py":  # reads TOML text handed to it; see its docstring
            continue
        bad = _imports(path) & forbidden
        assert not bad, f"{path.name} imports {sorted(bad)}"
