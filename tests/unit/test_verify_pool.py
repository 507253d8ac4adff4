"""A member's pages verified in worker processes give exactly the in-process results,
including for the attacks the in-order pass must still catch."""

from __future__ import annotations

import hashlib

import pytest

from clients import verify_pool
from clients.verify_pool import VerifyPool
from exchange.core.errors import UntrustedEntry
from exchange.core.records import Record, encode_record
from exchange.core.verify import EntryVerifier, VerifiedEntry
from exchange.server.ledger import SqliteLedger
from tests.ledger_contract import BOB, OPERATOR_KEY, add_key, enrol, opinion, receipts, retraction, signal, task_force

G = "g-one"


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    """Key events, then signals, a member enrolled with a new key mid-page, and its signals."""
    from exchange.core.keys import Signer

    carol = Signer.from_seed(hashlib.sha256(b"verify-pool-carol-INSECURE").digest())
    ledger = SqliteLedger(tmp_path_factory.mktemp("pool") / "ledger.db")
    try:
        receipts(ledger.append(task_force()))
        receipts(ledger.append([signal("alice", f"a-{i}", [G], value=hashlib.md5(b"%d" % i).hexdigest())
                                for i in range(300)]))
        receipts(ledger.append([enrol("carol", [G]), add_key("carol", carol)]))
        receipts(ledger.append([signal("carol", f"c-{i}", [G], value=hashlib.md5(b"c%d" % i).hexdigest(), signer=carol)
                                for i in range(300)]))
        return [r.record for r in ledger.read(0, ledger.head() + 1)]
    finally:
        ledger.close()


def _summary(results: list[VerifiedEntry | UntrustedEntry]) -> list[tuple[str, object]]:
    return [("bad", r.cause) if isinstance(r, UntrustedEntry) else ("ok", (r.index, r.publisher, r.keyid, r.record))
            for r in results]


def _forged(records: list[bytes], victim: int) -> list[bytes]:
    """Record ``victim`` replaced by alice's signal signed with bob's key (a forgery)."""
    out = list(records)
    original = Record.decode(out[victim])
    out[victim] = encode_record(victim, original.accepted_at_ms, signal("alice", "forged", [G], signer=BOB).envelope)
    return out


@pytest.fixture(scope="module")
def pool() -> VerifyPool:
    p = VerifyPool(2)
    assert p.wait_started(120)
    yield p  # type: ignore[misc]
    p.close()


def test_pool_agrees_with_one_process_on_a_page_with_new_keys(records: list[bytes], pool: VerifyPool) -> None:
    page = records[:7] + records[7:]  # one page: the directory grows inside it
    here = EntryVerifier(OPERATOR_KEY.public_key).verify_many(page)
    there = EntryVerifier(OPERATOR_KEY.public_key).verify_many(page, pool)
    assert pool._pool is not None  # the workers really ran
    assert _summary(there) == _summary(here)
    assert all(isinstance(r, VerifiedEntry) for r in there)


def test_forged_signature_is_quarantined_by_a_worker(records: list[bytes], pool: VerifyPool) -> None:
    page = _forged(records, 100)
    here = _summary(EntryVerifier(OPERATOR_KEY.public_key).verify_many(page))
    there = _summary(EntryVerifier(OPERATOR_KEY.public_key).verify_many(page, pool))
    assert there == here and there[100] == ("bad", "wrong-member")
    assert sum(1 for kind, _ in there if kind == "bad") == 1


def test_signal_signed_before_its_key_was_added_is_refused(records: list[bytes], pool: VerifyPool) -> None:
    """A worker checks against the keys as they were at the page's start; the in-order
    pass must not let a record through just because a later key event adds its key."""
    verifier = EntryVerifier(OPERATOR_KEY.public_key)
    verifier.verify_many(records[:7])
    carol_signal = records[-1]
    moved = list(records[7:307])
    original = Record.decode(moved[5])
    moved[5] = encode_record(original.index, original.accepted_at_ms, Record.decode(carol_signal).envelope)
    out = _summary(verifier.verify_many(moved, pool))
    assert out[5] == ("bad", "unknown-key")


def test_small_pages_stay_in_process(records: list[bytes]) -> None:
    fresh = VerifyPool(2)
    try:
        assert fresh.passes(OPERATOR_KEY.public_key, {}, records[: verify_pool.MIN_PAGE - 1]) is None
        assert fresh._pool is None
    finally:
        fresh.close()


def test_a_big_page_does_not_wait_for_the_workers_to_start(records: list[bytes]) -> None:
    """The first page big enough for the workers starts them and is checked in the
    caller's process meanwhile (a follower never stalls on process start-up); once every
    worker runs, pages go to them."""
    fresh = VerifyPool(2)
    try:
        page = records[: verify_pool.MIN_PAGE]
        assert fresh.passes(OPERATOR_KEY.public_key, {}, page) is None  # not waited for: checked here
        assert fresh._pool is not None  # white-box: the workers are starting
        assert fresh.wait_started(120)
        there = fresh.passes(OPERATOR_KEY.public_key, {}, page)
        assert there is not None and len(there.flags) == len(page)
    finally:
        fresh.close()


def _count_verifies(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Ed25519 checks made in this process from now on (one item each); workers are
    other processes, so theirs are not counted."""
    import nacl.bindings

    real = nacl.bindings.crypto_sign_open
    calls: list[int] = []

    def counted(signed: bytes, public_key: bytes) -> bytes:
        calls.append(1)
        return real(signed, public_key)

    monkeypatch.setattr(nacl.bindings, "crypto_sign_open", counted)
    return calls


def test_parent_does_not_verify_again_what_a_worker_verified(
    records: list[bytes], pool: VerifyPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every record here passes on the workers (carol's signals once her key event, in
    the same page, is applied): the caller's process checks no Ed25519 signature itself,
    and still returns what one process returns."""
    here = _summary(EntryVerifier(OPERATOR_KEY.public_key).verify_many(records))
    calls = _count_verifies(monkeypatch)
    there = _summary(EntryVerifier(OPERATOR_KEY.public_key).verify_many(records, pool))
    assert there == here and all(kind == "ok" for kind, _ in there)
    assert calls == [], f"{len(calls)} signatures verified again in the caller's process"


def test_forged_record_after_new_keys_is_still_decided_here(
    records: list[bytes], pool: VerifyPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A forgery among records sent back to the workers (keys added mid-page) fails there
    and is decided by the reference path in the caller's process: quarantined."""
    page = _forged(records, len(records) - 3)
    here = _summary(EntryVerifier(OPERATOR_KEY.public_key).verify_many(page))
    there = _summary(EntryVerifier(OPERATOR_KEY.public_key).verify_many(page, pool))
    assert there == here and there[-3] == ("bad", "wrong-member")
    assert sum(1 for kind, _ in there if kind == "bad") == 1


def test_page_checked_before_the_previous_page_added_its_keys(
    records: list[bytes], pool: VerifyPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read ahead, the next page is submitted against the keys before the current page:
    carol's signals fail there (her key is added by the current page) and go back to the
    workers in order, not to the caller's process; the verdicts are one process's."""
    first, second = records[:-300], records[-300:]
    reference = EntryVerifier(OPERATOR_KEY.public_key)
    here = _summary(reference.verify_many(first) + reference.verify_many(second))
    verifier = EntryVerifier(OPERATOR_KEY.public_key)
    submitted_first = verifier.submit(first, pool)
    submitted_second = verifier.submit(second, pool)  # before `first` is verified: no key of carol yet
    calls = _count_verifies(monkeypatch)
    there = _summary(verifier.verify_many(first, pool, passed=submitted_first)
                     + verifier.verify_many(second, pool, passed=submitted_second))
    assert there == here and all(kind == "ok" for kind, _ in there)
    assert calls == [], f"{len(calls)} signatures verified again in the caller's process"


def _page(records: list[bytes]) -> tuple[EntryVerifier, list[bytes]]:
    """A verifier that has applied the task force's key events, and alice's 300 signals after them."""
    verifier = EntryVerifier(OPERATOR_KEY.public_key)
    verifier.verify_many(records[:7])
    return verifier, list(records[7:307])


def _decided(records: list[bytes], page: list[bytes], pool: VerifyPool | None) -> list[tuple[str, object]]:
    verifier, _ = _page(records)
    return _summary(verifier.verify_many(page, pool))


def _at(page: list[bytes], position: int, entry: object) -> list[bytes]:
    """``page`` with the record at ``position`` replaced by ``entry`` (a submission) at the same index."""
    out = list(page)
    original = Record.decode(out[position])
    out[position] = encode_record(original.index, original.accepted_at_ms, entry.envelope)  # type: ignore[attr-defined]
    return out


def test_worker_facts_decide_as_the_reference_on_mutated_records(records: list[bytes], pool: VerifyPool) -> None:
    """Every kind of byte of a record flipped (index, timestamp, envelope, payload,
    key id, signature), the page's other records untouched: the fast path from the
    workers' facts quarantines exactly what one process quarantines, for the same reason."""
    _, page = _page(records)
    victim = page[40]
    for at in range(0, len(victim), max(1, len(victim) // 24)):
        mutated = list(page)
        mutated[40] = victim[:at] + bytes([victim[at] ^ 0x01]) + victim[at + 1 :]
        there = _decided(records, mutated, pool)
        assert there == _decided(records, mutated, None), f"byte {at}"
        assert all(kind == "ok" for i, (kind, _) in enumerate(there) if i != 40)


def test_hostile_entries_in_a_worker_page_are_quarantined_as_the_reference_says(
    records: list[bytes], pool: VerifyPool
) -> None:
    """Attacks a worker cannot see (they pass its stateless half): a record replayed at
    a later position, a signal shared into a group its publisher is not in, a forgery
    with another member's key; and a retraction and an opinion among the signals."""
    _, page = _page(records)
    page[11] = page[10]  # replayed: delivered out of order
    page = _at(page, 20, signal("alice", "elsewhere", ["g-three"]))  # alice is not in g-three
    page = _at(page, 30, signal("alice", "forged", [G], signer=BOB))
    page = _at(page, 50, retraction("alice", "a-3"))
    page = _at(page, 60, opinion("bob", "alice", "a-4"))
    there = _decided(records, page, pool)
    assert there == _decided(records, page, None)
    assert [(i, cause) for i, (kind, cause) in enumerate(there) if kind == "bad"] == [
        (11, "ledger-gap"), (20, "group-not-allowed"), (30, "wrong-member")]


def test_parent_does_not_parse_again_what_a_worker_read(
    records: list[bytes], pool: VerifyPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A member's entry a worker showed passing is finished from the worker's facts: the
    caller's process neither re-parses its record nor checks its signature; only the key
    events (the directory's own changes) take the reference path here."""
    from exchange.core import verify

    parsed: list[int] = []
    real_rebuild, real_decode = EntryVerifier._rebuild, verify._decode_record

    def rebuild(self: EntryVerifier, raw: bytes) -> object:
        parsed.append(Record.decode(raw).index)
        return real_rebuild(self, raw)

    def decode(raw: bytes) -> Record:
        parsed.append(-1)
        return real_decode(raw)

    monkeypatch.setattr(EntryVerifier, "_rebuild", rebuild)
    monkeypatch.setattr(verify, "_decode_record", decode)
    calls = _count_verifies(monkeypatch)
    there = EntryVerifier(OPERATOR_KEY.public_key).verify_many(records, pool)
    assert all(isinstance(v, VerifiedEntry) for v in there)
    key_events = [v.index for v in there if isinstance(v, VerifiedEntry) and v.publisher == "operator"]
    assert len(key_events) == 9 and parsed == key_events, "records parsed again in the caller's process"
    assert calls == []
