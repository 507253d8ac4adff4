"""Fuzzing fixtures: bounded hypothesis profiles and one shared exchange for the RPC campaign.

``TRUSTWIRE_FUZZ_SCALE`` multiplies every test's example count (default 1: the whole
fuzz suite stays well under two minutes on 2 cores); reliability/fuzz_long.py is the
long campaign. In CI (``CI`` set) the examples are derandomized so a run is
reproducible; elsewhere every run explores new inputs.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from exchange.core.entries import OPERATOR
from exchange.core.keys import Signer
from exchange.core.records import Receipt
from exchange.server import exchange_service
from reliability.fuzzing import RpcFuzzer, seed_envelopes
from tests.conftest import MEMBERS, TaskForce, start_taskforce, wait_until

SCALE = float(os.environ.get("TRUSTWIRE_FUZZ_SCALE", "1"))

settings.register_profile(
    "trustwire-fuzz",
    deadline=None,
    derandomize=bool(os.environ.get("CI")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    print_blob=True,
)


def examples(n: int) -> settings:
    """A settings decorator with ``n`` examples (scaled)."""
    return settings(settings.get_profile("trustwire-fuzz"), max_examples=max(1, int(n * SCALE)))


def _capped(wait_for: Callable[[int, float], Any], cap_s: float) -> Callable[[int, float], Any]:
    def capped(size: int, timeout: float) -> Any:
        return wait_for(size, min(timeout, cap_s))

    return capped


@dataclass
class FuzzTarget:
    tf: TaskForce
    fuzzer: RpcFuzzer
    published: list[bytes]  # already in the ledger: re-sending them changes nothing
    signers: dict[str, Signer]


@pytest.fixture(scope="session")
def fuzz_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzTarget]:
    # follow-mode Subscribe heartbeats after 5 s by default; the campaign reads a page or two and hangs up
    tf = start_taskforce(tmp_path_factory.mktemp("fuzz-exchange"), subscribe_heartbeat_s=0.2)
    exchange_service.TRUSTED_WAIT_S = 0.3  # see below: a Subscribe trusting a checkpoint beyond the log's
    # and a Subscribe that trusts a checkpoint beyond the log's waits (5 s) for a lagging replica to
    # catch up before OUT_OF_RANGE: the campaign sends thousands, so cap the waits
    tf.server.checkpoints.wait_for = _capped(tf.server.checkpoints.wait_for, 0.3)  # type: ignore[method-assign]
    alice = tf.client("alice")
    seeds = seed_envelopes("alice")
    published = [e for e, o in zip(seeds, alice.publish_envelopes(seeds)) if isinstance(o, Receipt)]
    assert len(published) >= 6, "the seed entries must be accepted"
    # proofs answer UNAVAILABLE ("retry shortly") until a signed checkpoint covers the head:
    # the campaign starts once one does (checkpoints are signed at most once a second)
    head = tf.server.ledger.head()
    wait_until(lambda: (cp := tf.server.checkpoints.latest()) is not None and cp.size >= head)
    signers = {m: tf.signers[m] for m in MEMBERS}
    signers[OPERATOR] = tf.operator
    fuzzer = RpcFuzzer(tf.target, signers, stream_timeout_s=3.0, origin=tf.origin)
    _CAMPAIGN.append(fuzzer)
    try:
        yield FuzzTarget(tf=tf, fuzzer=fuzzer, published=published, signers=signers)
    finally:
        fuzzer.close()
        tf.close()


_CAMPAIGN: list[RpcFuzzer] = []


def pytest_terminal_summary(terminalreporter: object) -> None:
    """How many RPC bodies the campaign sent, and the statuses they got (for RELIABILITY.md)."""
    for fuzzer in _CAMPAIGN:
        terminalreporter.write_line(  # type: ignore[attr-defined]
            f"fuzz: {fuzzer.calls} raw RPC bodies sent; statuses {dict(sorted(fuzzer.codes.items()))}"
        )
