"""Issue 16: request/reply topics rolled over to fresh generations on the embedded broker lose no reply.

Requests go out at a steady pace while the caller's reply topic rolls over (by its record count and by hand)
and ``predict.requests`` moves to generation after generation; every call must get its own answer, and a
drained generation must be deleted (the broker keeps only a small working set)."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

import pytest

from bootstrap.stack import StackThread
from infra import mongo
from infra.kafka import make_broker
from infra.settings import Settings
from infra.topic_generations import COLLECTION, Generations, create_topic, generation_topic, topics_named
from producers.publisher import EventPublisher
from producers.rpc import RpcClient


async def _topics(settings: Settings) -> set[str]:
    return set(await topics_named(settings, ""))


async def _scenario(settings: Settings) -> dict[str, Any]:
    rpc_settings = settings.model_copy(update={"generation_max_records": 300})
    publisher = EventPublisher(make_broker(rpc_settings, client_id="rollover-test", with_metrics=False), rpc_settings)
    rpc = RpcClient(publisher, rpc_settings)
    client = mongo.client(settings)
    db = client[settings.mongodb_db]
    # a process with no subscribers of its own, only to force the request topic's rollovers
    coordinator = Generations(SimpleNamespace(subscribers=[]), None, settings, db)
    results: list[Any] = []
    reply_topics: set[str] = set()
    stop = asyncio.Event()

    async def one(i: int) -> None:
        reply_topics.add(rpc.reply_topic)
        reply = await rpc.call("ping", {"i": i}, key=f"k{i}", timeout_s=30)
        results.append((i, reply.ok, (reply.result or {}).get("pong")))

    async def traffic() -> int:
        tasks = []
        i = 0
        while not stop.is_set():
            tasks.append(asyncio.create_task(one(i)))
            i += 1
            await asyncio.sleep(0.02)  # ~50 requests/s
        await asyncio.gather(*tasks)
        return i

    async def wait_gen(short: str, gen: int) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            await coordinator.step()
            doc = await db[COLLECTION].find_one({"_id": short}) or {}
            if doc.get("gen", 0) >= gen:
                return
            await asyncio.sleep(0.5)
        raise AssertionError(f"{short} did not reach generation {gen}: {doc}")

    try:
        await rpc.start()
        sender = asyncio.create_task(traffic())
        await asyncio.sleep(2)
        await rpc.roll_reply_topic()  # by hand, with calls in flight
        # a deleted generation that a producer's metadata request brought back: the next rollovers delete it
        revenant = f"{rpc.base_reply_topic}.{rpc._uid}.g0"
        await create_topic(settings, revenant, 1)
        start_gen = (await db[COLLECTION].find_one({"_id": "predict.requests"}) or {}).get("gen", 0)
        await coordinator.step(force_roll="predict.requests")
        await wait_gen("predict.requests", start_gen + 1)
        await asyncio.sleep(3)
        await coordinator.step(force_roll="predict.requests")
        await wait_gen("predict.requests", start_gen + 2)
        await asyncio.sleep(3)
        stop.set()
        sent = await sender
        # the drained generation (start_gen + 1) goes once every producer has moved on and the serving group
        # has committed all of it
        old = generation_topic(settings, "predict.requests", start_gen + 1)
        deadline = time.monotonic() + 60
        while old in await _topics(settings) and time.monotonic() < deadline:
            await coordinator.step()
            await asyncio.sleep(1)
        await asyncio.sleep(1)
        remaining = await _topics(settings)
        return {"sent": sent, "results": results, "reply_topics": reply_topics, "old": old, "topics": remaining,
                "readers": list(rpc._readers), "revenant": revenant}
    finally:
        await rpc.close()
        await publisher.close()
        await client.close()


@pytest.mark.timeout(300)
def test_requests_across_rollovers_lose_no_reply(stack: StackThread, settings: Settings) -> None:
    if not settings.kafka_embedded:
        pytest.skip("topic generations exist on the embedded broker only")
    out = stack.run(_scenario(settings), timeout=280)
    results = out["results"]
    assert len(results) == out["sent"] > 200
    assert sorted(i for i, _, _ in results) == list(range(out["sent"]))  # every call answered, once
    assert all(ok and pong for _, ok, pong in results), [r for r in results if not (r[1] and r[2])][:5]
    # the reply topic rolled by hand and by its record count (300), with calls in flight each time
    assert len(out["reply_topics"]) >= 3, out["reply_topics"]
    # old reply generations nobody waits on are closed and deleted
    assert len(out["readers"]) <= 2, out["readers"]
    gone = {t for t in out["reply_topics"] if ".g" in t} - set(out["readers"])
    assert gone and not (gone & out["topics"]), (gone, out["readers"])
    # the drained request generation was deleted
    assert out["old"] not in out["topics"]
    # an old reply generation that came back is swept at a later rollover
    assert out["revenant"] not in out["topics"]


async def _console_scenario(settings: Settings) -> dict[str, Any]:
    from api.console.hub import Hub
    from infra.topic_generations import GenerationView

    publisher = EventPublisher(make_broker(settings, client_id="console-gen-test", with_metrics=False), settings)
    rpc = RpcClient(publisher, settings)
    client = mongo.client(settings)
    db = client[settings.mongodb_db]
    coordinator = Generations(SimpleNamespace(subscribers=[]), None, settings, db)
    hub = Hub(settings, GenerationView(settings, db))
    try:
        await rpc.start()
        await hub.ensure("predict.requests")
        start_gen = (await db[COLLECTION].find_one({"_id": "predict.requests"}) or {}).get("gen", 0)
        await coordinator.step(force_roll="predict.requests")
        new_topic = generation_topic(settings, "predict.requests", start_gen + 1)
        feed = hub.feeds["predict.requests"]
        deadline = time.monotonic() + 90
        seen: list[str] = []
        while time.monotonic() < deadline:
            await coordinator.step()
            reply = await rpc.call("ping", {}, key="console-gen", timeout_s=20)
            assert reply.ok
            seen = [item["kafka_topic"] for item in feed.after(0)]
            if new_topic in seen:
                break
            await asyncio.sleep(0.5)
        return {"seen": seen, "new_topic": new_topic, "reading": dict(feed.topics)}
    finally:
        await hub.close()
        await rpc.close()
        await publisher.close()
        await client.close()


@pytest.mark.timeout(200)
def test_the_console_feed_follows_a_new_generation(stack: StackThread, settings: Settings) -> None:
    if not settings.kafka_embedded:
        pytest.skip("topic generations exist on the embedded broker only")
    out = stack.run(_console_scenario(settings), timeout=180)
    assert out["new_topic"] in out["reading"], out["reading"]
    assert out["new_topic"] in out["seen"], (out["new_topic"], sorted(set(out["seen"])))
