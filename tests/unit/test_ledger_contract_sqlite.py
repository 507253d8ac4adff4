"""The ledger contract (tests/ledger_contract.py) against the embedded SQLite engine."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from exchange.server.ledger import Ledger, SqliteLedger
from tests.ledger_contract import *  # noqa: F403 - the contract's test functions


@pytest.fixture
def make_ledger(tmp_path: Path) -> Iterator[Callable[..., Ledger]]:
    opened: list[SqliteLedger] = []

    def make(clock_ms: Callable[[], int] | None = None) -> Ledger:
        ledger = SqliteLedger(tmp_path / "ledger.db", clock_ms=clock_ms)
        opened.append(ledger)
        return ledger

    yield make
    for ledger in opened:
        try:
            ledger.close()
        except Exception:  # noqa: BLE001 - closed by the test already
            pass
