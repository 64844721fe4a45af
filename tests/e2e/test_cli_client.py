"""The client commands of ``modelbus`` (issue 15, item 3) run as subprocesses against the session's stack."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from infra.settings import Settings
from tests.conftest import TEST_KEY

ROOT = Path(__file__).resolve().parents[2]


def run_cli(
    *args: str, tmp: Path, extra_env: dict[str, str] | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELBUS_")}
    env["MODELBUS_DATA_DIR"] = str(tmp)  # no stack.json there: nothing found by itself
    env.update(extra_env or {})
    return subprocess.run(
        [sys.executable, "-m", "bootstrap.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def http(base_url: str) -> list[str]:
    return ["--url", base_url, "--api-key", TEST_KEY]


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


@pytest.fixture(scope="module")
def trained(base_url: str, api: httpx.Client, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    proc = run_cli(
        "train",
        *http(base_url),
        "--model-type",
        "lightgbm",
        "--from",
        "2025-10-01",
        "--to",
        "2025-11-15",
        "--param",
        "n_estimators=20",
        "--param",
        "learning_rate=0.2",
        "--follow",
        tmp=tmp_path_factory.mktemp("cli"),
    )
    return {"proc": proc}


def test_train_follow_prints_metrics_beside_baseline(trained: dict[str, Any], api: httpx.Client) -> None:
    proc = trained["proc"]
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    assert "%" in proc.stderr and "completed" in proc.stderr  # plain progress lines (stderr is not a terminal)
    out = proc.stdout.splitlines()
    assert out[0].startswith("job job_") and " completed: model model_v" in out[0], proc.stdout
    assert out[1].split() == ["metric", "model", "baseline"]
    rows = {line.split()[0]: line.split()[1:] for line in out[3:]}
    assert 0 <= float(rows["accuracy"][0]) <= 1 and 0 <= float(rows["accuracy"][1]) <= 1, proc.stdout
    job_id = out[0].split()[1]
    model_id = out[0].split("model ")[1].split()[0]
    status = api.get(f"/v1/ml/train/status/{job_id}").json()
    assert status["status"] == "completed" and status["model_id"] == model_id
    trained.update(job_id=job_id, model_id=model_id)


def test_jobs_and_models_tables(trained: dict[str, Any], base_url: str, tmp_path: Path) -> None:
    proc = run_cli("jobs", *http(base_url), "--status", "completed", "--limit", "5", tmp=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split()[:3] == ["job_id", "status", "type"]
    assert any(line.startswith(trained["job_id"]) for line in lines[2:]), proc.stdout
    assert all(line.split()[1] == "completed" for line in lines[2:])

    proc = run_cli("models", *http(base_url), tmp=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["model_id", "type", "status", "accuracy", "f1_score", "roc_auc"]
    row = next(line.split() for line in lines[2:] if line.startswith(trained["model_id"] + " "))
    assert row[1] == "lightgbm" and row[2] == "trained"


def test_deploy_staging(trained: dict[str, Any], base_url: str, api: httpx.Client, tmp_path: Path) -> None:
    proc = run_cli("deploy", "staging", trained["model_id"], *http(base_url), tmp=tmp_path)
    assert proc.returncode == 0, proc.stderr
    body = json.loads(proc.stdout)
    assert body["model_id"] == trained["model_id"] and body["environment"] == "staging"
    assert api.get(f"/v1/ml/models/{trained['model_id']}").json()["status"] == "staging"


def test_unknown_model_is_one_error_line(base_url: str, tmp_path: Path) -> None:
    proc = run_cli("deploy", "staging", "model_nope", *http(base_url), tmp=tmp_path)
    line = one_error_line(proc)
    assert line.startswith("error 404 MODEL_NOT_FOUND: "), line
    assert proc.stdout == ""


def test_canary_watch_without_running_canary(base_url: str, api: httpx.Client, tmp_path: Path) -> None:
    if api.get("/v1/ml/deploy/current").json().get("canary"):
        pytest.skip("another test module left a canary running")
    line = one_error_line(run_cli("canary", "watch", "--once", *http(base_url), tmp=tmp_path))
    assert "no canary is running" in line


def test_unreachable_api_is_one_line(tmp_path: Path) -> None:
    proc = run_cli("models", "--url", "http://127.0.0.1:9", "--api-key", TEST_KEY, tmp=tmp_path)
    assert "not reachable at http://127.0.0.1:9" in one_error_line(proc)


def test_events_tail_from_beginning(trained: dict[str, Any], settings: Settings, tmp_path: Path) -> None:
    env = {"MODELBUS_KAFKA_BOOTSTRAP": str(settings.kafka_bootstrap), "MODELBUS_TOPIC_PREFIX": settings.topic_prefix}
    proc = run_cli("events", "tail", "train.events", "--from-beginning", "--max", "3", tmp=tmp_path, extra_env=env)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 3, proc.stdout
    for line in lines:
        assert json.loads(line)["type"].startswith("modelbus.train"), line
    # --type and --subject filter
    proc = run_cli(
        "events",
        "tail",
        "train.events",
        "--from-beginning",
        "--max",
        "1",
        "--type",
        "modelbus.train.job.completed",
        "--subject",
        trained["job_id"],
        tmp=tmp_path,
        extra_env=env,
    )
    assert proc.returncode == 0, proc.stderr
    event = json.loads(proc.stdout)
    assert event["type"] == "modelbus.train.job.completed" and event["subject"] == trained["job_id"]
