"""Subscribe to modelbus events with confluent-kafka (Python on librdkafka), outside modelbus.

Reads CloudEvents envelopes from one or more topics, keeps those whose ``ce_type`` Kafka header is one of
``--type`` (all when none is given), and prints each envelope as one JSON line. ``docs/subscribe.md`` explains
it; ``tests/e2e/test_subscribe.py`` runs it, as written, against the embedded stack.

    pip install "confluent-kafka>=2.16"
    python docs/examples/subscribe_confluent.py --bootstrap 127.0.0.1:9092 --topic modelbus.train.events \\
        --group my-service --from-beginning --type modelbus.train.job.completed

It imports nothing of modelbus: the envelope is plain JSON and the header is a plain Kafka header.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition


def header(msg: Any, name: str) -> str | None:
    """The value of a Kafka header as text (modelbus sets ``ce_type``, ``ce_id`` and ``content-type``)."""
    for key, value in msg.headers() or []:
        if key == name and value is not None:
            return value.decode() if isinstance(value, bytes) else str(value)
    return None


def subscribe(
    bootstrap: str,
    topics: list[str],
    *,
    group: str,
    from_beginning: bool = False,
    types: set[str] | None = None,
    max_events: int | None = None,
    idle_timeout_s: float | None = None,
    config: dict[str, Any] | None = None,
) -> Iterator[dict[str, Any]]:
    """Yields the envelopes (dicts) of ``topics`` whose ``ce_type`` is in ``types`` (every one when None).

    ``group`` is the consumer group: every process with the same group shares the partitions, each group
    gets every event. A new group starts at the end of each partition (only new events) unless
    ``from_beginning``, which rewinds every assigned partition to its first offset, for a new group and
    an existing one alike. Offsets are committed automatically, so a group that comes back resumes where
    it stopped. Stops after ``max_events`` envelopes, or after ``idle_timeout_s`` without any message."""

    last = 0.0  # the idle clock starts once the group has handed us partitions (joining can take seconds)

    def on_assign(consumer: Consumer, partitions: list[TopicPartition]) -> None:
        nonlocal last
        last = time.monotonic()
        if from_beginning:
            for tp in partitions:
                tp.offset = OFFSET_BEGINNING
        consumer.assign(partitions)

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest" if from_beginning else "latest",
            "enable.auto.commit": True,
            "client.id": f"subscriber-{group}",
            **(config or {}),
        }
    )
    consumer.subscribe(topics, on_assign=on_assign)
    seen = 0
    try:
        while max_events is None or seen < max_events:
            msg = consumer.poll(1.0)
            if msg is None:
                if idle_timeout_s is not None and last and time.monotonic() - last > idle_timeout_s:
                    return
                continue
            last = time.monotonic()
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    continue
                raise KafkaException(msg.error())
            ce_type = header(msg, "ce_type")
            if types and ce_type not in types:
                continue  # filtered on the header: the value is not even decoded
            if header(msg, "content-type") != "application/cloudevents+json":
                continue  # the dead-letter topic carries the failed message as it was received
            envelope = json.loads(msg.value())
            envelope["_kafka"] = {"topic": msg.topic(), "partition": msg.partition(), "offset": msg.offset()}
            seen += 1
            yield envelope
    finally:
        consumer.close()  # leaves the group at once and commits the last offsets


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="print modelbus events (CloudEvents JSON) from Kafka topics")
    parser.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers, e.g. 127.0.0.1:9092")
    parser.add_argument("--topic", action="append", required=True, help="full topic name (repeatable)")
    parser.add_argument("--group", help="consumer group id (default: a new random one)")
    parser.add_argument("--from-beginning", action="store_true", help="replay every partition from offset 0")
    parser.add_argument("--type", action="append", dest="types", help="keep only this ce_type (repeatable)")
    parser.add_argument("--max", type=int, dest="max_events", help="stop after this many events")
    parser.add_argument("--idle-timeout", type=float, help="stop after this many seconds without a message")
    parser.add_argument(
        "-X", dest="config", action="append", default=[], metavar="KEY=VALUE", help="librdkafka setting (repeatable)"
    )
    args = parser.parse_args(argv)
    group = args.group or f"subscriber-{uuid.uuid4().hex[:8]}"
    for envelope in subscribe(
        args.bootstrap,
        args.topic,
        group=group,
        from_beginning=args.from_beginning,
        types=set(args.types) if args.types else None,
        max_events=args.max_events,
        idle_timeout_s=args.idle_timeout,
        config=dict(item.split("=", 1) for item in args.config),
    ):
        print(json.dumps(envelope), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
