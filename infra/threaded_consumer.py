"""A librdkafka consumer (confluent-kafka) owned by one thread, for asyncio code.

Why: on the request/reply path an aiokafka consumer spends ~0.35 ms of Python per fetch, and a reader that
must answer within milliseconds fetches every few milliseconds, so at 100 req/s fetching alone cost each
process ~0.7 ms per request (issue 16; ``bench_kafka_floor``: request/reply costs 2.1 ms of CPU over aiokafka,
0.56 ms over librdkafka). librdkafka fetches in its own C threads; this thread only hands records to the loop.

One thread owns the consumer and makes every call on it (``confluent_kafka.Consumer`` hung when ``pause`` was
called from another thread while ``consume`` waited): the event loop sends commands (``call``, ``assign``,
``pause``, ``resume``) and gets records through ``on_records``, called on the loop.

Two ways to read:
- ``assign``: given partitions from given offsets, no group (the API's reply readers; they pause and resume
  themselves, as calls come and go).
- ``subscribe``: a consumer group. Each assigned partition starts at a definite offset (the group's committed
  one, else the partition's end, or its start for ``from_start``), and the thread tracks the next offset of
  each, so it can go idle: after ``idle_after_s`` without a record it pauses the group's partitions and a
  watcher (a consumer without group, from those offsets) fetches with the long ``idle_wait_ms``; the first
  record it sees resumes the group's consumer, which reads it. On the embedded broker every fetch costs broker
  CPU, so an idle reader costs a fetch every ``idle_wait_ms`` instead of every few milliseconds, and the first
  request after a pause waits at most one idle wait."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

log = logging.getLogger("modelbus.kafka")

POLL_S = 0.02
"""how long one ``poll`` waits for a record while partitions are fetched (a command waits at most this long)"""

SESSION_TIMEOUT_MS = 10000
"""aiokafka's default; Tansu answers a group join after about half of it"""


class KafkaRecord(NamedTuple):
    """One record, with the attributes of aiokafka's ``ConsumerRecord`` that modelbus reads."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]

    @classmethod
    def of(cls, m: Message) -> KafkaRecord:
        return cls(m.topic(), m.partition(), m.offset(), m.key(), m.value(), m.headers() or [])


def consumer_config(bootstrap: str, group_id: str, fetch_wait_ms: int, **extra: Any) -> dict[str, Any]:
    return {
        "bootstrap.servers": bootstrap,
        "group.id": group_id,
        "enable.auto.commit": False,
        "fetch.wait.max.ms": fetch_wait_ms,
        "socket.nagle.disable": True,
        "enable.partition.eof": False,
        "log.connection.close": False,
        "session.timeout.ms": SESSION_TIMEOUT_MS,
        # librdkafka postpones a partition's fetch by this much when it thinks its queue is full (default 1 s); with
        # the seek on resume alone, the first wake of a run came 988 ms late (one run), with both 22 of 23 wakes
        # took 4.5-27 ms (one Tansu, session 12)
        "fetch.queue.backoff.ms": 10,
        "logger": logging.getLogger("modelbus.librdkafka"),
        **extra,
    }


class ThreadedConsumer:
    def __init__(
        self,
        config: dict[str, Any],
        on_records: Callable[[list[KafkaRecord]], None],
        name: str,
        *,
        idle_after_s: float = 0.0,
        idle_wait_ms: int = 0,
        hold: Callable[[], bool] | None = None,
        commit_each_batch: bool = False,
    ) -> None:
        """``hold()`` true: take no more records for now (the loop's backlog is full). ``commit_each_batch``:
        commit the offsets taken after each batch (else ``enable.auto.commit`` of the config decides)."""
        self._config = config
        self._on_records = on_records
        self._name = name
        self._idle_after_s = idle_after_s if idle_wait_ms > int(config["fetch.wait.max.ms"]) else 0.0
        self._idle_wait_ms = idle_wait_ms
        self._hold = hold
        self._commit_each_batch = commit_each_batch
        self._loop = asyncio.get_running_loop()
        self._commands: queue.SimpleQueue[Callable[[Consumer], None]] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._closing = False
        self._fetching = False
        """assign mode: partitions assigned and not paused (else the thread sleeps until a command comes)"""
        self._group = False
        self._from_start = False
        self._next: dict[tuple[str, int], int] = {}
        """group mode: the next offset of each assigned partition"""
        self._watcher: Consumer | None = None
        """group mode: the consumer without group that watches for the next record while idle (made once)"""
        self._watching = False
        self._last_record = time.monotonic()
        self.assignment: list[tuple[str, int]] = []
        """the partitions assigned now (read from the loop)"""
        self._failure: Exception | None = None
        """why the consumer could not be made (then every command, ``call`` among them, fails with it)"""
        self._thread: threading.Thread | None = None
        self._closed: asyncio.Future[None] = self._loop.create_future()

    # --- the loop's side ----------------------------------------------------------------------------------------

    @property
    def idle(self) -> bool:
        """Group mode: the partitions are paused and the watcher waits for the next record."""
        return self._watching

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    async def call(self, fn: Callable[[Consumer], Any]) -> Any:
        """Runs ``fn(consumer)`` in the consumer's thread and returns its result (or raises its error)."""
        future: asyncio.Future[Any] = self._loop.create_future()

        def command(consumer: Consumer) -> None:
            try:
                result = fn(consumer)
            except Exception as exc:  # noqa: BLE001 - handed to the caller
                self._to_loop(_settle, future, None, exc)
            else:
                self._to_loop(_settle, future, result, None)

        self._send(command)
        return await future

    def assign(self, tps: list[TopicPartition]) -> None:
        def command(consumer: Consumer) -> None:
            consumer.assign(tps)
            self._next = {(tp.topic, tp.partition): tp.offset for tp in tps if tp.offset >= 0}
            self.assignment = [(tp.topic, tp.partition) for tp in tps]
            self._fetching = True

        self._send(command)

    def subscribe(self, topic: str, *, from_start: bool) -> None:
        def command(consumer: Consumer) -> None:
            self._group, self._from_start = True, from_start
            consumer.subscribe([topic], on_assign=self._on_assign, on_revoke=self._on_revoke)

        self._send(command)

    def pause(self, tps: list[TopicPartition]) -> None:
        def command(consumer: Consumer) -> None:
            consumer.pause(tps)
            self._fetching = False

        self._send(command)

    def resume(self, tps: list[TopicPartition]) -> None:
        def command(consumer: Consumer) -> None:
            self._resume(consumer, tps)
            self._fetching = True

        self._send(command)

    async def close(self) -> None:
        """Stops reading and closes the consumer (a group's consumer commits what was taken and leaves)."""
        if self._thread is None:
            return
        self._closing = True
        self._wake.set()
        await asyncio.shield(self._closed)
        self._thread = None

    def _send(self, command: Callable[[Consumer], None]) -> None:
        self._commands.put(command)
        self._wake.set()
        if self._failure is not None:  # no thread reads the commands: each fails here, with the reason
            self._commands_now(_Unusable(self._failure))  # type: ignore[arg-type]

    def _to_loop(self, fn: Callable[..., Any], *args: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the event loop is closed: nobody waits any more
            self._loop.call_soon_threadsafe(fn, *args)

    # --- the consumer's thread ----------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            consumer = Consumer(self._config)
        except Exception as exc:  # noqa: BLE001 - a bad configuration: every waiting call gets the error
            log.exception("%s: the consumer could not be made", self._name)
            self._failure = exc
            self._commands_now(_Unusable(exc))  # type: ignore[arg-type] - the calls already sent get the reason
            self._to_loop(_settle, self._closed, None, None)
            return
        try:
            while not self._closing:
                self._wake.clear()
                self._commands_now(consumer)
                if self._held():
                    self._wake.wait(0.005)
                elif self._watching:
                    self._watch(consumer)
                elif self._group or self._fetching:
                    self._read(consumer)
                else:
                    self._wake.wait(1.0)
        finally:
            try:
                self._stop_watching(consumer, resume=False)
                if self._watcher is not None:
                    with contextlib.suppress(Exception):
                        self._watcher.close()
                if self._commit_each_batch and self.assignment:
                    with contextlib.suppress(KafkaException):
                        consumer.commit(asynchronous=False)
                consumer.close()
            finally:
                self._to_loop(_settle, self._closed, None, None)

    def _held(self) -> bool:
        """The loop's backlog is full: take no more records for now."""
        return self._hold is not None and self._hold()

    def _commands_now(self, consumer: Consumer) -> None:
        while True:
            try:
                command = self._commands.get_nowait()
            except queue.Empty:
                return
            try:
                command(consumer)
            except Exception:  # noqa: BLE001 - a failed command must not end the reader
                log.exception("%s: a consumer command failed", self._name)

    def _read(self, consumer: Consumer) -> None:
        """Polls, hands what came to the loop and polls again at once, for as long as records come and nothing
        else needs the thread (a command, closing, a full backlog). Handing records over wakes the event loop,
        which at once wants the GIL; the next ``poll`` is what releases it, so as little as possible runs in
        between. Before, the thread went back through its command loop first, and the loop's thread, woken, often
        found the GIL still held: one more futex wait and wake per record, ~1 ms late on a busy machine (strace of
        the API, session 15). Six pairs on one stack at 100 req/s: the serving worker's loop 2.8-3.9 switches per
        request against 3.2-4.7, API + serving worker 0.07-0.15 ms of CPU less per prediction."""
        try:
            first = consumer.poll(POLL_S)
            while first is not None:
                self._take(consumer, [first, *consumer.consume(num_messages=499, timeout=0)])
                if self._closing or not self._commands.empty() or self._held():
                    return
                first = consumer.poll(POLL_S)
        except KafkaException:
            log.warning("%s: reading failed", self._name, exc_info=True)
            self._wake.wait(0.5)
            return
        if self._idle_after_s and time.monotonic() - self._last_record > self._idle_after_s:
            self._start_watching(consumer)

    def _take(self, consumer: Consumer, messages: list[Message]) -> None:
        """Records to the loop, as the last thing done (see ``_read``)."""
        records = []
        for m in messages:
            if m.error():
                log.warning("%s: %s", self._name, m.error())
                continue
            records.append(KafkaRecord.of(m))
            self._next[(m.topic(), m.partition())] = m.offset() + 1
        if not records:
            return
        self._last_record = time.monotonic()
        if self._commit_each_batch:
            with contextlib.suppress(KafkaException):
                consumer.commit(asynchronous=True)
        self._to_loop(self._on_records, records)

    def _resume(self, consumer: Consumer, tps: list[TopicPartition]) -> None:
        """Resumes fetching from where each partition paused. The seek to that same offset is what makes
        librdkafka fetch at once: after a plain ``resume`` of a partition that had delivered records its next
        fetch came ~1 s later (measured on Tansu, librdkafka 2.16)."""
        consumer.resume(tps)
        for tp in tps:
            offset = self._next.get((tp.topic, tp.partition))
            if offset is not None:
                consumer.seek(TopicPartition(tp.topic, tp.partition, offset))

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Each partition from a definite offset: the group's committed one, else the end (or the start)."""
        self._stop_watching(consumer, resume=True)
        try:
            committed = consumer.committed(partitions, timeout=10)
            at = []
            for tp in committed:
                offset = tp.offset
                if offset < 0:
                    low, high = consumer.get_watermark_offsets(
                        TopicPartition(tp.topic, tp.partition), timeout=10, cached=False
                    )
                    offset = low if self._from_start else high
                at.append(TopicPartition(tp.topic, tp.partition, offset))
        except KafkaException:
            log.warning("%s: reading committed offsets failed; the reset policy decides", self._name, exc_info=True)
            at = partitions
        self._next = {(tp.topic, tp.partition): tp.offset for tp in at if tp.offset >= 0}
        consumer.assign(at)
        self.assignment = [(tp.topic, tp.partition) for tp in at]
        self._last_record = time.monotonic()

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._stop_watching(consumer, resume=True)
        self.assignment = []
        self._next = {}

    def _start_watching(self, consumer: Consumer) -> None:
        if not self.assignment or any(p not in self._next for p in self.assignment):
            self._last_record = time.monotonic()  # an offset is not known: keep reading, look again later
            return
        if self._watcher is None:
            self._watcher = Consumer(
                {
                    **self._config,
                    "group.id": f"{self._config['group.id']}.watch",
                    "enable.auto.commit": False,
                    "fetch.wait.max.ms": self._idle_wait_ms,
                }
            )
        self._watcher.assign([TopicPartition(t, p, self._next[(t, p)]) for t, p in self.assignment])
        consumer.pause([TopicPartition(t, p) for t, p in self.assignment])
        self._watching = True

    def _watch(self, consumer: Consumer) -> None:
        assert self._watcher is not None
        try:
            taken = consumer.poll(0)  # the group's callbacks (a rebalance ends the watch)
        except KafkaException:
            taken = None
        if taken is not None:  # not expected while paused, but never dropped
            self._stop_watching(consumer, resume=True)
            self._take(consumer, [taken])
        if not self._watching:
            return
        try:
            seen = self._watcher.poll(0.1)
        except KafkaException:
            seen = None
        if seen is not None and not seen.error():
            self._stop_watching(consumer, resume=True)

    def _stop_watching(self, consumer: Consumer, *, resume: bool) -> None:
        if not self._watching or self._watcher is None:
            return
        self._watching = False
        if resume and self.assignment:
            self._resume(consumer, [TopicPartition(t, p) for t, p in self.assignment])
        with contextlib.suppress(Exception):
            self._watcher.unassign()  # an unassigned consumer sends no fetch
        self._last_record = time.monotonic()


def committed_to_end(consumer: Consumer, topic: str) -> bool:
    """Every partition of ``topic`` committed to its end by the consumer's group (run in its thread)."""
    meta = consumer.list_topics(topic, timeout=5).topics.get(topic)
    if meta is None or meta.error is not None or not meta.partitions:
        return False
    committed = consumer.committed([TopicPartition(topic, p) for p in sorted(meta.partitions)], timeout=5)
    for tp in committed:
        high = consumer.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=5, cached=False)[1]
        if high > 0 and tp.offset < high:
            return False
    return True


class _Unusable:
    """Stands in for a consumer that could not be made: any use raises why."""

    def __init__(self, reason: Exception) -> None:
        self._reason = reason

    def __getattr__(self, name: str) -> Any:
        raise self._reason


def _settle(future: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)
