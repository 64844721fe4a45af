"""Kafka → server-sent events for the console: one aiokafka consumer per topic someone watches, in the API
process, with no consumer group (it reads every partition, from the end: it sees what happens from now on
and commits nothing), fanned out to every SSE client of that topic.

* Started lazily by the first page or stream that needs the topic (``ensure`` returns once the consumer's
  positions are fixed, so a page that calls it *before* reading MongoDB misses no event: it renders the
  projection, then its stream replays what the hub buffered after the sequence number the page got).
* Each topic keeps the last ``BUFFER`` messages with a sequence number (a new consumer first loads the last
  ``PRELOAD`` of each partition); an SSE client resumes after the ``Last-Event-ID`` its browser sends on
  reconnect, or after the page's ``after`` number. A page whose projection may lag the topic (a job that has
  completed on Kafka but not yet in MongoDB) starts from ``since(topic, seconds)`` and replays the last
  minutes: the pages' updates are idempotent.
* On the embedded broker the busy topics move to fresh generations (``infra/topic_generations.py``): a feed of
  such a topic adds each new generation's partitions, from their start, as soon as the generation view names
  it, and lets an older generation go ``GENERATION_GRACE_SECONDS`` later (producers switch within seconds and
  a drained generation is deleted), so the console follows ``predict.served`` and ``predict.requests``.
* A stream ends after ``STREAM_SECONDS`` (the browser's EventSource reconnects and resumes), so a server
  shutting down never waits on an open console tab for long; a topic's consumer stops ``IDLE_SECONDS``
  after its last client left."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from litestar import Litestar, Request

from infra.settings import Settings
from infra.topic_generations import ROLLED, GenerationView, partitions_of
from producers.publisher import BrokerUnavailable
from schemas.topics import TOPICS

log = logging.getLogger("modelbus.console.hub")

BUFFER = 2000
IDLE_SECONDS = 30.0
STREAM_SECONDS = 20.0
KEEPALIVE_SECONDS = 10.0
PRELOAD = 200
PRELOAD_SECONDS = 3.0
START_SECONDS = 8.0
GENERATION_GRACE_SECONDS = 30.0
MAX_VALUE_BYTES = 16_384
"""Bigger message bodies (a 1,000-record batch) reach the browser as their type, subject and size only."""


def decode(topic: str, msg: Any, seq: int) -> dict[str, Any]:
    """A Kafka message as the console shows it: the CloudEvents envelope fields, or for the dead-letter
    topic (no envelope) the raw body and the error headers."""
    headers = {k: (v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)) for k, v in msg.headers or ()}
    raw: bytes = msg.value or b""
    item: dict[str, Any] = {
        "seq": seq,
        "topic": topic,
        "kafka_topic": getattr(msg, "topic", topic),
        "partition": msg.partition,
        "offset": msg.offset,
        "timestamp": msg.timestamp,
        "key": msg.key.decode("utf-8", "replace") if isinstance(msg.key, bytes) else msg.key,
        "bytes": len(raw),
        "headers": headers,
        "type": headers.get("ce_type"),
        "subject": None,
        "time": None,
        "data": None,
    }
    if len(raw) > MAX_VALUE_BYTES:  # not parsed: the headers say what it is
        item["subject"] = item["key"]
        item["data"] = {"truncated": True, "bytes": len(raw)}
        return item
    try:
        body: Any = json.loads(raw)
    except ValueError:
        body = None
    if isinstance(body, dict) and "specversion" in body:
        item.update(type=body.get("type", item["type"]), subject=body.get("subject"), time=body.get("time"))
        item.update(data=body.get("data"), id=body.get("id"))
    else:
        item["data"] = body if body is not None else raw.decode("utf-8", "replace")
    return item


@dataclass
class TopicFeed:
    short: str
    consumer: AIOKafkaConsumer
    buffer: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=BUFFER))
    seq: int = 0
    clients: int = 0
    last_used: float = field(default_factory=time.monotonic)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    topics: dict[str, float] = field(default_factory=dict)
    """the Kafka topics read (the catalog topic and generations), each with when it was superseded (0: current)"""

    def publish(self, items: list[dict[str, Any]]) -> None:
        self.buffer.extend(items)
        event, self.changed = self.changed, asyncio.Event()
        event.set()

    def after(self, seq: int) -> list[dict[str, Any]]:
        if not self.buffer or self.buffer[-1]["seq"] <= seq:
            return []
        return [item for item in self.buffer if item["seq"] > seq]


class Hub:
    def __init__(self, settings: Settings, generations: GenerationView | None = None) -> None:
        self.settings = settings
        self.generations = generations
        """where the rolled topics are now (embedded broker only; None: the catalog topics, as on a real Kafka)"""
        self.feeds: dict[str, TopicFeed] = {}
        self._lock = asyncio.Lock()
        self.closed = False

    async def ensure(self, short: str) -> int:
        """Starts the topic's consumer if needed (positioned at the end of every partition) and returns the
        current sequence number: a stream started with ``after`` = this number gets every later message."""
        if short not in TOPICS:
            raise KeyError(short)
        async with self._lock:
            feed = self.feeds.get(short)
            if feed is None or feed.task is None or feed.task.done():
                try:
                    async with asyncio.timeout(START_SECONDS):
                        feed = await self._start(short)
                except (KafkaError, OSError, TimeoutError) as exc:
                    raise BrokerUnavailable(f"the console cannot read {short} from Kafka: {exc!r}") from exc
                self.feeds[short] = feed
            feed.last_used = time.monotonic()
            return feed.seq

    async def try_ensure(self, short: str) -> int | None:
        """``ensure`` for a page: None (and a warning) when Kafka cannot be read, so the page still renders
        what MongoDB holds, without live updates."""
        try:
            return await self.ensure(short)
        except BrokerUnavailable as exc:
            log.warning("console hub: %s", exc)
            return None

    async def _start(self, short: str) -> TopicFeed:
        name = self.settings.topic(short)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="latest",
            client_id="modelbus-console",
            fetch_max_wait_ms=200,
            request_timeout_ms=15000,
        )
        try:
            await consumer.start()
            partitions = consumer.partitions_for_topic(name)
            if not partitions:
                await consumer.topics()  # fetch the metadata (partition counts differ by topic)
                partitions = consumer.partitions_for_topic(name) or {0}
            tps = [TopicPartition(name, p) for p in sorted(partitions)]
            consumer.assign(tps)
            feed = TopicFeed(short, consumer, seq=time.time_ns() // 1000)  # numbers keep growing across restarts
            feed.topics[name] = 0.0
            await self._preload(feed, tps)
            await self._follow(feed, live_from_end=True)
        except BaseException:
            await consumer.stop()
            raise
        feed.task = asyncio.create_task(self._run(feed), name=f"console-hub-{short}")
        log.info("console hub: reading %s", name)
        return feed

    async def _preload(self, feed: TopicFeed, tps: list[TopicPartition]) -> None:
        """Reads the last ``PRELOAD`` messages of each partition into the buffer before the feed goes live, so
        a page can replay what happened just before it asked (``since``): events already on Kafka that the
        projection it read had not applied yet."""
        ends = await feed.consumer.end_offsets(tps)
        starts = await feed.consumer.beginning_offsets(tps)
        for tp in tps:
            feed.consumer.seek(tp, max(starts[tp], ends[tp] - PRELOAD))
        pending = {tp for tp in tps if ends[tp] > starts[tp]}
        deadline = time.monotonic() + PRELOAD_SECONDS
        items: list[dict[str, Any]] = []
        while pending and time.monotonic() < deadline:
            batches = await feed.consumer.getmany(*pending, timeout_ms=200, max_records=PRELOAD * len(tps))
            for messages in batches.values():
                for msg in messages:
                    feed.seq += 1
                    items.append(decode(feed.short, msg, feed.seq))
            pending = {tp for tp in pending if await feed.consumer.position(tp) < ends[tp]}
        for tp in pending:  # too slow: go live from the end rather than lag behind
            feed.consumer.seek(tp, ends[tp])
        feed.buffer.extend(items)

    def since(self, short: str, seconds: float) -> int:
        """The sequence number to stream ``after`` to also replay the buffered messages Kafka stamped in the last
        ``seconds`` (call ``ensure`` first)."""
        feed = self.feeds.get(short)
        if feed is None:
            return 0
        cutoff = (time.time() - seconds) * 1000
        for item in feed.buffer:
            if (item["timestamp"] or 0) >= cutoff:
                return int(item["seq"]) - 1
        return feed.seq

    async def _follow(self, feed: TopicFeed, *, live_from_end: bool = False) -> None:
        """Reads the topic's current generation too, from its start (from its end when the feed starts: it
        shows what happens from now on), and stops reading generations superseded more than
        ``GENERATION_GRACE_SECONDS`` ago (the assignment of the others keeps their positions)."""
        view = self.generations
        if view is None or feed.short not in ROLLED:
            return
        if not view.docs:
            await view.refresh()
        view.refresh_soon()
        now = time.monotonic()
        current = view.full_name(feed.short)
        stale = [t for t, since in feed.topics.items() if since and now - since > GENERATION_GRACE_SECONDS]
        if current in feed.topics and not stale:
            return
        consumer = feed.consumer
        kept = {tp: await consumer.position(tp) for tp in consumer.assignment() if tp.topic not in stale}
        new: list[TopicPartition] = []
        if current not in feed.topics:
            new = [TopicPartition(current, p) for p in range(partitions_of(self.settings, feed.short))]
            for topic in feed.topics:
                feed.topics[topic] = feed.topics[topic] or now
            feed.topics[current] = 0.0
        for topic in stale:
            del feed.topics[topic]
        consumer.assign([*kept, *new])
        for tp, position in kept.items():
            consumer.seek(tp, position)
        if new:
            await (consumer.seek_to_end(*new) if live_from_end else consumer.seek_to_beginning(*new))
            log.info("console hub: %s now also reads %s", feed.short, current)

    async def _run(self, feed: TopicFeed) -> None:
        try:
            while not self.closed:
                await self._follow(feed)
                batches = await feed.consumer.getmany(timeout_ms=500, max_records=500)
                items = []
                for tp, messages in batches.items():
                    for msg in messages:
                        feed.seq += 1
                        try:
                            items.append(decode(feed.short, msg, feed.seq))
                        except Exception:  # noqa: BLE001 - one odd message must not stop the feed
                            log.exception("console hub: cannot decode a message of %s", tp.topic)
                if items:
                    feed.publish(items)
                if feed.clients == 0 and time.monotonic() - feed.last_used > IDLE_SECONDS:
                    break
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - the next page or stream starts a fresh consumer
            log.exception("console hub: the consumer of %s stopped", feed.short)
        finally:
            feed.publish([])  # wake the streams: they see the feed is gone and end (the browser reconnects)
            with contextlib.suppress(Exception):
                await feed.consumer.stop()
            log.info("console hub: stopped reading %s", feed.short)

    async def stream(
        self, short: str, after: int | None, *, seconds: float = STREAM_SECONDS
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Batches of messages of ``short`` with a sequence number above ``after`` (None: from now), for at
        most ``seconds``; an empty batch every ``KEEPALIVE_SECONDS`` so proxies keep the connection."""
        current = await self.ensure(short)
        feed = self.feeds[short]
        last = current if after is None or after > current else after
        feed.clients += 1
        deadline = time.monotonic() + seconds
        try:
            while not self.closed and feed.task is not None and not feed.task.done():
                changed = feed.changed
                items = feed.after(last)
                if items:
                    last = items[-1]["seq"]
                    yield items
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                try:
                    await asyncio.wait_for(changed.wait(), timeout=min(KEEPALIVE_SECONDS, remaining))
                except TimeoutError:
                    yield []
        finally:
            feed.clients -= 1
            feed.last_used = time.monotonic()

    async def recent(self, short: str, count: int = 50, *, wait_s: float = 3.0) -> list[dict[str, Any]]:
        """The last ``count`` messages of each partition of ``short`` already on the topic (newest last,
        at most ``count`` in all), read by a one-off consumer; for the first screen of the events page."""
        if short not in TOPICS:
            raise KeyError(short)
        name = self.settings.topic(short)
        if self.generations is not None and short in ROLLED:  # the current generation's last messages
            if not self.generations.docs:
                await self.generations.refresh()
            name = self.generations.full_name(short)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap,
            group_id=None,
            enable_auto_commit=False,
            client_id="modelbus-console-recent",
            fetch_max_wait_ms=100,
            request_timeout_ms=15000,
        )
        items: list[dict[str, Any]] = []
        try:
            await consumer.start()
            if not consumer.partitions_for_topic(name):
                await consumer.topics()
            tps = [TopicPartition(name, p) for p in sorted(consumer.partitions_for_topic(name) or {0})]
            consumer.assign(tps)
            ends = await consumer.end_offsets(tps)
            starts = await consumer.beginning_offsets(tps)
            wanted = {tp: max(starts[tp], ends[tp] - count) for tp in tps}
            for tp, offset in wanted.items():
                consumer.seek(tp, offset)
            pending = {tp for tp in tps if ends[tp] > wanted[tp]}
            deadline = time.monotonic() + wait_s
            while pending and time.monotonic() < deadline:
                batches = await consumer.getmany(*pending, timeout_ms=200, max_records=count * len(tps))
                for tp, messages in batches.items():
                    for msg in messages:
                        if msg.offset < ends[tp]:
                            items.append(decode(short, msg, 0))
                    if await consumer.position(tp) >= ends[tp]:
                        pending.discard(tp)
        finally:
            await consumer.stop()
        items.sort(key=lambda i: (i["timestamp"] or 0, i["partition"], i["offset"]))
        return items[-count:]

    async def close(self) -> None:
        self.closed = True
        for feed in list(self.feeds.values()):
            if feed.task is not None:
                feed.task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await feed.task
        self.feeds.clear()


async def close_hub(app: Litestar) -> None:
    """For ``Litestar(on_shutdown=...)``: stop the hub's consumers before the broker goes away."""
    hub: Hub | None = getattr(app.state, "console_hub", None)
    if hub is not None:
        await hub.close()


def hub_of(app: Litestar) -> Hub:
    """The app's hub (created at first use; one per app, so two stacks in one process do not mix)."""
    hub: Hub | None = getattr(app.state, "console_hub", None)
    if hub is None or hub.closed:
        settings: Settings = app.state.settings
        view = GenerationView(settings, app.state.db) if settings.kafka_embedded else None
        hub = Hub(settings, view)
        app.state.console_hub = hub
    return hub


async def live_after(request: Request[Any, Any, Any], topics: tuple[str, ...]) -> dict[str, int | None]:
    """The hub's current sequence number of each topic, taken *before* the page reads MongoDB: the page's
    streams resume after it and miss nothing (None when the hub cannot start: the page then streams from now)."""
    hub = hub_of(request.app)
    out: dict[str, int | None] = {}
    for topic in topics:
        try:
            out[topic] = await asyncio.wait_for(hub.ensure(topic), timeout=5)
        except Exception:  # Kafka unreachable: the page still renders from the projections
            log.warning("console: no live feed of %s", topic, exc_info=True)
            out[topic] = None
    return out
