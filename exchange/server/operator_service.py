"""The operator's view of a running exchange (``trustwire.v1.OperatorService``).

:class:`OperatorStatus` computes a snapshot from what the process already keeps
(the :class:`~exchange.server.metrics.Activity` record, the ledger, the audit log,
the key directory and the rejection ring) and decides the alerts; the servicer only
checks that the caller is the operator, and encodes.

Alerts (levels as ``trustwire ops status`` maps them to exit codes):

    member-silent     warning   an enrolled, active member has had nothing accepted for
                                ``silent_after_s`` (counted from the process start
                                when it published nothing since)
    lag-growing       warning   a subscriber stream's last three lag readings rose
    checkpoint-stale  critical  entries have waited ``checkpoint_max_age_s`` for a signed
                                checkpoint (an idle log legitimately keeps an old one)
    no-checkpoint     critical  the log has signed no checkpoint at all
    witness-down      warning   a witness failed its latest cosignature request(s)
    streams-refused   warning   a stream cap refused streams within the window
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from typing import Any

import grpc

from exchange.core.callauth import CallCredentials
from exchange.core.entries import OPERATOR
from exchange.core.errors import LedgerCorrupt, MalformedRecord, PermissionDenied
from exchange.core.records import Record
from exchange.pb.trustwire.v1 import entries_pb2 as pb
from exchange.pb.trustwire.v1 import operator_pb2 as opb
from exchange.server.gate import Gate
from exchange.server.integrity import VerificationState
from exchange.server.metrics import EngineMetricsSource, EngineSample, StreamView
from exchange.server.service import ExchangeCore

__all__ = ["Alert", "MemberRow", "OperatorServicer", "OperatorStatus", "Status", "Thresholds"]

log = logging.getLogger(__name__)

DEFAULT_WINDOW_S = 60
MAX_WINDOW_S = 900
DEFAULT_SILENT_AFTER_S = 1800
DEFAULT_CHECKPOINT_MAX_AGE_S = 60
DEFAULT_REJECTIONS = 100
MAX_REJECTIONS = 1000

WARNING = opb.ALERT_LEVEL_WARNING
CRITICAL = opb.ALERT_LEVEL_CRITICAL


@dataclass(frozen=True, slots=True, kw_only=True)
class Thresholds:
    window_s: int = DEFAULT_WINDOW_S
    silent_after_s: int = DEFAULT_SILENT_AFTER_S
    checkpoint_max_age_s: int = DEFAULT_CHECKPOINT_MAX_AGE_S

    @classmethod
    def from_request(cls, r: opb.GetStatusRequest) -> Thresholds:
        return cls(
            window_s=min(r.window_s or DEFAULT_WINDOW_S, MAX_WINDOW_S),
            silent_after_s=r.silent_after_s or DEFAULT_SILENT_AFTER_S,
            checkpoint_max_age_s=r.checkpoint_max_age_s or DEFAULT_CHECKPOINT_MAX_AGE_S,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class MemberRow:
    member_id: str
    role: str
    suspended: bool
    accepted_total: int
    accepted_in_window: int
    rate_per_s: float
    rejected_total: int
    duplicates_total: int
    last_accepted_ms: int
    accepted_by_type: dict[str, int]
    rejected_by_reason: dict[str, int]


@dataclass(frozen=True, slots=True, kw_only=True)
class Alert:
    level: opb.AlertLevel.ValueType
    kind: str
    subject: str
    message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Status:
    origin: str
    engine: str
    now_ms: int
    started_ms: int
    window_s: int
    ledger_head: int
    checkpoint_size: int
    checkpoint_signed_ms: int
    uncovered_since_ms: int
    members: list[MemberRow]
    rejects: list[tuple[str, int, int]]  # (reason, total, in window)
    subscribers: list[StreamView]
    alerts: list[Alert] = field(default_factory=list)
    engine_figures: list[EngineSample] = field(default_factory=list)


def _ago(ms: int) -> str:
    s = ms // 1000
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m"
    return f"{s // 3600}h"


class OperatorStatus:
    def __init__(
        self,
        core: ExchangeCore,
        *,
        engine: str,
        origin: str,
        serving_alerts: Callable[[int, int], list[Alert]] = lambda now_ms, window_s: [],
    ) -> None:
        """``serving_alerts(now_ms, window_s)`` adds the serving layer's alerts (witnesses, stream caps)."""
        self._core = core
        self._engine = engine
        self._origin = origin
        self._serving_alerts = serving_alerts

    def status(self, t: Thresholds) -> Status:
        core = self._core
        activity = core.activity
        now = activity.now_ms()
        head = core.ledger.head()
        accepted, rejected, duplicates, _ = activity.snapshot()
        recent = activity.recent(t.window_s)
        directory = core.admission.directory

        by_member: dict[str, dict[str, Counter[str]]] = {}

        def row(m: str) -> dict[str, Counter[str]]:
            return by_member.setdefault(m, {"accepted": Counter(), "rejected": Counter()})

        for (member, kind), n in accepted.items():
            row(member)["accepted"][kind] += n
        for (member, _kind, reason), n in rejected.items():
            row(member)["rejected"][reason] += n
        for m in directory.members:
            row(m)
        members = []
        for member_id in sorted(by_member):
            info = directory.members.get(member_id)  # type: ignore[call-overload]
            if member_id == OPERATOR:
                role = "operator"
            elif info is None:
                role = "unknown"
            else:
                role = pb.Role.Name(info.role).removeprefix("ROLE_").lower()
            in_window, last_ms = recent.get(member_id, (0, 0))
            counts = by_member[member_id]
            members.append(
                MemberRow(
                    member_id=member_id, role=role, suspended=bool(info and info.suspended),
                    accepted_total=sum(counts["accepted"].values()), accepted_in_window=in_window,
                    rate_per_s=in_window / t.window_s, rejected_total=sum(counts["rejected"].values()),
                    duplicates_total=duplicates.get(member_id, 0), last_accepted_ms=last_ms,
                    accepted_by_type=dict(sorted(counts["accepted"].items())),
                    rejected_by_reason=dict(sorted(counts["rejected"].items())),
                )
            )

        totals: Counter[str] = Counter()
        for (_member, reason), n in dict(core.rejections.totals).items():  # a copy: the ring keeps counting
            totals[reason] += n
        windowed: Counter[str] = Counter()
        for e in core.rejections.since(now - t.window_s * 1000, limit=1_000_000):
            windowed[e.reason] += e.count
        rejects = sorted(((r, n, windowed.get(r, 0)) for r, n in totals.items()), key=lambda x: (-x[1], x[0]))

        latest = core.checkpoints.latest()
        cp_size = latest.size if latest else 0
        uncovered_since = self._uncovered_since(cp_size, head)
        status = Status(
            origin=self._origin, engine=self._engine, now_ms=now, started_ms=activity.started_ms,
            window_s=t.window_s, ledger_head=head, checkpoint_size=cp_size,
            checkpoint_signed_ms=latest.signed_at_ms if latest else 0, uncovered_since_ms=uncovered_since,
            members=members, rejects=rejects, subscribers=activity.streams(head),
            engine_figures=self._engine_figures(),
        )
        status.alerts.extend(self._alerts(status, t))
        status.alerts.extend(self._verification_alerts())
        return status

    def _engine_figures(self) -> list[EngineSample]:
        """What the ledger engine reports of itself (as /metrics has it); none if it cannot say."""
        ledger = self._core.ledger
        if not isinstance(ledger, EngineMetricsSource):
            return []
        try:
            return list(ledger.engine_metrics())
        except Exception:  # noqa: BLE001 - a status must not fail because the engine could not answer
            log.warning("engine figures from %s failed", type(ledger).__name__, exc_info=True)
            return []

    def _verification_alerts(self) -> list[Alert]:
        """The full ledger verification (after a crash): running, or failed."""
        v = self._core.checkpoints.verification
        if v.state is VerificationState.FAILED:
            return [Alert(level=CRITICAL, kind="verification-failed", subject="",
                          message=f"full ledger verification failed: {v.message}; the next start re-checks"
                                  " everything and refuses a corrupt ledger")]
        if v.state is VerificationState.RUNNING:
            return [Alert(level=WARNING, kind="verification-running", subject="",
                          message=f"full ledger verification after a crash: {v.checked} of {v.total} entries")]
        return []

    def _uncovered_since(self, cp_size: int, head: int) -> int:
        if head <= cp_size:
            return 0
        rows = self._core.ledger.read(cp_size, 1)
        if not rows:
            return 0
        try:
            return Record.decode(rows[0].record).accepted_at_ms
        except (MalformedRecord, LedgerCorrupt):
            return 0

    def _alerts(self, s: Status, t: Thresholds) -> list[Alert]:
        alerts: list[Alert] = []
        if s.checkpoint_signed_ms == 0 and s.ledger_head > 0:
            alerts.append(Alert(level=CRITICAL, kind="no-checkpoint", subject="",
                                message=f"the log has signed no checkpoint for its {s.ledger_head} entries"))
        elif s.uncovered_since_ms and s.now_ms - s.uncovered_since_ms > t.checkpoint_max_age_s * 1000:
            waiting = s.ledger_head - s.checkpoint_size
            alerts.append(Alert(
                level=CRITICAL, kind="checkpoint-stale", subject="",
                message=f"{waiting} entries have waited {_ago(s.now_ms - s.uncovered_since_ms)} for a checkpoint"
                        f" (newest covers {s.checkpoint_size}, signed {_ago(s.now_ms - s.checkpoint_signed_ms)} ago)",
            ))
        for sub in s.subscribers:
            if sub.lag_growing:
                alerts.append(Alert(
                    level=WARNING, kind="lag-growing", subject=sub.stream_id,
                    message=f"{sub.member} stream {sub.stream_id} falls behind: lag "
                            + " → ".join(str(x) for x in sub.readings[-3:]),
                ))
        for m in s.members:
            if m.role != "member" or m.suspended:
                continue
            since = m.last_accepted_ms or s.started_ms
            if s.now_ms - since >= t.silent_after_s * 1000:
                what = "since the exchange started" if not m.last_accepted_ms else f"for {_ago(s.now_ms - since)}"
                alerts.append(Alert(level=WARNING, kind="member-silent", subject=m.member_id,
                                    message=f"{m.member_id} has published nothing {what}"))
        alerts.extend(self._serving_alerts(s.now_ms, t.window_s))
        return sorted(alerts, key=lambda a: (-a.level, a.kind, a.subject))


# -- gRPC -----------------------------------------------------------------------------------------


def encode_status(s: Status) -> opb.GetStatusResponse:
    return opb.GetStatusResponse(
        origin=s.origin, engine=s.engine, now_ms=s.now_ms, started_ms=s.started_ms, window_s=s.window_s,
        ledger_head=s.ledger_head, checkpoint_size=s.checkpoint_size, checkpoint_signed_ms=s.checkpoint_signed_ms,
        uncovered_entries=max(0, s.ledger_head - s.checkpoint_size), uncovered_since_ms=s.uncovered_since_ms,
        members=[
            opb.MemberActivity(
                member_id=m.member_id, role=m.role, suspended=m.suspended, accepted_total=m.accepted_total,
                accepted_in_window=m.accepted_in_window, rate_per_s=m.rate_per_s, rejected_total=m.rejected_total,
                last_accepted_ms=m.last_accepted_ms, accepted_by_type=m.accepted_by_type,
                rejected_by_reason=m.rejected_by_reason, duplicates_total=m.duplicates_total,
            )
            for m in s.members
        ],
        rejects=[opb.RejectCount(reason=r, total=n, in_window=w) for r, n, w in s.rejects],
        subscribers=[
            opb.SubscriberStatus(
                stream_id=v.stream_id, member_id=v.member, cursor=v.cursor, lag=v.lag,
                connected_since_ms=v.opened_ms, recent_lag=list(v.readings), lag_growing=v.lag_growing,
            )
            for v in s.subscribers
        ],
        alerts=[opb.Alert(level=a.level, kind=a.kind, subject=a.subject, message=a.message) for a in s.alerts],
        engine_figures=[opb.EngineFigure(name=f.name, value=f.value, labels=dict(f.labels)) for f in s.engine_figures],
    )


class OperatorServicer:
    """Operator principal only; decode, compute, encode."""

    def __init__(self, status: OperatorStatus, core: ExchangeCore) -> None:
        self._status = status
        self._core = core

    def handler(self, gate: Gate) -> grpc.GenericRpcHandler[Any, Any]:
        return gate.service(
            opb.DESCRIPTOR.services_by_name["OperatorService"],
            {"GetStatus": self.get_status, "ListRejections": self.list_rejections},
        )

    @staticmethod
    def _require_operator(caller: CallCredentials) -> None:
        if caller.principal != OPERATOR:
            raise PermissionDenied("only the operator reads the exchange's operational status")

    def get_status(self, caller: CallCredentials, request: opb.GetStatusRequest) -> opb.GetStatusResponse:
        self._require_operator(caller)
        return encode_status(self._status.status(Thresholds.from_request(request)))

    def list_rejections(
        self, caller: CallCredentials, request: opb.ListRejectionsRequest
    ) -> opb.ListRejectionsResponse:
        self._require_operator(caller)
        limit = min(request.limit or DEFAULT_REJECTIONS, MAX_REJECTIONS)
        events = self._core.rejections.since(request.since_ms, limit)
        return opb.ListRejectionsResponse(
            events=[
                opb.RejectionEvent(
                    at_ms=e.at_ms, member_id=e.member, method=e.method, status=e.status, reason=e.reason,
                    correlation_id=e.correlation_id, count=e.count,
                )
                for e in events
            ]
        )
