"""Work before authentication is bounded, and captured calls are worthless elsewhere.

Real ``trustwire serve`` processes: eight unauthenticated senders of 30 MiB bodies
barely move the exchange's memory (the body of a caller that fails the metadata
checks is never read); a captured call is refused by another replica of the same
exchange and by the same exchange after a restart.
"""

from __future__ import annotations

import threading
from pathlib import Path

import grpc

from exchange.core.callauth import sign_call
from exchange.core.keys import Signer
from exchange.pb.trustwire.v1 import exchange_pb2 as xpb
from reliability.harness import ExchangeProcess, rss_kib
from tests.grpc.conftest import reason_of
from tests.serving.conftest import NAME, serve

PUBLISH = "/trustwire.v1.ExchangeService/Publish"
GET_ENTRIES = "/trustwire.v1.ExchangeService/GetEntries"
BODY_BYTES = 30 << 20
SENDERS = 8
ROUNDS = 3
RSS_GROWTH_LIMIT_KIB = 100 << 10


def test_unauthenticated_30mib_bodies_do_not_grow_memory(tmp_path: Path) -> None:
    served = serve(tmp_path / "exchange")
    try:
        pid = served.exchange.pid
        body = xpb.PublishRequest(envelopes=[b"\x00" * BODY_BYTES]).SerializeToString()
        stranger = Signer.from_seed(b"\x05" * 32)  # a key the exchange does not know
        kinds = [
            [],  # no credentials at all
            sign_call(stranger, "mallory", PUBLISH, NAME, b""),  # unknown key id
            sign_call(served.signers["bob"], "bob", PUBLISH, NAME, b"", now_ms=1_000),  # far outside the window
        ]
        codes: list[tuple[str, str]] = []
        peak = [rss_kib(pid)]
        baseline = peak[0]
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(0.02):
                peak.append(rss_kib(pid))

        def send(i: int) -> None:
            options = [("grpc.max_send_message_length", 64 << 20), ("grpc.use_local_subchannel_pool", 1)]
            with grpc.insecure_channel(served.exchange.target, options=options) as channel:
                call = channel.unary_unary(PUBLISH)
                for r in range(ROUNDS):
                    try:
                        call(body, metadata=kinds[(i + r) % len(kinds)], timeout=60)
                        codes.append(("OK", ""))
                    except grpc.RpcError as exc:
                        codes.append((exc.code().name, reason_of(exc)))  # type: ignore[attr-defined]

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        senders = [threading.Thread(target=send, args=(i,)) for i in range(SENDERS)]
        for t in senders:
            t.start()
        for t in senders:
            t.join(180)
        stop.set()
        sampler.join(5)
        assert len(codes) == SENDERS * ROUNDS
        assert {c for c, _ in codes} == {"UNAUTHENTICATED"}, codes
        assert {r for _, r in codes} == {"missing-credentials", "unknown-key", "expired-call"}
        growth = max(peak) - baseline
        print(f"RSS {baseline >> 10} MiB before; peak growth {growth >> 10} MiB under {SENDERS} senders x {ROUNDS} rounds")
        assert growth < RSS_GROWTH_LIMIT_KIB, f"RSS grew by {growth >> 10} MiB"
        served.publish("alice", "1" * 32)  # and the exchange still serves members
    finally:
        served.close()


def _captured_call(stub_target: str, signer: Signer) -> tuple[bytes, list[tuple[str, str]]]:
    body = xpb.GetEntriesRequest(from_index=0).SerializeToString()
    return body, sign_call(signer, "bob", GET_ENTRIES, NAME, body)


def _call(target: str, body: bytes, metadata: list[tuple[str, str]]) -> tuple[str, str]:
    with grpc.insecure_channel(target) as channel:
        try:
            channel.unary_unary(GET_ENTRIES)(body, metadata=metadata, timeout=30)
            return "OK", ""
        except grpc.RpcError as exc:
            return exc.code().name, reason_of(exc)  # type: ignore[attr-defined]


def test_call_replayed_on_another_replica_is_refused(tmp_path: Path) -> None:
    """Two replicas serve one ledger (each with its own audit store) and share the replay guard."""
    served = serve(tmp_path / "a", replay_path=tmp_path / "shared-calls.db")
    replica = ExchangeProcess(
        tmp_path / "b", name=NAME, ledger=served.exchange.ledger,
        env={"TRUSTWIRE_METRICS_LISTEN": "off", "TRUSTWIRE_REPLAY_PATH": str(tmp_path / "shared-calls.db")},
    ).start()
    try:
        body, metadata = _captured_call(served.exchange.target, served.signers["bob"])
        assert _call(served.exchange.target, body, metadata) == ("OK", "")
        assert _call(replica.target, body, metadata) == ("UNAUTHENTICATED", "replayed-call")
        fresh_body, fresh = _captured_call(replica.target, served.signers["bob"])
        assert _call(replica.target, fresh_body, fresh) == ("OK", "")  # the replica serves fresh calls
    finally:
        assert replica.stop() == 0, replica.stderr[-3000:]
        served.close()


def test_call_replayed_after_restart_is_refused(tmp_path: Path) -> None:
    served = serve(tmp_path / "exchange")
    try:
        body, metadata = _captured_call(served.exchange.target, served.signers["bob"])
        assert _call(served.exchange.target, body, metadata) == ("OK", "")
        assert served.exchange.stop() == 0
        served.exchange.start()
        assert _call(served.exchange.target, body, metadata) == ("UNAUTHENTICATED", "replayed-call")
    finally:
        served.close()


def test_call_for_another_exchange_is_refused(tmp_path: Path) -> None:
    served = serve(tmp_path / "exchange")
    try:
        body = xpb.GetEntriesRequest(from_index=0).SerializeToString()
        metadata = sign_call(served.signers["bob"], "bob", GET_ENTRIES, "other.trustwire.invalid/log", body)
        assert _call(served.exchange.target, body, metadata) == ("UNAUTHENTICATED", "bad-call-signature")
    finally:
        served.close()
