"""Many concurrent follow-mode Subscribe streams against one exchange process.

:class:`StreamFleet` opens ``per_member`` streams for each member (one connection
per member) on an event loop of its own and records when each stream delivers a
given ledger index. :func:`measure` is the bench/run.py section: p99
publish→delivery over 1,000 streams from 100 members against the same figure for a
single stream measured in the same run, and the exchange's RSS per open stream.
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import grpc

from exchange.core.callauth import sign_call
from exchange.core.keys import Signer
from exchange.core.records import Record
from exchange.pb.trustwire.v1 import exchange_pb2 as xpb

SUBSCRIBE = "/trustwire.v1.ExchangeService/Subscribe"


class StreamFleet:
    def __init__(self, target: str, origin: str, signers: dict[str, Signer], per_member: int) -> None:
        self._target, self._origin, self._signers, self._per_member = target, origin, signers, per_member
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.open_streams = 0
        self.errors: dict[str, int] = {}
        self._seen: dict[int, list[float]] = {}  # index -> arrival times (monotonic)
        self._tasks: list[asyncio.Task[None]] = []
        self._channels: list[grpc.aio.Channel] = []

    def _run(self, coro: Any, timeout_s: float) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout_s)

    async def _stream(self, channel: grpc.aio.Channel, member: str, opened: asyncio.Event, total: int) -> None:
        request = xpb.SubscribeRequest(from_index=0)
        body = request.SerializeToString()
        call = channel.unary_stream(
            SUBSCRIBE, request_serializer=xpb.SubscribeRequest.SerializeToString,
            response_deserializer=xpb.SubscribeResponse.FromString,
        )(request, metadata=sign_call(self._signers[member], member, SUBSCRIBE, self._origin, body))
        first = True
        try:
            async for page in call:
                now = time.monotonic()
                for raw in page.records:
                    self._seen.setdefault(Record.decode(raw).index, []).append(now)
                if first:
                    first = False
                    self.open_streams += 1
                    if self.open_streams == total:
                        opened.set()
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.CANCELLED:
                self.errors[exc.code().name] = self.errors.get(exc.code().name, 0) + 1

    async def _open(self) -> None:
        opened = asyncio.Event()
        total = len(self._signers) * self._per_member
        for member in self._signers:
            channel = grpc.aio.insecure_channel(self._target, options=[("grpc.use_local_subchannel_pool", 1)])
            self._channels.append(channel)
            for _ in range(self._per_member):
                self._tasks.append(asyncio.create_task(self._stream(channel, member, opened, total)))
        await opened.wait()

    def open(self, timeout_s: float) -> None:
        """Open every stream and wait until each delivered its first page (from index 0)."""
        self._run(self._open(), timeout_s)

    def wait_for(self, index: int, timeout_s: float) -> int:
        """Wait until every open stream delivered ``index``; how many did."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and len(self._seen.get(index, ())) < self.open_streams:
            time.sleep(0.01)
        return len(self._seen.get(index, ()))

    def arrivals(self, index: int) -> list[float]:
        return list(self._seen.get(index, ()))

    def close(self) -> None:
        async def stop() -> None:
            for t in self._tasks:
                t.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            for c in self._channels:
                await c.close()

        try:
            self._run(stop(), 60)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)


def _p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98] if len(values) > 1 else values[0]


def measure(workdir: Path, members: int = 100, per_member: int = 10, rounds: int = 5) -> dict[str, Any]:
    """p99 publish→delivery (ms) on 1 stream and on members×per_member streams, RSS per stream."""
    from reliability.harness import ExchangeProcess, rss_kib
    from tests.serving.conftest import GROUP, Served

    names = {f"m{i:03d}": [GROUP] for i in range(members)} | {"alice": [GROUP]}
    exchange = ExchangeProcess(workdir, name="bench.streams.invalid/log", env={"TRUSTWIRE_METRICS_LISTEN": "off"})
    exchange.start()
    served = Served(exchange, exchange.enrol(names, [(GROUP, "amber")]))
    readers = {m: s for m, s in served.signers.items() if m != "alice"}
    out: dict[str, Any] = {"members": members, "streams": members * per_member}
    try:
        served.publish("alice", "0" * 32)  # every stream's first page: it is open

        def latency(fleet: StreamFleet) -> list[float]:
            ms: list[float] = []
            for r in range(rounds):
                t0 = time.monotonic()
                index = served.publish("alice", f"{r + 1:032x}")
                fleet.wait_for(index, 120)
                ms.extend((t - t0) * 1000 for t in fleet.arrivals(index))
            return ms

        one = StreamFleet(exchange.target, exchange.name, {"m000": readers["m000"]}, 1)
        one.open(120)
        baseline = latency(one)
        one.close()
        rss_before = rss_kib(exchange.pid)
        fleet = StreamFleet(exchange.target, exchange.name, readers, per_member)
        fleet.open(300)
        rss_after = rss_kib(exchange.pid)
        many = latency(fleet)
        out.update(
            open_streams=fleet.open_streams,
            errors=fleet.errors,
            baseline_p99_ms=_p99(baseline),
            p99_ms=_p99(many),
            p50_ms=statistics.median(many),
            p99_ratio=_p99(many) / _p99(baseline),
            rss_before_mib=rss_before / 1024,
            rss_per_stream_kib=(rss_after - rss_before) / max(1, fleet.open_streams),
        )
        fleet.close()
    finally:
        served.close()
    return out


if __name__ == "__main__":
    import json
    import sys
    import tempfile

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(measure(Path(tmp)), indent=2))
