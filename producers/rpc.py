"""The caller's side of request/reply over Kafka.

Every API process reads all partitions of ``predict.replies`` from the end (no consumer
group, so each process sees every reply) and resolves the waiting future whose correlation id
matches; replies for other processes are skipped. A reply that never comes is a timeout.

While no call waits for a reply the reader pauses its partitions (with idle waits on,
``MODELBUS_IDLE_FETCH_MAX_WAIT_MS`` > 0): a paused consumer sends no fetch at all, which on Tansu, where
every fetch costs broker CPU, is what an idle API process costs. A call resumes them before it
publishes its request, from the position where the reader paused, so no reply is skipped."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from infra.settings import Settings
from producers.publisher import BrokerUnavailable, EventPublisher
from schemas.envelope import Envelope
from schemas.rpc import RPC_REQUESTED, RpcReply, RpcRequest

log = logging.getLogger("modelbus.rpc")


class RpcTimeout(TimeoutError):
    """No worker answered in time."""


class RpcClient:
    def __init__(self, publisher: EventPublisher, settings: Settings) -> None:
        self.publisher = publisher
        self.settings = settings
        self.reply_topic = settings.topic("predict.replies")
        self._pending: dict[str, asyncio.Future[RpcReply]] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._tps: list[TopicPartition] = []
        self._pause_when_idle = False

    async def start(self) -> None:
        async with self._lock:
            if self._task is not None:
                return
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self.settings.kafka_bootstrap,
                enable_auto_commit=False,
                fetch_max_wait_ms=self.settings.rpc_fetch_max_wait_ms,
                request_timeout_ms=30000,
            )
            try:
                await consumer.start()
                parts = consumer.partitions_for_topic(self.reply_topic) or set()
                if not parts:
                    await consumer.topics()
                    parts = consumer.partitions_for_topic(self.reply_topic) or {0}
                tps = [TopicPartition(self.reply_topic, p) for p in sorted(parts)]
                consumer.assign(tps)
                await consumer.seek_to_end(*tps)
                for tp in tps:  # resolve the lazy seek now, so no reply published after start is missed
                    await consumer.position(tp)
                self._tps = tps
                self._pause_when_idle = bool(self.settings.idle_fetch_max_wait_ms)
                if self._pause_when_idle and not self._pending:
                    consumer.pause(*tps)
            except Exception as exc:
                await consumer.stop()
                raise BrokerUnavailable(f"cannot read replies: {exc.__class__.__name__}") from exc
            self._consumer = consumer
            self._task = asyncio.create_task(self._read_replies(), name="rpc-replies")

    async def _read_replies(self) -> None:
        assert self._consumer is not None
        while True:
            try:
                batches = await self._consumer.getmany(timeout_ms=200, max_records=500)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - keep reading after a broker hiccup
                log.exception("reading replies failed")
                await asyncio.sleep(0.5)
                continue
            for records in batches.values():
                for rec in records:
                    corr = dict(rec.headers or ()).get("x-correlation-id", b"").decode()
                    future = self._pending.get(corr)
                    if future is None or future.done():
                        continue
                    try:
                        future.set_result(Envelope.from_bytes(rec.value).payload(RpcReply))
                    except Exception as exc:  # noqa: BLE001
                        future.set_exception(exc)
            if self._pause_when_idle and not self._pending:
                self._consumer.pause(*self._tps)

    async def call(self, kind: str, body: dict[str, Any], *, key: str, timeout_s: float | None = None) -> RpcReply:
        """Publishes a request and waits for its reply (raises RpcTimeout, BrokerUnavailable)."""
        await self.start()
        corr = uuid.uuid4().hex
        future: asyncio.Future[RpcReply] = asyncio.get_running_loop().create_future()
        self._pending[corr] = future
        if self._pause_when_idle and self._consumer is not None:
            self._consumer.resume(*self._tps)
        env = Envelope.wrap(
            RPC_REQUESTED, key, RpcRequest(kind=kind, body=body), source="modelbus/api", correlationid=corr
        )
        try:
            await self.publisher.publish_direct(
                "predict.requests",
                env.to_bytes(),
                key=key,
                headers={
                    "content-type": "application/cloudevents+json",
                    "ce_type": env.type,
                    "ce_id": env.id,
                    "x-correlation-id": corr,
                    "x-reply-topic": self.reply_topic,
                },
            )
            try:
                return await asyncio.wait_for(future, timeout_s or self.settings.request_timeout_seconds)
            except TimeoutError as exc:
                raise RpcTimeout(f"no prediction worker answered {kind} within the timeout") from exc
        finally:
            self._pending.pop(corr, None)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
