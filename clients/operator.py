"""The operator's client: operator-signed KeyEvents (enrolment, keys, groups)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence

import grpc

from clients.transport import ClientTls, PublishOutcome, connect, publish_envelopes
from exchange.core.dsse import sign_envelope
from exchange.core.entries import OPERATOR, TLP_BY_NAME, by_name, encode_entry, ms_to_timestamp
from exchange.core.keys import Signer
from exchange.pb.trustwire.v1 import entries_pb2 as pb
from exchange.pb.trustwire.v1 import exchange_pb2_grpc as xgrpc

__all__ = ["OperatorClient"]


class OperatorClient:
    def __init__(
        self,
        target: str,
        signer: Signer,
        clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
        channel: grpc.Channel | None = None,
        tls: ClientTls | None = None,
    ) -> None:
        self.signer = signer
        self._clock_ms = clock_ms
        self._channel = channel or connect(target, signer, OPERATOR, tls=tls)
        self._stub = xgrpc.ExchangeServiceStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def _event(self, created_at_ms: int | None, **event: object) -> pb.KeyEvent:
        at = created_at_ms if created_at_ms is not None else self._clock_ms()
        return pb.KeyEvent(created_at=ms_to_timestamp(at), **event)  # type: ignore[arg-type]

    def create_group(self, group_id: str, name: str, max_tlp: str, created_at_ms: int | None = None) -> pb.KeyEvent:
        return self._event(
            created_at_ms,
            group_created=pb.GroupCreated(group_id=group_id, display_name=name, max_tlp=by_name(TLP_BY_NAME, max_tlp, "max_tlp")),
        )

    def enrol(
        self, member_id: str, name: str, groups: Sequence[str], role: int = pb.ROLE_MEMBER,
        created_at_ms: int | None = None,
    ) -> pb.KeyEvent:
        return self._event(
            created_at_ms,
            member_enrolled=pb.MemberEnrolled(member_id=member_id, display_name=name, groups=list(groups), role=role),
        )

    def add_key(
        self, member_id: str, public_key: bytes, valid_from_ms: int, created_at_ms: int | None = None
    ) -> pb.KeyEvent:
        return self._event(
            created_at_ms,
            key_added=pb.KeyAdded(member_id=member_id, public_key=public_key, valid_from=ms_to_timestamp(valid_from_ms)),
        )

    def publish(self, events: Iterable[pb.KeyEvent]) -> list[PublishOutcome]:
        envelopes = [sign_envelope(*encode_entry(e), self.signer).raw for e in events]
        return publish_envelopes(self._stub, envelopes)
