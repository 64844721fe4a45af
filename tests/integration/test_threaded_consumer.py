"""Issue 16: the librdkafka reader of the request/reply path (``infra.threaded_consumer``) on the real broker.

A group reader takes every record once and in order, goes idle (its partitions paused, a watcher fetching with
the long wait) and wakes for the next record without losing it, and commits what it took, so a reader of the
same group after it starts where it stopped. An assign-mode reader paused while records arrive reads them
once resumed, from where it paused."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from confluent_kafka import TopicPartition

from bootstrap.stack import StackThread
from infra.settings import Settings
from infra.threaded_consumer import KafkaRecord, ThreadedConsumer, committed_to_end, consumer_config
from infra.topic_generations import create_topic


async def _until(check: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def _topic_and_producer(settings: Settings, partitions: int) -> tuple[str, AIOKafkaProducer]:
    topic = f"test.threaded.{uuid.uuid4().hex[:8]}"
    await create_topic(settings, topic, partitions)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    return topic, producer


async def _group_scenario(settings: Settings) -> dict[str, Any]:
    topic, producer = await _topic_and_producer(settings, 2)
    got: list[KafkaRecord] = []
    group = f"threaded-{uuid.uuid4().hex[:8]}"

    def reader() -> ThreadedConsumer:
        config = consumer_config(settings.kafka_bootstrap or "", group, 5, **{"enable.auto.commit": True})
        return ThreadedConsumer(config, got.extend, topic, idle_after_s=0.5, idle_wait_ms=50)

    out: dict[str, Any] = {}
    try:
        first = reader()
        first.start()
        first.subscribe(topic, from_start=False)
        await _until(lambda: len(first.assignment) == 2, 60, "the group's assignment")
        for i in range(10):
            await producer.send_and_wait(topic, f"a{i}".encode(), partition=i % 2)
        await _until(lambda: len(got) == 10, 10, "the first records")
        await _until(lambda: first.idle, 10, "the reader to go idle")
        out["idle"] = first.idle
        t0 = time.monotonic()
        await producer.send_and_wait(topic, b"wake", partition=1)
        await _until(lambda: len(got) == 11, 10, "the record after idleness")
        out["wake_ms"] = (time.monotonic() - t0) * 1000
        out["awake"] = not first.idle
        await first.close()
        for i in range(4):  # while no reader runs
            await producer.send_and_wait(topic, f"b{i}".encode(), partition=i % 2)
        second = reader()
        second.start()
        second.subscribe(topic, from_start=False)
        await _until(lambda: len(got) == 15, 60, "the records sent between the readers")
        await asyncio.sleep(0.5)
        await second.close()
        probe = ThreadedConsumer(consumer_config(settings.kafka_bootstrap or "", group, 5), got.extend, "probe")
        probe.start()
        out["committed_to_end"] = await probe.call(lambda c: committed_to_end(c, topic))
        await probe.close()
    finally:
        await producer.stop()
    out["values"] = [r.value for r in got]
    return out


async def _assign_scenario(settings: Settings) -> dict[str, Any]:
    topic, producer = await _topic_and_producer(settings, 1)
    got: list[KafkaRecord] = []
    reader = ThreadedConsumer(consumer_config(settings.kafka_bootstrap or "", "assign-test", 5), got.extend, topic)
    try:
        reader.start()
        await producer.send_and_wait(topic, b"before")
        end = await reader.call(lambda c: c.get_watermark_offsets(TopicPartition(topic, 0), 10, False)[1])
        reader.assign([TopicPartition(topic, 0, end)])
        await producer.send_and_wait(topic, b"one")
        await _until(lambda: len(got) == 1, 10, "the first record")
        reader.pause([TopicPartition(topic, 0)])
        await asyncio.sleep(0.2)
        for value in (b"two", b"three"):
            await producer.send_and_wait(topic, value)
        await asyncio.sleep(0.5)
        paused_count = len(got)
        reader.resume([TopicPartition(topic, 0)])
        await _until(lambda: len(got) == 3, 10, "the records sent while paused")
        await asyncio.sleep(0.3)
    finally:
        await reader.close()
        await producer.stop()
    return {"paused_count": paused_count, "values": [r.value for r in got]}


@pytest.mark.timeout(240)
def test_group_reader_goes_idle_wakes_and_commits(stack: StackThread, settings: Settings) -> None:
    out = stack.run(_group_scenario(settings), timeout=220)
    values = out["values"]
    assert sorted(values[:10]) == sorted(f"a{i}".encode() for i in range(10))
    for p in (0, 1):  # in order within each partition
        sent = [f"a{i}".encode() for i in range(10) if i % 2 == p]
        assert [v for v in values[:10] if v in sent] == sent
    assert values[10] == b"wake"
    assert sorted(values[11:]) == sorted(f"b{i}".encode() for i in range(4))  # nothing taken twice, none lost
    assert len(values) == 15
    assert out["idle"] and out["awake"]
    assert out["wake_ms"] < 5000
    assert out["committed_to_end"] is True


@pytest.mark.timeout(120)
def test_assigned_reader_paused_reads_from_where_it_paused(stack: StackThread, settings: Settings) -> None:
    out = stack.run(_assign_scenario(settings), timeout=100)
    assert out["paused_count"] == 1
    assert out["values"] == [b"one", b"two", b"three"]
