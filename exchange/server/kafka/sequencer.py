"""The sequencer: the one replica that assigns ledger indices, elected by Kafka.

Election is Kafka's consumer group ``<prefix>.sequencer`` over the one-partition
``<prefix>.submissions`` topic: whoever is assigned the partition tries to
sequence. Fencing is the ledger rule (:mod:`exchange.server.kafka.rule`): on
assignment the sequencer reads the ledger to its end, writes
``EpochStart(highest epoch + 1, head)`` and sequences only once its own view has
accepted that claim. From then on, anything an older sequencer still writes is
ignored by every reader. On revoke or loss it stops at once.

For each batch of submissions it dedupes by digest (against the view and the batch),
checks key events in order against a staged key directory, writes the new entries
(idempotent, acks=all), waits until its view has accepted them, and only then
writes the results and commits the submissions' offset (neither waited for: the next
round starts at once). If anything has an
unknown fate (timeout, fencing) it steps down without answering: the next
sequencer re-reads the uncommitted submissions and dedupe makes the retry exact.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, TopicPartition

from exchange.core.acceptance import check_stamped, check_stamped_key
from exchange.core.dsse import Envelope
from exchange.core.entries import PAYLOAD_TYPES, EntryKind
from exchange.core.errors import TrustwireError, Unavailable
from exchange.core.keydir import KeyDirectory
from exchange.core.records import Receipt
from exchange.server.kafka.produce import SafeProducer
from exchange.server.kafka.settings import KafkaSettings, drain
from exchange.server.kafka.throttle import Throttled
from exchange.server.kafka.topics import Topics
from exchange.server.kafka.view import Tailer
from exchange.server.kafka import layout
from exchange.server.kafka.wire import Received, decode_batch, encode_epoch_start, encode_result
from exchange.server.ledger import Outcome
from exchange.server.projection import project

__all__ = ["Sequencer"]

log = logging.getLogger(__name__)

MAX_MESSAGES = 64
"""Submission messages sequenced together (one flush, one confirmation)."""


@dataclass(slots=True, kw_only=True)
class _Draft:
    """The entries of one sequencing round, before they are written."""

    start: int
    now_ms: int
    known: dict[bytes, Receipt | int]  # digest → the ledger's receipt, or this round's position
    envelopes: list[bytes] = field(default_factory=list)  # this round's new entries, in index order
    directory: KeyDirectory | None = None  # staged copy, once a key event is in the round

    def seal(self, epoch: int) -> tuple[list[bytes], list[bytes], list[bytes]]:
        """The round's ledger messages, records and receipts (encoded ``PublishResult``s,
        by position), built from bytes: the round shares one ``accepted_at`` and one epoch."""
        return layout.seal_round(self.start, self.now_ms, epoch, self.envelopes)


EXPIRY_MARGIN_MS = 250
"""A batch this close to its publisher's deadline is refused (UNAVAILABLE, no effect):
its answer could not arrive in time."""


def _wall_ms() -> int:
    return int(time.time() * 1000)


class Sequencer:
    def __init__(
        self, settings: KafkaSettings, topics: Topics, tailer: Tailer, clock_ms: Callable[[], int]
    ) -> None:
        self._settings = settings
        self._topics = topics
        self._tailer = tailer
        self._view = tailer.view
        self._clock_ms = clock_ms
        self._deadline_s = settings.publish_deadline_s
        self._producer = SafeProducer(settings.producer_config("sequencer", settings.publish_deadline_ms), "sequencer")
        self._entries = SafeProducer(
            settings.producer_config("sequencer-entries", settings.publish_deadline_ms, errors_only=True),
            "sequencer entries",
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._assigned = False
        self._epoch: int | None = None
        self._claim = ""
        self._next = 0
        self._claims = Throttled(log, 30.0)
        self._backoff_s = 0.2
        self.epochs_started = 0
        self.entries_sequenced = 0
        """Entries this replica wrote to the ledger and saw accepted, since it started."""
        self.cpu_s = 0.0
        """CPU time of the sequencing thread spent on rounds (time.thread_time)."""

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="kafka-sequencer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self._deadline_s + 10)

    @property
    def producers(self) -> tuple[SafeProducer, SafeProducer]:
        """Claims and results; entries (delivery reported only on error)."""
        return self._producer, self._entries

    @property
    def epoch(self) -> int | None:
        """The epoch this replica sequences, or None when it does not."""
        return self._epoch

    # -- group membership (callbacks run inside consume()) ----------------------------------------

    def _ours(self, partitions: list[TopicPartition]) -> bool:
        return any(p.topic == self._topics.submissions for p in partitions)

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if self._ours(partitions):
            log.info("assigned %s: claiming the sequencer role", self._topics.submissions)
            self._assigned = True

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if self._ours(partitions):
            self._assigned = False
            self._resign("partition revoked")

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if self._ours(partitions):
            self._assigned = False
            self._resign("partition lost (session expired)")

    def _resign(self, why: str, level: int = logging.WARNING) -> None:
        if self._epoch is not None:
            log.log(level, "stopped sequencing epoch %d: %s", self._epoch, why)
        self._epoch = None

    # -- the loop -----------------------------------------------------------------------------

    def _run(self) -> None:
        consumer = Consumer(self._settings.group_config(self._topics.sequencer_group))
        try:
            consumer.subscribe(
                [self._topics.submissions], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
            )
            while not self._stop.is_set():
                if self._tailer.failure is not None:  # the tailer logged it, critically
                    log.warning("the ledger view failed; leaving the sequencer group to the other replicas")
                    break
                if self._assigned and self._epoch is None and not self._elect(consumer):
                    consumer.poll(self._backoff_s)  # back off (growing while claims fail); keeps callbacks flowing
                    self._backoff_s = min(2.0, self._backoff_s * 2)
                    continue
                messages = drain(consumer, MAX_MESSAGES, 0.1)
                if messages and self._epoch is not None:
                    started = time.thread_time()
                    self._sequence(consumer, messages)
                    self.cpu_s += time.thread_time() - started
                # unled messages are dropped: the next election seeks back to the committed offset
        except Exception as exc:  # noqa: BLE001 - log, and let another replica take over
            log.critical("the sequencer failed: %s", exc, exc_info=exc)
        finally:
            self._resign("shutting down", logging.INFO)
            try:
                consumer.close()  # leaves the group: another replica takes over at once
            except KafkaException as exc:
                log.warning("closing the sequencer consumer: %s", exc)
            self._producer.close()
            self._entries.close()

    # -- election -----------------------------------------------------------------------------

    def _elect(self, consumer: Consumer) -> bool:
        if not self._tailer.wait_eof(self._deadline_s):
            self._claims.log(logging.INFO, "the view has not reached the end of %s yet; not claiming",
                             self._topics.ledger)
            return False
        state = self._view.state
        epoch = state.epoch + 1
        claim = f"{self._settings.replica_id}/{uuid.uuid4().hex[:12]}"
        offsets = self._write([encode_epoch_start(epoch, state.next_index, claim)])
        if offsets is None or not self._tailer.wait_position(offsets[-1] + 1, self._deadline_s):
            return False
        now = self._view.state
        if now.sequencer_id != claim:
            self._claims.log(logging.INFO, "claim of epoch %d lost (the ledger is at epoch %d); trying again",
                             epoch, now.epoch)
            return False
        if not self._assigned:
            return False
        try:
            self._seek_committed(consumer)
        except KafkaException as exc:
            log.warning("cannot rewind %s to its committed offset: %s", self._topics.submissions, exc)
            return False
        self._epoch, self._next, self._claim = epoch, now.next_index, claim
        self._backoff_s = 0.2
        self.epochs_started += 1
        log.info("sequencing the ledger from index %d as epoch %d (%s)", now.next_index, epoch, claim)
        return True

    def _seek_committed(self, consumer: Consumer) -> None:
        """Resume submissions after the last batch whose results were written."""
        tp = TopicPartition(self._topics.submissions, 0)
        committed = consumer.committed([tp], timeout=self._deadline_s)[0].offset
        consumer.seek(TopicPartition(self._topics.submissions, 0, committed if committed >= 0 else OFFSET_BEGINNING))

    # -- writing ------------------------------------------------------------------------------

    def _write(self, values: list[bytes]) -> list[int] | None:
        """Write to the ledger topic and wait for acks=all; the offsets, or None when the
        fate of any message is unknown (the producer is then replaced)."""
        offsets: list[int] = []
        errors: list[KafkaError] = []

        def delivered(err: KafkaError | None, msg: Message) -> None:
            offset = msg.offset()
            if err is not None or offset is None:
                errors.append(err or KafkaError(KafkaError._FAIL))
            else:
                offsets.append(offset)

        try:
            self._producer.produce_many(self._topics.ledger, values, on_delivery=delivered, timeout=self._deadline_s)
        except Unavailable as exc:
            self._claims.log(logging.WARNING, "cannot write to %s: %s", self._topics.ledger, exc)
            self._producer.reset()
            return None
        left = self._producer.flush(self._deadline_s)
        if left or errors or len(offsets) != len(values):
            self._claims.log(
                logging.WARNING, "%d write(s) to %s have an unknown fate (%s)",
                len(values) - len(offsets), self._topics.ledger, errors[0] if errors else "not acknowledged in time",
            )
            self._producer.reset()
            return None
        return offsets

    # -- sequencing ---------------------------------------------------------------------------

    def _sequence(self, consumer: Consumer, messages: list[Message]) -> None:
        epoch = self._epoch
        if epoch is None:
            return
        batches: list[Received] = []
        last_offset = -1
        for m in messages:
            err = m.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    log.warning("submissions: %s", err)
                continue
            last_offset = max(last_offset, m.offset() or 0)
            batch = decode_batch(m.value())
            if batch is None:
                log.warning("ignoring a malformed submission at offset %d", m.offset())
            else:
                batches.append(batch)
        if last_offset < 0:
            return
        if self._view.head() != self._next:
            self._resign(f"the view is at {self._view.head()}, the sequencer at {self._next}")
            return
        start = self._next
        draft = _Draft(start=start, now_ms=max(self._clock_ms(), self._view.last_accepted_ms),
                       known=dict(self._view.receipts_for([d for b in batches for d in b.digests])))
        planned = [(b, self._plan(b, draft)) for b in batches]
        messages_out, records, fresh = draft.seal(epoch)
        if records:
            if not self._write_entries(messages_out, records, start):
                return
        self._next = start + len(records)
        self.entries_sequenced += len(records)
        for batch, outcomes in planned:
            try:
                self._producer.produce(
                    self._topics.results,
                    encode_result(batch.request_id, batch.replica_id,
                                  [fresh[o] if isinstance(o, int) else o for o in outcomes]),
                    key=batch.replica_id.encode(),
                    timeout=self._deadline_s,
                )
            except Unavailable as exc:
                log.warning("cannot write results: %s", exc)
        # Neither the results nor the commit are waited for: the next round starts at once.
        # A result lost with this sequencer costs its publisher a timeout, and the retry is
        # answered from the view (the entries are in the ledger); an uncommitted offset
        # makes the next sequencer repeat the batch, which dedupe answers exactly.
        self._producer.poll(0)
        try:
            consumer.commit(
                offsets=[TopicPartition(self._topics.submissions, 0, last_offset + 1)], asynchronous=True
            )
        except KafkaException as exc:
            log.warning("cannot commit the submissions offset (%s); the next sequencer repeats the batch", exc)

    def _plan(self, batch: Received, draft: _Draft) -> list[Outcome | int]:
        """Outcomes of one batch, in order; new records are added to ``draft``.

        The publishing replica verified each envelope (signature, entry, member rules);
        here only what can change between then and now is checked again: the key at
        this index and time (member entries), key events in order (staged directory).
        A new entry's outcome is its position in the round (its receipt once sealed)."""
        view = self._view
        expired = 0 < batch.deadline_ms <= _wall_ms() + EXPIRY_MARGIN_MS
        outcomes: list[Outcome | int] = []
        known, envelopes, now_ms = draft.known, draft.envelopes, draft.now_ms
        for envelope, digest, keyid in zip(batch.envelopes, batch.digests, batch.keyids, strict=True):
            seen = known.get(digest)
            if seen is not None:
                outcomes.append(seen)
                continue
            if expired:
                outcomes.append(Unavailable("the publish deadline passed before the sequencer reached it; publish again"))
                continue
            position = len(envelopes)
            try:
                if keyid:  # a member entry, its key named by the replica that verified it
                    check_stamped_key(keyid, draft.directory or view.directory, draft.start + position, now_ms)
                else:
                    self._check_decoding(envelope, draft, draft.start + position)
            except TrustwireError as exc:
                outcomes.append(exc)
                continue
            known[digest] = position
            envelopes.append(envelope)
            outcomes.append(position)
        return outcomes

    def _check_decoding(self, envelope: bytes, draft: _Draft, index: int) -> None:
        """A key event (applied to the staged directory) or a member entry without its
        key id: parse the envelope here."""
        directory = self._view.directory
        env = Envelope.decode(envelope)
        event = (
            project(envelope, lambda publisher, signal_id: None).event
            if PAYLOAD_TYPES.get(env.payload_type) is EntryKind.KEY_EVENT else None
        )
        if event is not None:
            staged = (draft.directory or directory).clone()
            staged.apply(event, index)
            draft.directory = staged
        else:
            check_stamped(env, draft.directory or directory, index, draft.now_ms)

    def _write_entries(self, messages: list[bytes], records: list[bytes], start: int) -> bool:
        """Write a round's entries (one produce call, no per-message delivery report:
        the producer reports only failures) and see them accepted; else step down."""
        failed: list[KafkaError] = []
        try:
            self._entries.produce_many(
                self._topics.ledger, messages, timeout=self._deadline_s,
                on_delivery=lambda err, msg: failed.append(err or KafkaError(KafkaError._FAIL)),
            )
            left = self._entries.flush(self._deadline_s)
        except Unavailable as exc:
            failed, left = [KafkaError(KafkaError._FAIL, str(exc))], len(messages)
        if left or failed:
            self._claims.log(logging.WARNING, "%d entry write(s) to %s have an unknown fate (%s)",
                             len(messages), self._topics.ledger, failed[0] if failed else "not acknowledged in time")
            self._entries.reset()
            self._resign("entries have an unknown fate")
            return False
        self._entries.delivered += len(messages)
        if not self._confirm(start, records):
            self._resign("another sequencer took over (our entries were not accepted)")
            return False
        return True

    def _confirm(self, start: int, records: list[bytes]) -> bool:
        """Has our view accepted these records (all acknowledged by the broker) at these
        indices? Only this sequencer writes entries of its epoch (its claim is unique),
        in order, idempotently: while the rule follows our claim, the view reaching
        ``start + n`` means they are ours. Once the rule follows another claim, the view
        has applied everything before that claim, and our entries after it are ignored:
        what it stored at these indices says whether they were accepted."""
        end, claim = start + len(records), self._claim
        if not self._tailer.wait_state(lambda s: s.next_index >= end or s.sequencer_id != claim, self._deadline_s):
            return False
        state = self._view.state
        if state.sequencer_id == claim:
            return True
        stored = self._view.read(start, len(records))  # fenced since: were they accepted before?
        return [s.record for s in stored] == records
