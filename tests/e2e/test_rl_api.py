"""Seed 004 (RL edge placement, ``/api/v1``) on the real stack: the document's Python example and curl commands
as written, cancel within one episode, the model list, deploy (local workers), manifests checked against the
Kubernetes client's models, act, metrics, health and W&B."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import TEST_KEY, wait_for

# The seed's example trains dqn for 1000 episodes. On the shared 2-core test machine that fit alone took 155 s
# wall (45 s of CPU, load average 9 from other suites), so the example runs with SEED_EPISODES episodes
# (everything else as written); MODELBUS_SEED_EPISODES=1000 runs it exactly as published.
SEED_EPISODES = int(os.environ.get("MODELBUS_SEED_EPISODES", "30"))

# Verbatim from the seed document (004), "Примеры использования / Python"; see _seed_code for the substitutions.
SEED_PYTHON = """
import requests

API_URL = "http://localhost:8000/api/v1"
TOKEN = "your-token"

headers = {
    "Authorization": f"Bearer {TOKEN}",
    "Content-Type": "application/json"
}

# Создание задачи обучения
response = requests.post(
    f"{API_URL}/training",
    headers=headers,
    json={
        "name": "test-training",
        "model_type": "dqn",
        "parameters": {
            "learning_rate": 0.001,
            "discount_factor": 0.99
        },
        "total_episodes": 1000
    }
)
task_id = response.json()["task_id"]

# Получение статуса задачи
response = requests.get(
    f"{API_URL}/training/{task_id}",
    headers=headers
)
status = response.json()["status"]

# Развертывание модели
response = requests.post(
    f"{API_URL}/models/{model_id}/deploy",
    headers=headers,
    json={
        "replicas": 3,
        "resources": {
            "cpu": "1",
            "memory": "1Gi"
        }
    }
)
"""

# Verbatim from the seed document (004), "Примеры использования / cURL".
SEED_CURL = """
# Создание задачи обучения
curl -X POST "http://localhost:8000/api/v1/training" \\
  -H "Authorization: Bearer your-token" \\
  -H "Content-Type: application/json" \\
  -d '{
    "name": "test-training",
    "model_type": "dqn",
    "parameters": {
      "learning_rate": 0.001,
      "discount_factor": 0.99
    },
    "total_episodes": 1000
  }'

# Получение статуса задачи
curl -X GET "http://localhost:8000/api/v1/training/task-id" \\
  -H "Authorization: Bearer your-token"

# Развертывание модели
curl -X POST "http://localhost:8000/api/v1/models/model-id/deploy" \\
  -H "Authorization: Bearer your-token" \\
  -H "Content-Type: application/json" \\
  -d '{
    "replicas": 3,
    "resources": {
      "cpu": "1",
      "memory": "1Gi"
    }
  }'
"""

SEED_STATUS_FIELDS = {
    "task_id",
    "status",
    "progress",
    "current_episode",
    "total_episodes",
    "metrics",
    "created_at",
    "updated_at",
}
OBSERVATION = [0.5] * 4 + [0.5] * 4 + [0.4] * 6 + [0.0, 0.5, 0.5, 1.0]  # EdgePlacement-v0 layout, 18 values


def _seed_code(code: str, base_url: str, episodes: int = SEED_EPISODES) -> str:
    """The example against this test server: its URL and key, and the episode budget (see SEED_EPISODES)."""
    out = code.replace("http://localhost:8000", base_url).replace("your-token", TEST_KEY)
    return out.replace('"total_episodes": 1000', f'"total_episodes": {episodes}')


def _error(resp: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["status"] == "error" and set(body) == {"status", "error", "timestamp", "request_id"}, body
    assert {"code", "message", "field"} <= set(body["error"])
    if code:
        assert body["error"]["code"] == code, body
    return body


def _wait_task(api: httpx.Client, task_id: str, timeout: float = 240) -> dict[str, Any]:
    """Until the task finished and every episode of it is projected."""

    def done() -> dict[str, Any] | None:
        body = api.get(f"/api/v1/training/{task_id}").json()
        if body["status"] in ("failed", "cancelled"):
            return body
        if body["status"] == "completed" and body["current_episode"] == body["total_episodes"]:
            return body
        return None

    return wait_for(done, timeout, interval=0.25, what=f"task {task_id}")


def _train(api: httpx.Client, name: str, model_type: str = "q_learning", episodes: int = 5, **extra: Any) -> str:
    body = {"name": name, "model_type": model_type, "parameters": {}, "total_episodes": episodes, **extra}
    resp = api.post("/api/v1/training", json=body)
    assert resp.status_code == 202, resp.text
    return resp.json()["task_id"]


def _model_status(api: httpx.Client, model_id: str) -> str:
    return api.get(f"/api/v1/models/{model_id}").json()["status"]


def _wait_status(api: httpx.Client, model_id: str, status: str, timeout: float = 60) -> None:
    wait_for(lambda: _model_status(api, model_id) == status, timeout, what=f"{model_id} {status}")


def test_seed_python_example_trains_and_deploys(
    base_url: str, api: httpx.Client, db: Any, archive: Any
) -> None:
    namespace: dict[str, Any] = {}
    code = _seed_code(SEED_PYTHON, base_url)
    create, deploy = code.split("# Развертывание модели")
    t0 = time.monotonic()
    exec(compile(create, "seed004-python", "exec"), namespace)  # noqa: S102 - the document's own example
    requests_response = namespace["response"]
    assert requests_response.status_code == 200, requests_response.text
    task_id, status = namespace["task_id"], namespace["status"]
    assert task_id.startswith("task_") and status in ("created", "running")

    created = api.get(f"/api/v1/training/{task_id}").json()
    assert SEED_STATUS_FIELDS <= set(created), created
    assert created["created_at"].endswith("Z") and created["total_episodes"] == SEED_EPISODES

    final = _wait_task(api, task_id)
    wall = time.monotonic() - t0
    print(f"\nseed dqn task, {SEED_EPISODES} episodes: {wall:.1f} s wall from POST to all episodes projected")
    assert final["status"] == "completed", final
    assert final["progress"] == 1.0 and final["current_episode"] == SEED_EPISODES
    metrics = final["metrics"]
    assert set(metrics) == {"episode_rewards", "episode_steps", "episode_latencies"}
    assert len(metrics["episode_rewards"]) == len(metrics["episode_steps"]) == SEED_EPISODES
    assert all(steps == 48 for steps in metrics["episode_steps"])
    assert all(-1000 < r < 0 for r in metrics["episode_rewards"])
    assert all(0.005 < lat < 0.2 for lat in metrics["episode_latencies"]), "episode_latencies are seconds"
    assert final["updated_at"] >= final["created_at"]
    evaluation = final["evaluation"]
    assert evaluation["random_mean_reward"] < evaluation["greedy_mean_reward"]
    assert evaluation["training_episodes"] == SEED_EPISODES
    # every figure is on the 30 held-out days, with intervals over days, against greedy day by day
    assert evaluation["evaluation_first_seed"] == 2_000_000_000 and evaluation["evaluation_days"] == 30
    assert evaluation["normalised_score_ci95_low"] <= evaluation["normalised_score"]
    assert evaluation["normalised_score"] <= evaluation["normalised_score_ci95_high"]
    low, high = evaluation["vs_greedy_mean_difference_ci95_low"], evaluation["vs_greedy_mean_difference_ci95_high"]
    assert low <= evaluation["vs_greedy_mean_difference"] <= high and 0 <= evaluation["vs_greedy_win_rate"] <= 1
    assert evaluation["beats_greedy"] == (low > 0)
    assert ("beats greedy" if evaluation["beats_greedy"] else "does NOT beat greedy") in evaluation["verdict"]
    # the per-episode stream: one rl.episodes event per episode, in the archive too
    wait_for(
        lambda: (
            archive.count_documents({"subject": task_id, "type": "modelbus.rl.episode.recorded"}) == SEED_EPISODES
        ),
        what="archived episode events",
    )
    model_id = final["model_id"]
    assert model_id.startswith("rl_dqn_v1.")
    model = api.get(f"/api/v1/models/{model_id}").json()
    assert model["status"] == "trained" and model["name"] == "test-training" and model["type"] == "dqn"
    assert model["lineage"]["hyperparameters"]["learning_rate"] == 0.001
    assert model["lineage"]["hyperparameters"]["discount_factor"] == 0.99
    stored = db["artifacts.files"].find_one({"filename": model_id})
    assert stored is not None and stored["metadata"]["sha256"] == model["artifact_sha256"]

    namespace["model_id"] = model_id
    exec(compile(deploy, "seed004-python-deploy", "exec"), namespace)  # noqa: S102
    resp = namespace["response"]
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert body["model_id"] == model_id and body["status"] == "deploying" and body["created_at"].endswith("Z")
    assert {"name", "namespace", "replicas"} <= set(body["deployment"])
    assert body["deployment"]["replicas"] == 3 and body["deployment"]["name"] == "rl-test-training"
    assert body["deployment"]["namespace"] == "modelbus" and body["deployment"]["target"] == "local"
    _wait_status(api, model_id, "deployed")
    listed = api.get("/api/v1/models", params={"status": "deployed", "per_page": 100}).json()
    assert model_id in {m["model_id"] for m in listed["models"]}

    # the agent answers: observation in, placement out
    for _ in range(5):
        act = api.post(f"/api/v1/models/{model_id}/act", json={"observation": OBSERVATION})
        assert act.status_code == 200, act.text
    answer = act.json()
    assert 0 <= answer["action"] <= 8 and answer["placement"]["operation"] in ("none", "add_replica", "remove_replica")
    with_replicas = api.post(
        f"/api/v1/models/{model_id}/act", json={"observation": OBSERVATION, "current_replicas": [1, 1, 1, 1]}
    ).json()
    assert len(with_replicas["placement"]["replicas"]) == 4
    assert sum(with_replicas["placement"]["replicas"]) in (3, 4, 5)
    _error(api.post(f"/api/v1/models/{model_id}/act", json={"observation": [0.1, 0.2]}), 422, "VALIDATION_ERROR")

    # metrics of the deployed model from the served events and the worker samples
    def model_metrics() -> dict[str, Any] | None:
        m = api.get(f"/api/v1/models/{model_id}/metrics", params={"interval": "1m"}).json()
        usage = m["metrics"]["resource_usage"]
        return m if m["requests"] >= 6 and usage["cpu"]["values"] and usage["memory"]["values"] else None

    m = wait_for(model_metrics, 40, interval=0.5, what="model metrics with served requests and worker samples")
    latency, throughput = m["metrics"]["latency"], m["metrics"]["throughput"]
    assert latency["values"] and len(latency["values"]) == len(latency["timestamps"])
    assert all(0 < v < 5 for v in latency["values"]), "latency is seconds"
    assert all(v > 0 for v in throughput["values"]) and throughput["timestamps"][0].endswith("Z")
    assert all(0 <= v <= 1 for v in m["metrics"]["resource_usage"]["memory"]["values"])
    five = api.get(f"/api/v1/models/{model_id}/metrics", params={"interval": "5m"}).json()
    assert five["requests"] == m["requests"] or five["requests"] >= 6
    _error(api.get(f"/api/v1/models/{model_id}/metrics", params={"interval": "2m"}), 422)
    _error(
        api.get(
            f"/api/v1/models/{model_id}/metrics",
            params={"start_time": "2024-03-20T12:00:00Z", "end_time": "2024-03-20T11:00:00Z"},
        ),
        422,
        "VALIDATION_ERROR",
    )
    past = api.get(
        f"/api/v1/models/{model_id}/metrics",
        params={"start_time": "2024-03-20T12:00:00Z", "end_time": "2024-03-20T13:00:00Z", "interval": "5m"},
    ).json()
    assert past["metrics"]["latency"] == {"values": [], "timestamps": []}


def test_manifest_validates_against_the_kubernetes_models(api: httpx.Client) -> None:
    from kubernetes import client

    model_id = _wait_task(api, _train(api, "manifest-check"))["model_id"]
    assert api.get(f"/api/v1/models/{model_id}/manifest").status_code == 404
    body = {"replicas": 2, "resources": {"cpu": "500m", "memory": "256Mi"}, "strategy": "recreate", "namespace": "edge"}
    resp = api.post(f"/api/v1/models/{model_id}/deploy", json=body)
    assert resp.status_code == 202, resp.text
    manifest = api.get(f"/api/v1/models/{model_id}/manifest").json()
    items = manifest["manifest"]["items"]
    assert manifest["manifest"]["kind"] == "List" and [i["kind"] for i in items] == ["Deployment", "Service"]
    api_client = client.ApiClient()
    deployment = api_client.deserialize(json.dumps(items[0]), "V1Deployment", "application/json")
    service = api_client.deserialize(json.dumps(items[1]), "V1Service", "application/json")
    assert isinstance(deployment, client.V1Deployment) and isinstance(service, client.V1Service)
    # nothing was dropped by the models: every field is one Kubernetes knows
    assert api_client.sanitize_for_serialization(deployment) == items[0]
    assert api_client.sanitize_for_serialization(service) == items[1]
    assert re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", deployment.metadata.name)
    assert deployment.metadata.namespace == "edge" and deployment.spec.replicas == 2
    assert deployment.spec.strategy.type == "Recreate"
    container = deployment.spec.template.spec.containers[0]
    assert container.resources.requests == {"cpu": "500m", "memory": "256Mi"} == container.resources.limits
    assert deployment.spec.selector.match_labels.items() <= deployment.spec.template.metadata.labels.items()
    assert service.spec.selector == deployment.spec.selector.match_labels
    assert {"name": "MODELBUS_RL_MODEL_ID", "value": model_id} in items[0]["spec"]["template"]["spec"]["containers"][0][
        "env"
    ]
    docs = list(yaml.safe_load_all(api.get(f"/api/v1/models/{model_id}/manifest", params={"format": "yaml"}).text))
    assert docs == items
    _wait_status(api, model_id, "deployed")
    # rolling (the default) is a RollingUpdate without unavailable replicas
    resp = api.post(f"/api/v1/models/{model_id}/deploy", json={"replicas": 1})
    assert resp.status_code == 202, resp.text
    rolled = api.get(f"/api/v1/models/{model_id}/manifest").json()["manifest"]["items"][0]
    assert rolled["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0},
    }
    _wait_status(api, model_id, "deployed")


def test_seed_curl_commands(base_url: str, api: httpx.Client) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    commands = [c.strip() for c in re.split(r"^# .*$", SEED_CURL, flags=re.M) if c.strip()]
    assert len(commands) == 3

    def run(command: str) -> dict[str, Any]:
        out = subprocess.run(
            ["bash", "-c", command.replace("curl ", "curl -sS ", 1)],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return json.loads(out.stdout)

    # as written, with 1000 episodes: the task is created, read, then cancelled (see the cancel test)
    created = run(_seed_code(commands[0], base_url, episodes=1000))
    assert set(created) >= {"task_id", "status", "created_at"} and created["status"] == "created"
    task_id = created["task_id"]
    status = run(_seed_code(commands[1], base_url).replace("task-id", task_id))
    assert SEED_STATUS_FIELDS <= set(status) and status["task_id"] == task_id and status["total_episodes"] == 1000
    cancel = api.post(f"/api/v1/training/{task_id}/cancel")
    assert cancel.status_code in (200, 202), cancel.text

    model_id = _wait_task(api, _train(api, "curl-deploy"))["model_id"]
    deployed = run(_seed_code(commands[2], base_url).replace("model-id", model_id))
    assert deployed["status"] == "deploying" and deployed["deployment"]["replicas"] == 3
    _wait_status(api, model_id, "deployed")
    _wait_task(api, task_id, timeout=60)


def test_cancel_stops_training_within_one_episode(api: httpx.Client, archive: Any) -> None:
    # slow episodes (many gradient steps each), so "within one episode" is measurable from outside
    params = {"learning_starts": 0, "batch_size": 64, "epochs": 600}
    resp = api.post(
        "/api/v1/training",
        json={"name": "cancel-me", "model_type": "dqn", "parameters": params, "total_episodes": 500},
    )
    assert resp.status_code == 202, resp.text
    task_id = resp.json()["task_id"]
    wait_for(lambda: api.get(f"/api/v1/training/{task_id}").json()["current_episode"] >= 3, 120, what="3 episodes done")
    before = api.get(f"/api/v1/training/{task_id}").json()
    assert before["status"] == "running"
    t0 = time.monotonic()
    cancel = api.post(f"/api/v1/training/{task_id}/cancel")
    took = time.monotonic() - t0
    assert cancel.status_code == 200, cancel.text
    body = cancel.json()
    assert body["task_id"] == task_id and body["status"] == "cancelled" and body["updated_at"].endswith("Z")
    time.sleep(1.0)  # let any straggling episode event arrive: there must be none beyond the stop
    after = api.get(f"/api/v1/training/{task_id}").json()
    assert after["status"] == "cancelled" and after["current_episode"] < 500
    # the episode that was running when the flag arrived finishes; no other starts. (+1: the episode that had
    # finished but was not yet projected when `before` was read.)
    extra = after["current_episode"] - before["current_episode"]
    print(f"\ncancel: {took:.2f} s, {extra} episode(s) after the request (at {before['current_episode']})")
    assert extra <= 2, (before["current_episode"], after["current_episode"])
    assert len(after["metrics"]["episode_rewards"]) == after["current_episode"]
    archived = archive.count_documents({"subject": task_id, "type": "modelbus.rl.episode.recorded"})
    assert archived == after["current_episode"]
    assert after["model_id"] is None
    again = api.post(f"/api/v1/training/{task_id}/cancel")
    assert again.status_code == 200 and again.json()["status"] == "cancelled"


def test_model_list_pagination_and_status_filter(api: httpx.Client) -> None:
    ids = [_train(api, "page-check", episodes=3) for _ in range(3)]
    models = [_wait_task(api, task_id)["model_id"] for task_id in ids]
    first = api.get("/api/v1/models", params={"page": 1, "per_page": 2}).json()
    assert set(first) == {"models", "total", "page", "per_page"}
    assert first["page"] == 1 and first["per_page"] == 2 and len(first["models"]) == 2 and first["total"] >= 3
    entry = first["models"][0]
    assert {"model_id", "name", "type", "status", "metrics", "created_at"} <= set(entry)
    assert entry["created_at"].endswith("Z") and "latency" in entry["metrics"]
    pages = [api.get("/api/v1/models", params={"page": p, "per_page": 2}).json() for p in range(1, 100)]
    seen = [m["model_id"] for page in pages for m in page["models"]]
    assert len(seen) == len(set(seen)) == first["total"]  # every model once, newest first
    assert set(models) <= set(seen)
    created = [m["created_at"] for page in pages for m in page["models"]]
    assert created == sorted(created, reverse=True)
    beyond = api.get("/api/v1/models", params={"page": 1000, "per_page": 2}).json()
    assert beyond["models"] == [] and beyond["total"] == first["total"]

    resp = api.post(f"/api/v1/models/{models[0]}/deploy", json={"replicas": 1})
    assert resp.status_code == 202
    _wait_status(api, models[0], "deployed")
    for status in ("trained", "deployed", "archived"):
        listed = api.get("/api/v1/models", params={"status": status, "per_page": 100}).json()
        assert all(m["status"] == status for m in listed["models"]) and listed["total"] == len(listed["models"])
    deployed = {m["model_id"] for m in api.get("/api/v1/models", params={"status": "deployed"}).json()["models"]}
    trained = {
        m["model_id"] for m in api.get("/api/v1/models", params={"status": "trained", "per_page": 100}).json()["models"]
    }
    assert models[0] in deployed and models[0] not in trained and models[1] in trained
    _error(api.get("/api/v1/models", params={"status": "production"}), 422, "VALIDATION_ERROR")
    _error(api.get("/api/v1/models", params={"per_page": 0}), 422)
    _error(api.get("/api/v1/models", params={"page": 0}), 422)

    # a newer model under the same deployment name replaces (archives) the deployed one
    resp = api.post(f"/api/v1/models/{models[1]}/deploy", json={"replicas": 2})
    assert resp.status_code == 202
    _wait_status(api, models[1], "deployed")
    _wait_status(api, models[0], "archived")
    _error(api.post(f"/api/v1/models/{models[0]}/act", json={"observation": OBSERVATION}), 409, "MODEL_NOT_DEPLOYED")
    history = api.get(f"/api/v1/models/{models[0]}").json()["history"]
    assert [h["status"] for h in history] == ["deploying", "deployed", "archived"]
    assert [h["status_version"] for h in history] == [2, 3, 4]
    # undeploy
    resp = api.post(f"/api/v1/models/{models[1]}/undeploy")
    assert resp.status_code == 202 and resp.json()["status"] == "archived"
    assert _model_status(api, models[1]) == "archived"
    _error(api.post(f"/api/v1/models/{models[1]}/undeploy"), 409, "MODEL_NOT_DEPLOYED")
    wait_for(
        lambda: api.get(f"/api/v1/models/{models[1]}").json()["deployment"]["status"] == "undeployed",
        what="deployment undeployed",
    )


def test_errors(api: httpx.Client, anon: httpx.Client) -> None:
    good = {"replicas": 3, "resources": {"cpu": "1", "memory": "1Gi"}}
    _error(api.post("/api/v1/models/rl_dqn_v9.9.9/deploy", json=good), 404, "MODEL_NOT_FOUND")
    _error(api.get("/api/v1/models/rl_dqn_v9.9.9/manifest"), 404, "MODEL_NOT_FOUND")
    _error(api.get("/api/v1/models/rl_dqn_v9.9.9/metrics"), 404, "MODEL_NOT_FOUND")
    _error(api.post("/api/v1/models/rl_dqn_v9.9.9/act", json={"observation": OBSERVATION}), 404, "MODEL_NOT_FOUND")
    _error(api.get("/api/v1/training/task_doesnotexist"), 404, "TASK_NOT_FOUND")
    _error(api.post("/api/v1/training/task_doesnotexist/cancel"), 404, "TASK_NOT_FOUND")
    for bad, field in [
        ({**good, "replicas": 0}, "replicas"),
        ({**good, "replicas": 1000}, "replicas"),
        ({**good, "replicas": "three"}, "replicas"),
        ({**good, "resources": {"cpu": "lots", "memory": "1Gi"}}, "resources.cpu"),
        ({**good, "resources": {"cpu": "-1", "memory": "1Gi"}}, "resources.cpu"),
        ({**good, "resources": {"cpu": "1000", "memory": "1Gi"}}, "resources.cpu"),
        ({**good, "resources": {"cpu": "1", "memory": "1Gb"}}, "resources.memory"),
        ({**good, "resources": {"cpu": "1", "memory": "1Ki"}}, "resources.memory"),
        ({**good, "resources": {"cpu": "1", "memory": "1Gi", "gpu": 1}}, "resources.gpu"),
        ({**good, "strategy": "bluegreen"}, "strategy"),
    ]:
        body = _error(api.post("/api/v1/models/rl_dqn_v9.9.9/deploy", json=bad), 422, "VALIDATION_ERROR")
        assert body["error"]["field"] == field, (bad, body)
    seed = {"name": "x", "model_type": "dqn", "parameters": {"learning_rate": 0.001}, "total_episodes": 10}
    body = _error(api.post("/api/v1/training", json={**seed, "model_type": "td3"}), 422, "VALIDATION_ERROR")
    assert body["error"]["field"] == "model_type"
    body = _error(api.post("/api/v1/training", json={**seed, "parameters": {"learning_rate": 2}}), 422)
    assert body["error"]["field"] == "parameters.learning_rate"
    body = _error(api.post("/api/v1/training", json={**seed, "parameters": {"learning_rat": 0.1}}), 422)
    assert body["error"]["field"] == "parameters.learning_rat"
    for episodes in (0, 100_001):
        body = _error(api.post("/api/v1/training", json={**seed, "total_episodes": episodes}), 422)
        assert body["error"]["field"] == "total_episodes"
    body = _error(api.post("/api/v1/training", json={k: v for k, v in seed.items() if k != "name"}), 422)
    assert body["error"]["field"] == "name"
    _error(anon.post("/api/v1/training", json=seed), 401, "UNAUTHORIZED")
    _error(anon.get("/api/v1/models", headers={"Authorization": "Bearer not-a-key"}), 401, "UNAUTHORIZED")
    assert anon.get("/api/v1/models", headers={"Authorization": f"Bearer {TEST_KEY}"}).status_code == 200


def test_health_and_system_metrics(anon: httpx.Client, api: httpx.Client) -> None:
    health = anon.get("/api/v1/health").json()
    assert health["status"] == "healthy" and health["version"] and health["uptime"]
    assert health["components"] == {
        "api": "healthy",
        "database": "healthy",
        "kafka": "healthy",
        "kubernetes": "not_configured",
        "wandb": "not_configured",  # installed, no WANDB_API_KEY: runs are logged offline
    }
    assert health["details"]["wandb"]["mode"] == "offline"

    def system() -> dict[str, Any] | None:
        body = api.get("/api/v1/metrics", params={"interval": "1m"}).json()
        return body if body["system"]["cpu_usage"]["values"] else None

    body = wait_for(system, 30, what="worker samples")
    assert set(body) >= {"system", "kubernetes", "training"}
    cpu, memory = body["system"]["cpu_usage"], body["system"]["memory_usage"]
    assert len(cpu["values"]) == len(cpu["timestamps"]) and all(0 <= v <= 1 for v in cpu["values"] + memory["values"])
    assert body["kubernetes"]["node_count"] >= 1 and body["kubernetes"]["pod_count"] >= 1
    training = body["training"]
    assert set(training) >= {"active_tasks", "completed_tasks", "average_training_time"}
    assert training["completed_tasks"] >= 1 and training["average_training_time"]
    _error(api.get("/api/v1/metrics", params={"start_time": "yesterday"}), 422, "VALIDATION_ERROR")


def test_wandb_logs_every_episode_offline(api: httpx.Client, db: Any) -> None:
    pytest.importorskip("wandb")
    task_id = _train(api, "wandb-check", episodes=8, wandb_project="modelbus-tests", wandb_run_name="rl-e2e")
    assert _wait_task(api, task_id)["status"] == "completed"
    info = db.jobs.find_one({"_id": task_id})["result"]["wandb"]
    try:
        assert info["enabled"] is True and info["mode"] == "offline" and info["project"] == "modelbus-tests"
        assert info["run_name"] == "rl-e2e"
        run_dir = Path(info["dir"]).parent
        assert run_dir.name.startswith("offline-run-") and any(run_dir.glob("*.wandb"))
    finally:
        if info.get("dir"):
            shutil.rmtree(Path(info["dir"]).parent, ignore_errors=True)
