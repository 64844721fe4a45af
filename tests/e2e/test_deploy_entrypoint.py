"""The image's entrypoint (deploy/entrypoint.py) against the session stack's servers, as the containers of
deploy/compose.yaml and deploy/k8s run it: `init` prepares and checks the topics, `api` serves the API without
consumers (the session stack's workers answer its requests), `probe http` and `probe serving` are the health
checks of the API and the serving workers."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bootstrap.workers import settings_env
from infra.embedded import free_port
from infra.settings import Settings
from tests.conftest import TEST_KEY, wait_for

ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = ROOT / "deploy" / "entrypoint.py"


def container_env(settings: Settings, tmp_path: Path, **extra: str) -> dict[str, str]:
    """The session stack's settings as a container gets them: MODELBUS_ variables only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELBUS_")}
    return env | settings_env(settings) | {"MODELBUS_DATA_DIR": str(tmp_path), "MODELBUS_LOG_JSON": "false"} | extra


def run(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ENTRYPOINT), *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT
    )


def test_init_prepares_and_checks_the_topics(settings: Settings, tmp_path: Path) -> None:
    done = run(["init"], container_env(settings, tmp_path))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "modelbus init done" in done.stdout


def test_init_fails_on_a_topic_the_broker_made_with_too_few_partitions(settings: Settings, tmp_path: Path) -> None:
    """A topic that exists with one partition (auto-created on first use, say) is reported, not silently kept."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    prefix = f"short{int(time.time())}."

    async def create() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(f"{prefix}train.commands", num_partitions=1, replication_factor=1)])
        finally:
            await admin.close()

    asyncio.run(create())
    done = run(["init"], container_env(settings, tmp_path, MODELBUS_TOPIC_PREFIX=prefix))
    assert done.returncode == 1, done.stdout + done.stderr[-2000:]
    assert f"{prefix}train.commands: 1 partition(s), {settings.topic_partitions} planned" in done.stderr


def test_api_without_consumers_serves_through_the_stack_workers(settings: Settings, tmp_path: Path) -> None:
    port = free_port()
    env = container_env(settings, tmp_path, MODELBUS_PORT=str(port), MODELBUS_HOST="127.0.0.1")
    env.pop("MODELBUS_WORKER_LAYOUT", None)
    proc = subprocess.Popen(
        [sys.executable, str(ENTRYPOINT), "api"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=ROOT,
    )
    try:
        probe = ["probe", "http", "/api/v1/health"]
        wait_for(lambda: run(probe, env, timeout=30).returncode == 0, timeout=90, interval=0.5, what="the API")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": TEST_KEY}, timeout=30) as api:
            assert api.get("/api/v1/health").json()["components"]["kafka"] == "healthy"
            # a request/reply over Kafka: answered by the session stack's serving consumers
            resp = api.post("/api/predictions/generate", json={"machine_type": "1호기", "sets_count": 1})
            assert resp.status_code == 200, resp.text
            assert api.get("/docs").status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, output[-2000:]
    assert "modelbus api ready" in output and "no consumers" in output
    # it ran no consumer: nothing of a worker started in that process
    assert "consumers started" not in output and "modelbus worker" not in output


def test_probe_serving_sees_the_stack_serving_workers(settings: Settings, tmp_path: Path) -> None:
    """The session stack's serving consumers run on this host and write their samples every
    MODELBUS_SAMPLE_INTERVAL_SECONDS: the probe of a serving container passes here, and fails for another host."""
    env = container_env(settings, tmp_path)
    ok = wait_for(lambda: run(["probe", "serving"], env, timeout=30).returncode == 0, timeout=40, what="a sample")
    assert ok
    other = run(["probe", "serving", "--host", "no-such-pod"], env, timeout=30)
    assert other.returncode == 1 and "no worker sample from host no-such-pod" in other.stderr
