"""Issue 16: trimming the embedded broker never removes an event the archive has not stored.

With the archive consumer stopped, served events go to ``predict.served`` and two newer generations; the
other groups take them all, the old generation is left in place while the archive has not, and once the
archive runs again it stores every event and only then is the generation deleted."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

import infra.topic_generations as tg
from bootstrap.stack import StackThread
from bootstrap.wiring import consumers as build_consumers
from consumers.runtime import Consumers
from infra import mongo
from infra.kafka import ensure_topics
from infra.settings import Settings
from schemas import deploy
from schemas.envelope import Envelope

N_PER_GENERATION = 150


async def _topics(settings: Settings) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


def _served(i: int) -> Envelope:
    pid = f"trim-{i}"
    served = deploy.PredictionServed(
        prediction_id=pid, model_id="model_v1.1.0", arm="baseline", percentage=0.0, score=0.5, latency_ms=1.0,
        served_at=datetime.now(UTC),
    )
    return Envelope.wrap(deploy.PREDICTION_SERVED, pid, served, source="test-trim")


async def _scenario(base: Settings) -> dict[str, Any]:
    stamp = int(time.time())
    settings = base.model_copy(update={
        "topic_prefix": f"trim{stamp}.", "consumer_group_prefix": f"trim{stamp}", "mongodb_db": f"trim_{stamp}",
        "request_timeout_seconds": 2.0,  # the drain margin after a switch (REFRESH_S + this + 2 s)
    })
    await ensure_topics(settings)
    client = mongo.client(settings)
    archive_client = mongo.client(settings, archive=True)
    db = client[settings.mongodb_db]
    archive = archive_client[settings.mongodb_db][mongo.ARCHIVE]
    coordinator = tg.Generations(SimpleNamespace(subscribers=[]), None, settings, db)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    others = build_consumers(settings, roles=("projector", "analyser"))  # every group of predict.served but the archive
    archiver: Consumers | None = None
    ids: list[str] = []
    out: dict[str, Any] = {}

    async def produce(gen: int) -> None:
        topic = tg.generation_topic(settings, "predict.served", gen)
        for i in range(len(ids), len(ids) + N_PER_GENERATION):
            env = _served(i)
            ids.append(env.id)
            await producer.send(topic, env.to_bytes(), key=env.subject.encode(),
                                headers=[("ce_type", env.type.encode())])
        await producer.flush()

    async def doc() -> dict[str, Any]:
        return await db[tg.COLLECTION].find_one({"_id": "predict.served"}) or {}

    async def until(predicate: Any, what: str, timeout_s: float = 90) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            await coordinator.step()
            if await predicate():
                return
            await asyncio.sleep(0.5)
        raise AssertionError(f"timed out waiting for {what}: {await doc()}")

    try:
        await others.start()
        await produce(0)
        for gen in (1, 2):  # the archive is not running: each switch waits SWITCH_TIMEOUT_S for it
            await coordinator.step(force_roll="predict.served")
            await until(lambda gen=gen: _at(doc, gen), f"generation {gen}")
            await produce(gen)
        g1 = tg.generation_topic(settings, "predict.served", 1)
        # the other groups drain generation 1; the archive has not read it, so it stays
        await until(lambda: _drained_by(doc, 1, {"projector-served", "canary-analyser"}), "the others drained g1")
        for _ in range(6):
            await coordinator.step()
            await asyncio.sleep(0.5)
        out["g1_kept_while_archive_stopped"] = g1 in await _topics(settings)
        out["archived_while_stopped"] = await archive.count_documents({"_id": {"$in": ids}})
        archiver = build_consumers(settings, roles=("archive",))
        await archiver.start()

        async def all_archived() -> bool:
            return await archive.count_documents({"_id": {"$in": ids}}) == len(ids)

        await until(all_archived, "every event in the archive", timeout_s=120)
        await until(lambda: _gone(settings, g1), "generation 1 deleted", timeout_s=90)
        out["archived"] = await archive.count_documents({"_id": {"$in": ids}})
        out["archived_topics"] = sorted(await archive.distinct("topic", {"_id": {"$in": ids}}))
        out["final"] = await doc()
        out["ids"] = len(ids)
        return out
    finally:
        if archiver is not None:
            await archiver.stop()
        await others.stop()
        await producer.stop()
        await client.drop_database(settings.mongodb_db)
        await archive_client.drop_database(settings.mongodb_db)
        await client.close()
        await archive_client.close()


async def _at(doc: Any, gen: int) -> bool:
    return int((await doc()).get("gen", 0)) >= gen


async def _drained_by(doc: Any, gen: int, groups: set[str]) -> bool:
    return groups <= set((await doc()).get("drained", {}).get(str(gen), []))


async def _gone(settings: Settings, topic: str) -> bool:
    return topic not in await _topics(settings)


@pytest.mark.timeout(400)
def test_trim_waits_for_the_archive(stack: StackThread, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    if not settings.kafka_embedded:
        pytest.skip("topic generations exist on the embedded broker only")
    monkeypatch.setattr(tg, "SWITCH_TIMEOUT_S", 8.0)  # how long a switch waits for the stopped archive group
    out = stack.run(_scenario(settings), timeout=380)
    assert out["archived_while_stopped"] == 0
    assert out["g1_kept_while_archive_stopped"], "generation 1 was deleted before the archive read it"
    assert out["archived"] == out["ids"] == 3 * N_PER_GENERATION
    assert out["archived_topics"] == ["predict.served"]  # generations are archived under the catalog name
    assert "archive" in out["final"]["drained"]["1"]
    assert 1 not in out["final"]["live"]
