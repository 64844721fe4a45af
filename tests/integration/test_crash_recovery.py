"""A worker killed with SIGKILL mid-training: another worker takes the job over after its
lease expires and completes it exactly once. Runs its own API + projector against the session's
servers (separate topics and database) and two `modelbus worker --roles training` processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import MongoClient

from bootstrap.stack import StackThread
from infra.settings import Settings
from tests.conftest import SEED_TRAIN_BODY, TEST_KEY, wait_for, wait_job


@pytest.fixture(scope="module")
def mini(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[StackThread, Settings]]:
    own = settings.model_copy(
        update={
            "data_dir": tmp_path_factory.mktemp("crash"),
            "mongodb_db": settings.mongodb_db + "_crash",
            "topic_prefix": settings.topic_prefix.rstrip(".") + "crash.",
            "job_lease_seconds": 3.0,
            "port": 0,
        }
    )
    thread = StackThread(own, demo=True, roles=("projector", "archive", "serving"))
    thread.start()
    yield thread, thread.stack.settings
    thread.stop()


def _worker(own: Settings, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "MODELBUS_KAFKA_BOOTSTRAP": str(own.kafka_bootstrap),
        "MODELBUS_MONGODB_URL": str(own.mongodb_url),
        "MODELBUS_MONGODB_DB": own.mongodb_db,
        "MODELBUS_TOPIC_PREFIX": own.topic_prefix,
        "MODELBUS_JOB_LEASE_SECONDS": "3",
        "MODELBUS_TRAIN_PROCESSES": "1",
        "MODELBUS_PROGRESS_INTERVAL_SECONDS": "0.3",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "bootstrap.cli", "worker", "--roles", "training"],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def test_kill_9_mid_training_completes_once(mini: tuple[StackThread, Settings], tmp_path: Path) -> None:
    thread, own = mini
    workers = [_worker(own, tmp_path / f"w{i}.log") for i in range(2)]
    db: Any = MongoClient(own.mongodb_url, tz_aware=True)[own.mongodb_db]
    archive: Any = MongoClient(own.archive_url, tz_aware=True)[own.mongodb_db].archive
    try:
        for i in range(2):
            wait_for(lambda i=i: b"consuming" in (tmp_path / f"w{i}.log").read_bytes(), timeout=60, what="worker up")
        time.sleep(8)  # both workers join the consumer group
        api = httpx.Client(base_url=thread.stack.info["api_url"], headers={"X-API-Key": TEST_KEY}, timeout=30)
        body = {**SEED_TRAIN_BODY, "hyperparameters": {"n_estimators": 1200, "learning_rate": 0.02}}
        job_id = api.post("/v1/ml/train", json=body).json()["job_id"]
        lease = wait_for(lambda: db.leases.find_one({"_id": job_id, "state": "active"}), timeout=60, what="lease")
        wait_for(
            lambda: 0 < api.get(f"/v1/ml/train/status/{job_id}").json()["progress"] < 100,
            timeout=60,
            interval=0.1,
            what="training under way",
        )
        owner_pid = int(lease["owner"].split("-")[-2])
        victim = next(w for w in workers if w.pid == owner_pid)
        os.killpg(victim.pid, signal.SIGKILL)  # the worker and its training process die at once
        victim.wait()
        final = wait_job(api, job_id, timeout=180)
        assert final["status"] == "completed", final
        job = db.jobs.find_one({"_id": job_id})
        assert job["attempts"] == 2
        # model.events and train.events are separate topics: the registration may be projected a batch later
        wait_for(lambda: db.models.count_documents({"lineage.job_id": job_id}), timeout=10, what="model projected")
        assert db.models.count_documents({"lineage.job_id": job_id}) == 1
        assert db.counters.find_one({"_id": "model:tabular:lightgbm"})["seq"] == 1
        wait_for(
            lambda: archive.count_documents({"subject": job_id, "type": "modelbus.train.job.completed"}),
            what="archived completion",
        )
        assert archive.count_documents({"subject": job_id, "type": "modelbus.train.job.completed"}) == 1
        retry = archive.find_one({"subject": job_id, "type": "modelbus.train.job.requested", "sequence": 2_000_000})
        assert retry is not None and "stopped heartbeating" in retry["raw"]
    finally:
        for w in workers:
            if w.poll() is None:
                os.killpg(w.pid, signal.SIGTERM)
                w.wait(30)


def test_job_fails_with_reason_after_last_attempt(mini: tuple[StackThread, Settings], tmp_path: Path) -> None:
    """No worker survives: the lease sweeper of a fresh worker fails the job once attempts are used up."""
    _, own = mini
    db: Any = MongoClient(own.mongodb_url, tz_aware=True)[own.mongodb_db]
    archive: Any = MongoClient(own.archive_url, tz_aware=True)[own.mongodb_db].archive
    from schemas import jobs

    job = db.jobs.find_one({"status": "completed"})
    assert job is not None
    # a lease left behind by a dead worker on its last attempt
    cmd = archive.find_one({"subject": job["_id"], "type": jobs.TRAIN_REQUESTED})
    stale_id = "job_stalelease01"
    raw = cmd["raw"].replace(job["_id"], stale_id).replace('"attempt":1', f'"attempt":{own.job_max_attempts}')
    from schemas.envelope import Envelope

    env = Envelope.from_bytes(raw)
    from datetime import UTC, datetime, timedelta

    db.leases.insert_one(
        {
            "_id": stale_id,
            "owner": "dead-1-1",
            "attempt": own.job_max_attempts,
            "state": "active",
            "expires_at": datetime.now(UTC) - timedelta(seconds=30),
            "command": env.model_dump(mode="json"),
        }
    )
    worker = _worker(own, tmp_path / "w.log")
    try:
        lease = wait_for(
            lambda: (d := db.leases.find_one({"_id": stale_id})) and d["state"] == "expired" and d,
            timeout=60,
            what="sweep",
        )
        assert lease["state"] == "expired"
        failed = wait_for(
            lambda: archive.find_one({"subject": stale_id, "type": jobs.JOB_FAILED}), timeout=30, what="failed event"
        )
        assert "no attempts left" in failed["raw"]
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(30)


def test_kill_9_mid_batch_scoring_scores_every_record_once(
    mini: tuple[StackThread, Settings], tmp_path: Path
) -> None:
    """A batch scoring job (issue 16) on the same job platform: its worker is killed mid-job, another takes it
    over after the lease expires, and the one stored result still holds every record of the period once."""
    thread, own = mini
    db: Any = MongoClient(own.mongodb_url, tz_aware=True)[own.mongodb_db]
    model = db.models.find_one({"domain": "tabular"})
    assert model is not None, "the first test of this module trains one"
    workers = [_worker(own, tmp_path / f"w{i}.log") for i in range(2)]
    try:
        for i in range(2):
            wait_for(lambda i=i: b"consuming" in (tmp_path / f"w{i}.log").read_bytes(), timeout=60, what="worker up")
        time.sleep(8)  # both workers join the consumer group
        api = httpx.Client(base_url=thread.stack.info["api_url"], headers={"X-API-Key": TEST_KEY}, timeout=30)
        period = SEED_TRAIN_BODY["data_period"]
        count = api.get("/v1/ml/data/summary", params=period).json()["record_count"]
        body = {
            "data_period": period,
            "model_id": model["_id"],
            "chunk_records": 500,
            "max_records_per_second": max(500, count // 12),  # about 12 s, so the kill lands mid-job
        }
        resp = api.post("/v1/ml/predict/batch", json=body)
        assert resp.status_code == 202, resp.text
        job_id = resp.json()["job_id"]
        lease = wait_for(lambda: db.leases.find_one({"_id": job_id, "state": "active"}), timeout=60, what="lease")
        wait_for(
            lambda: 0 < api.get(f"/v1/ml/predict/batch/{job_id}").json()["records_scored"] < count,
            timeout=60,
            interval=0.1,
            what="scoring under way",
        )
        owner_pid = int(lease["owner"].split("-")[-2])
        victim = next(w for w in workers if w.pid == owner_pid)
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait()

        def finished() -> dict[str, Any] | None:
            status = api.get(f"/v1/ml/predict/batch/{job_id}").json()
            return status if status["status"] in ("completed", "failed", "cancelled") else None

        final = wait_for(finished, timeout=180, what="batch job after the kill")
        assert final["status"] == "completed" and final["attempts"] == 2, final
        rows = [line for line in api.get(f"/v1/ml/predict/batch/{job_id}/results").text.splitlines() if line]
        keys = [json.loads(line)["record"] for line in rows]
        assert len(keys) == count and len(set(keys)) == count
        outputs = db["artifacts.files"].count_documents({"metadata.job_id": job_id, "metadata.kind": "job_output"})
        assert outputs == 1  # only the completing attempt's scores were stored
    finally:
        for w in workers:
            if w.poll() is None:
                os.killpg(w.pid, signal.SIGTERM)
                w.wait(30)
