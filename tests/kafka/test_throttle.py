"""Repeating fault lines are throttled: the first is written, then one per interval
saying how many were held back (no broker)."""

from __future__ import annotations

import logging

import pytest

from exchange.server.kafka.throttle import Throttled


def test_a_flood_of_one_line_is_throttled(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    throttled = Throttled(logging.getLogger("tests.throttle"), 30.0, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="tests.throttle"):
        written = [throttled.log(logging.INFO, "claim of epoch %d lost", n) for n in range(100)]
        throttled.log(logging.INFO, "another line %s", "x")
        now[0] = 31.0
        throttled.log(logging.INFO, "claim of epoch %d lost", 100)
    assert written.count(True) == 1
    assert [r.getMessage() for r in caplog.records] == [
        "claim of epoch 0 lost", "another line x", "claim of epoch 100 lost (99 similar line(s) held back)",
    ]
