"""Real ``trustwire serve`` processes under attack: shared helpers."""

from __future__ import annotations

import contextlib
import io
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from clients.cli.main import main
from clients.transport import connect
from exchange.core.entries import ms_to_timestamp
from exchange.core.keys import Signer
from exchange.core.records import Record
from exchange.pb.trustwire.v1 import entries_pb2 as pb
from exchange.pb.trustwire.v1 import exchange_pb2 as xpb
from exchange.pb.trustwire.v1 import exchange_pb2_grpc as xgrpc
from reliability.harness import ExchangeProcess
from tests.grpc.conftest import sign

GROUP = "coalition"
SIDE = "side-channel"
NAME = "serving.trustwire.invalid/log"


@dataclass
class Served:
    """An enrolled exchange process and channels that sign for it."""

    exchange: ExchangeProcess
    signers: dict[str, Signer]
    _channels: list[grpc.Channel] = field(default_factory=list)

    def channel(self, member: str) -> grpc.Channel:
        channel = connect(self.exchange.target, self.signers[member], member, origin=self.exchange.name)
        self._channels.append(channel)
        return channel

    def stub(self, member: str) -> xgrpc.ExchangeServiceStub:
        return xgrpc.ExchangeServiceStub(self.channel(member))

    def publish(self, member: str, value: str, groups: tuple[str, ...] = (GROUP,)) -> int:
        """Publish one signal; its ledger index."""
        signal = pb.Signal(
            signal_id=f"{member}-{value[:12]}", member_id=member, type="md5", value=value, labels=["spam"],
            confidence=50, severity=pb.SEVERITY_MEDIUM, sharing=pb.Sharing(groups=list(groups), tlp=pb.TLP_AMBER),
            created_at=ms_to_timestamp(int(time.time() * 1000)),
        )
        reply = self.stub(member).Publish(xpb.PublishRequest(envelopes=[sign(signal, self.signers[member])]), timeout=30)
        (result,) = reply.results
        assert result.WhichOneof("result") == "receipt", result
        return int(result.receipt.index)

    def close(self) -> None:
        for c in self._channels:
            c.close()
        if self.exchange.alive():
            assert self.exchange.stop() == 0, self.exchange.stderr[-3000:]


def serve(tmp: Path, members: dict[str, list[str]] | None = None, **settings: object) -> Served:
    env = {f"TRUSTWIRE_{k.upper()}": str(v) for k, v in settings.items()}
    env.setdefault("TRUSTWIRE_METRICS_LISTEN", "off")
    exchange = ExchangeProcess(tmp, name=NAME, env=env).start()
    signers = exchange.enrol(members or {"alice": [GROUP], "bob": [GROUP, SIDE]}, [(GROUP, "amber"), (SIDE, "amber")])
    return Served(exchange, signers)


def ops_alerts(served: Served) -> list[dict[str, str]]:
    """``trustwire ops status --json`` against the exchange: its alerts."""
    key = served.exchange.directory / "operator.key"
    key.write_text(served.exchange.operator.seed.hex())
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main(["ops", "status", "--json", "--exchange", served.exchange.target, "--origin", served.exchange.name,
              "--operator-key-file", str(key)])
    return json.loads(out.getvalue())["alerts"]  # type: ignore[no-any-return]


class Follower:
    """A follow-mode Subscribe stream read on a thread: the indices it delivered and how it ended."""

    def __init__(self, stub: xgrpc.ExchangeServiceStub, from_index: int = 0) -> None:
        self.indices: list[int] = []
        self.code: grpc.StatusCode | None = None
        self.reason = ""
        self.next_index = from_index
        self._call = stub.Subscribe(xpb.SubscribeRequest(from_index=from_index), timeout=120)
        self.ended = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            for page in self._call:
                self.indices.extend(Record.decode(raw).index for raw in page.records)
                self.next_index = page.next_index
            self.code = grpc.StatusCode.OK
        except grpc.RpcError as exc:
            self.code = exc.code()  # type: ignore[attr-defined]
            self.reason = dict(exc.trailing_metadata() or ()).get("tw-reason", "")  # type: ignore[attr-defined]
        finally:
            self.ended.set()

    def cancel(self) -> None:
        self._call.cancel()
