"""A damaged ledger is refused (exit 8, one clear line); a damaged tree is rebuilt from the ledger."""

from __future__ import annotations

from pathlib import Path

from reliability import faults


def test_corrupt_ledger_is_refused(tmp_path: Path) -> None:
    results = faults.corrupt_ledger(tmp_path, entries=300)
    assert set(results) == set(faults.LEDGER_CORRUPTIONS)
    for name, outcome in results.items():
        assert outcome["exit_code"] == 8, (name, outcome)  # type: ignore[index]
        assert outcome["error"].startswith("trustwire: error: "), (name, outcome)  # type: ignore[index]
    # a byte changed inside a stored record is invisible to SQLite: the signed root catches it
    assert "do not hash to the root the log signed" in results["record-byte"]["error"]  # type: ignore[index]


def test_corrupt_tree_is_rebuilt_from_the_ledger(tmp_path: Path) -> None:
    results = faults.corrupt_tree(tmp_path, entries=300)
    for name in faults.TREE_CORRUPTIONS:
        assert results[name]["rebuilt_and_proofs_verify"] is True, (name, results[name])  # type: ignore[index]
        assert results[name]["audit"]["ok"] is True  # type: ignore[index]
    # the signed notes cannot be recomputed: a damaged checkpoint store is refused, clearly
    assert results["checkpoint-store-garbage"]["exit_code"] == 8  # type: ignore[index]
    assert "checkpoint store" in results["checkpoint-store-garbage"]["error"]  # type: ignore[index]
