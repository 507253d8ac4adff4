"""The key directory: a projection of operator-signed KeyEvents in ledger order.

Server and clients build it the same way, from the same verified events, so a
member re-checks every admission rule from a directory it verified itself. Each
fact remembers the ledger index it took effect at, which answers "was this key
valid for this member at index i?".
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from exchange.core.entries import GroupId, MemberId, group_id, member_id, timestamp_to_ms
from exchange.core.errors import (
    GroupNotAllowed,
    InvalidKeyEvent,
    InvalidValue,
    KeyNotValid,
    MemberSuspended,
    PermissionDenied,
    TlpNotAllowed,
    UnknownKey,
    WrongMember,
)
from exchange.core.keys import KeyId, key_id, parse_public_key
from exchange.pb.trustwire.v1 import entries_pb2 as pb

__all__ = ["GroupInfo", "KeyDirectory", "KeyInfo", "MemberInfo"]


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyInfo:
    """One key's validity, tightened monotonically by its KeyRevoked events.

    ``revoked_index`` is the first KeyRevoked; ``end_index`` the first that ends the key
    at its own index (compromised, or without ``revoked_at``); ``revoked_at_ms`` the
    earliest ``revoked_at`` of a non-compromised revocation (a rotation's overlap);
    ``compromised_index`` the first KeyRevoked that marked the key compromised.
    """

    keyid: KeyId
    member_id: MemberId
    public_key: bytes = field(repr=False)
    valid_from_ms: int
    added_index: int
    revoked_index: int | None = None
    revoked_at_ms: int | None = None  # retired keys stay valid until then (rotation overlap)
    end_index: int | None = None
    compromised: bool = False
    compromised_index: int | None = None
    compromised_since_index: int | None = None
    compromised_since_ms: int | None = None

    def usable_at(self, index: int, at_ms: int) -> bool:
        """May this key sign the entry accepted at (index, at_ms)?"""
        if index <= self.added_index or at_ms < self.valid_from_ms:
            return False
        if self.tainted(index, at_ms):
            return False
        if self.end_index is not None and index >= self.end_index:
            return False
        return self.revoked_at_ms is None or at_ms < self.revoked_at_ms

    def tainted(self, index: int, at_ms: int) -> bool:
        """Was an entry at (index, at_ms) signed after this key was compromised?"""
        if not self.compromised:
            return False
        if self.compromised_since_index is not None and index >= self.compromised_since_index:
            return True
        return self.compromised_since_ms is not None and at_ms >= self.compromised_since_ms

    def tightened(self, e: pb.KeyRevoked, index: int) -> KeyInfo:
        """This key after the KeyRevoked ``e`` at ``index``: every bound is the tighter of
        the old and the new one, so a later event never loosens (``revoked_at`` only moves
        earlier, compromise is never lifted, ``compromised_since`` only moves earlier).
        Raise InvalidKeyEvent for an event that tightens nothing."""
        # presence-aware: absent is "no index bound", an explicit 0 is "from index 0"
        since_index = e.compromised_since_index if e.compromised and e.HasField("compromised_since_index") else None
        since_ms = timestamp_to_ms(e.compromised_since) if e.compromised and e.HasField("compromised_since") else None
        if e.compromised and since_index is None and since_ms is None:
            raise InvalidKeyEvent("a compromised key needs compromised_since_index or compromised_since")
        if since_index is not None and since_index > index:
            raise InvalidKeyEvent("compromised_since_index is after the revocation")
        if not e.compromised and (e.HasField("compromised_since_index") or e.HasField("compromised_since")):
            raise InvalidKeyEvent("compromised_since is only for compromised keys")
        revoked_at = timestamp_to_ms(e.revoked_at) if e.HasField("revoked_at") else None
        ends_here = e.compromised or revoked_at is None
        after = replace(
            self,
            revoked_index=self.revoked_index if self.revoked_index is not None else index,
            end_index=_earliest(self.end_index, index if ends_here else None),
            revoked_at_ms=_earliest(self.revoked_at_ms, None if e.compromised else revoked_at),
            compromised=self.compromised or e.compromised,
            compromised_index=_earliest(self.compromised_index, index if e.compromised else None),
            compromised_since_index=_earliest(self.compromised_since_index, since_index),
            compromised_since_ms=_earliest(self.compromised_since_ms, since_ms),
        )
        if self.revoked_index is not None and _bounds(after) == _bounds(self):
            raise InvalidKeyEvent("key is already revoked at least this tightly (a KeyRevoked may only tighten)")
        return after


def _earliest(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)


def _bounds(k: KeyInfo) -> tuple[object, ...]:
    return (k.end_index, k.revoked_at_ms, k.compromised, k.compromised_since_index, k.compromised_since_ms)


@dataclass(frozen=True, slots=True, kw_only=True)
class MemberInfo:
    member_id: MemberId
    display_name: str
    role: int
    groups: frozenset[GroupId]
    enrolled_index: int
    suspended: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupInfo:
    group_id: GroupId
    display_name: str
    max_tlp: int
    created_index: int
    retired: bool = False


class KeyDirectory:
    """Members, their keys and the sharing groups, as of the last applied event."""

    def __init__(self) -> None:
        self.keys: dict[KeyId, KeyInfo] = {}
        self.members: dict[MemberId, MemberInfo] = {}
        self.groups: dict[GroupId, GroupInfo] = {}
        self.last_index = -1

    def clone(self) -> KeyDirectory:
        other = KeyDirectory()
        other.keys = dict(self.keys)
        other.members = dict(self.members)
        other.groups = dict(self.groups)
        other.last_index = self.last_index
        return other

    # -- projection -----------------------------------------------------------------

    def apply(self, event: pb.KeyEvent, index: int) -> None:
        """Apply one verified event accepted at ``index``; raise InvalidKeyEvent if it
        contradicts the directory (the directory is then unchanged)."""
        if index <= self.last_index:
            raise InvalidKeyEvent(f"key event at index {index} is not after {self.last_index}")
        which = event.WhichOneof("event")
        try:
            if which == "member_enrolled":
                self._enrol(event.member_enrolled, index)
            elif which == "key_added":
                self._add_key(event.key_added, index)
            elif which == "key_revoked":
                self._revoke(event.key_revoked, index)
            elif which == "member_suspended":
                self._set_suspended(event.member_suspended.member_id, True)
            elif which == "member_reinstated":
                self._set_suspended(event.member_reinstated.member_id, False)
            elif which == "groups_set":
                m = self._member(event.groups_set.member_id)
                self.members[m.member_id] = replace(m, groups=self._live_groups(event.groups_set.groups))
            elif which == "group_created":
                self._create_group(event.group_created, index)
            elif which == "group_retired":
                g = self._group(event.group_retired.group_id)
                self.groups[g.group_id] = replace(g, retired=True)
            else:
                raise InvalidKeyEvent("key event carries no event")
        except InvalidValue as exc:
            raise InvalidKeyEvent(f"{which}: {exc.message}") from exc
        self.last_index = index

    def check(self, event: pb.KeyEvent) -> None:
        """Raise InvalidKeyEvent unless ``event`` would apply cleanly next."""
        self.clone().apply(event, self.last_index + 1)

    def _enrol(self, e: pb.MemberEnrolled, index: int) -> None:
        mid = member_id(e.member_id)
        if mid in self.members or mid == "operator":
            raise InvalidKeyEvent(f"member {mid} is already enrolled")
        if e.role == pb.ROLE_UNSPECIFIED or e.role not in pb.Role.values():
            raise InvalidKeyEvent("member_enrolled needs a role")
        self.members[mid] = MemberInfo(
            member_id=mid,
            display_name=e.display_name[:128],
            role=e.role,
            groups=self._live_groups(e.groups),
            enrolled_index=index,
        )

    def _add_key(self, e: pb.KeyAdded, index: int) -> None:
        m = self._member(e.member_id)
        public_key = parse_public_key(e.public_key)
        kid = key_id(public_key)
        if kid in self.keys:
            raise InvalidKeyEvent("key is already in the directory")
        self.keys[kid] = KeyInfo(
            keyid=kid,
            member_id=m.member_id,
            public_key=public_key,
            valid_from_ms=timestamp_to_ms(e.valid_from),
            added_index=index,
        )

    def _revoke(self, e: pb.KeyRevoked, index: int) -> None:
        k = self.keys.get(KeyId(e.keyid))
        if k is None or k.member_id != e.member_id:
            raise InvalidKeyEvent("key_revoked names a key the member does not hold")
        self.keys[k.keyid] = k.tightened(e, index)

    def _set_suspended(self, mid: str, suspended: bool) -> None:
        m = self._member(mid)
        if m.suspended == suspended:
            raise InvalidKeyEvent(f"member {mid} is already {'suspended' if suspended else 'active'}")
        self.members[m.member_id] = replace(m, suspended=suspended)

    def _create_group(self, e: pb.GroupCreated, index: int) -> None:
        gid = group_id(e.group_id)
        if gid in self.groups:
            raise InvalidKeyEvent(f"group {gid} already exists")
        if e.max_tlp == pb.TLP_UNSPECIFIED or e.max_tlp not in pb.Tlp.values():
            raise InvalidKeyEvent("group_created needs max_tlp")
        self.groups[gid] = GroupInfo(
            group_id=gid, display_name=e.display_name[:128], max_tlp=e.max_tlp, created_index=index
        )

    def _live_groups(self, ids: object) -> frozenset[GroupId]:
        out = set()
        for raw in ids:  # type: ignore[attr-defined]
            g = self._group(raw)
            if g.retired:
                raise InvalidKeyEvent(f"group {g.group_id} is retired")
            out.add(g.group_id)
        return frozenset(out)

    def _member(self, mid: str) -> MemberInfo:
        m = self.members.get(MemberId(mid))
        if m is None:
            raise InvalidKeyEvent(f"member {mid!r} is not enrolled")
        return m

    def _group(self, gid: str) -> GroupInfo:
        g = self.groups.get(GroupId(gid))
        if g is None:
            raise InvalidKeyEvent(f"group {gid!r} does not exist")
        return g

    # -- queries --------------------------------------------------------------------

    def signing_key(self, keyid: KeyId, publisher: MemberId, index: int, at_ms: int) -> KeyInfo:
        """The key ``keyid`` if ``publisher`` may sign with it at (index, at_ms)."""
        k = self.keys.get(keyid)
        if k is None:
            raise UnknownKey(f"key {keyid[:16]}… is not in the key directory")
        if k.member_id != publisher:
            raise WrongMember(f"key {keyid[:16]}… belongs to member {k.member_id}, not {publisher}")
        if not k.usable_at(index, at_ms):
            raise KeyNotValid(f"key {keyid[:16]}… of member {publisher} is not valid at index {index}")
        m = self.members.get(publisher)
        if m is None or m.suspended:
            raise MemberSuspended(f"member {publisher} is suspended")
        if m.role != pb.ROLE_MEMBER:
            raise PermissionDenied(f"{publisher} is enrolled as {pb.Role.Name(m.role)}; only members publish")
        return k

    def check_sharing(self, publisher: MemberId, sharing: pb.Sharing) -> None:
        """Raise unless ``publisher`` may publish into these groups at this TLP."""
        m = self.members.get(publisher)
        for gid in sharing.groups:
            g = self.groups.get(GroupId(gid))
            if g is None or g.retired:
                raise GroupNotAllowed(f"sharing group {gid} does not exist")
            if m is None or g.group_id not in m.groups:
                raise GroupNotAllowed(f"member {publisher} is not in sharing group {gid}")
            if sharing.tlp > g.max_tlp:
                raise TlpNotAllowed(
                    f"group {gid} allows TLP up to {pb.Tlp.Name(g.max_tlp)}, got {pb.Tlp.Name(sharing.tlp)}"
                )

    def groups_of(self, mid: str) -> frozenset[GroupId]:
        m = self.members.get(MemberId(mid))
        return m.groups if m else frozenset()
