"""``trustwire ops top | status | rejects``: the operator's live view of an exchange.

All three read ``trustwire.v1.OperatorService`` with the operator key, like the other
``ops`` commands (``--exchange``, ``--operator-key-file``, ``--config``, TLS settings).

    ops top       a terminal view refreshed every second (rich): publish rate per member,
                  rejects by reason, lag per subscriber stream, checkpoint age, alerts.
                  ``--once --json`` prints the same snapshot once, for scripts; without a
                  terminal it prints a snapshot per interval (``--iterations`` bounds it).
    ops status    a one-screen health summary whose exit code monitoring can use:

                      0  OK        no alert
                      1  WARNING   a member is silent, or a subscriber's lag keeps growing
                      2  CRITICAL  entries wait too long for a checkpoint, the log has none,
                                   or the exchange cannot be reached
                      3  UNKNOWN   the status could not be read (bad key, not the operator, …)

                  (the Nagios / Icinga plugin convention, so the command is a check as is).
    ops rejects   rejection events since ``--since 10m`` (or an ISO 8601 time): member,
                  method, status, reason, count and correlation id; never payloads.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import IntEnum
from typing import Any

from clients.cli.ops_config import duration_ms, operator_credentials
from clients.jsonl import parse_time_ms
from clients.transport import DEFAULT_ORIGIN, ClientTls, connect, translate_errors
from exchange.core.entries import OPERATOR
from exchange.core.errors import InvalidInput, TrustwireError, Unavailable
from exchange.core.keys import Signer
from exchange.pb.trustwire.v1 import operator_pb2 as opb
from exchange.pb.trustwire.v1 import operator_pb2_grpc as ogrpc

__all__ = ["Health", "OperatorView", "add_commands", "snapshot"]

RPC_TIMEOUT_S = 10.0
LEVELS = {opb.ALERT_LEVEL_WARNING: "warning", opb.ALERT_LEVEL_CRITICAL: "critical"}


class Health(IntEnum):
    """``trustwire ops status`` exit codes (Nagios plugin convention)."""

    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3


@dataclass(frozen=True, slots=True, kw_only=True)
class Thresholds:
    window_s: int
    silent_after_s: int
    checkpoint_max_age_s: int


def add_commands(cmd: Any) -> None:
    """Register the commands; ``cmd(name, help, run)`` adds the common ``ops`` flags."""

    def thresholds(q: argparse.ArgumentParser) -> None:
        q.add_argument("--window", default="1m", help="rate and recent-reject window, e.g. 1m, 5m (max 15m)")
        q.add_argument("--silent-after", default="30m", help="alert when a member published nothing for this long")
        q.add_argument("--checkpoint-max-age", default="60s",
                       help="alert when entries wait this long for a signed checkpoint")

    q = cmd("top", "live view: rates per member, rejects, subscriber lag, checkpoint age, alerts", top)
    thresholds(q)
    q.add_argument("--interval", type=float, default=1.0, help="seconds between refreshes (default 1)")
    q.add_argument("--once", action="store_true", help="print one snapshot and exit (with --json: for scripts)")
    q.add_argument("--iterations", type=int, default=0, help="stop after this many refreshes (0: until Ctrl-C)")
    q = cmd("status", "one-screen health summary; exit 0 ok, 1 warning, 2 critical, 3 unknown", status)
    thresholds(q)
    q.formatter_class = argparse.RawDescriptionHelpFormatter
    q.epilog = "exit codes (Nagios plugin convention):\n" + "\n".join(
        f"  {h.value}  {h.name:<9} {meaning}" for h, meaning in (
            (Health.OK, "no alert"),
            (Health.WARNING, "a member is silent, or a subscriber's lag keeps growing"),
            (Health.CRITICAL, "entries wait too long for a checkpoint, or the exchange cannot be reached"),
            (Health.UNKNOWN, "the status could not be read (not the operator key, bad settings)"),
        )
    )
    q = cmd("rejects", "list rejection events (member, reason, correlation id)", rejects)
    q.add_argument("--since", default="10m", help="a duration back from now (10m, 2h, 1d) or an ISO 8601 time")
    q.add_argument("--limit", type=int, default=100, help="the newest this many (max 1000)")
    q.add_argument("--member", help="only this member's rejections")


# -- the client -----------------------------------------------------------------------------------


class OperatorView:
    """OperatorService calls, signed with the operator key."""

    def __init__(
        self, target: str, signer: Signer, tls: ClientTls | None = None, origin: str = DEFAULT_ORIGIN
    ) -> None:
        self.target = target
        self._channel = connect(target, signer, OPERATOR, tls=tls, origin=origin)
        self._stub = ogrpc.OperatorServiceStub(self._channel)  # type: ignore[no-untyped-call]

    @classmethod
    def from_args(cls, args: argparse.Namespace, env: Mapping[str, str]) -> OperatorView:
        return cls(*operator_credentials(args, env))

    def close(self) -> None:
        self._channel.close()

    def status(self, t: Thresholds) -> opb.GetStatusResponse:
        request = opb.GetStatusRequest(
            window_s=t.window_s, silent_after_s=t.silent_after_s, checkpoint_max_age_s=t.checkpoint_max_age_s
        )
        with translate_errors():
            reply: opb.GetStatusResponse = self._stub.GetStatus(request, timeout=RPC_TIMEOUT_S)
        return reply

    def rejections(self, since_ms: int, limit: int) -> list[opb.RejectionEvent]:
        with translate_errors():
            reply = self._stub.ListRejections(
                opb.ListRejectionsRequest(since_ms=since_ms, limit=limit), timeout=RPC_TIMEOUT_S
            )
        return list(reply.events)


def _thresholds(args: argparse.Namespace) -> Thresholds:
    window = duration_ms(args.window) // 1000
    if not 1 <= window <= 900:
        raise InvalidInput("--window is 1s..15m")
    return Thresholds(
        window_s=window,
        silent_after_s=max(1, duration_ms(args.silent_after) // 1000),
        checkpoint_max_age_s=max(1, duration_ms(args.checkpoint_max_age) // 1000),
    )


# -- the snapshot (what --json prints, and what the views render) --------------------------------


def snapshot(s: opb.GetStatusResponse, exchange: str) -> dict[str, Any]:
    alerts = [
        {"level": LEVELS.get(a.level, "warning"), "kind": a.kind, "subject": a.subject, "message": a.message}
        for a in s.alerts
    ]
    level = "critical" if any(a["level"] == "critical" for a in alerts) else "warning" if alerts else "ok"
    return {
        "exchange": exchange,
        "origin": s.origin,
        "engine": s.engine,
        "at_ms": s.now_ms,
        "uptime_s": max(0, s.now_ms - s.started_ms) // 1000,
        "status": level,
        "window_s": s.window_s,
        "ledger": {"head": s.ledger_head},
        "checkpoint": {
            "size": s.checkpoint_size,
            "signed_at_ms": s.checkpoint_signed_ms or None,
            "age_s": round((s.now_ms - s.checkpoint_signed_ms) / 1000, 3) if s.checkpoint_signed_ms else None,
            "uncovered_entries": s.uncovered_entries,
        },
        "members": [
            {
                "member": m.member_id,
                "role": m.role,
                "suspended": m.suspended,
                "rate_per_s": round(m.rate_per_s, 4),
                "accepted_in_window": m.accepted_in_window,
                "accepted_total": m.accepted_total,
                "rejected_total": m.rejected_total,
                "duplicates_total": m.duplicates_total,
                "last_accepted_ms": m.last_accepted_ms or None,
                "accepted_by_type": dict(sorted(m.accepted_by_type.items())),
                "rejected_by_reason": dict(sorted(m.rejected_by_reason.items())),
            }
            for m in s.members
        ],
        "rejects": [{"reason": r.reason, "in_window": r.in_window, "total": r.total} for r in s.rejects],
        "subscribers": [
            {
                "stream": v.stream_id,
                "member": v.member_id,
                "cursor": v.cursor,
                "lag": v.lag,
                "recent_lag": list(v.recent_lag),
                "lag_growing": v.lag_growing,
                "connected_since_ms": v.connected_since_ms,
            }
            for v in s.subscribers
        ],
        "alerts": alerts,
        "engine_figures": [
            {"name": f.name, "value": f.value, "labels": dict(sorted(f.labels.items()))} for f in s.engine_figures
        ],
    }


def _engine_lines(figures: list[dict[str, Any]]) -> list[str]:
    """The engine's own figures, summarized: the Kafka engine's sequencer and view, and
    the ledger's group commit."""
    value = {f["name"]: f["value"] for f in figures}
    lines: list[str] = []
    if "kafka_sequencer_epoch" in value:
        info: dict[str, str] = next((f["labels"] for f in figures if f["name"] == "kafka_sequencer_info"), {})
        who = info.get("sequencer_id") or "none yet"
        self_ = " (this replica)" if value.get("kafka_sequencer_is_self") else ""
        serving = "serving" if value.get("kafka_view_serving", 1) else "STOPPED"
        lag = value.get("kafka_consumer_lag_messages")
        lines.append(
            f"  kafka: epoch {int(value['kafka_sequencer_epoch'])}, sequencer {who}{self_}; view {serving}"
            + ("" if lag is None else f", lag {int(lag)} messages")
        )
    if "ledger_groups_committed_total" in value:
        lines.append(
            f"  ledger writes: {int(value['ledger_groups_committed_total'])} commits carried"
            f" {int(value.get('ledger_batches_committed_total', 0))} batches"
        )
    return lines


def _ago(ms: int | None) -> str:
    if ms is None:
        return "—"
    s = max(0, ms) // 1000
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def _trend(readings: list[int]) -> str:
    if len(readings) < 2:
        return ""
    last, prev = readings[-1], readings[-2]
    return "↑" if last > prev else "↓" if last < prev else "→"


def render(snap: dict[str, Any] | None, error: str | None = None) -> Any:
    """A rich renderable of a snapshot (the live view's screen)."""
    from rich import box
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    parts: list[Any] = []
    if snap is None:
        return Text(f"trustwire ops top: {'DOWN: ' + error if error else 'connecting…'}",
                    style="bold red" if error else "")
    now = snap["at_ms"]
    cp = snap["checkpoint"]
    status = "down" if error else snap["status"]  # an unreachable exchange is never shown as OK
    colour = {"ok": "green", "warning": "yellow", "critical": "bold red", "down": "bold red"}[status]
    head = Text()
    head.append("trustwire ops top ", style="bold")
    head.append(f"{snap['origin']} @ {snap['exchange']}  ")
    head.append(status.upper(), style=colour)
    head.append(
        f"\nengine {snap['engine']} · up {_ago(snap['uptime_s'] * 1000)} · ledger head {snap['ledger']['head']}"
        f" · checkpoint {cp['size']} (age {_ago(None if cp['age_s'] is None else int(cp['age_s'] * 1000))},"
        f" {cp['uncovered_entries']} uncovered) · {len(snap['subscribers'])} subscribers"
        f" · window {snap['window_s']}s · {datetime.fromtimestamp(now / 1000, UTC):%H:%M:%S} UTC"
    )
    if error:
        head.append(f"\nexchange unreachable: {error} (showing the last snapshot)", style="bold red")
    parts.append(head)

    members = Table(title="publishers", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for col, just in (("member", "left"), ("role", "left"), ("rate/s", "right"), ("in window", "right"),
                      ("accepted", "right"), ("rejected", "right"), ("last accept", "right")):
        members.add_column(col, justify=just)  # type: ignore[arg-type]
    for m in snap["members"]:
        last = None if m["last_accepted_ms"] is None else now - m["last_accepted_ms"]
        members.add_row(
            m["member"] + (" (suspended)" if m["suspended"] else ""), m["role"], f"{m['rate_per_s']:.2f}",
            str(m["accepted_in_window"]), str(m["accepted_total"]),
            Text(str(m["rejected_total"]), style="red" if m["rejected_total"] else ""),
            "never" if last is None else _ago(last) + " ago",
        )
    parts.append(members)

    rejects = Table(title="rejects by reason", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    rejects.add_column("reason")
    rejects.add_column("in window", justify="right")
    rejects.add_column("total", justify="right")
    for r in snap["rejects"]:
        rejects.add_row(r["reason"], str(r["in_window"]), str(r["total"]))
    if not snap["rejects"]:
        rejects.add_row("none", "", "")
    parts.append(rejects)

    subs = Table(title="subscribers (lag = ledger head - cursor)", title_justify="left", box=box.SIMPLE_HEAD,
                 pad_edge=False)
    for col, just in (("stream", "left"), ("member", "left"), ("cursor", "right"), ("lag", "right"),
                      ("trend", "center"), ("connected", "right")):
        subs.add_column(col, justify=just)  # type: ignore[arg-type]
    for v in snap["subscribers"]:
        subs.add_row(
            v["stream"], v["member"], str(v["cursor"]),
            Text(str(v["lag"]), style="yellow" if v["lag_growing"] else ""),
            _trend(v["recent_lag"]), _ago(now - v["connected_since_ms"]),
        )
    if not snap["subscribers"]:
        subs.add_row("none", "", "", "", "", "")
    parts.append(subs)

    alerts = Text()
    alerts.append("alerts\n", style="bold")
    for a in snap["alerts"]:
        alerts.append(f"{a['level'].upper():<8} ", style="bold red" if a["level"] == "critical" else "yellow")
        alerts.append(f"{a['kind']:<17} {a['message']}\n")
    if not snap["alerts"]:
        alerts.append("none\n", style="green")
    parts.append(alerts)
    return Group(*parts)


# -- commands -------------------------------------------------------------------------------------


def top(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from rich.console import Console
    from rich.live import Live

    t = _thresholds(args)
    if args.interval <= 0:
        raise InvalidInput("--interval must be positive")
    view = OperatorView.from_args(args, env)
    try:
        if args.once:
            snap = snapshot(view.status(t), view.target)
            if args.json:
                print(json.dumps(snap, indent=2))
            else:
                Console().print(render(snap))
            return 0
        console = Console()
        snap_or_none: dict[str, Any] | None = None
        error: str | None = None
        tick = threading.Event()
        done = 0

        def refresh() -> Any:
            nonlocal snap_or_none, error
            error = None
            try:
                snap_or_none = snapshot(view.status(t), view.target)
            except Unavailable as exc:  # keep watching: the exchange may come back
                error = exc.message
            return render(snap_or_none, error)

        if not console.is_terminal:  # batch mode, like top -b
            while True:
                if args.json:
                    refresh()
                    print(json.dumps(snap_or_none if error is None else down(view.target, error, snap_or_none)),
                          flush=True)
                else:
                    console.print(refresh())
                done += 1
                if args.iterations and done >= args.iterations:
                    return 0
                tick.wait(args.interval)
        with Live(refresh(), console=console, screen=True, auto_refresh=False) as live:
            while not args.iterations or done < args.iterations:
                tick.wait(args.interval)
                live.update(refresh(), refresh=True)
                done += 1
        return 0
    finally:
        view.close()


def down(target: str, error: str, last: dict[str, Any] | None) -> dict[str, Any]:
    """What ``ops top --json`` prints for a refresh that could not reach the exchange."""
    return {"status": "down", "exchange": target, "error": error, "at_ms": int(time.time() * 1000),
            "last_snapshot": last}


def _summary(snap: dict[str, Any]) -> list[str]:
    cp = snap["checkpoint"]
    members = [m for m in snap["members"] if m["role"] == "member"]
    active = [m for m in members if m["accepted_in_window"]]
    rate = sum(m["rate_per_s"] for m in snap["members"])
    rejects = sum(r["in_window"] for r in snap["rejects"])
    by_reason = ", ".join(f"{r['reason']} {r['in_window']}" for r in snap["rejects"] if r["in_window"])
    worst = max(snap["subscribers"], key=lambda v: v["lag"], default=None)
    lines = [
        f"trustwire exchange {snap['origin']} at {snap['exchange']}: {snap['status'].upper()}",
        f"  engine {snap['engine']}, up {_ago(snap['uptime_s'] * 1000)}, ledger head {snap['ledger']['head']}",
        f"  checkpoint {cp['size']}, signed {_ago(None if cp['age_s'] is None else int(cp['age_s'] * 1000))} ago,"
        f" {cp['uncovered_entries']} entries uncovered",
        f"  members: {len(members)} enrolled, {len(active)} published in the last {snap['window_s']}s"
        f" ({rate:.2f} entries/s); rejects in window: {rejects}" + (f" ({by_reason})" if by_reason else ""),
        f"  subscribers: {len(snap['subscribers'])} connected"
        + (f", max lag {worst['lag']} ({worst['member']} {worst['stream']})" if worst else ""),
    ]
    lines += _engine_lines(snap["engine_figures"])
    lines += [f"  {a['level'].upper()} {a['kind']}: {a['message']}" for a in snap["alerts"]]
    return lines


def status(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    t = _thresholds(args)
    try:
        view = OperatorView.from_args(args, env)
    except TrustwireError as exc:
        print(f"trustwire: UNKNOWN: {exc.message}", file=sys.stderr)
        return int(Health.UNKNOWN)
    try:
        snap = snapshot(view.status(t), view.target)
    except Unavailable as exc:
        print(f"trustwire exchange at {view.target}: CRITICAL: {exc.message}")
        return int(Health.CRITICAL)
    except TrustwireError as exc:
        print(f"trustwire exchange at {view.target}: UNKNOWN: {exc.message}")
        return int(Health.UNKNOWN)
    finally:
        view.close()
    code = Health[snap["status"].upper()]
    if args.json:
        print(json.dumps({**snap, "exit_code": int(code)}, indent=2))
    else:
        print("\n".join(_summary(snap)))
    return int(code)


def _since_ms(text: str) -> int:
    try:
        return int(time.time() * 1000) - duration_ms(text)
    except InvalidInput:
        pass
    try:
        return parse_time_ms(text)
    except InvalidInput:
        raise InvalidInput(f"--since is a duration (10m, 2h, 1d) or an ISO 8601 time, got {text!r}") from None


def rejects(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    since = _since_ms(args.since)
    if not 1 <= args.limit <= 1000:
        raise InvalidInput("--limit is 1..1000")
    view = OperatorView.from_args(args, env)
    try:
        events = view.rejections(since, args.limit)
    finally:
        view.close()
    rows = [
        {
            "at": datetime.fromtimestamp(e.at_ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "member": e.member_id, "method": e.method, "status": e.status, "reason": e.reason,
            "count": e.count, "correlation_id": e.correlation_id,
        }
        for e in events
        if args.member is None or e.member_id == args.member
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
    elif rows:
        for r in rows:
            print(f"{r['at']}  {r['member']:<16} {r['method']:<16} {r['status']:<20} {r['reason']:<22}"
                  f" x{r['count']:<4} {r['correlation_id']}")
    else:
        print(f"no rejections since {datetime.fromtimestamp(since / 1000, UTC):%Y-%m-%dT%H:%M:%SZ}", file=sys.stderr)
    return 0

