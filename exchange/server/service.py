"""The exchange's core service: admission, visibility-filtered reads and the audit log.

No gRPC here: the servicers decode requests, call this, and encode replies. Every
method takes the authenticated principal. Members see what their groups allow;
the operator and auditors see everything.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from exchange.core.entries import OPERATOR
from exchange.core.errors import (
    CheckpointPending,
    KeyNotValid,
    MemberSuspended,
    NotFound,
    OutOfRange,
    PermissionDenied,
    TrustwireError,
    Unavailable,
    UnknownKey,
    WrongMember,
)
from exchange.core.keys import KeyId
from exchange.pb.trustwire.v1 import entries_pb2 as pb
from exchange.server.admission import Admission, Admitted, Outcome
from exchange.server.checkpoints import CheckpointLog, LogCheckpoint
from exchange.server.ledger import Ledger, Stored
from exchange.server.metrics import Activity
from exchange.server.quotas import ReadQuotas
from exchange.server.rejections import RejectionLog

__all__ = ["ExchangeCore", "Page", "ProvenPage"]

log = logging.getLogger(__name__)

PAGE_SCAN = 512  # records read per scan step
MAX_PAGE = 1000
MAX_CHECKPOINTS = 1000
DEFAULT_WAIT_MS = 5_000  # GetCheckpoint(covering_index) and GetInclusionProof wait at most this by default
MAX_WAIT_MS = 10_000  # a waiting call holds a server thread: never longer


@dataclass(frozen=True, slots=True, kw_only=True)
class Page:
    records: list[bytes]
    indices: list[int]
    next_index: int
    head: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ProvenPage:
    """A page of records, a checkpoint covering them, and the proofs that tie them."""

    page: Page
    checkpoint: LogCheckpoint
    inclusion: list[bytes] = field(default_factory=list)  # batch proof of the page's records
    consistency_from: int = 0
    consistency: list[bytes] = field(default_factory=list)


K = TypeVar("K")
V = TypeVar("V")


class _Recent(Generic[K, V]):
    """A small thread-safe LRU of immutable values."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> V:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return value


class ExchangeCore:
    def __init__(
        self,
        ledger: Ledger,
        admission: Admission,
        checkpoints: CheckpointLog,
        clock_ms: Callable[[], int],
        rejections: RejectionLog | None = None,
        activity: Activity | None = None,
        reads: ReadQuotas | None = None,
    ) -> None:
        self.ledger = ledger
        self.admission = admission
        self.checkpoints = checkpoints
        self._clock_ms = clock_ms
        self.rejections = rejections or RejectionLog(clock_ms=clock_ms)
        self.activity = activity or Activity(clock_ms)  # counts and streams for operators (metrics)
        self.rejections.subscribe(self.activity.on_rejection)
        self.reads = reads  # read quotas per principal (None: unlimited)
        self._reads: _Recent[tuple[int, int], list[Stored]] = _Recent(8)  # a few MiB at most
        self._proofs: _Recent[tuple[tuple[int, ...], int, int], tuple[list[bytes], list[bytes]]] = _Recent(64)

    # -- authentication ----------------------------------------------------------------

    def call_key(self, keyid: KeyId) -> bytes:
        """The public key behind ``keyid`` (to check a call signature with)."""
        if keyid == self.admission.operator_keyid:
            return self.admission.operator_key
        info = self.admission.directory.keys.get(keyid)
        if info is None:
            raise UnknownKey(f"key {keyid[:16]}… is not in the key directory")
        return info.public_key

    def authorize_call(self, principal: str, keyid: KeyId) -> None:
        """After the call signature verified: may ``principal`` use ``keyid`` now?"""
        if principal == OPERATOR:
            if keyid != self.admission.operator_keyid:
                raise WrongMember("the operator authenticates with the operator key")
            return
        directory = self.admission.directory
        info = directory.keys.get(keyid)
        if info is None or info.member_id != principal:
            raise WrongMember(f"key {keyid[:16]}… does not belong to {principal}")
        if not info.usable_at(directory.last_index + 1, self._clock_ms()):
            raise KeyNotValid(f"key {keyid[:16]}… of {principal} is revoked or not yet valid")
        member = directory.members.get(info.member_id)
        if member is None or member.suspended:
            raise MemberSuspended(f"member {principal} is suspended")

    # -- writes ------------------------------------------------------------------------

    def publish(self, principal: str, envelopes: Sequence[bytes]) -> list[Outcome]:
        """Admit a batch; the activity record sees every outcome and the latency."""
        admitted = self.activity.track_publish(principal, envelopes, lambda: self._publish(principal, envelopes))
        return [a.outcome for a in admitted]

    def _publish(self, principal: str, envelopes: Sequence[bytes]) -> list[Admitted]:
        if self._role(principal) == pb.ROLE_WITNESS:
            raise PermissionDenied("witnesses do not publish")
        admitted = self.admission.admit(principal, envelopes)
        outcomes = [a.outcome for a in admitted]
        refused = Counter((o.status, o.reason) for o in outcomes if isinstance(o, TrustwireError))
        ids = {key: self.rejections.record(principal, "Publish", *key, count).correlation_id
               for key, count in refused.items()}
        for o in outcomes:
            if isinstance(o, TrustwireError):
                o.correlation_id = ids[(o.status, o.reason)]
        return admitted

    # -- reads -------------------------------------------------------------------------

    def _role(self, principal: str) -> int:
        """ROLE_* of an enrolled principal; the operator counts as an auditor for reads."""
        if principal == OPERATOR:
            return pb.ROLE_AUDITOR
        member = self.admission.directory.members.get(principal)  # type: ignore[call-overload]
        if member is None:
            raise PermissionDenied(f"{principal} is not enrolled")
        return member.role

    def _groups(self, principal: str) -> frozenset[str] | None:
        """The sharing groups whose entries the principal reads; None means everything.

        Scopes: members read what their groups allow, auditors (and the operator)
        read everything, witnesses read no entries at all.
        """
        role = self._role(principal)
        if role == pb.ROLE_AUDITOR:
            return None
        if role != pb.ROLE_MEMBER:
            raise PermissionDenied(f"{principal} is enrolled as {pb.Role.Name(role)} and reads no entries")
        return frozenset(self.admission.directory.groups_of(principal))

    def require_full_view(self, principal: str) -> None:
        if self._groups(principal) is not None:
            raise PermissionDenied("only auditors and the operator read the whole ledger")

    def page(self, principal: str, start: int, limit: int, until: int | None = None) -> Page:
        """Up to ``limit`` visible records in ``[start, until)``, scanning a bounded window."""
        groups = self._groups(principal)
        head = self.ledger.head()
        end = head if until is None else min(until, head)
        if start > head:
            raise OutOfRange(f"from_index {start} is beyond the ledger head {head}")
        limit = max(1, min(limit or MAX_PAGE, MAX_PAGE))
        out: list[bytes] = []
        indices: list[int] = []
        cursor = start
        scanned = 0
        while cursor < end and len(out) < limit and scanned < 20 * MAX_PAGE:
            rows = self._read(cursor, min(PAGE_SCAN, end - cursor))
            if not rows:
                break
            for row in rows:
                if len(out) >= limit:
                    break
                cursor = row.index + 1
                scanned += 1
                if groups is None or row.visible_to(principal, groups):
                    out.append(row.record)
                    indices.append(row.index)
        return Page(records=out, indices=indices, next_index=cursor, head=head)

    def start_stream(self, principal: str) -> frozenset[str] | None:
        """A Subscribe stream starts: charge the read quota; the groups it reads."""
        self._read_quota(principal, "subscribe")
        return self._groups(principal)

    def recheck_stream(self, principal: str, keyid: KeyId, groups: frozenset[str] | None) -> None:
        """Before each page of a stream: may the caller still read what it started reading?

        Raises as the call itself would now be refused (suspension, key retired, revoked
        or expired), or PermissionDenied when the caller lost a group the stream reads.
        """
        self.authorize_call(principal, keyid)
        now = self._groups(principal)
        if groups is None and now is None:
            return
        if groups is None or now is None or not groups <= now:
            raise PermissionDenied(f"{principal}'s sharing groups changed; subscribe again")

    def covering_checkpoint(self, size: int) -> LogCheckpoint | None:
        """The latest checkpoint if it covers ``size`` entries, without waiting."""
        latest = self.checkpoints.latest()
        return latest if latest is not None and latest.size >= size else None

    def _read_quota(self, principal: str, kind: str) -> None:
        if self.reads is not None:
            self.reads.take(principal, kind)

    def _checkpoint_covering(self, size: int) -> LogCheckpoint:
        """The latest checkpoint, once it covers ``size`` entries (the log trails by ms)."""
        latest = self.checkpoints.latest()
        if latest is None or latest.size < size:
            latest = self.checkpoints.wait_for(size, timeout=5.0)
        if latest is None or latest.size < size:
            raise Unavailable(f"the audit log has not yet signed a checkpoint covering {size} entries; retry")
        return latest

    def _read(self, start: int, limit: int) -> list[Stored]:
        """Ledger rows; a complete read is shared (the ledger is append-only), so the many
        streams a checkpoint wakes at the same cursor read it once."""
        key = (start, limit)
        rows = self._reads.get(key)
        if rows is None:
            rows = self.ledger.read(start, limit)
            if len(rows) == limit:
                self._reads.put(key, rows)
        return rows

    def prove(self, page: Page, checkpoint: LogCheckpoint, proven_to: int) -> ProvenPage:
        """Proofs tying a page to its checkpoint (shared by streams asking the same)."""
        key = (tuple(page.indices), checkpoint.size, proven_to)
        proofs = self._proofs.get(key)
        if proofs is None:
            tree = self.checkpoints.tree
            inclusion = tree.batch_inclusion_proof(page.indices, checkpoint.size) if page.indices else []
            consistency = (
                tree.consistency_proof(proven_to, checkpoint.size) if 0 < proven_to < checkpoint.size else []
            )
            proofs = self._proofs.put(key, (inclusion, consistency))
        inclusion, consistency = proofs
        return ProvenPage(
            page=page, checkpoint=checkpoint, inclusion=inclusion, consistency_from=proven_to, consistency=consistency
        )

    def key_event_records(self, principal: str, until: int) -> tuple[list[bytes], int]:
        self._groups(principal)
        head = self.ledger.head()
        # clamp: until_index is a uint64 and SQLite integers are signed 64-bit
        return self.ledger.key_event_records(min(until or head, head)), head

    # -- audit -------------------------------------------------------------------------

    def latest_checkpoint(self, principal: str, covering_index: int | None = None, wait_ms: int = 0) -> LogCheckpoint:
        """The latest checkpoint; with ``covering_index``, the first one whose tree holds that index."""
        self._role(principal)  # every enrolled principal, witnesses included
        if covering_index is None:
            return self._checkpoint_covering(0)
        return self._checkpoint_for_index(covering_index, wait_ms)

    def _checkpoint_for_index(self, index: int, wait_ms: int = 0) -> LogCheckpoint:
        """Wait (bounded) for a checkpoint covering ``index``; say why if none comes."""
        head = self.ledger.head()
        if index >= head:
            raise OutOfRange(f"index {index} is beyond the ledger head {head}")
        latest = self.checkpoints.latest()
        if latest is None or latest.size <= index:
            wait_s = min(wait_ms or DEFAULT_WAIT_MS, MAX_WAIT_MS) / 1000
            latest = self.checkpoints.wait_for(index + 1, timeout=wait_s)
        if latest is None or latest.size <= index:
            size = 0 if latest is None else latest.size
            raise CheckpointPending(
                f"entry {index} is in the ledger but the latest checkpoint covers {size} entries; retry shortly"
            )
        return latest

    def list_checkpoints(self, principal: str, from_size: int, limit: int) -> list[LogCheckpoint]:
        self._role(principal)
        return self.checkpoints.checkpoints(from_size, max(1, min(limit or MAX_CHECKPOINTS, MAX_CHECKPOINTS)))

    def _tree_size(self, requested: int) -> int:
        latest = self._checkpoint_covering(0)
        size = requested or latest.size
        if size > latest.size:
            raise OutOfRange(f"tree size {size} is beyond the latest checkpoint ({latest.size})")
        return size

    def inclusion_proof(self, principal: str, index: int, tree_size: int) -> tuple[int, list[bytes]]:
        """Audit path of ``index``; with ``tree_size`` 0, in the first checkpoint that covers it.

        Answers, in this order: OUT_OF_RANGE past the ledger head; NOT_FOUND for an
        entry the caller may not see; OUT_OF_RANGE for an explicit tree size that
        does not hold the index; CHECKPOINT_PENDING while no checkpoint covers it yet.
        """
        groups = self._groups(principal)
        self._read_quota(principal, "proof")
        head = self.ledger.head()
        if index >= head:
            raise OutOfRange(f"index {index} is beyond the ledger head {head}")
        if groups is not None:
            rows = self.ledger.read(index, 1)
            if not rows or not rows[0].visible_to(principal, groups):
                raise NotFound(f"no entry {index} visible to {principal}")
        if tree_size:
            size = self._tree_size(tree_size)
            if index >= size:
                raise OutOfRange(f"index {index} is not in a tree of size {size}")
        else:
            size = self._checkpoint_for_index(index).size
        return size, self.checkpoints.tree.inclusion_proof(index, size)

    def consistency_proof(self, principal: str, old_size: int, new_size: int) -> tuple[int, list[bytes]]:
        self._role(principal)
        self._read_quota(principal, "proof")
        size = self._tree_size(new_size)
        if old_size > size:
            raise OutOfRange(f"old size {old_size} is larger than new size {size}")
        return size, self.checkpoints.tree.consistency_proof(old_size, size)

    def all_entries(self, principal: str, start: int, limit: int) -> Page:
        self.require_full_view(principal)
        self._read_quota(principal, "all_entries")
        return self.page(principal, start, limit)
