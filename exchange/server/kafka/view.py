"""A replica's local view of the ledger topic, and the tailer that keeps it current.

The view is a :class:`SqliteLedger` file fed only through the ledger rule: the
tailer reads ``<prefix>.ledger`` in offset order (``assign()``, no consumer group),
applies :func:`exchange.server.kafka.rule.apply`, and stores the accepted records
together with the rule state (topic offset, epoch, next index) in one SQLite
transaction. A restarted replica resumes from that offset; a view that belongs to
another ledger (another cluster or a recreated topic) is refused, not merged.

While it runs, a position the topic no longer has (offset out of range) or a topic
that is gone or re-created (:mod:`.watch`) stops the tailer for good: the replica
stops serving (health NOT_SERVING, a critical alert, one critical log line).

Everything the exchange reads (head, read, receipts, signals, key directory,
wait_for) is answered by the view, so the audit log, Subscribe and GetEntries work
on it unchanged.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from exchange.core.errors import ConfigError, LedgerCorrupt, TrustwireError, Unavailable
from exchange.pb.trustwire.v1 import kafka_pb2 as kpb
from exchange.server.kafka import rule
from exchange.server.kafka.rule import RuleState
from exchange.server.kafka.settings import KafkaSettings, drain
from exchange.server.kafka.throttle import Throttled
from exchange.server.kafka.watch import TopicWatch
from exchange.server.kafka.wire import decode_ledger_message
from exchange.server.ledger import DecodedRecord, SqliteLedger

__all__ = ["LedgerView", "Tailer"]

log = logging.getLogger(__name__)

_META_KEY = "kafka.rule"
_BATCH = 2000
_LOST = frozenset({KafkaError._AUTO_OFFSET_RESET, KafkaError.OFFSET_OUT_OF_RANGE})
"""Consumer errors that mean the topic no longer holds the position the view has read."""


class LedgerView(SqliteLedger):
    """The ledger as the rule derives it from the topic, with the rule's state."""

    def __init__(self, path: str | Path, topic: str, clock_ms: Callable[[], int] | None = None) -> None:
        super().__init__(path, clock_ms=clock_ms)
        self.topic = topic
        self._rule, self._last_accepted_ms = self._load()

    def _connect(self) -> sqlite3.Connection:
        """The SQLite ledger's connection, with ``synchronous=NORMAL``: a view is derived
        from the topic, and its rule state commits with its records, so a power loss can
        only take it back to an earlier consistent point, from which it reads the topic
        again (nothing acknowledged lives only in the view)."""
        conn = super()._connect()
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    def _load(self) -> tuple[RuleState, int]:
        conn = self._reader()
        row = conn.execute("SELECT value FROM meta WHERE key = ?", (_META_KEY,)).fetchone()
        last_ms = conn.execute("SELECT COALESCE(MAX(accepted_at_ms), 0) FROM records").fetchone()[0]
        if row is None:
            if self.head() > 0:
                raise LedgerCorrupt(f"{self.path} holds records but is not a Kafka view; give the view its own file")
            return RuleState(), int(last_ms)
        data: dict[str, Any] = json.loads(row[0])
        if data.pop("topic", self.topic) != self.topic:
            raise ConfigError(f"the view {self.path} follows another ledger topic; give each prefix its own view")
        state = RuleState(**data)
        if state.next_index != self.head():
            raise LedgerCorrupt(
                f"view {self.path} is inconsistent: {self.head()} records but the rule is at {state.next_index}"
            )
        return state, int(last_ms)

    @property
    def state(self) -> RuleState:
        return self._rule

    @property
    def last_accepted_ms(self) -> int:
        """accepted_at of the newest entry (the sequencer keeps time non-decreasing)."""
        return self._last_accepted_ms

    def apply_batch(self, records: Sequence[DecodedRecord], state: RuleState) -> None:
        """Store accepted records (decoded by the rule) and the rule state that follows
        them, atomically: one transaction, rows written in batches."""
        blob = json.dumps({**asdict(state), "topic": self.topic})

        def body(conn: sqlite3.Connection, writer: Any) -> list[None]:
            writer.replay_all(records)
            conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (_META_KEY, blob))
            return []

        last_ms = records[-1].accepted_at_ms if records else 0
        self._write(body)
        self._rule = state
        self._last_accepted_ms = max(self._last_accepted_ms, last_ms)


class Tailer:
    """Follows the ledger topic into the view (one thread, one partition)."""

    def __init__(self, settings: KafkaSettings, view: LedgerView) -> None:
        self._settings = settings
        self.view = view
        self._cond = threading.Condition()
        self._at_eof = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._consumer: Consumer | None = None
        self._watch = TopicWatch(settings, view.topic, lambda: self.view.state.offset, self.fail)
        self._listeners: list[Callable[[BaseException], None]] = []
        self._warnings = Throttled(log, 30.0)
        self.failure: BaseException | None = None
        self.messages_read = 0
        """Ledger-topic messages this tailer has read (entries, claims, ignored writes)."""
        self.epochs_seen = 0
        """Epoch changes (sequencer claims accepted by the rule) since this tailer started."""
        self.cpu_s = 0.0
        """CPU time of the tailing thread spent applying messages (time.thread_time)."""

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        consumer = Consumer(self._settings.tail_config("ledger-tail"))
        self._consumer = consumer
        try:
            self._check_identity(consumer)
            consumer.assign([TopicPartition(self.view.topic, 0, self.view.state.offset)])
            self._watch.start()
        except BaseException:
            consumer.close()
            raise
        self._thread = threading.Thread(target=self._run, name="kafka-ledger-tail", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._watch.stop()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._cond:
            self._cond.notify_all()

    def fail(self, exc: BaseException) -> None:
        """Stop following the topic for good (first failure wins; one critical line)."""
        with self._cond:
            if self.failure is not None:
                return
            self.failure = exc
            listeners = list(self._listeners)
            self._cond.notify_all()
        log.critical("the ledger view stopped following %s: %s", self.view.topic, exc,
                     exc_info=None if isinstance(exc, TrustwireError) else exc)
        for listener in listeners:
            listener(exc)

    def on_failure(self, listener: Callable[[BaseException], None]) -> None:
        """Call ``listener(exc)`` once the tailer fails (at once if it already has)."""
        with self._cond:
            failed = self.failure
            if failed is None:
                self._listeners.append(listener)
        if failed is not None:
            listener(failed)

    @property
    def end_offset(self) -> int | None:
        """The ledger topic's end offset at the last look (None before the first)."""
        return self._watch.end_offset

    def _check_identity(self, consumer: Consumer) -> None:
        """The view's first epoch must be the topic's: else the topic was recreated or
        this view belongs to another cluster, and merging would corrupt it."""
        state = self.view.state
        if state.genesis_offset < 0:
            return
        consumer.assign([TopicPartition(self.view.topic, 0, state.genesis_offset)])
        deadline = time.monotonic() + self._settings.ready_timeout_s
        found: str | None = None
        while time.monotonic() < deadline and found is None:
            m = consumer.poll(0.2)
            if m is None:
                continue
            err = m.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    found = ""
                continue
            offset = m.offset()
            if offset == state.genesis_offset:
                msg = decode_ledger_message(m.value())
                found = msg.sequencer_id if isinstance(msg, kpb.EpochStart) else ""
            elif offset is not None and offset > state.genesis_offset:
                found = ""
        consumer.unassign()
        if found is None:
            raise Unavailable(f"could not read {self.view.topic} to check the view; is the cluster up?")
        if found != state.genesis_id:
            raise LedgerCorrupt(
                f"the view {self.view.path} belongs to another ledger than topic {self.view.topic} "
                "(recreated topic or other cluster); move the view aside to rebuild it from the topic"
            )

    # -- the loop -----------------------------------------------------------------------------

    def _run(self) -> None:
        consumer = self._consumer
        if consumer is None:
            return
        try:
            while not self._stop.is_set() and self.failure is None:
                messages = drain(consumer, _BATCH, 0.1)
                if messages:
                    started = time.thread_time()
                    self._apply(messages)
                    self.cpu_s += time.thread_time() - started
        except BaseException as exc:  # noqa: BLE001 - the view must stop, loudly, not diverge
            self.fail(exc)
        finally:
            consumer.close()
            with self._cond:
                self._cond.notify_all()

    def _apply(self, messages: list[Message]) -> None:
        before = self.view.state
        at_eof: bool | None = None
        values: list[tuple[int, bytes | None]] = []
        for m in messages:
            err = m.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    at_eof = True
                elif err.code() in _LOST:
                    raise LedgerCorrupt(f"offset {before.offset} of {self.view.topic} is out of range ({err.str()})")
                else:
                    self._warnings.log(logging.WARNING, "ledger tail: %s", err)
                continue
            at_eof = False
            offset = m.offset()
            if offset is not None:
                values.append((offset, m.value()))
        state, records, claims = rule.accept_many(before, values)
        if state != before:
            self.view.apply_batch(records, state)
            self.messages_read += len(values)
            self.epochs_seen += claims
        with self._cond:
            if at_eof is not None:
                self._at_eof = at_eof
            self._cond.notify_all()

    # -- waiting ------------------------------------------------------------------------------

    def _wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: predicate() or self.failure is not None, timeout) and (
                self.failure is None
            )

    def wait_position(self, offset: int, timeout: float) -> bool:
        """Until the view has applied every message before topic ``offset``."""
        return self._wait(lambda: self.view.state.offset >= offset, timeout)

    def wait_state(self, predicate: Callable[[RuleState], bool], timeout: float) -> bool:
        """Until the view's rule state satisfies ``predicate``."""
        return self._wait(lambda: predicate(self.view.state), timeout)

    def wait_eof(self, timeout: float) -> bool:
        """Until the view has read the topic to its end (partition EOF) and nothing since."""
        return self._wait(lambda: self._at_eof, timeout)

    @property
    def healthy(self) -> bool:
        return self.failure is None and self._thread is not None and self._thread.is_alive()
