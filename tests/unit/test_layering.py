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


PROGRAM = "exchange.program"
"""The ``trustwire`` program: the top layer, wiring the exchange to the client commands."""


@pytest.mark.parametrize("path", _modules("exchange/core"), ids=lambda p: p.name)
def test_core_imports_neither_server_nor_clients(path: Path) -> None:
    bad = {m for m in _imports(path) if m.startswith(("exchange.server", "clients", PROGRAM))}
    assert not bad, f"{path.name} imports {sorted(bad)}"


@pytest.mark.parametrize("path", _modules("clients"), ids=lambda p: str(p.relative_to(REPO)))
def test_clients_never_import_the_server(path: Path) -> None:
    """No exemptions: ``serve`` and ``demo`` are wired in the ``trustwire`` program."""
    bad = {m for m in _imports(path) if m.startswith(("exchange.server", PROGRAM))}
    assert not bad, f"{path.name} imports {sorted(bad)}"


@pytest.mark.parametrize("path", _modules("exchange/server"), ids=lambda p: p.name)
def test_server_never_imports_clients(path: Path) -> None:
    bad = {m for m in _imports(path) if m.startswith(("clients", PROGRAM))}
    assert not bad, f"{path.name} imports {sorted(bad)}"


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _all_imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top or inside a function."""
    out = _imports(path)
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return out


def test_no_import_cycles() -> None:
    """No two modules of ours import each other, directly or through others (the
    package ``__init__`` re-exporting its own modules excepted)."""
    paths = [p for pkg in ("exchange", "clients") for p in _modules(pkg)]
    names = {_module_name(p) for p in paths}
    graph = {
        _module_name(p): {m for m in _all_imports(p) if m in names and not _module_name(p).startswith(m + ".")}
        - {_module_name(p)}
        for p in paths
    }
    for name in graph:  # drop edges from a package to its own sub-modules (re-exports)
        graph[name] = {m for m in graph[name] if not m.startswith(name + ".")}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name)
    assert cycles == []


def test_core_does_no_io() -> None:
    """The protocol core never opens files, sockets or databases."""
    forbidden = {"socket", "sqlite3", "grpc", "subprocess", "confluent_kafka", "requests", "urllib.request"}
    for path in _modules("exchange/core"):
        if path.name == "settings.py":  # reads TOML text handed to it; see its docstring
            continue
        # keyfiles.py reads the key files configuration names (pathlib only), nothing else
        bad = _imports(path) & forbidden
        assert not bad, f"{path.name} imports {sorted(bad)}"
