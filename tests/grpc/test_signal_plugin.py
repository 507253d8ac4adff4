"""A signal type registered from one module runs through publish, sync and match."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from clients.policy import Policy
from clients.threatexchange.signal_types import to_pytx
from exchange.core.signals import normalize, register, signal_type, unregister
from tests.conftest import GROUP_ALL, TaskForce, accepted
from tests.toy_signal_type import ToyBlake2s, ToyNearSize

ENQUEUE_ALL = Policy.from_toml('default = "enqueue"\ndefault_priority = 1\n')


@pytest.fixture
def toy() -> Iterator[ToyBlake2s]:
    kind = ToyBlake2s()
    register(kind)
    try:
        yield kind
    finally:
        unregister(kind.name)


def _blake2s(path: Path) -> str:
    return hashlib.blake2s(path.read_bytes()).hexdigest()


def test_toy_type_publish_sync_match(taskforce: TaskForce, tmp_path: Path, toy: ToyBlake2s) -> None:
    seen_first, seen_later = tmp_path / "first.bin", tmp_path / "later.bin"
    seen_first.write_bytes(b"toy content one")
    seen_later.write_bytes(b"toy content two")
    assert signal_type("toy_blake2s") is toy
    assert normalize("toy_blake2s", _blake2s(seen_first).upper()) == _blake2s(seen_first)
    assert to_pytx("toy_blake2s", _blake2s(seen_first)) is None  # no pytx mapping declared

    alice = taskforce.client("alice")
    bob = taskforce.client("bob", state=True, policy=ENQUEUE_ALL)

    # the member hashes its file before the signal exists: matched when the signal arrives
    (before,) = bob.match_files([seen_later])
    assert before.hashes.value("toy_blake2s") == _blake2s(seen_later) and before.matches == []

    accepted(alice.publish([
        alice.signal("toy_blake2s", _blake2s(seen_first), groups=[GROUP_ALL], signal_id="toy-1"),
        alice.signal("toy_blake2s", _blake2s(seen_later), groups=[GROUP_ALL], signal_id="toy-2"),
    ]))
    report = bob.sync()
    assert (report.signals, report.quarantined, report.queued) == (2, 0, 1)
    assert bob.queue is not None
    assert [(i.content_ref, i.signal_id) for i in bob.queue.items()] == [(str(seen_later), "toy-2")]

    # a new upload is hashed by the type's own hasher and matched exactly
    (now,) = bob.match_files([seen_first])
    assert [(m.signal.signal_id, m.signal.type) for m, _ in now.matches] == [("toy-1", "toy_blake2s")]
    assert bob.bank is not None
    assert [m.signal.signal_id for m in bob.bank.match_value("toy_blake2s", _blake2s(seen_first), "x")] == ["toy-1"]


def test_unregistered_toy_value_is_opaque_and_unmatched(taskforce: TaskForce, tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"opaque")
    alice = taskforce.client("alice")
    bob = taskforce.client("bob", state=True, policy=ENQUEUE_ALL)
    accepted(alice.publish([alice.signal("toy_blake2s", _blake2s(path), groups=[GROUP_ALL], signal_id="t")]))
    assert bob.sync().signals == 1
    (result,) = bob.match_files([path])
    assert result.hashes.value("toy_blake2s") is None and result.matches == []


@pytest.fixture
def near_size() -> Iterator[ToyNearSize]:
    kind = ToyNearSize()
    register(kind)
    try:
        yield kind
    finally:
        unregister(kind.name)


def test_toy_type_with_its_own_matcher(taskforce: TaskForce, tmp_path: Path, near_size: ToyNearSize) -> None:
    early, late = tmp_path / "early.bin", tmp_path / "late.bin"
    early.write_bytes(b"e" * 1003)  # hashed before the signal exists
    late.write_bytes(b"l" * 995)
    alice = taskforce.client("alice")
    bob = taskforce.client("bob", state=True, policy=ENQUEUE_ALL)
    (before,) = bob.match_files([early])
    assert before.hashes.value("toy_size") == "1003" and before.matches == []

    accepted(alice.publish([alice.signal("toy_size", "1000", groups=[GROUP_ALL], signal_id="size-1000")]))
    assert bob.sync().queued == 1  # re-matched against the stored hash by the type's distance
    assert bob.queue is not None
    assert [(i.content_ref, i.distance) for i in bob.queue.items()] == [(str(early), 3)]

    (now,) = bob.match_files([late])
    assert [(m.signal.signal_id, m.distance) for m, _ in now.matches] == [("size-1000", 5)]
    far = tmp_path / "far.bin"
    far.write_bytes(b"f" * 1100)
    assert bob.match_files([far])[0].matches == []
