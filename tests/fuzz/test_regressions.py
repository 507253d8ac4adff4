"""Replay every kept crash input (tests/fuzz/regressions/*.json) against its parser.

A vector names its target (a parser of reliability/fuzzing.py, or ``rpc``: those are
replayed against the fuzz exchange in test_rpc.py), the input in hex, and what it
broke. ``expect: reject`` vectors must be refused with a TrustwireError; all must
never crash.
"""

from __future__ import annotations

import pytest

from reliability.fuzzing import PARSERS, load_vectors, replay_vector

VECTORS = list(load_vectors())


def test_vectors_are_well_formed() -> None:
    assert VECTORS, "no regression vectors found"
    for path, vector in VECTORS:
        assert vector["target"] in (*PARSERS, "rpc"), path.name
        bytes.fromhex(vector["input_hex"])
        assert vector.get("note"), f"{path.name}: say what the input broke"


@pytest.mark.parametrize(
    "vector", [v for _, v in VECTORS if v["target"] != "rpc"], ids=[p.stem for p, v in VECTORS if v["target"] != "rpc"]
)
def test_parser_vector(vector: dict[str, str]) -> None:
    accepted = replay_vector(vector)
    if vector.get("expect") == "reject":
        assert not accepted, vector["note"]
