"""Replay: rebuild the projections from the archive (MongoDB) or from Kafka, in memory, and
report every difference from the live ones (part of the composition root: it folds the platform's
projections and the canary analyser's prediction records and strata). ``rebuild=True`` then writes the
rebuilt documents over the live ones where they differ (and deletes live documents no event gives)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from pymongo import DeleteOne, ReplaceOne
from pymongo.asynchronous.database import AsyncDatabase

from bootstrap.domains import install
from consumers.canary.records import canonical_strata, derive_strata, fold_records, horizons
from infra import mongo, projections
from infra.projections import fold_all
from infra.settings import Settings
from infra.topic_generations import base_topic
from schemas.envelope import Envelope
from schemas.topics import TOPICS


@dataclass
class ReplayReport:
    source: str
    events: int = 0
    differences: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    rebuilt: bool = False
    seconds: dict[str, float] = field(default_factory=dict)
    """wall time of each phase: read, project, compare, and apply with ``rebuild``"""

    @property
    def identical(self) -> bool:
        return not any(self.differences.values())

    def to_json(self) -> str:
        return json.dumps(self.__dict__ | {"identical": self.identical}, default=str, indent=2)


async def events_from_archive(db: AsyncDatabase, since: datetime | None) -> AsyncIterator[Envelope]:
    query: dict[str, Any] = {"time": {"$gte": since}} if since else {}
    async for doc in db[mongo.ARCHIVE].find(query).sort([("time", 1), ("_id", 1)]):
        yield Envelope.from_bytes(doc["raw"])


async def events_from_kafka(settings: Settings, since: datetime | None) -> AsyncIterator[Envelope]:
    """Every envelope on every topic, read from the beginning to the current end (no group)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        enable_auto_commit=False,
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
    )
    await consumer.start()
    try:
        catalog = {settings.topic(t) for t, spec in TOPICS.items() if spec.envelope}
        # and the generations the embedded broker rolled them over to (infra/topic_generations.py); a generation
        # already drained and deleted is gone from the broker: the archive is the complete record
        names = sorted(t for t in await consumer.topics() if base_topic(t) in catalog)
        parts = [TopicPartition(t, p) for t in names for p in (consumer.partitions_for_topic(t) or ())]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        remaining = {tp for tp in parts if ends[tp] > 0}
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=500)
            for tp, records in batch.items():
                for rec in records:
                    if rec.offset + 1 >= ends[tp]:
                        remaining.discard(tp)
                    try:
                        env = Envelope.from_bytes(rec.value)
                    except ValueError:
                        continue  # not an envelope: the consumers dead-lettered it
                    if since is None or env.time >= since:
                        yield env
    finally:
        await consumer.stop()


def _bson_value(value: Any) -> str:
    """How a value reads back from MongoDB, as text: datetimes are stored to the millisecond (truncated)."""
    if isinstance(value, datetime):
        value = value.replace(microsecond=value.microsecond // 1000 * 1000)
    return str(value)


def _comparable(doc: dict[str, Any]) -> dict[str, Any]:
    """A document as plain JSON, the same whether it was folded in memory or read back from MongoDB."""
    return json.loads(json.dumps(doc, default=_bson_value, sort_keys=True))


async def replay(
    db: AsyncDatabase,
    settings: Settings,
    *,
    archive: AsyncDatabase | None = None,
    source: str = "archive",
    since: datetime | None = None,
    rebuild: bool = False,
    batch: int = 2000,
) -> ReplayReport:
    if rebuild and since is not None:
        raise ValueError("rebuild needs every event: documents folded from the events since a time are partial")
    install()
    report = ReplayReport(source=source)
    if source == "archive":
        if archive is None:
            raise ValueError("replaying the archive needs its database: mongo.client(settings, archive=True)")
        stream = events_from_archive(archive, since)
    else:
        stream = events_from_kafka(settings, since)
    t0 = time.perf_counter()
    events: list[Envelope] = []
    async for env in stream:
        events.append(env)
    # Kafka yields topic by topic: put events in time order (as the archive does)
    events.sort(key=lambda e: e.time)
    report.events = len(events)
    report.seconds["read"] = round(time.perf_counter() - t0, 3)
    t0 = time.perf_counter()
    # every event is in memory: each document is folded from all its events at once (the projector's
    # reducers give the same document in any batching, tested), then compared with the live one
    folded = fold_all(events)
    # the prediction records and the canary/shadow strata they add up to (folded together by the analyser)
    folded[mongo.PREDICTIONS] = fold_records(events)
    analyses = [*folded.get(mongo.CANARIES, []), *folded.get(mongo.SHADOWS, [])]
    folded[mongo.CANARY_STRATA] = derive_strata(folded[mongo.PREDICTIONS], horizons(analyses))
    report.seconds["project"] = round(time.perf_counter() - t0, 3)
    t0 = time.perf_counter()
    fixes: dict[str, list[DeleteOne | ReplaceOne]] = {}
    for name in [*projections.collections(), mongo.PREDICTIONS, mongo.CANARY_STRATA]:
        if name == mongo.CANARY_STRATA and since is not None:
            continue  # strata are sums over every record: the events since a time give partial ones
        rebuilt_docs = {d["_id"]: d for d in folded.get(name, [])}
        rebuilt = {k: _comparable(d) for k, d in rebuilt_docs.items()}
        if name == mongo.CANARY_STRATA:  # counters that went back to zero are not differences
            live = {d["_id"]: _comparable(d) for d in canonical_strata([d async for d in db[name].find()])}
        elif since is None:
            live = {d["_id"]: _comparable(d) async for d in db[name].find()}
        else:  # the live documents the events since then fold into (ids are not always the subject)
            live = {k: _comparable(d) for k, d in (await mongo.find_by_ids(db[name], rebuilt)).items()}
        diffs: list[dict[str, Any]] = []
        ops: list[DeleteOne | ReplaceOne] = []
        for key in sorted(set(rebuilt) | set(live)):
            a, b = live.get(key), rebuilt.get(key)
            if a == b:
                continue
            fix = DeleteOne({"_id": key}) if b is None else ReplaceOne({"_id": key}, rebuilt_docs[key], upsert=True)
            ops.append(fix)
            if a is None or b is None:
                diffs.append({"id": key, "only_in": "rebuilt" if a is None else "live"})
                continue
            fields = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
            diffs.append({"id": key, "fields": {k: {"live": a.get(k), "rebuilt": b.get(k)} for k in fields}})
        report.differences[name] = diffs
        report.counts[name] = {"live": len(live), "rebuilt": len(rebuilt)}
        fixes[name] = ops
    report.seconds["compare"] = round(time.perf_counter() - t0, 3)
    if rebuild:
        # the live collections take the rebuilt documents where they differ, in place: their indexes stay,
        # and nothing is written when they are identical (renaming a rebuilt 10k-document collection over
        # the live one took 1-100 s on SecantusDB while the stack ran)
        t0 = time.perf_counter()
        for name, ops in fixes.items():
            for start in range(0, len(ops), batch):
                await db[name].bulk_write(ops[start : start + batch], ordered=False)
        report.rebuilt = True
        report.seconds["apply"] = round(time.perf_counter() - t0, 3)
    return report


async def replay_stack(
    settings: Settings, *, source: str = "archive", since: datetime | None = None, rebuild: bool = False
) -> ReplayReport:
    """``replay`` against the stack ``settings`` name: opens the main and the archive database and closes them."""
    client = mongo.client(settings)
    archive = mongo.client(settings, archive=True)
    try:
        return await replay(
            client[settings.mongodb_db],
            settings,
            archive=archive[settings.mongodb_db],
            source=source,
            since=since,
            rebuild=rebuild,
        )
    finally:
        await client.close()
        await archive.close()
