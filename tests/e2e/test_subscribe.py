"""docs/subscribe.md's examples, run as written against the session stack: records are ingested through the API,
then a subscriber outside modelbus reads the topic from the beginning with a fresh consumer group, filtered by the
``ce_type`` header, and finds the CloudEvents envelope. confluent-kafka (librdkafka) always; KafkaJS when Node.js
is installed (npm installs the pinned kafkajs from docs/examples/package-lock.json into a temporary folder)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from infra.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "docs" / "examples"
BATCH_TYPE = "modelbus.data.batch.ingested"
SESSION_TIMEOUT_MS = 6000
"""The embedded Tansu broker holds a JoinGroup for half the member's session timeout (librdkafka's default
45 s: 23 s to join, measured); 6 s makes it 3 s. A real Kafka answers after group.initial.rebalance.delay.ms."""


def ingest(api: httpx.Client, day: str) -> str:
    """Two records in a period of their own (no other test reads it); returns the batch id."""
    records = [
        {"timestamp": f"{day}T0{h}:00:00Z", "features": {"amount": 10.0 + h, "hour": h}, "label": h % 2}
        for h in range(2)
    ]
    resp = api.post("/v1/ml/data", json={"records": records, "source": "subscribe-example"})
    assert resp.status_code == 201, resp.text
    return str(resp.json()["batch_id"])


def envelopes(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def check_found(found: list[dict[str, Any]], batch_id: str) -> dict[str, Any]:
    assert found, "no envelope printed"
    assert {e["type"] for e in found} == {BATCH_TYPE}, "the ce_type filter let other types through"
    ours = [e for e in found if e["data"].get("batch_id") == batch_id]
    assert len(ours) == 1, f"batch {batch_id} not among {len(found)} envelopes"
    env = ours[0]
    assert env["specversion"] == "1.0" and env["source"] == "modelbus/api" and env["subject"] == f"{batch_id}:0"
    assert env["datacontenttype"] == "application/json" and env["correlationid"] == batch_id
    assert [r["features"]["amount"] for r in env["data"]["records"]] == [10.0, 11.0]
    return env


def run_confluent(settings: Settings, group: str, *extra: str) -> subprocess.CompletedProcess[str]:
    assert settings.kafka_bootstrap
    return subprocess.run(
        [
            sys.executable,
            str(EXAMPLES / "subscribe_confluent.py"),
            "--bootstrap",
            settings.kafka_bootstrap,
            "--topic",
            settings.topic("data.records"),
            "--group",
            group,
            "--type",
            BATCH_TYPE,
            "--idle-timeout",
            "4",
            "-X",
            f"session.timeout.ms={SESSION_TIMEOUT_MS}",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


def test_confluent_kafka_reads_the_envelope_from_the_beginning(api: httpx.Client, settings: Settings) -> None:
    import confluent_kafka

    assert confluent_kafka.libversion()[0] >= "2.", "librdkafka 2.x is what was measured with the embedded broker"
    batch_id = ingest(api, "2011-07-01")
    group = f"subscribe-test-{uuid.uuid4().hex[:8]}"
    first = run_confluent(settings, group, "--from-beginning")
    assert first.returncode == 0, first.stderr[-2000:]
    env = check_found(envelopes(first.stdout), batch_id)
    assert env["_kafka"]["topic"] == settings.topic("data.records")

    # the same group again, without --from-beginning: it resumes after its committed offsets (nothing new) ...
    resumed = run_confluent(settings, group)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert not [e for e in envelopes(resumed.stdout) if e["data"].get("batch_id") == batch_id]
    # ... and with it, rewinds an existing group to the first offsets: a replay
    replay = run_confluent(settings, group, "--from-beginning")
    assert replay.returncode == 0, replay.stderr[-2000:]
    check_found(envelopes(replay.stdout), batch_id)


def test_the_doc_quotes_the_examples_that_run() -> None:
    """docs/subscribe.md points at the example files the tests run, and quotes their commands."""
    doc = (ROOT / "docs" / "subscribe.md").read_text()
    for name in ("subscribe_confluent.py", "subscribe_kafkajs.js", "package.json"):
        assert f"docs/examples/{name}" in doc and (EXAMPLES / name).is_file()
    assert "--from-beginning" in doc and "ce_type" in doc and "--group" in doc
    # a block that says where it is from is a verbatim excerpt of that file, so the doc cannot drift from it
    quoted = re.findall(r"```\w+\n(?:#|//) from (docs/examples/\S+)\n(.*?)```", doc, re.S)
    assert len(quoted) >= 3
    for path, block in quoted:
        assert block in (ROOT / path).read_text(), f"the excerpt of {path} in docs/subscribe.md is not in {path}"
    # the options the doc's commands use are options of the examples
    for option in ("--bootstrap", "--topic", "--group", "--type", "--idle-timeout", "--max"):
        assert option in (EXAMPLES / "subscribe_confluent.py").read_text()
        assert option in (EXAMPLES / "subscribe_kafkajs.js").read_text()
    assert "'--session-timeout-ms'" in (EXAMPLES / "subscribe_kafkajs.js").read_text()


@pytest.fixture(scope="module")
def kafkajs_modules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """kafkajs from the npm registry, as pinned in docs/examples/package-lock.json, in a temporary folder."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("Node.js and npm are not installed")
    folder = tmp_path_factory.mktemp("kafkajs")
    for name in ("package.json", "package-lock.json"):
        shutil.copy(EXAMPLES / name, folder / name)
    done = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund"], cwd=folder, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return folder / "node_modules"


def test_kafkajs_reads_the_envelope_from_the_beginning(
    api: httpx.Client, settings: Settings, kafkajs_modules: Path
) -> None:
    assert settings.kafka_bootstrap
    batch_id = ingest(api, "2011-07-02")
    node = shutil.which("node")
    assert node is not None
    done = subprocess.run(
        [
            node,
            str(EXAMPLES / "subscribe_kafkajs.js"),
            "--bootstrap",
            settings.kafka_bootstrap,
            "--topic",
            settings.topic("data.records"),
            "--group",
            f"subscribe-test-js-{uuid.uuid4().hex[:8]}",
            "--from-beginning",
            "--type",
            BATCH_TYPE,
            "--idle-timeout",
            "4",
            "--session-timeout-ms",
            str(SESSION_TIMEOUT_MS),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=os.environ | {"NODE_PATH": str(kafkajs_modules)},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    check_found(envelopes(done.stdout), batch_id)
