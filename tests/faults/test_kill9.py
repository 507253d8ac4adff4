"""kill -9 of a `trustwire serve` process while members publish, then a restart on the same files."""

from __future__ import annotations

from pathlib import Path

from reliability import faults


def test_kill9_mid_batch_loses_nothing_acknowledged(tmp_path: Path) -> None:
    result = faults.kill9(tmp_path, cycles=3, members=3, batch=50, min_acked=300)
    assert result["lost"] == 0
    for cycle in result["cycles"]:  # type: ignore[union-attr]
        assert cycle["batches_in_flight_at_kill"] >= 1, cycle  # the kill landed mid-batch
    final = result["final"]
    assert final["acked"] >= 900 and final["records"] >= final["acked"]  # type: ignore[index]
    assert result["audit"]["ok"] is True  # type: ignore[index]


def test_sigterm_always_stops_the_exchange(tmp_path: Path) -> None:
    """A clean shutdown, every time: the SIGTERM may land on any thread of the process.

    Before the fix `trustwire serve` sat in a bare Event.wait(); a signal delivered to a
    grpc thread only set CPython's flag, and the process never exited.
    """
    from reliability.harness import ExchangeProcess

    ex = ExchangeProcess(tmp_path / "sigterm")
    for _ in range(6):
        ex.start()
        assert ex.stop(timeout=10) == 0, ex.stderr[-2000:]
