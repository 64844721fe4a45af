"""Archive: every event on every modelbus topic, stored with ``_id`` = event id (inserting the
same event twice is a no-op). In embedded mode this is the durable copy the broker is not."""

from __future__ import annotations

import logging
from typing import Any

from faststream.kafka import KafkaBroker
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from consumers.deps import Deps, batch_subscriber, decode_batch
from infra import mongo
from infra.topic_generations import base_topic
from schemas.topics import TOPICS

log = logging.getLogger("modelbus.archive")

DUPLICATE_KEY = 11000


def register(broker: KafkaBroker, deps: Deps, archive_db: AsyncDatabase) -> None:
    """``archive_db``: the database on the archive's server (``mongo.client(settings, archive=True)``)."""
    group = deps.settings.group("archive")
    topics = [name for name, spec in TOPICS.items() if spec.envelope and spec.archived]

    @batch_subscriber(
        broker,
        deps,
        topics,
        group=group,
        background=True,
        title="archive",
        description="Stores every event in MongoDB (the durable record; replay reads it).",
    )
    async def archive(records: Any) -> None:
        docs = [
            {
                "_id": env.id,
                # a topic generation (``predict.served.g3``, docs/embedded.md) is archived under its catalog name
                "topic": base_topic(rec.topic).removeprefix(deps.settings.topic_prefix),
                "partition": rec.partition,
                "offset": rec.offset,
                "key": rec.key.decode(errors="replace") if isinstance(rec.key, bytes) else rec.key,
                "type": env.type,
                "subject": env.subject,
                "time": env.time,
                "sequence": env.sequence,
                "raw": rec.value.decode(),  # the envelope as published: one string field is cheap to store
            }
            for rec, env in await decode_batch(deps, records, group)
        ]
        if not docs:
            return
        try:
            await archive_db[mongo.ARCHIVE].insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            if any(e.get("code") != DUPLICATE_KEY for e in exc.details.get("writeErrors", [])):
                raise
