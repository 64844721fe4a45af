"""Issue 16: the librdkafka producer of the request/reply path (``infra.loop_producer``) on the real broker.

Every message sent is acknowledged once the event loop polls (no thread of its own), in the partition Java's
and aiokafka's producers would pick for its key; a message to a topic that does not exist fails with the
producer's error (and the topic is not created: ``allow.auto.create.topics`` is off), and ``close`` delivers
what is still queued."""

from __future__ import annotations

import asyncio
import uuid

from aiokafka import AIOKafkaConsumer
from aiokafka.partitioner import DefaultPartitioner

from bootstrap.stack import StackThread
from infra.loop_producer import LoopProducer, producer_config
from infra.settings import Settings
from infra.topic_generations import create_topic, topics_named


class Refused(RuntimeError):
    pass


def test_sends_are_acknowledged_keyed_like_aiokafka_and_missing_topics_are_not_created(
    stack: StackThread, settings: Settings
) -> None:
    async def scenario() -> None:
        topic = f"test.loop.{uuid.uuid4().hex[:8]}"
        await create_topic(settings, topic, 3)
        config = producer_config(settings.kafka_bootstrap or "", "test-loop", linger_ms=5, timeout_ms=3000)
        producer = LoopProducer(config, error=lambda exc: Refused(str(exc)))
        keys = [f"key-{i}".encode() for i in range(30)]
        acks = [producer.send(topic, b"v%d" % i, key=k, headers=[("h", b"1")]) for i, k in enumerate(keys)]
        await asyncio.wait_for(asyncio.gather(*acks), 10)

        missing = f"test.loop.missing.{uuid.uuid4().hex[:8]}"
        lost = producer.send(missing, b"x", key=b"k", headers=[])
        try:
            await asyncio.wait_for(lost, 15)
            raise AssertionError("a message to a missing topic was acknowledged")
        except Refused:
            pass
        assert await topics_named(settings, missing) == []

        late = [producer.send(topic, b"late", key=b"late", headers=[]) for _ in range(5)]
        await producer.close(10)
        assert all(a.done() and a.exception() is None for a in late)

        consumer = AIOKafkaConsumer(topic, bootstrap_servers=settings.kafka_bootstrap, auto_offset_reset="earliest")
        await consumer.start()
        try:
            seen: dict[bytes, int] = {}
            while len(seen) < len(keys) + 1:
                for tp, records in (await consumer.getmany(timeout_ms=1000)).items():
                    for rec in records:
                        seen[rec.key] = tp.partition
        finally:
            await consumer.stop()
        partitioner = DefaultPartitioner()
        assert {k: seen[k] for k in keys} == {k: partitioner(k, [0, 1, 2], [0, 1, 2]) for k in keys}

    stack.run(scenario(), timeout=60)
