"""The caller's side of request/reply over Kafka.

Every API process reads all partitions of ``predict.replies`` from the end (no consumer
group, so each process sees every reply) and resolves the waiting future whose correlation id
matches; replies for other processes are skipped. A reply that never comes is a timeout. The reader is a
librdkafka consumer in a thread of its own (``infra.threaded_consumer``): its fetching costs a fraction of an
aiokafka consumer's, which fetched in Python on the event loop every few milliseconds while calls waited.

When no call has waited for a reply for ``PAUSE_AFTER_S`` the reader pauses its partitions (with idle waits
on, ``MODELBUS_IDLE_FETCH_MAX_WAIT_MS`` > 0): a paused consumer sends no fetch at all, which on Tansu, where
every fetch costs broker CPU, is what an idle API process costs. A call resumes them before it
publishes its request, from the position where the reader paused, so no reply is skipped."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from typing import Any

from confluent_kafka import TopicPartition

from infra.settings import Settings
from infra.threaded_consumer import KafkaRecord, ThreadedConsumer, consumer_config
from producers.publisher import BrokerUnavailable, EventPublisher
from schemas.envelope import Envelope
from schemas.rpc import RPC_REQUESTED, RpcReply, RpcRequest

log = logging.getLogger("modelbus.rpc")

PAUSE_AFTER_S = 1.0
"""a reply reader pauses this long after its last call ended: steady traffic keeps it reading instead of pausing
and resuming it (two commands to its thread and a seek) for every request"""


class RpcTimeout(TimeoutError):
    """No worker answered in time."""


class _Reader:
    """The reader of one reply topic: a librdkafka consumer without group, assigned at the end of the topic."""

    def __init__(self, topic: str, consumer: ThreadedConsumer) -> None:
        self.topic = topic
        self.consumer = consumer
        self.tps: list[TopicPartition] = []
        self.paused = False
        self.pause_later: asyncio.TimerHandle | None = None
        """the pause check scheduled ``PAUSE_AFTER_S`` after the reader was last used"""
        self.last_used = 0.0
        """loop time of the last reply or call end (the pause check waits until ``PAUSE_AFTER_S`` after it)"""


class RpcClient:
    def __init__(self, publisher: EventPublisher, settings: Settings) -> None:
        self.publisher = publisher
        self.settings = settings
        self.base_reply_topic = settings.topic("predict.replies")
        self.reply_topic = self.base_reply_topic
        """where this process's replies go now (a generation of its own after a rollover, embedded broker)"""
        self._pending: dict[str, asyncio.Future[RpcReply]] = {}
        self.last_call = time.monotonic()
        """when the last call was made (``api.keep_warm`` pings when it is long ago)"""
        self._reply_topic_of: dict[str, str] = {}
        self._readers: dict[str, _Reader] = {}
        self._started = False
        self._lock = asyncio.Lock()
        self._pause_when_idle = bool(settings.idle_fetch_max_wait_ms)
        self._uid = uuid.uuid4().hex[:10]
        self._generation = 0
        self._rolling: asyncio.Task[None] | None = None
        self._retiring: set[asyncio.Task[None]] = set()
        self._view: Any = None
        self._mongo: Any = None

    async def start(self) -> None:
        async with self._lock:
            if self._started:
                return
            await self._open_reader(self.reply_topic)
            if self.settings.generation_max_records > 0:
                from infra import mongo
                from infra.topic_generations import GenerationView

                self._mongo = mongo.client(self.settings)
                self._view = GenerationView(self.settings, self._mongo[self.settings.mongodb_db])
                self._view.refresh_soon()
            self._started = True

    async def _open_reader(self, topic: str) -> _Reader:
        config = consumer_config(
            self.settings.kafka_bootstrap or "", f"modelbus-replies-{self._uid}", self.settings.rpc_fetch_max_wait_ms
        )
        reader = _Reader(topic, ThreadedConsumer(config, lambda records: self._on_replies(reader, records), topic))
        reader.consumer.start()

        def at_end(consumer: Any) -> list[TopicPartition]:  # the end of each partition, resolved now, so no reply
            meta = consumer.list_topics(topic, timeout=10).topics[topic]  # published after start is missed
            if meta.error is not None or not meta.partitions:
                raise BrokerUnavailable(f"no reply topic {topic}: {meta.error}")
            return [
                TopicPartition(topic, p, consumer.get_watermark_offsets(TopicPartition(topic, p), 10, False)[1])
                for p in sorted(meta.partitions)
            ]

        try:
            at = await reader.consumer.call(at_end)
        except Exception as exc:
            await reader.consumer.close()
            raise BrokerUnavailable(f"cannot read replies: {exc.__class__.__name__}: {exc}") from exc
        reader.consumer.assign(at)
        reader.tps = [TopicPartition(topic, tp.partition) for tp in at]
        self._readers[topic] = reader
        self._idle(reader)
        return reader

    def _waiting_on(self, topic: str) -> bool:
        return any(t == topic for t in self._reply_topic_of.values())

    def _idle(self, reader: _Reader) -> None:
        """No call may wait on the reader any more: pause it ``PAUSE_AFTER_S`` from now unless it is used again
        (one timer, re-armed from the last use, so steady traffic neither pauses the reader for every request nor
        sets a timer per request)."""
        loop = asyncio.get_running_loop()
        reader.last_used = loop.time()
        if self._pause_when_idle and not reader.paused and reader.pause_later is None:
            reader.pause_later = loop.call_later(PAUSE_AFTER_S, self._pause, reader)

    def _pause(self, reader: _Reader) -> None:
        reader.pause_later = None
        if reader.paused or self._waiting_on(reader.topic) or self._readers.get(reader.topic) is not reader:
            return  # a waiting call re-arms the check when it ends
        left = reader.last_used + PAUSE_AFTER_S - asyncio.get_running_loop().time()
        if left > 0:
            reader.pause_later = asyncio.get_running_loop().call_later(left, self._pause, reader)
            return
        reader.consumer.pause(reader.tps)
        reader.paused = True

    def _wake(self, reader: _Reader) -> None:
        if reader.paused:
            reader.consumer.resume(reader.tps)
            reader.paused = False

    def _on_replies(self, reader: _Reader, records: list[KafkaRecord]) -> None:
        """Records of a reply topic (on the event loop): each resolves the call waiting on its correlation id."""
        last = -1
        for rec in records:
            last = max(last, rec.offset)
            corr = dict(rec.headers).get("x-correlation-id", b"").decode()
            future = self._pending.get(corr)
            if future is None or future.done():
                continue
            try:
                future.set_result(Envelope.from_bytes(rec.value or b"").payload(RpcReply))
            except Exception as exc:  # noqa: BLE001
                future.set_exception(exc)
        if last + 1 >= self.settings.generation_max_records > 0 and reader.topic == self.reply_topic:
            self._roll_soon()
        self._idle(reader)

    def _roll_soon(self) -> None:
        """Embedded broker: this process's replies move to a fresh topic of its own (see topic_generations)."""
        if not self.settings.kafka_embedded or (self._rolling is not None and not self._rolling.done()):
            return
        self._rolling = asyncio.create_task(self.roll_reply_topic(), name="rpc-reply-rollover")

    async def roll_reply_topic(self) -> str:
        """Opens the next reply generation and sends new requests' replies there; the current reader goes on
        until every call waiting on it has its reply (or its timeout), then its topic is deleted."""
        from infra.topic_generations import create_topic

        self._generation += 1
        topic = f"{self.base_reply_topic}.{self._uid}.g{self._generation}"
        await create_topic(self.settings, topic, 1)
        await self._open_reader(topic)
        old, self.reply_topic = self.reply_topic, topic
        log.info("reply topic rolled over", extra={"from": old, "to": topic})
        self._retire_soon(old)
        await self._sweep()
        return topic

    async def _sweep(self) -> None:
        """Deletes this process's reply generations older than the previous one that are on the broker again
        and read by no call. On Tansu a metadata request that allows topic creation creates a topic it names: in
        session 13's soak, when the workers' reply producers were aiokafka ones (which always allow it), one
        deleted generation of 30 came back and stayed. The producers are librdkafka ones now, which do not allow
        it (``infra.loop_producer``); this is what catches any other client that names an old generation."""
        from infra.topic_generations import delete_topic, topics_named

        prefix = f"{self.base_reply_topic}.{self._uid}.g"
        try:
            back = [
                name
                for name in await topics_named(self.settings, prefix)
                if (gen := name.removeprefix(prefix)).isdigit()
                and int(gen) < self._generation - 1
                and name not in self._readers
            ]
            if back:
                await delete_topic(self.settings, *back)
                log.info("old reply topics were there again: deleted", extra={"topics": back})
        except Exception:  # noqa: BLE001 - the next rollover sweeps again
            log.warning("sweeping old reply topics failed", exc_info=True)

    def _retire_soon(self, topic: str) -> None:
        """An old generation's reader goes once no call waits on it any more."""
        reader = self._readers.get(topic)
        if reader is not None and topic != self.reply_topic and not self._waiting_on(topic):
            self._readers.pop(topic, None)
            task = asyncio.create_task(self._retire(reader), name=f"rpc-retire-{topic}")
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)

    async def _retire(self, reader: _Reader) -> None:
        if reader.pause_later is not None:
            reader.pause_later.cancel()
        with contextlib.suppress(Exception):
            await reader.consumer.close()
        if reader.topic != self.base_reply_topic:  # the shared catalog topic stays
            from infra.topic_generations import delete_topic

            try:
                await delete_topic(self.settings, reader.topic)
            except Exception:  # noqa: BLE001 - a topic left behind costs memory, not correctness
                log.warning("deleting reply topic %s failed", reader.topic, exc_info=True)

    async def call(self, kind: str, body: dict[str, Any], *, key: str, timeout_s: float | None = None) -> RpcReply:
        """Publishes a request and waits for its reply (raises RpcTimeout, BrokerUnavailable)."""
        await self.start()
        self.last_call = time.monotonic()
        corr = uuid.uuid4().hex
        loop = asyncio.get_running_loop()
        future: asyncio.Future[RpcReply] = loop.create_future()
        self._pending[corr] = future
        reply_topic = self.reply_topic
        self._reply_topic_of[corr] = reply_topic
        self._wake(self._readers[reply_topic])
        request_topic = "predict.requests"
        if self._view is not None:
            self._view.refresh_soon()
            request_topic = self._view.full_name("predict.requests")
        # ``body`` is already the JSON form of the kind's body model: the request's data as is (dumping it again
        # would walk a 1,000-record body twice more)
        env = Envelope(
            type=RPC_REQUESTED,
            subject=key,
            source="modelbus/api",
            data={"kind": kind, "body": body},
            correlationid=corr,
            schemaversion=int(getattr(RpcRequest, "schema_version", 1)),
        )
        try:
            # the reply proves the request arrived: its acknowledgement is only watched for a failure
            ack = self.publisher.send_direct(
                request_topic,
                env.to_bytes(),
                key=key,
                headers={
                    "content-type": "application/cloudevents+json",
                    "ce_type": env.type,
                    "ce_id": env.id,
                    "x-correlation-id": corr,
                    "x-reply-topic": reply_topic,
                },
            )
            ack.add_done_callback(lambda a: _fail_with(future, a))
            # one timer on the reply's own future (``asyncio.wait_for`` would add a waiter future and callbacks)
            expiry = loop.call_later(timeout_s or self.settings.request_timeout_seconds, _expire, future)
            try:
                return await future
            except TimeoutError as exc:
                if not ack.done():
                    raise BrokerUnavailable("Kafka did not acknowledge the request in time") from exc
                raise RpcTimeout(f"no prediction worker answered {kind} within the timeout") from exc
            finally:
                expiry.cancel()
        finally:
            self._pending.pop(corr, None)
            self._reply_topic_of.pop(corr, None)
            if reply_topic != self.reply_topic:
                self._retire_soon(reply_topic)
            elif (reader := self._readers.get(reply_topic)) is not None:
                self._idle(reader)  # the last call done: pause (its reply came while it still waited)

    async def close(self) -> None:
        readers = list(self._readers.values())
        self._readers.clear()
        for reader in readers:
            if reader.pause_later is not None:
                reader.pause_later.cancel()
            await reader.consumer.close()
        if self._retiring:
            await asyncio.gather(*self._retiring, return_exceptions=True)
        if self._rolling is not None:
            self._rolling.cancel()
            await asyncio.gather(self._rolling, return_exceptions=True)
        if self._mongo is not None:
            await self._mongo.close()
            self._mongo = None
        self._started = False


def _expire(reply: asyncio.Future[RpcReply]) -> None:
    if not reply.done():
        reply.set_exception(TimeoutError())


def _fail_with(reply: asyncio.Future[RpcReply], ack: asyncio.Future[None]) -> None:
    """The request was not acknowledged: its call fails with why (unless its reply came first)."""
    if not reply.done() and not ack.cancelled() and (exc := ack.exception()) is not None:
        reply.set_exception(exc)
