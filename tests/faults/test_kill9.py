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
