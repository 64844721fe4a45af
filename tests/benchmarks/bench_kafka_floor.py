"""Issue 16 item 4, the floor under it: what request/reply over Kafka alone costs the two processes at 100 req/s.

A client process publishes a 300-byte request and reads its reply (by key) from a reply topic; a server process
reads the requests and publishes each one back as the reply. No HTTP, no JSON, no model, no served events: only
the Kafka client library, on a fresh embedded Tansu broker with the fetch wait the stack uses for request/reply
(``MODELBUS_RPC_FETCH_MAX_WAIT_MS``, 5 ms). Measured side by side for the client library modelbus uses
(aiokafka, pure Python over asyncio) and for confluent-kafka (librdkafka, C, its own threads). CPU is each
process's own CPU time over the requests it handled. Writes bench-results/kafka_floor.json."""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import resource
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import uvloop
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from infra.embedded import free_port, tansu_binary

RATE = 100
SECONDS = 20
WAIT_MS = 5
PAYLOAD = b"x" * 300
OUT = Path("bench-results/kafka_floor.json")


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- aiokafka ---------------------------------------------------------------------------------------------------


async def _aiokafka_server(bootstrap: str, ready: Any, result: Any) -> None:
    consumer = AIOKafkaConsumer(
        "req", bootstrap_servers=bootstrap, group_id="srv", fetch_max_wait_ms=WAIT_MS, auto_offset_reset="latest"
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    await consumer.start()
    await producer.start()
    while not consumer.assignment():
        await asyncio.sleep(0.05)
    for tp in consumer.assignment():
        await consumer.position(tp)
    ready.put(True)
    handled, cpu0 = 0, 0.0

    async def answer(value: bytes, key: bytes | None) -> None:
        await (await producer.send("rep", value, key=key))

    try:
        while True:
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                for record in records:
                    if record.value == b"start":
                        handled, cpu0 = 0, _cpu_s()
                    elif record.value == b"stop":
                        result.put((_cpu_s() - cpu0) / max(handled, 1) * 1000)
                        return
                    else:
                        handled += 1
                        asyncio.create_task(answer(record.value, record.key))
    finally:
        await consumer.stop()
        await producer.stop()


async def _aiokafka_client(bootstrap: str) -> dict[str, float]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, fetch_max_wait_ms=WAIT_MS, enable_auto_commit=False)
    await producer.start()
    await consumer.start()
    tp = TopicPartition("rep", 0)
    consumer.assign([tp])
    await consumer.seek_to_end(tp)
    await consumer.position(tp)
    pending: dict[bytes, asyncio.Future[None]] = {}

    async def read() -> None:
        while True:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for record in records:
                    future = pending.pop(record.key or b"", None)
                    if future is not None and not future.done():
                        future.set_result(None)

    reader = asyncio.create_task(read())
    latencies: list[float] = []

    async def call(i: int) -> None:
        key = uuid.uuid4().hex.encode()
        future = pending[key] = asyncio.get_running_loop().create_future()
        t0 = time.perf_counter()
        await (await producer.send("req", PAYLOAD, key=key, partition=i % 3))
        await asyncio.wait_for(future, 10)
        latencies.append(time.perf_counter() - t0)

    await (await producer.send("req", b"start", partition=0))
    await asyncio.sleep(0.5)
    cpu0, start, sent, tasks = _cpu_s(), time.monotonic(), 0, []
    while time.monotonic() < start + SECONDS:
        tasks.append(asyncio.create_task(call(sent)))
        sent += 1
        await asyncio.sleep(max(0.0, start + sent / RATE - time.monotonic()))
    await asyncio.gather(*tasks)
    cpu = (_cpu_s() - cpu0) / sent * 1000
    await (await producer.send("req", b"stop", partition=0))
    reader.cancel()
    await asyncio.gather(reader, return_exceptions=True)
    await consumer.stop()
    await producer.stop()
    return {"requests": sent, "client_cpu_ms": cpu, **_percentiles(latencies)}


def _aiokafka_server_main(bootstrap: str, ready: Any, result: Any) -> None:
    uvloop.run(_aiokafka_server(bootstrap, ready, result))


# --- confluent-kafka --------------------------------------------------------------------------------------------


def _confluent_server_main(bootstrap: str, ready: Any, result: Any) -> None:
    from confluent_kafka import Consumer, Producer

    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "srv-ck", "fetch.wait.max.ms": WAIT_MS,
         "auto.offset.reset": "latest"}
    )
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0})
    consumer.subscribe(["req-ck"])
    while not consumer.assignment():
        consumer.poll(0.1)
    ready.put(True)
    handled, cpu0 = 0, 0.0
    while True:
        message = consumer.poll(1.0)
        producer.poll(0)
        if message is None or message.error():
            continue
        value = message.value()
        if value == b"start":
            handled, cpu0 = 0, _cpu_s()
        elif value == b"stop":
            result.put((_cpu_s() - cpu0) / max(handled, 1) * 1000)
            break
        else:
            handled += 1
            producer.produce("rep-ck", value, key=message.key(), headers=message.headers())
    producer.flush(5)
    consumer.close()


def _confluent_client(bootstrap: str) -> dict[str, float]:
    from confluent_kafka import Consumer, Producer

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0})
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"cli-{uuid.uuid4().hex}", "fetch.wait.max.ms": WAIT_MS,
         "auto.offset.reset": "latest", "enable.auto.commit": False}
    )
    consumer.subscribe(["rep-ck"])
    while not consumer.assignment():
        consumer.poll(0.1)
    sent_at: dict[bytes, float] = {}
    latencies: list[float] = []
    stop = threading.Event()

    def read() -> None:  # the reply reader's thread (librdkafka releases the GIL while it waits)
        while not stop.is_set():
            message = consumer.poll(0.2)
            if message is None or message.error():
                continue
            t0 = sent_at.pop(message.key() or b"", None)
            if t0 is not None:
                latencies.append(time.perf_counter() - t0)

    reader = threading.Thread(target=read)
    reader.start()
    producer.produce("req-ck", b"start", partition=0)
    producer.flush(5)
    time.sleep(0.5)
    cpu0, start, sent = _cpu_s(), time.monotonic(), 0
    while time.monotonic() < start + SECONDS:
        key = uuid.uuid4().hex.encode()
        sent_at[key] = time.perf_counter()
        producer.produce("req-ck", PAYLOAD, key=key, partition=sent % 3)
        producer.poll(0)
        sent += 1
        time.sleep(max(0.0, start + sent / RATE - time.monotonic()))
    deadline = time.monotonic() + 10
    while sent_at and time.monotonic() < deadline:
        time.sleep(0.01)
    cpu = (_cpu_s() - cpu0) / sent * 1000
    producer.produce("req-ck", b"stop", partition=0)
    producer.flush(5)
    stop.set()
    reader.join()
    consumer.close()
    return {"requests": sent, "answered": len(latencies), "client_cpu_ms": cpu, **_percentiles(latencies)}


# --- the run ----------------------------------------------------------------------------------------------------


def _percentiles(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies) or [float("nan")]
    return {
        "p50_ms": round(ordered[len(ordered) // 2] * 1000, 2),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 2),
    }


async def _topics(bootstrap: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic("req", 3, 1), NewTopic("rep", 1, 1), NewTopic("req-ck", 3, 1), NewTopic("rep-ck", 1, 1)]
        )
    finally:
        await admin.close()


def _measure(bootstrap: str, server_main: Any, client: Any) -> dict[str, float]:
    ctx = mp.get_context("spawn")
    ready, result = ctx.Queue(), ctx.Queue()
    server = ctx.Process(target=server_main, args=(bootstrap, ready, result), daemon=True)
    server.start()
    try:
        ready.get(timeout=60)
        out = client(bootstrap)
        server_cpu = result.get(timeout=30)
    finally:
        server.join(10)
        if server.is_alive():
            server.kill()
    out["server_cpu_ms"] = server_cpu
    out["total_cpu_ms"] = out["client_cpu_ms"] + server_cpu
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in out.items()}


def main() -> dict[str, Any]:
    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    broker = subprocess.Popen(
        [tansu_binary(), "broker", "--listener-url", f"tcp://{bootstrap}", "--advertised-listener-url",
         f"tcp://{bootstrap}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                asyncio.run(_topics(bootstrap))
                break
            except Exception:  # noqa: BLE001 - the broker is still starting
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        aiokafka = _measure(bootstrap, _aiokafka_server_main, lambda b: uvloop.run(_aiokafka_client(b)))
        confluent = _measure(bootstrap, _confluent_server_main, _confluent_client)
    finally:
        broker.terminate()
        broker.wait(10)
    result = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "setup": f"{RATE} req/s for {SECONDS} s, {len(PAYLOAD)}-byte requests, fetch wait {WAIT_MS} ms, embedded "
        "Tansu; client and server in two processes; CPU per request of each process",
        "aiokafka": aiokafka,
        "confluent_kafka": confluent,
        "ratio_total_cpu": round(aiokafka["total_cpu_ms"] / confluent["total_cpu_ms"], 2),
    }
    previous = json.loads(OUT.read_text()) if OUT.exists() else {}
    result["previous_runs"] = ([{k: v for k, v in previous.items() if k != "previous_runs"}] if previous else []) + (
        previous.get("previous_runs", [])
    )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
