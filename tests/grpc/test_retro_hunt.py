"""Retro-hunt at scale: a newly banked PDQ signal finds the member's already-hashed
images (1M of them) through an index, and the index follows newly hashed files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from clients.media import hash_file
from clients.policy import Action, Policy
from exchange.core.signals import ContentHash
from tests.conftest import GROUP_ALL, TaskForce, accepted

N = 1_000_000


def _hexes(codes: np.ndarray) -> list[str]:
    raw = codes.astype(">u8").tobytes().hex()
    return [raw[i : i + 64] for i in range(0, len(raw), 64)]


def _flip(value: str, bits: list[int]) -> str:
    v = int(value, 16)
    for b in bits:
        v ^= 1 << b
    return "%064x" % v


def test_a_new_signal_finds_one_of_a_million_hashed_images(taskforce: TaskForce, tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    hexes = _hexes(rng.integers(0, 2**64, size=(N, 4), dtype=np.uint64))
    bob = taskforce.client("bob", state=True)
    assert bob.content is not None
    bob.content.put_many(((f"img-{i}", [ContentHash("pdq", h, 90)]) for i, h in enumerate(hexes)), now_ms=1)
    target = 123_456
    near = _flip(hexes[target], [3, 77, 140, 201, 250])  # 5 bits away
    lone = _hexes(rng.integers(0, 2**64, size=(1, 4), dtype=np.uint64))[0]
    bob.content.put("img-low-quality", [ContentHash("pdq", _flip(lone, [1]), 10)], now_ms=1)

    alice = taskforce.client("alice")
    accepted(alice.publish([alice.signal("pdq", near, signal_id="p1", labels=["csam"], groups=[GROUP_ALL])]))
    bob.policy = Policy(rules=(), default=Action.ENQUEUE)
    report = bob.sync()
    assert report.queued == 1
    assert bob.queue is not None
    [item] = bob.queue.items()
    assert (item.content_ref, item.distance, item.signal_id) == (f"img-{target}", 5, "p1")

    # a signal near an image of quality 10 (< 50) finds nothing: low-quality hashes never match
    accepted(alice.publish([alice.signal("pdq", lone, signal_id="p2", groups=[GROUP_ALL])]))
    assert bob.sync().queued == 0

    # an image hashed after the index was built is found by the next new signal
    img = tmp_path / "later.png"
    Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).resize((256, 256)).save(img)
    assert bob.match_files([img])[0].matches == []
    later = hash_file(img).pdq
    assert later is not None
    accepted(alice.publish([alice.signal("pdq", _flip(later, [9, 99]), signal_id="p3", groups=[GROUP_ALL])]))
    assert bob.sync().queued == 1
    assert {(i.content_ref, i.distance) for i in bob.queue.items()} == {(f"img-{target}", 5), (str(img), 2)}
