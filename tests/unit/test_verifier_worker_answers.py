"""A verification worker's answer stands for the parent's own check (issue 18): one
worker is a real process (`python -m exchange.server.verification`), and what the pool
returns for good, mutated and hostile envelopes is exactly what the inline reference
(`check_batch`) returns. The worker's answer is bound to the bytes the parent holds."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exchange.core.acceptance import Signed, check_signed, directory_keys
from exchange.core.errors import TrustwireError
from exchange.server.verification import (
    VerifierPool, WorkerMismatch, _check_batch_light, _rebuild, _Worker, check_batch,  # noqa: PLC2701 - white-box
)
from tests.conftest import holds_for, wait_until
from tests.unit.test_time_base import ALICE, OPERATOR, signal
from tests.unit.test_verifier_pool import BOB, _bob_signals, _directory

DIRECTORY = _directory(("alice", ALICE))
GOOD = [signal(n) for n in range(4)] + _bob_signals(2)  # bob's key is unknown here


@pytest.fixture(scope="module")
def pool() -> Iterator[VerifierPool]:
    p = VerifierPool(workers=1, threshold=1)  # one worker, a process even for one envelope
    yield p
    p.close()


def _same(a: Signed | TrustwireError, b: Signed | TrustwireError) -> bool:
    if isinstance(a, TrustwireError) or isinstance(b, TrustwireError):
        return type(a) is type(b) and str(a) == str(b)
    return (a.envelope, a.kind, a.publisher) == (b.envelope, b.kind, b.publisher) and a.entry == b.entry


def _reference(raws: list[bytes]) -> list[Signed | TrustwireError]:
    """check_signed, envelope by envelope (the pool checks a batch in stages)."""
    out: list[Signed | TrustwireError] = []
    for raw in raws:
        try:
            out.append(check_signed(raw, OPERATOR.public_key, directory_keys(DIRECTORY), principal="alice"))
        except TrustwireError as exc:
            out.append(exc)
    return out


def test_one_worker_is_a_process_and_answers_as_the_reference(pool: VerifierPool) -> None:
    got = pool.check("alice", GOOD, OPERATOR.public_key, DIRECTORY)
    assert len(pool._procs) == 1  # noqa: SLF001 - the worker really ran
    assert sum(isinstance(g, Signed) for g in got) == 4
    assert all(_same(g, r) for g, r in zip(got, _reference(GOOD), strict=True))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_mutated_and_hostile_envelopes_get_the_reference_answer(pool: VerifierPool, data: st.DataObject) -> None:
    raws = []
    for _ in range(data.draw(st.integers(1, 4))):
        base = bytearray(data.draw(st.sampled_from(GOOD)))
        how = data.draw(st.sampled_from(["flip", "cut", "append", "random", "same"]))
        if how == "flip":
            at = data.draw(st.integers(0, len(base) - 1))
            base[at] ^= data.draw(st.integers(1, 255))
        elif how == "cut":
            base = base[: data.draw(st.integers(0, len(base) - 1))]
        elif how == "append":
            base += data.draw(st.binary(min_size=1, max_size=8))
        elif how == "random":
            base = bytearray(data.draw(st.binary(max_size=200)))
        raws.append(bytes(base))
    got = pool.check("alice", raws, OPERATOR.public_key, DIRECTORY)
    assert all(_same(g, r) for g, r in zip(got, _reference(raws), strict=True))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(GOOD) | st.binary(max_size=120), max_size=6), st.sampled_from(["alice", "bob"]))
def test_a_batch_checked_in_stages_answers_envelope_by_envelope(raws: list[bytes], principal: str) -> None:
    keys = directory_keys(_directory(("alice", ALICE), ("bob", BOB)))
    staged = check_batch(principal, raws, OPERATOR.public_key, keys)
    for raw, got in zip(raws, staged, strict=True):
        try:
            want: Signed | TrustwireError = check_signed(raw, OPERATOR.public_key, keys, principal=principal)
        except TrustwireError as exc:
            want = exc
        assert _same(got, want)


def test_an_answer_for_other_bytes_is_refused() -> None:
    """The binding: a worker's answer about envelope A never passes for envelope B."""
    light = _check_batch_light("alice", [GOOD[0]], OPERATOR.public_key, directory_keys(DIRECTORY))[0]
    assert isinstance(_rebuild(GOOD[0], light), Signed)
    with pytest.raises(WorkerMismatch):
        _rebuild(GOOD[1], light)


class _ReversingWorker(_Worker):
    """A real worker process that is sent the batch in reverse order: its answers come
    back for other bytes than the parent pairs them with (a worker gone wrong)."""

    def send(self, job: object) -> None:
        principal, chunk, operator_key, version, table = cast(tuple[str, list[bytes], bytes, int, object], job)
        super().send((principal, list(reversed(chunk)), operator_key, version, table))


class _ReversingPool(VerifierPool):
    def _start(self) -> _Worker:
        worker = _ReversingWorker()
        self._procs.append(worker)
        return worker


def test_a_worker_answering_for_other_bytes_is_not_trusted(caplog: pytest.LogCaptureFixture) -> None:
    pool = _ReversingPool(workers=1, threshold=1)
    try:
        raws = [signal(10), signal(11), signal(12)]
        got = pool.check("alice", raws, OPERATOR.public_key, DIRECTORY)
        assert all(_same(g, r) for g, r in zip(got, _reference(raws), strict=True))
        assert "does not match its batch" in caplog.text
    finally:
        pool.close()


def test_a_killed_worker_costs_no_answer_and_is_replaced() -> None:
    pool = VerifierPool(workers=1, threshold=1)
    try:
        raws = [signal(20), signal(21)]
        assert all(isinstance(c, Signed) for c in pool.check("alice", raws, OPERATOR.public_key, DIRECTORY))
        (worker,) = pool._procs  # noqa: SLF001
        worker.proc.kill()  # kill -9 between batches: the next batch is checked inline
        worker.proc.wait(timeout=10)
        got = pool.check("alice", raws, OPERATOR.public_key, DIRECTORY)
        assert all(_same(g, r) for g, r in zip(got, _reference(raws), strict=True))
        assert worker not in pool._procs  # noqa: SLF001 - retired
        pool.check("alice", raws, OPERATOR.public_key, DIRECTORY)
        (fresh,) = pool._procs  # noqa: SLF001 - a new process took its slot
        assert fresh is not worker and fresh.proc.poll() is None
    finally:
        pool.close()


# -- which batches take a worker (issue 18: publish → subscriber latency) -------------------


def _started(pool: VerifierPool, raws: list[bytes]) -> _Worker:
    """A small batch on a pool whose worker has not started: checked inline at once (the
    reference's answer), while the worker starts in the background and becomes idle."""
    got = pool.check("alice", raws, OPERATOR.public_key, DIRECTORY)
    assert all(_same(g, r) for g, r in zip(got, _reference(raws), strict=True))
    wait_until(lambda: len(pool._procs) == 1 and pool._idle.qsize() == 1)  # noqa: SLF001
    (worker,) = pool._procs  # noqa: SLF001
    assert worker.table_version == -1  # it has checked nothing yet
    return worker


def test_a_small_batch_takes_an_idle_worker() -> None:
    """A batch far under the threshold goes to an idle worker (the round trip costs the
    serving process less than checking it under its GIL), with the reference's answer."""
    pool = VerifierPool(workers=1)  # the default threshold (64)
    try:
        raws = [signal(30), signal(31), _bob_signals(1)[0]]
        worker = _started(pool, raws)
        got = pool.check("alice", raws, OPERATOR.public_key, DIRECTORY)
        assert worker.table_version != -1  # white-box: the worker process was sent the batch
        assert all(_same(g, r) for g, r in zip(got, _reference(raws), strict=True))
    finally:
        pool.close()
    assert worker.proc.poll() is not None  # and stops with the pool


def test_a_small_batch_on_an_idle_worker_is_bound_to_its_bytes(caplog: pytest.LogCaptureFixture) -> None:
    """The binding holds for small batches too: a worker answering for other bytes is
    caught and the batch is checked inline."""
    pool = _ReversingPool(workers=1)  # the default threshold (64)
    try:
        raws = [signal(40), signal(41)]
        _started(pool, raws)
        assert "does not match its batch" not in caplog.text
        got = pool.check("alice", raws, OPERATOR.public_key, DIRECTORY)
        assert "does not match its batch" in caplog.text
        assert all(_same(g, r) for g, r in zip(got, _reference(raws), strict=True))
    finally:
        pool.close()


def test_with_every_worker_busy_a_small_batch_is_checked_inline_and_a_large_one_waits() -> None:
    pool = VerifierPool(workers=1, threshold=8)
    try:
        slot = pool._idle.get()  # noqa: SLF001 - the only worker is busy with another batch
        small = [signal(50), signal(51)]
        got = pool.check("alice", small, OPERATOR.public_key, DIRECTORY)
        assert all(_same(g, r) for g, r in zip(got, _reference(small), strict=True))
        assert pool._procs == []  # noqa: SLF001 - checked inline: no process started
        large = [signal(60 + n) for n in range(8)]
        answers: list[list[Signed | TrustwireError]] = []
        waiter = threading.Thread(target=lambda: answers.append(pool.check("alice", large, OPERATOR.public_key,
                                                                            DIRECTORY)))
        waiter.start()
        holds_for(lambda: not answers, 0.5)  # it waits for the worker
        pool._idle.put(slot)  # noqa: SLF001 - the worker is free again
        wait_until(lambda: bool(answers))
        waiter.join()
        assert len(pool._procs) == 1  # noqa: SLF001 - then a worker checked it
        assert all(_same(g, r) for g, r in zip(answers[0], _reference(large), strict=True))
    finally:
        pool.close()


def test_an_empty_batch_needs_no_worker() -> None:
    pool = VerifierPool(workers=1, threshold=1)
    try:
        assert pool.check("alice", [], OPERATOR.public_key, DIRECTORY) == []
        assert pool._procs == []  # noqa: SLF001
    finally:
        pool.close()
