"""Does a librdkafka producer bring a deleted topic back on Tansu? (issue 16: whether the request/reply path's
producers could be librdkafka's.)

Starts a bare Tansu, and for ``allow.auto.create.topics`` false and true: creates a topic, produces to it with a
confluent-kafka producer refreshing its metadata every second, deletes the topic, lets the producer run 8 s,
and says whether the topic exists again; then produces to the deleted topic once more. Prints one JSON line per
setting. Usage: ``python -m tests.benchmarks.probe_autocreate``."""

from __future__ import annotations

import json
import subprocess
import tempfile
import time

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from infra.embedded import free_port, tansu_binary


def probe(bootstrap: str, auto_create: bool) -> dict[str, object]:
    admin = AdminClient({"bootstrap.servers": bootstrap})

    def exists(topic: str) -> bool:
        return topic in admin.list_topics(timeout=10).topics

    topic = f"probe.autocreate.{int(auto_create)}.{int(time.time())}"
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result()
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "allow.auto.create.topics": auto_create,
            "topic.metadata.refresh.interval.ms": 1000,
            "log.connection.close": False,
        }
    )
    for _ in range(5):
        producer.produce(topic, b"x")
    producer.flush(10)
    admin.delete_topics([topic])[topic].result()
    time.sleep(0.5)
    out: dict[str, object] = {"allow.auto.create.topics": auto_create, "after_delete": exists(topic)}
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        producer.poll(0.5)
    out["after_8s_of_metadata_refreshes"] = exists(topic)
    producer.produce(topic, b"y")
    out["produce_to_deleted_unsent"] = producer.flush(5)
    out["after_produce_to_deleted"] = exists(topic)
    return out


def main() -> None:
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as cwd:
        broker = subprocess.Popen(
            [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url],
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            time.sleep(2)
            for auto_create in (False, True):
                print(json.dumps(probe(f"127.0.0.1:{port}", auto_create)), flush=True)
        finally:
            broker.terminate()
            broker.wait(10)


if __name__ == "__main__":
    main()
