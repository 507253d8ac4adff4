"""The operator's client: operator-signed KeyEvents (enrolment, keys, groups)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence

import grpc

from clients.transport import DEFAULT_ORIGIN, ClientTls, PublishOutcome, connect, publish_envelopes, translate_errors
from exchange.core.dsse import sign_envelope
from exchange.core.entries import OPERATOR, TLP_BY_NAME, by_name, encode_entry, ms_to_timestamp
from exchange.core.keydir import KeyDirectory
from exchange.core.keys import Signer
from exchange.core.verify import EntryVerifier
from exchange.pb.trustwire.v1 import entries_pb2 as pb
from exchange.pb.trustwire.v1 import exchange_pb2 as xpb
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
        origin: str = DEFAULT_ORIGIN,
    ) -> None:
        self.signer = signer
        self._clock_ms = clock_ms
        self._channel = channel or connect(target, signer, OPERATOR, tls=tls, origin=origin)
        self._stub = xgrpc.ExchangeServiceStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def now_ms(self) -> int:
        return self._clock_ms()

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

    def revoke_key(
        self,
        member_id: str,
        keyid: str,
        *,
        at_ms: int | None = None,
        compromised_since_index: int | None = None,
        compromised_since_ms: int | None = None,
        created_at_ms: int | None = None,
    ) -> pb.KeyEvent:
        """Retire a key at ``at_ms`` (default now; may be in the future), or revoke it as
        compromised since an index or a time (what it signed since then is flagged)."""
        compromised = compromised_since_index is not None or compromised_since_ms is not None
        revoked = pb.KeyRevoked(
            member_id=member_id,
            keyid=keyid,
            revoked_at=ms_to_timestamp(at_ms if at_ms is not None else self._clock_ms()),
            compromised=compromised,
        )
        if compromised_since_index is not None:  # presence-aware: 0 means "from index 0"
            revoked.compromised_since_index = compromised_since_index
        if compromised_since_ms is not None:
            revoked.compromised_since.CopyFrom(ms_to_timestamp(compromised_since_ms))
        return self._event(created_at_ms, key_revoked=revoked)

    def rotate_key(
        self, member_id: str, old_keyid: str, new_public_key: bytes, overlap_ms: int, created_at_ms: int | None = None
    ) -> list[pb.KeyEvent]:
        """New key valid now; the old one retired after ``overlap_ms`` (both sign meanwhile)."""
        now = self._clock_ms()
        return [
            self.add_key(member_id, new_public_key, now, created_at_ms),
            self.revoke_key(member_id, old_keyid, at_ms=now + overlap_ms, created_at_ms=created_at_ms),
        ]

    def suspend(self, member_id: str, created_at_ms: int | None = None) -> pb.KeyEvent:
        return self._event(created_at_ms, member_suspended=pb.MemberSuspended(member_id=member_id))

    def reinstate(self, member_id: str, created_at_ms: int | None = None) -> pb.KeyEvent:
        return self._event(created_at_ms, member_reinstated=pb.MemberReinstated(member_id=member_id))

    def set_groups(self, member_id: str, groups: Sequence[str], created_at_ms: int | None = None) -> pb.KeyEvent:
        return self._event(created_at_ms, groups_set=pb.GroupsSet(member_id=member_id, groups=list(groups)))

    def retire_group(self, group_id: str, created_at_ms: int | None = None) -> pb.KeyEvent:
        return self._event(created_at_ms, group_retired=pb.GroupRetired(group_id=group_id))

    def publish(self, events: Iterable[pb.KeyEvent]) -> list[PublishOutcome]:
        """Sign key events with the operator key and publish them."""
        return self.publish_envelopes([sign_envelope(*encode_entry(e), self.signer).raw for e in events])

    def publish_envelopes(self, envelopes: Sequence[bytes]) -> list[PublishOutcome]:
        return publish_envelopes(self._stub, envelopes)

    def directory(self) -> KeyDirectory:
        """The key directory, rebuilt here from operator-signed key events (verified)."""
        with translate_errors():
            reply = self._stub.GetKeyDirectory(xpb.GetKeyDirectoryRequest(), timeout=60)
        verifier = EntryVerifier(self.signer.public_key)
        for raw in reply.records:
            verifier.verify(raw)
        return verifier.directory
