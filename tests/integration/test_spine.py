"""The event spine on real servers: traces, dead letters, replay, 503 without Kafka, `modelbus up`."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from bootstrap.replay import replay_stack
from bootstrap.stack import StackThread
from infra import mongo
from infra.embedded import free_port
from infra.kafka import make_broker
from infra.projections import apply_events, fold_all
from infra.settings import Settings
from producers.publisher import EventPublisher
from producers.rpc import RpcClient
from schemas.envelope import Envelope
from schemas.rpc import RpcReply
from tests.conftest import SEED_TRAIN_BODY, wait_for, wait_job


def test_one_trace_from_http_through_kafka_to_mongo(
    api: httpx.Client, span_exporter: InMemorySpanExporter, settings: Settings
) -> None:
    span_exporter.clear()
    job_id = api.post("/v1/ml/train", json=SEED_TRAIN_BODY).json()["job_id"]
    wait_job(api, job_id)

    def server_span() -> Any:  # the server span ends after the response is sent: on a busy loop, a bit later
        ended = span_exporter.get_finished_spans()
        return [s for s in ended if s.kind == SpanKind.SERVER and "/v1/ml/train" in s.name and "POST" in s.name]

    try:
        server = wait_for(server_span, timeout=10, interval=0.1, what="the POST's server span")
    except AssertionError:
        ended = span_exporter.get_finished_spans()
        raise AssertionError(sorted({f"{s.kind.name} {s.name}" for s in ended})) from None
    spans = span_exporter.get_finished_spans()
    trace_id = server[-1].context.trace_id
    same = [s for s in spans if s.context.trace_id == trace_id]
    consumer = [s for s in same if s.kind == SpanKind.CONSUMER and "train.commands" in s.name]
    producer = [s for s in same if s.kind == SpanKind.PRODUCER]
    mongo_writes = [s for s in same if s.kind == SpanKind.CLIENT and (s.attributes or {}).get("db.system") == "mongodb"]
    assert consumer, sorted({s.name for s in same})
    assert producer and mongo_writes, sorted({s.name for s in same})
    # the worker's lifecycle events (published while handling the command) stay in the trace
    assert any("train.events" in s.name for s in producer), sorted({s.name for s in producer})


def _read_topic(settings: Settings, topic: str) -> list[Any]:
    async def read() -> list[Any]:
        consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            name = settings.topic(topic)
            if consumer.partitions_for_topic(name) is None:
                await consumer.topics()  # fetch the metadata (partition counts differ by topic)
            parts = [TopicPartition(name, p) for p in consumer.partitions_for_topic(name) or ()]
            consumer.assign(parts)
            await consumer.seek_to_beginning(*parts)
            ends = await consumer.end_offsets(parts)
            out: list[Any] = []
            remaining = {tp for tp in parts if ends[tp] > 0}
            while remaining:
                for tp, records in (await consumer.getmany(timeout_ms=300)).items():
                    out.extend(records)
                    if records and records[-1].offset + 1 >= ends[tp]:
                        remaining.discard(tp)
            return out
        finally:
            await consumer.stop()

    return asyncio.run(read())


def _produce(settings: Settings, topic: str, value: bytes, key: bytes) -> None:
    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait(settings.topic(topic), value, key=key)
        finally:
            await producer.stop()

    asyncio.run(send())


def test_poison_message_goes_to_dlq_and_consumers_go_on(api: httpx.Client, settings: Settings) -> None:
    _produce(settings, "train.commands", b"\x00not json at all", b"poison-1")
    _produce(settings, "train.events", b'{"type": "half an envelope"}', b"poison-2")
    _produce(settings, "predict.requests", b"\x00not a request", b"poison-3")  # the serving worker's own reader
    keys = {b"poison-1", b"poison-2", b"poison-3"}

    def dead_letters() -> list[Any]:
        found = [r for r in _read_topic(settings, "dlq") if r.key in keys]
        return found if {r.key for r in found} == keys else []

    records = wait_for(dead_letters, timeout=60, interval=1, what="the three poison messages in the DLQ")
    for rec in records:
        headers = {k: v.decode() for k, v in rec.headers}
        assert headers["x-original-topic"] in {
            settings.topic(t) for t in ("train.commands", "train.events", "predict.requests")
        }
        assert headers["x-error"] and headers["x-error-type"] and headers["x-original-offset"].isdigit()
    # the training consumer and the projector both handle the next good message
    job_id = api.post("/v1/ml/train", json=SEED_TRAIN_BODY).json()["job_id"]
    assert wait_job(api, job_id)["status"] == "completed"
    # and the serving worker answers the next request
    reply = asyncio.run(_ping(settings))
    assert reply.ok and (reply.result or {}).get("pong") is True


async def _ping(settings: Settings) -> RpcReply:
    publisher = EventPublisher(make_broker(settings, client_id="spine-ping", with_metrics=False), settings)
    rpc = RpcClient(publisher, settings)
    try:
        return await rpc.call("ping", {}, key="spine-ping", timeout_s=30)
    finally:
        await rpc.close()
        await publisher.close()


def test_replay_from_archive_rebuilds_identical_projections(
    api: httpx.Client, stack: StackThread, settings: Settings, db: Any
) -> None:
    job_id = api.post("/v1/ml/train", json=SEED_TRAIN_BODY).json()["job_id"]
    wait_job(api, job_id)
    cancel_me = api.post("/v1/ml/train", json={**SEED_TRAIN_BODY, "hyperparameters": {"n_estimators": 4000}}).json()
    api.post(f"/v1/ml/train/{cancel_me['job_id']}/cancel")
    wait_job(api, cancel_me["job_id"])

    async def run(rebuild: bool, source: str = "archive") -> Any:
        return await replay_stack(settings, source=source, rebuild=rebuild)

    # the archive consumer trails the projector by a few milliseconds: wait until it has caught up
    last: list[Any] = []

    def caught_up() -> Any:
        last[:] = [stack.run(run(False), timeout=180)]
        return last[0].identical and last[0]

    try:
        report = wait_for(caught_up, timeout=30, interval=0.5, what="archive catch-up")
    except AssertionError:
        raise AssertionError(last[0].to_json()[:3000]) from None
    assert report.counts["jobs"]["rebuilt"] >= 2 and report.events > 10
    before = {d["_id"]: d for d in db.jobs.find()}
    # damage the live projection three ways; --rebuild reports each and writes the rebuilt documents back
    db.jobs.update_one({"_id": job_id}, {"$set": {"status": "failed"}})
    db.jobs.delete_one({"_id": cancel_me["job_id"]})
    db.jobs.insert_one({"_id": "job_no_event_gives_this", "status": "completed"})
    rebuilt = stack.run(run(True), timeout=180)
    jobs = {d["id"]: d for d in rebuilt.differences["jobs"]}
    assert jobs[job_id]["fields"]["status"] == {"live": "failed", "rebuilt": "completed"}, rebuilt.to_json()
    assert jobs[cancel_me["job_id"]]["only_in"] == "rebuilt" and jobs["job_no_event_gives_this"]["only_in"] == "live"
    assert len(jobs) == 3 and rebuilt.rebuilt, rebuilt.to_json()
    assert {d["_id"]: d for d in db.jobs.find()} == before
    assert stack.run(run(False), timeout=180).identical
    # "since" before every event folds them all: each live document is found by the id its projection
    # gives, not by the event's subject (deploy history is keyed by event id, RL episodes by a composite)
    everything = stack.run(replay_stack(settings, since=datetime(2000, 1, 1, tzinfo=UTC)), timeout=180)
    assert everything.identical, everything.to_json()[:3000]
    # Kafka itself gives the same projections while the embedded broker still holds every event; once a drained
    # topic generation was deleted (issue 16, docs/embedded.md) it holds less than the archive, never more
    kafka = stack.run(run(False, "kafka"))
    # a generation was deleted when one below the newest live one is no longer live (generation 0, the catalog
    # topic, is never deleted, so it is always among them)
    deleted = [
        d["_id"]
        for d in db.topic_generations.find()
        if any(g not in d.get("live", [0]) for g in range(1, max(d.get("live") or [0])))
    ]
    if not deleted:
        assert kafka.identical, kafka.to_json()[:3000]
    else:
        assert all(c["rebuilt"] <= c["live"] for c in kafka.counts.values()), (deleted, kafka.to_json()[:3000])


def test_projections_are_the_same_in_any_batching_and_when_applied_twice(
    api: httpx.Client, stack: StackThread, settings: Settings, archive: Any
) -> None:
    """The projector folds whatever batch a fetch brings and may see a batch again after a restart; replay
    folds each document's events at once. All must give the same documents."""
    done = wait_job(api, api.post("/v1/ml/train", json=SEED_TRAIN_BODY).json()["job_id"])
    cancelled = api.post("/v1/ml/train", json={**SEED_TRAIN_BODY, "hyperparameters": {"n_estimators": 4000}}).json()
    api.post(f"/v1/ml/train/{cancelled['job_id']}/cancel")
    assert wait_job(api, cancelled["job_id"])["status"] == "cancelled"
    subjects = [done["job_id"], done["model_id"], cancelled["job_id"]]

    def archived() -> list[Envelope] | None:  # every event of the three, once the archive has the last ones
        raws = [d["raw"] for d in archive.find({"subject": {"$in": subjects}})]
        events = sorted((Envelope.from_bytes(r) for r in raws), key=lambda e: e.time)
        statuses = {d["_id"]: d["status"] for d in fold_all(events).get(mongo.JOBS, [])}
        finished = (statuses.get(cancelled["job_id"]), statuses.get(done["job_id"])) == ("cancelled", "completed")
        return events if finished else None

    events = wait_for(archived, timeout=30, what="the jobs' events in the archive")

    variants = ("whole", "1", "3", str(len(events)))

    async def project() -> dict[str, dict[str, Any]]:  # each variant in a database of its own
        client = mongo.client(settings)
        dbs = {v: client[f"{settings.mongodb_db}_batching_{v}"] for v in variants}
        out: dict[str, dict[str, Any]] = {}
        try:
            for name, docs in fold_all(events).items():  # replay's way: each document folded once
                await dbs["whole"][name].insert_many(docs)
            for size in (1, 3, len(events)):  # the projector's way, in batches of every size, then all again
                db = dbs[str(size)]
                for start in range(0, len(events), size):
                    await apply_events(db, events[start : start + size])
                assert await apply_events(db, events) == 0  # applied twice: nothing changes
            for variant, db in dbs.items():
                for name in (mongo.JOBS, mongo.MODELS):
                    docs = [d async for d in db[name].find().sort("_id")]
                    out[f"{name}/{variant}"] = json.loads(json.dumps(docs, default=str))
        finally:
            for db in dbs.values():
                await client.drop_database(db.name)
            await client.close()
        return out

    docs = stack.run(project())
    for name in (mongo.JOBS, mongo.MODELS):
        whole = docs[f"{name}/whole"]
        assert len(whole) == (2 if name == mongo.JOBS else 1), whole
        for variant in variants[1:]:
            assert docs[f"{name}/{variant}"] == whole, (name, variant)


def test_503_when_kafka_is_unreachable_and_nothing_is_left(settings: Settings, db: Any) -> None:
    from litestar.testing import TestClient

    from bootstrap.wiring import app as create_app
    from tests.conftest import TEST_KEY

    dead = settings.model_copy(update={"kafka_bootstrap": f"127.0.0.1:{free_port()}", "request_timeout_seconds": 3})
    before = db.jobs.count_documents({})
    with TestClient(create_app(dead)) as client:
        resp = client.post("/v1/ml/train", json=SEED_TRAIN_BODY, headers={"X-API-Key": TEST_KEY})
        assert resp.status_code == 503, resp.text
        assert resp.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
        health = client.get("/api/v1/health")
        assert health.status_code == 503 and health.json()["components"]["kafka"] == "unhealthy"
    assert db.jobs.count_documents({}) == before


def test_modelbus_up_answers_health_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELBUS_")}
    env |= {"MODELBUS_API_KEY": "mb_up-test-key-0123456789abcdefghijklmnop", "MODELBUS_LOG_JSON": "true"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bootstrap.cli", "up", "--port", str(port), "--data-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        ready = ""
        while time.monotonic() < deadline and "ready" not in ready:
            ready = proc.stdout.readline() if proc.stdout else ""
            assert proc.poll() is None, "modelbus up exited early"
        assert f"modelbus ready at http://127.0.0.1:{port}" in ready, ready
        stack = json.loads((tmp_path / "stack.json").read_text())
        assert stack["api_url"] == f"http://127.0.0.1:{port}" and stack["kafka_bootstrap"] and stack["mongodb_url"]
        assert httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=10).json()["status"] == "healthy"
        children = psutil.Process(proc.pid).children(recursive=True)
        commands = [" ".join(c.cmdline()) for c in children]
        assert any("tansu" in c for c in commands) and any("secantusd" in c for c in commands), commands
        # the worker layout: prediction workers and background consumers in their own processes
        assert any(c.endswith("worker --roles serving") for c in commands), commands
        assert any("worker --roles training projector archive ingest analyser" in c for c in commands), commands
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        time.sleep(0.5)
        alive = [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
        assert not alive, [c.cmdline() for c in alive]
        assert not (tmp_path / "stack.json").exists()
    finally:
        if proc.poll() is None:
            proc.kill()
