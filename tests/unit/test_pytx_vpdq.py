"""vPDQ in the python-threatexchange extension: Trustwire's vpdq values reach pytx's
VPDQSignal, and both sides agree on what matches (pytx's own compare as the anchor)."""

from __future__ import annotations

import numpy as np
from threatexchange.extensions.vpdq.vpdq import VPDQSignal

from clients.threatexchange.api import TrustwireSignalExchangeAPI, TrustwireSignalMetadata
from clients.threatexchange.signal_types import PYTX_TYPE_FOR, to_pytx
from exchange.core.signals import normalize, signal_type


def _frames(n: int, seed: int) -> list[int]:
    rng = np.random.default_rng(seed)
    return [int.from_bytes(rng.bytes(32), "big") for _ in range(n)]


def _value(frames: list[int]) -> str:
    return normalize("vpdq", ",".join(f"{f:064x}" for f in frames))


def _flip(frame: int, bits: int, seed: int) -> int:
    for b in np.random.default_rng(seed).choice(256, bits, replace=False):
        frame ^= 1 << int(b)
    return frame


def test_vpdq_maps_to_pytx_vpdq_signal() -> None:
    assert PYTX_TYPE_FOR["vpdq"][0] is VPDQSignal
    banked = _value(_frames(10, 1))
    name, pytx_value = to_pytx("vpdq", banked) or ("", "")
    assert name == "vpdq" == VPDQSignal.get_name()
    assert VPDQSignal.validate_signal_str(pytx_value) == pytx_value
    assert VPDQSignal.compare_hash(pytx_value, pytx_value).match


def test_trustwire_and_pytx_agree_on_vpdq_matches() -> None:
    frames = _frames(10, 2)
    banked = _value(frames)
    near = _value([_flip(f, 20, i) for i, f in enumerate(frames)])  # every frame 20 bits away
    partly = _value([_flip(f, 40, i) if i < 3 else f for i, f in enumerate(frames)])  # 70% of frames
    other = _value(_frames(10, 3))
    kind = signal_type("vpdq")
    for query, should_match in [(near, True), (partly, False), (other, False), (banked, True)]:
        ours = kind.distance(banked, query) is not None
        theirs = VPDQSignal.compare_hash(to_pytx("vpdq", query)[1], to_pytx("vpdq", banked)[1]).match  # type: ignore[index]
        assert ours == theirs == should_match


def test_fetched_vpdq_records_convert_to_pytx_signals() -> None:
    value = to_pytx("vpdq", _value(_frames(4, 4)))[1]  # type: ignore[index]
    record = TrustwireSignalMetadata(publisher="alice", signal_id="v1", ledger_index=3, trustwire_type="vpdq",
                                     signal_type="vpdq", signal_value=value)
    out = TrustwireSignalExchangeAPI.naive_convert_to_signal_type([VPDQSignal], None, {"alice/v1": record})  # type: ignore[arg-type]
    assert list(out) == [VPDQSignal] and list(out[VPDQSignal].values()) == [record]
