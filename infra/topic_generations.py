"""Topic generations: keeps each partition of the busy topics small on the embedded broker.

Tansu (the embedded broker) never deletes a record (``DeleteRecords`` closes the connection) and a fetch
that returns data lists every stored batch of the partition first, so under steady traffic its CPU per
message and its memory grow without bound. The busy topics therefore move to a fresh topic, a
*generation*, once a partition of the current one holds ``MODELBUS_GENERATION_MAX_RECORDS`` records, and a
drained generation is deleted:

- ``predict.requests`` (read by the ``serving`` group) and ``predict.served`` (read by the
  ``projector-served``, ``canary-analyser`` and ``archive`` groups): generation 0 is the catalog topic, which
  is never deleted (its FastStream subscribers stay on it); generation N is ``<topic>.gN``, read in every
  process that has a subscriber of the topic by a consumer of the group ``<group>.gN`` that hands each batch
  to that subscriber (same decoder, middlewares, handler) and commits after it. A new group joins before any
  producer writes to the new generation, so a rollover stalls no consumer (a Kafka rebalance on Tansu takes
  ~5 s).
- Each API process's reply topic rolls the same way on its own (``producers/rpc.py``).

The state is one MongoDB document per topic (collection ``topic_generations``): ``gen`` (where producers
write), ``pending`` (created, waiting for every group to join), ``ready`` / ``drained`` (groups per
generation), ``live`` (generations not yet deleted). The steps, each a compare-and-set any process may do:

1. **roll**: the current generation has a partition at the limit → create ``<topic>.g(N+1)``, ``pending``.
2. **switch**: every group of the topic has a member assigned on the pending generation (or 60 s passed) →
   ``gen = N+1``. Producers read ``gen`` at most ``REFRESH_S`` later.
3. **drain**: ``DRAIN_MARGIN_S`` after the switch, a group whose committed offsets reach the end of an old
   generation stops its consumer there and marks it drained.
4. **delete**: an old generation every group of the topic has drained (the archive among them) is deleted.

So an event is deleted only after every consumer group has committed it; a group that is not running (the
archive stopped, say) holds the deletion back until it has caught up. Only ``modelbus up``'s embedded broker
rolls topics (``MODELBUS_KAFKA_EMBEDDED``, set by the stack); against a real Kafka no generation is ever
created and nothing changes (each worker process reads the empty collection every ``REFRESH_S``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from infra.kafka import idle_waits
from infra.settings import Settings
from schemas.topics import TOPICS

log = logging.getLogger("modelbus.generations")

COLLECTION = "topic_generations"
ROLLED: dict[str, tuple[str, ...]] = {
    "predict.requests": ("serving",),
    "predict.served": ("projector-served", "canary-analyser", "archive"),
}
"""rolled topic -> the consumer groups (short names) that must take every event before a generation goes"""
REFRESH_S = 2.0
SWITCH_TIMEOUT_S = 60.0
MIN_GENERATION_S = 10.0
_GEN = re.compile(r"^(?P<base>.+)\.g(?P<gen>\d+)$")


def generation_topic(settings: Settings, short: str, gen: int) -> str:
    return settings.topic(short) if gen == 0 else f"{settings.topic(short)}.g{gen}"


def partitions_of(settings: Settings, short: str) -> int:
    """How many partitions each generation of ``short`` has (as its catalog topic)."""
    return 1 if TOPICS[short].one_partition else settings.topic_partitions


def base_topic(name: str) -> str:
    """``modelbus.predict.served.g3`` -> ``modelbus.predict.served`` (other names unchanged)."""
    match = _GEN.match(name)
    return match["base"] if match else name


def drain_margin_s(settings: Settings) -> float:
    """after a switch, how long a producer may still be sending to the old generation"""
    return REFRESH_S + settings.request_timeout_seconds + 2.0


@contextlib.asynccontextmanager
async def _admin(settings: Settings) -> AsyncIterator[AIOKafkaAdminClient]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=5000)
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()


async def create_topic(settings: Settings, name: str, partitions: int) -> None:
    async with _admin(settings) as admin:
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])


async def topics_named(settings: Settings, prefix: str) -> list[str]:
    """The broker's topics whose names start with ``prefix`` (a listing names no topic, so it creates none)."""
    async with _admin(settings) as admin:
        return sorted(t for t in await admin.list_topics() if t.startswith(prefix))


async def delete_topic(settings: Settings, *names: str) -> None:
    async with _admin(settings) as admin:
        await admin.delete_topics(list(names))


class GenerationView:
    """Where producers write: the current generation of each rolled topic, read from MongoDB at most every
    ``REFRESH_S`` (``refresh_soon`` is free to call on every publish)."""

    def __init__(self, settings: Settings, db: AsyncDatabase) -> None:
        self.settings = settings
        self.db = db
        self.docs: dict[str, dict[str, Any]] = {}
        self._at = 0.0
        self._task: asyncio.Task[None] | None = None

    def gen(self, short: str) -> int:
        return int(self.docs.get(short, {}).get("gen", 0))

    def full_name(self, short: str) -> str:
        if short not in ROLLED:
            return self.settings.topic(short)
        return generation_topic(self.settings, short, self.gen(short))

    async def refresh(self) -> None:
        self._at = time.monotonic()
        docs = await self.db[COLLECTION].find({"_id": {"$in": list(ROLLED)}}).to_list(None)
        self.docs = {d["_id"]: d for d in docs}

    def refresh_soon(self) -> None:
        if time.monotonic() - self._at < REFRESH_S or (self._task is not None and not self._task.done()):
            return
        self._at = time.monotonic()
        self._task = asyncio.create_task(self._refresh_quietly())

    async def _refresh_quietly(self) -> None:
        try:
            await self.refresh()
        except Exception:  # noqa: BLE001 - keep the last known generation
            log.warning("reading topic generations failed", exc_info=True)


async def committed_to_end(consumer: AIOKafkaConsumer, topic: str) -> bool:
    """Every partition of ``topic`` committed to its end by the consumer's group."""
    tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
    if not tps:
        return False
    ends = await consumer.end_offsets(tps)
    for tp in tps:
        committed = await consumer.committed(tp)
        if ends[tp] > 0 and (committed or 0) < ends[tp]:
            return False
    return True


async def wait_drained(drained: Any, drain_s: float) -> None:
    """Waits up to ``drain_s`` for ``await drained()`` to be true (a failed check counts as not yet)."""
    deadline = time.monotonic() + drain_s
    with contextlib.suppress(Exception):
        while time.monotonic() < deadline and not await drained():
            await asyncio.sleep(0.1)


class _GenConsumer:
    """One generation of one rolled topic for one local subscriber: a consumer of the group ``<group>.g<N>``.
    A FastStream batch subscriber gets each batch handed to it (same decoder, middlewares, handler) and the
    batch committed after it; a reader outside FastStream (``consumers.serving.RequestReader``) reads the
    generation with a reader of its own (``sub.follow``)."""

    def __init__(self, manager: Generations, sub: Any, short: str, gen: int) -> None:
        self.manager = manager
        self.sub = sub
        self.short = short
        self.gen = gen
        self.settings = manager.settings
        self.topic = generation_topic(self.settings, short, gen)
        self.group = f"{sub.group_id}.g{gen}"
        self.reader = sub.follow(self.topic, self.group) if hasattr(sub, "follow") else None
        self.batch = self.reader is None
        self.consumer: AIOKafkaConsumer | None = None
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.reader is not None:
            await self.reader.start()
            return
        busy = self.settings.background_fetch_max_wait_ms
        source = getattr(self.sub, "consumer", None)
        fetcher = getattr(source, "_fetcher", None)
        if fetcher is not None and getattr(fetcher, "_modelbus_idle", False) is False:
            busy = int(fetcher._fetch_max_wait_ms)
        elif fetcher is not None:
            busy = min(int(fetcher._fetch_max_wait_ms), busy)
        self.consumer = AIOKafkaConsumer(
            self.topic,
            bootstrap_servers=self.settings.kafka_bootstrap,
            group_id=self.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=busy,
            request_timeout_ms=30000,
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        await self.consumer.start()
        idle_waits(self.consumer, self.settings)
        self.task = asyncio.create_task(self._run(), name=f"generation-{self.group}")

    def assigned(self) -> bool:
        if self.reader is not None:
            return bool(self.reader.assigned())
        return bool(self.consumer is not None and self.consumer.assignment())

    async def _run(self) -> None:
        assert self.consumer is not None
        timeout = getattr(self.sub, "batch_timeout_ms", 100)
        max_records = getattr(self.sub, "max_records", 500)
        while True:
            try:
                batches = await self.consumer.getmany(timeout_ms=max(timeout, 100), max_records=max_records)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a broker hiccup: keep reading
                log.warning("generation consumer %s failed to fetch", self.group, exc_info=True)
                await asyncio.sleep(1)
                continue
            for tp, records in batches.items():
                try:
                    await self.sub.consume(tuple(records))
                except Exception:  # noqa: BLE001 - redeliver from the batch's first record
                    log.exception("generation consumer %s: handler failed, redelivering", self.group)
                    self.consumer.seek(tp, records[0].offset)
                    await asyncio.sleep(1)
                    break
                await self.consumer.commit({tp: records[-1].offset + 1})

    async def drained(self) -> bool:
        """Every partition of this generation committed to its end by this group."""
        if self.reader is not None:
            return bool(await self.reader.drained())
        assert self.consumer is not None
        return await committed_to_end(self.consumer, self.topic)

    async def stop(self, drain_s: float = 0.0) -> None:
        if self.reader is not None:
            await self.reader.stop(drain_s)
            return
        if self.consumer is not None:
            await wait_drained(self.drained, drain_s)
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        if self.consumer is not None:
            with contextlib.suppress(Exception):
                await self.consumer.stop()
            self.consumer = None


class Generations:
    """One per worker process (``consumers/runtime.py``): follows the generations of the rolled topics its
    subscribers read, points its publisher at the current ones, and takes part in rolling them."""

    def __init__(
        self, broker: Any, publisher: Any, settings: Settings, db: AsyncDatabase, readers: list[Any] | None = None
    ) -> None:
        self.broker = broker
        self.readers = readers or []
        """consumers outside FastStream that read a rolled topic like a subscriber (``consumers.serving``)"""
        self.publisher = publisher
        self.settings = settings
        self.db = db
        self.view = GenerationView(settings, db)
        self.consumers: dict[tuple[str, str, int], _GenConsumer] = {}
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def enabled(self) -> bool:
        return self.settings.generation_max_records > 0

    def local_subscribers(self) -> list[tuple[Any, str]]:
        """(subscriber, rolled short name) of this process's subscribers of rolled topics."""
        out = []
        for sub in [*self.broker.subscribers, *self.readers]:
            names = set(getattr(sub, "topic_names", ()) or ())
            for short in ROLLED:
                if self.settings.topic(short) in names and getattr(sub, "group_id", None):
                    out.append((sub, short))
        return out

    async def start(self) -> None:
        if not self.enabled:
            return
        await self.view.refresh()
        original = self.publisher._full_name

        def full_name(topic: str) -> str:  # the publisher's catalog name -> the current generation
            if topic in ROLLED:
                return self.view.full_name(topic)
            return original(topic)

        self.publisher._full_name = full_name
        await self.step()
        self._task = asyncio.create_task(self._loop(), name="topic-generations")

    async def stop(self, drain_s: float = 15.0) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await asyncio.gather(*(c.stop(drain_s if c.batch else 0.0) for c in self.consumers.values()))
        self.consumers.clear()
        if self._probe is not None:
            with contextlib.suppress(Exception):
                await self._probe.stop()
            self._probe = None

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_S)
            try:
                await self.step()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - try again next time
                log.warning("topic generations step failed", exc_info=True)

    async def step(self, *, force_roll: str | None = None) -> None:
        """One pass: read the state, follow it with local consumers, and do whichever step is due."""
        await self.view.refresh()
        locals_ = self.local_subscribers()
        for short in ROLLED:
            doc = self.view.docs.get(short) or {"_id": short, "gen": 0, "live": [0]}
            live = [g for g in doc.get("live", [0]) if g >= 1]
            for sub, s in locals_:
                if s != short:
                    continue
                for g in live:
                    key = (sub.group_id, short, g)
                    if key not in self.consumers:
                        consumer = _GenConsumer(self, sub, short, g)
                        await consumer.start()
                        self.consumers[key] = consumer
            for key, consumer in list(self.consumers.items()):  # generations deleted elsewhere
                if key[1] == short and key[2] not in live:
                    await consumer.stop()
                    del self.consumers[key]
            await self._mark(doc, short)
            if self.settings.kafka_embedded or force_roll:
                await self._coordinate(doc, short, force=force_roll == short)

    async def _mark(self, doc: dict[str, Any], short: str) -> None:
        coll = self.db[COLLECTION]
        gen = int(doc.get("gen", 0))
        switched = float(doc.get("switched_at", 0.0))
        for (group_id, s, g), consumer in list(self.consumers.items()):
            if s != short:
                continue
            group = group_id.removeprefix(f"{self.settings.consumer_group_prefix}-")
            if g == doc.get("pending") and consumer.assigned() and group not in doc.get("ready", {}).get(str(g), []):
                await coll.update_one({"_id": short}, {"$addToSet": {f"ready.{g}": group}})
            if g < gen and time.time() - switched > drain_margin_s(self.settings) and await consumer.drained():
                await consumer.stop()
                del self.consumers[(group_id, s, g)]
                await coll.update_one({"_id": short}, {"$addToSet": {f"drained.{g}": group}})
                log.info("generation drained", extra={"topic": short, "generation": g, "group": group})

    async def _coordinate(self, doc: dict[str, Any], short: str, *, force: bool = False) -> None:
        coll = self.db[COLLECTION]
        gen = int(doc.get("gen", 0))
        pending = doc.get("pending")
        groups = ROLLED[short]
        now = time.time()
        if pending is None and (force or now - float(doc.get("switched_at", 0.0)) > MIN_GENERATION_S):
            if force or await self._full(short, gen):
                nxt = gen + 1
                await create_topic(
                    self.settings, generation_topic(self.settings, short, nxt), partitions_of(self.settings, short)
                )
                updated = await coll.find_one_and_update(
                    {"_id": short, "gen": gen, "pending": None},
                    {"$set": {"pending": nxt, "pending_at": now}, "$addToSet": {"live": nxt}},
                )
                if updated is None and short not in self.view.docs:
                    await self._create_doc(short, nxt, now)
                log.info("topic generation created", extra={"topic": short, "generation": nxt})
        elif pending is not None:
            ready = set(doc.get("ready", {}).get(str(pending), []))
            if ready >= set(groups) or now - float(doc.get("pending_at", now)) > SWITCH_TIMEOUT_S:
                await coll.update_one(
                    {"_id": short, "pending": pending},
                    {"$set": {"gen": pending, "pending": None, "switched_at": now}},
                )
                log.info("topic generation switched", extra={"topic": short, "generation": pending})
        for g in doc.get("live", []):
            if 1 <= g < gen and set(doc.get("drained", {}).get(str(g), [])) >= set(groups):
                claimed = await coll.find_one_and_update(
                    {"_id": short, "live": g}, {"$pull": {"live": g}}, return_document=ReturnDocument.AFTER
                )
                if claimed is not None:
                    try:
                        await delete_topic(self.settings, generation_topic(self.settings, short, g))
                    except Exception:  # noqa: BLE001 - a topic left behind costs memory, not correctness
                        log.warning("deleting generation %s of %s failed", g, short, exc_info=True)
                    log.info("topic generation deleted", extra={"topic": short, "generation": g})

    async def _create_doc(self, short: str, nxt: int, now: float) -> None:
        """The first rollover of a topic: its document does not exist yet."""
        with contextlib.suppress(Exception):  # another process created it first
            await self.db[COLLECTION].insert_one(
                {"_id": short, "gen": 0, "pending": nxt, "pending_at": now, "live": [0, nxt], "switched_at": 0.0}
            )

    async def _full(self, short: str, gen: int) -> bool:
        """A partition of the current generation holds generation_max_records records."""
        name = generation_topic(self.settings, short, gen)
        consumer = self._probe
        if consumer is None:
            consumer = self._probe = AIOKafkaConsumer(bootstrap_servers=self.settings.kafka_bootstrap)
            await consumer.start()
        parts = consumer.partitions_for_topic(name)
        if not parts:
            await consumer._client.force_metadata_update()
            parts = consumer.partitions_for_topic(name) or set()
        if not parts:
            return False
        ends = await consumer.end_offsets([TopicPartition(name, p) for p in parts])
        return max(ends.values()) >= self.settings.generation_max_records

    _probe: AIOKafkaConsumer | None = None
