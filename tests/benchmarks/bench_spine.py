"""Issue 2 benchmark: commands → projection (events/s, latency p50/p99) and the Kafka
request/reply round trip, on the embedded stack. Writes bench-results/spine.json."""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from bootstrap.stack import Stack
from bootstrap.workers import WorkerProcesses
from infra import mongo
from infra.settings import Settings
from producers.rpc import RpcClient
from schemas import jobs
from schemas.common import new_id, utcnow
from schemas.envelope import Envelope


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


def command(job_id: str) -> Envelope:
    cmd = jobs.TrainRequested(
        job_id=job_id,
        domain="tabular",
        model_type="lightgbm",
        spec={"bench": True},
        estimated_duration_minutes=0.1,
        submitted_at=utcnow(),
    )
    return Envelope.wrap(jobs.TRAIN_REQUESTED, job_id, cmd, source="bench", sequence=jobs.ATTEMPT_STRIDE)


async def _publish(producer: AIOKafkaProducer, topic: str, commands: list[Envelope]) -> list[Envelope]:
    """The commands in record batches built directly (keyed partitions as the default partitioner picks
    them): the load generator shares the two cores with the stack, and ``send`` per message cost it ~0.25 ms
    of CPU each (1.3 s of CPU for 5,000 commands) taken from the projector and the databases.
    Returns the last command of each partition: the projector applies a partition in order, so once those
    are projected, all are."""
    partitions, partitioner = sorted(await producer.partitions_for(topic)), DefaultPartitioner()
    by_partition: dict[int, list[Envelope]] = {}
    for cmd in commands:
        by_partition.setdefault(partitioner(cmd.subject.encode(), partitions, partitions), []).append(cmd)
    sends = []
    for partition, part_cmds in by_partition.items():
        batch = producer.create_batch()
        for cmd in part_cmds:
            key, value = cmd.subject.encode(), cmd.to_bytes()
            if batch.append(key=key, value=value, timestamp=None) is None:  # full: send it
                sends.append(await producer.send_batch(batch, topic, partition=partition))
                batch = producer.create_batch()
                batch.append(key=key, value=value, timestamp=None)
        sends.append(await producer.send_batch(batch, topic, partition=partition))
    await asyncio.gather(*sends)
    return [part_cmds[-1] for part_cmds in by_partition.values()]


async def _wait_for_ids(coll: Any, ids: list[str]) -> bool:
    """Polls by ``_id`` (index lookups, in chunks) until every id is there; True if it had to wait. A
    ``count`` of the collection instead would scan it on SecantusDB: polling that every 50 ms took a
    quarter of the database's CPU from the projector being measured (py-spy, session 6)."""
    waited = False
    waiting = list(ids)
    while True:
        found = await mongo.find_by_ids(coll, waiting, projection={"_id": 1})
        waiting = [i for i in waiting if i not in found]
        if not waiting:
            return waited
        waited = True
        await asyncio.sleep(0.05)


async def projection_throughput(stack: Stack, n: int) -> dict[str, Any]:
    s = stack.settings
    producer = AIOKafkaProducer(bootstrap_servers=s.kafka_bootstrap, acks="all", linger_ms=5, max_batch_size=256 * 1024)
    await producer.start()
    client = mongo.client(s)
    db = client[s.mongodb_db]
    archive_client = mongo.client(s, archive=True)
    archive = archive_client[s.mongodb_db][mongo.ARCHIVE]
    try:
        ids = [new_id("bench") for _ in range(n)]
        commands = [command(job_id) for job_id in ids]
        t0 = time.perf_counter()
        last = await _publish(producer, s.topic("train.commands"), commands)
        t_published = time.perf_counter()
        await _wait_for_ids(db[mongo.JOBS], [cmd.subject for cmd in last])
        t_done = time.perf_counter()
        await _wait_for_ids(archive, [cmd.id for cmd in last])  # the archive has them all too
        t_archived = time.perf_counter()
        # then every job and archived event is looked up; if one were missing (the in-order assumption
        # failed), the clock would run on until all are there
        event_ids = [cmd.id for cmd in commands]
        if await _wait_for_ids(db[mongo.JOBS], ids):
            t_done = time.perf_counter()
        if await _wait_for_ids(archive, event_ids):
            t_archived = time.perf_counter()
        # latency: one command at a time, published and awaited, then polled in its projection
        latencies = []
        for _ in range(200):
            job_id = new_id("lat")
            t = time.perf_counter()
            await producer.send_and_wait(s.topic("train.commands"), command(job_id).to_bytes(), key=job_id.encode())
            while await db[mongo.JOBS].find_one({"_id": job_id}, {"_id": 1}) is None:
                await asyncio.sleep(0.001)
            latencies.append((time.perf_counter() - t) * 1000)
        return {
            "events": n,
            "checked": "every job and archived event looked up by _id; the clock runs on if any is missing",
            "publish_seconds": round(t_published - t0, 3),
            "end_to_end_seconds": round(t_done - t0, 3),
            "projected_events_per_s": round(n / (t_done - t0), 1),
            "archived_seconds": round(t_archived - t0, 3),
            "archive_server": "own SecantusDB daemon" if s.archive_mongodb_url else "the main database",
            "command_to_projection_ms": {
                "p50": pct(latencies, 0.5),
                "p99": pct(latencies, 0.99),
                "mean": round(statistics.mean(latencies), 3),
                "samples": len(latencies),
            },
            "target": {"events_per_s": 1000, "p50_ms": 50},
        }
    finally:
        await producer.stop()
        await client.close()
        await archive_client.close()


async def rpc_round_trip(stack: Stack, n: int) -> dict[str, Any]:
    from infra.kafka import make_broker
    from producers.publisher import EventPublisher

    publisher = EventPublisher(make_broker(stack.settings, client_id="bench-rpc", with_metrics=False), stack.settings)
    rpc = RpcClient(publisher, stack.settings)
    await rpc.start()
    try:
        for _ in range(20):  # warm-up
            await rpc.call("ping", {}, key="warm")
        rtts = []
        for i in range(n):
            t = time.perf_counter()
            reply = await rpc.call("ping", {}, key=f"k{i}")
            rtts.append((time.perf_counter() - t) * 1000)
            assert reply.ok
        return {
            "calls": n,
            "rtt_ms": {"p50": pct(rtts, 0.5), "p99": pct(rtts, 0.99), "mean": round(statistics.mean(rtts), 3)},
            "fetch_max_wait_ms": stack.settings.fetch_max_wait_ms,
            "target": {"p50_ms": 15},
        }
    finally:
        await rpc.close()
        await publisher.close()


async def run(out_path: Path, n: int = 5000) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        # the servers and topics from Stack; the consumers in their own processes, as `modelbus up` runs
        # them (without the training worker, which would try to run the benchmark's train commands)
        stack = Stack(
            Settings(_env_file=None, data_dir=Path(tmp), port=0, api_key="mb_bench"), with_api=False,
            with_consumers=False,
        )
        await stack.start()
        workers = WorkerProcesses(stack.settings, groups=(("serving",), ("projector", "archive")))
        try:
            await workers.start()
            await asyncio.sleep(6)  # consumer groups settle
            result = {
                "projection": await projection_throughput(stack, n),
                "request_reply": await rpc_round_trip(stack, 500),
            }
        finally:
            await workers.stop()
            await stack.stop()
    result["machine"] = (
        "2 cores shared by everything: embedded Tansu + SecantusDB, a serving worker process, a projector + "
        "archive worker process, and this process (producer, RPC caller, MongoDB poller)"
    )
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(result, indent=2))
    return result


def main(out_path: str = "bench-results/spine.json") -> dict[str, Any]:
    return asyncio.run(run(Path(out_path)))


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:]), indent=2))
