"""The ledger topic's identity, watched while a replica serves.

A broker that loses the topic (an in-memory broker restarted; on a real cluster, a
topic deleted and re-created) must not go unnoticed: the replica's view would keep
serving a ledger that no longer exists while every publish fails. The watch asks the
cluster every few seconds for the topic's id and its end offset, and stops the
tailer (so the replica stops serving) when

- the topic is gone (UNKNOWN_TOPIC_OR_PART, twice in a row: a definite answer, not a
  timeout),
- its id changed (the topic was re-created), or
- it ends before the position the view has already read (truncated or re-created),
  confirmed by fetching the last message the view read (some brokers report a
  stale end offset; a message that is still there settles it).

A broker that does not answer (paused, restarting, partitioned) is not a lost topic:
the watch only acts on definite answers. The end offsets it reads also give the
view's lag for the metrics.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._listoffsets import OffsetSpec

from exchange.core.errors import LedgerCorrupt
from exchange.server.kafka.settings import KafkaSettings
from exchange.server.kafka.throttle import Throttled
from exchange.server.kafka.topics import ledger_topic_id

__all__ = ["TopicWatch"]

log = logging.getLogger(__name__)

WATCH_INTERVAL_S = 2.0
REQUEST_TIMEOUT_S = 5.0
_GONE = frozenset({KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC, KafkaError.UNKNOWN_TOPIC_ID})


class TopicWatch:
    """One thread per replica; ``position()`` is the view's next offset, ``fail`` stops it."""

    def __init__(
        self, settings: KafkaSettings, topic: str, position: Callable[[], int], fail: Callable[[BaseException], None],
        interval_s: float = WATCH_INTERVAL_S,
    ) -> None:
        self._settings = settings
        self._admin = AdminClient(settings.admin_config())
        self._probe: Consumer | None = None
        self._topic = topic
        self._position = position
        self._fail = fail
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._unanswered = Throttled(log, 60.0)
        self.topic_id: str | None = None
        self.end_offset: int | None = None
        """The topic's end offset at the last answer (None before the first)."""

    def start(self) -> None:
        try:
            self.topic_id = ledger_topic_id(self._admin, self._topic, REQUEST_TIMEOUT_S)
        except KafkaException as exc:  # an older cluster: the end-offset check still runs
            log.warning("cannot read the id of topic %s (%s); a re-created topic is caught by its end offset only",
                        self._topic, exc.args[0])
        self._thread = threading.Thread(target=self._run, name="kafka-ledger-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=REQUEST_TIMEOUT_S * 3 + 1)
        if self._probe is not None and (self._thread is None or not self._thread.is_alive()):
            self._probe.close()
            self._probe = None

    def _run(self) -> None:
        gone = 0
        while not self._stop.wait(self._interval):
            try:
                problem = self.check()
            except KafkaException as exc:
                err: KafkaError = exc.args[0]
                if err.code() in _GONE:
                    gone += 1
                    problem = f"topic {self._topic} no longer exists" if gone >= 2 else None
                else:
                    self._unanswered.log(logging.INFO, "cannot check topic %s: %s", self._topic, err.str())
                    continue
            else:
                gone = 0
            if problem is not None:
                self._fail(LedgerCorrupt(f"{problem}: the ledger this replica serves is lost; it stops serving"))
                return

    def check(self) -> str | None:
        """One look at the topic: a reason it is no longer this ledger, or None."""
        topic_id = ledger_topic_id(self._admin, self._topic, REQUEST_TIMEOUT_S) if self.topic_id else None
        if self.topic_id is not None and topic_id is not None and topic_id != self.topic_id:
            return f"topic {self._topic} was re-created (id {self.topic_id} is now {topic_id})"
        read = self._position()  # before the end offset: the view only moves forward
        tp = TopicPartition(self._topic, 0)
        latest = OffsetSpec.latest()  # type: ignore[no-untyped-call]
        future = self._admin.list_offsets({tp: latest}, request_timeout=REQUEST_TIMEOUT_S)[tp]
        end = int(future.result(REQUEST_TIMEOUT_S).offset)
        self.end_offset = end
        if end < read and not self._still_there(read - 1):
            return f"topic {self._topic} ends at offset {end}, before the {read} messages this view has read"
        return None

    def _still_there(self, offset: int) -> bool:
        """Is the message at ``offset`` still in the topic? False only on a definite no."""
        if self._probe is None:
            self._probe = Consumer(self._settings.tail_config("ledger-watch"))
        probe = self._probe
        probe.assign([TopicPartition(self._topic, 0, offset)])
        try:
            deadline = time.monotonic() + REQUEST_TIMEOUT_S
            while time.monotonic() < deadline:
                m = probe.poll(0.2)
                if m is None:
                    continue
                err = m.error()
                if err is None:
                    return m.offset() == offset
                if err.code() in (KafkaError._AUTO_OFFSET_RESET, KafkaError.OFFSET_OUT_OF_RANGE):
                    return False
            return True  # no answer: not a definite loss
        finally:
            probe.unassign()
