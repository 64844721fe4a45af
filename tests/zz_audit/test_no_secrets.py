"""Runs last: after the whole suite, no API key, token or password appears in any log line
written during the session, nor in any event on any modelbus topic (the archive holds them all)."""

from __future__ import annotations

from typing import Any

from bootstrap.stack import DEMO_KEYS
from infra.users import DEMO_USER
from tests.conftest import SEED_TRAIN_BODY, TEST_KEY, captured_log_lines, wait_for, wait_job


def test_no_secret_in_logs_or_topics(archive: Any, anon: Any, api: Any) -> None:
    job_id = api.post("/v1/ml/train", json=SEED_TRAIN_BODY).json()["job_id"]  # at least one job's events
    wait_job(api, job_id)
    wait_for(lambda: archive.count_documents({"subject": job_id}) >= 3, what="archived job events")
    tokens = anon.post("/auth/login", json={"username": DEMO_USER[0], "password": DEMO_USER[1]}).json()
    secrets = [TEST_KEY, DEMO_USER[1], tokens["access_token"][:40], *(k for k in DEMO_KEYS if len(k) > 8)]
    lines = captured_log_lines()
    assert len(lines) > 20  # the session really logged
    for line in lines:
        for secret in secrets:
            assert secret not in line, line[:300]
    assert archive.count_documents({}) >= 3
    for doc in archive.find({}, {"raw": 1}):
        for secret in (*secrets, "eyJ"):  # no key, password or JWT in any event
            assert secret not in doc["raw"], doc["raw"][:300]
