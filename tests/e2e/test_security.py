"""Security on every route of every family: credentials × scopes table, JWT login/refresh,
tier limits shared by two API processes, the concurrency cap, headers."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest

from infra.embedded import free_port
from infra.settings import Settings
from tests.conftest import TEST_KEY, wait_for

OPEN = {"/api/v1/health", "/api/monitoring/health", "/auth/login", "/auth/refresh"}


def _key(api: httpx.Client, tier: str, scopes: list[str]) -> str:
    resp = api.post("/auth/keys", json={"name": f"test-{uuid.uuid4().hex[:6]}", "tier": tier, "scopes": scopes})
    assert resp.status_code == 201, resp.text
    return str(resp.json()["key"])


def _routes(anon: httpx.Client) -> list[tuple[str, str]]:
    spec = anon.get("/openapi.json").json()
    out = []
    for path, ops in spec["paths"].items():
        for method in ops:
            if method.upper() in ("GET", "POST", "PUT", "PATCH", "DELETE"):
                out.append((method.upper(), re.sub(r"\{[^}]+\}", "x1", path)))
    return out


@pytest.fixture(scope="module")
def jwt_secret(stack: Any) -> str:
    return str(stack.run(_secret(stack)))


async def _secret(stack: Any) -> str:
    from infra import mongo
    from infra.users import jwt_secret

    client = mongo.client(stack.stack.settings)
    try:
        return await jwt_secret(client[stack.stack.settings.mongodb_db], stack.stack.settings.jwt_secret)
    finally:
        await client.close()


def test_every_route_times_every_credential(api: httpx.Client, anon: httpx.Client, jwt_secret: str) -> None:
    read_only = _key(api, "enterprise", ["read"])
    predict_only = _key(api, "enterprise", ["predict"])
    now = int(time.time())
    expired = jwt.encode({"sub": "user@example.com", "type": "access", "exp": now - 10, "scopes": ["read"]},
                         jwt_secret, algorithm="HS256")
    tokens = anon.post("/auth/login", json={"username": "user@example.com", "password": "secure_password"}).json()
    tampered = tokens["access_token"][:-4] + ("AAAA" if not tokens["access_token"].endswith("AAAA") else "BBBB")
    routes = _routes(anon)
    assert len(routes) >= 15
    checked = 0
    for method, path in routes:
        if path in OPEN or path.startswith(("/metrics", "/docs", "/redoc", "/openapi", "/asyncapi", "/schema")):
            continue
        checked += 1
        cases: list[tuple[dict[str, str], int, str]] = [
            ({}, 401, "UNAUTHORIZED"),
            ({"X-API-Key": "mb_not-a-key"}, 401, "UNAUTHORIZED"),
            ({"Authorization": f"Bearer {expired}"}, 401, "TOKEN_EXPIRED"),
            ({"Authorization": f"Bearer {tampered}"}, 401, "INVALID_TOKEN"),
            ({"Authorization": f"Bearer {tokens['refresh_token']}"}, 401, "INVALID_TOKEN"),
        ]
        needs_read = method == "GET" or path == "/v1/ml/models/compare"
        wrong_scope_key = predict_only if needs_read else read_only
        if path.startswith("/auth/"):
            wrong_scope_key = read_only
        cases.append(({"X-API-Key": wrong_scope_key}, 403, "FORBIDDEN"))
        for headers, status, code in cases:
            resp = anon.request(method, path, headers=headers, json={} if method != "GET" else None)
            assert resp.status_code == status, (method, path, headers, resp.text)
            body = resp.json()
            assert body["status"] == "error" and body["error"]["code"] == code, (method, path, body)
            assert body["request_id"] == resp.headers["X-Request-ID"]
        valid = anon.request(method, path, headers={"X-API-Key": TEST_KEY}, json={} if method != "GET" else None)
        assert valid.status_code not in (401, 403), (method, path, valid.text)
        assert "X-RateLimit-Limit" in valid.headers or valid.status_code == 429
    assert checked >= 12


def test_login_refresh_and_bearer(anon: httpx.Client) -> None:
    resp = anon.post("/auth/login", json={"username": "user@example.com", "password": "secure_password"})
    assert resp.status_code == 200
    pair = resp.json()
    assert set(pair) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert pair["token_type"] == "bearer" and pair["expires_in"] == 3600
    assert anon.get("/v1/ml/train/history", headers={"Authorization": f"Bearer {pair['access_token']}"}).status_code \
        == 200
    fresh = anon.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert fresh.status_code == 200 and fresh.json()["access_token"]
    assert anon.post("/auth/refresh", json={"refresh_token": pair["access_token"]}).status_code == 401
    bad = anon.post("/auth/login", json={"username": "user@example.com", "password": "wrong"})
    assert bad.status_code == 401 and bad.json()["error"]["code"] == "INVALID_CREDENTIALS"


@pytest.fixture(scope="module")
def second_api(settings: Settings) -> Iterator[str]:
    """A second API process (uvicorn) on the same database and broker."""
    port = free_port()
    env = {**os.environ, "MODELBUS_KAFKA_BOOTSTRAP": str(settings.kafka_bootstrap),
           "MODELBUS_MONGODB_URL": str(settings.mongodb_url), "MODELBUS_MONGODB_DB": settings.mongodb_db,
           "MODELBUS_TOPIC_PREFIX": settings.topic_prefix}
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "--factory", "bootstrap.wiring:app_from_env", "--port",
                             str(port), "--log-level", "warning"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _up(url), timeout=60, what="second API process")
        yield url
    finally:
        proc.terminate()
        proc.wait(20)


def _up(url: str) -> bool:
    try:
        return httpx.get(f"{url}/api/v1/health", timeout=5).status_code in (200, 503)
    except httpx.HTTPError:
        return False


def test_free_tier_limit_is_exact_across_two_api_processes(api: httpx.Client, base_url: str, second_api: str) -> None:
    # start at the beginning of a minute window so the 11 requests share one window
    now = datetime.now(UTC)
    if now.second > 45:
        time.sleep(61 - now.second)
    key = _key(api, "free", ["read"])
    statuses = []
    for i in range(11):
        url = base_url if i % 2 == 0 else second_api
        resp = httpx.get(f"{url}/v1/ml/train/history", headers={"X-API-Key": key}, timeout=30)
        statuses.append(resp.status_code)
        if resp.status_code == 200:
            assert resp.headers["X-RateLimit-Limit"] == "10"
            assert resp.headers["X-RateLimit-Remaining"] == str(10 - (i + 1))
            assert int(resp.headers["X-RateLimit-Reset"]) > time.time()
    assert statuses == [200] * 10 + [429], statuses
    body = resp.json()
    assert body["error"]["code"] == "RATE_LIMIT_EXCEEDED" and body["error"]["retry_after_seconds"] >= 1
    assert int(resp.headers["Retry-After"]) == body["error"]["retry_after_seconds"] <= 60


def test_concurrency_cap_and_daily_quota(api: httpx.Client, anon: httpx.Client, settings: Settings,
                                         db: Any) -> None:
    key = _key(api, "free", ["read"])
    key_id = db.api_keys.find_one({"prefix": key[:7], "revoked": False}, sort=[("created_at", -1)])["_id"]
    # two requests of this caller already in flight (on any API process) fill the free tier's cap of 2
    today = datetime.now(UTC).strftime("%Y%m%d")
    soon = datetime.now(UTC) + timedelta(minutes=5)
    busy = [{"id": f"other-{i}", "exp": soon} for i in range(2)]
    db.rate_limits.update_one({"_id": f"{key_id}:{today}"}, {"$set": {"inflight": busy}}, upsert=True)
    resp = anon.get("/v1/ml/train/history", headers={"X-API-Key": key})
    assert resp.status_code == 429 and "concurrent" in resp.json()["error"]["message"]
    db.rate_limits.update_one({"_id": f"{key_id}:{today}"}, {"$set": {"inflight": []}})
    assert anon.get("/v1/ml/train/history", headers={"X-API-Key": key}).status_code == 200
    wait_for(lambda: db.rate_limits.find_one({"_id": f"{key_id}:{today}"})["inflight"] == [], timeout=5,
             what="slot released after the response")
    # a slot left by a crashed process expires by itself
    stale = [{"id": "crashed", "exp": datetime.now(UTC) - timedelta(seconds=1)}] * 2
    db.rate_limits.update_one({"_id": f"{key_id}:{today}"}, {"$set": {"inflight": stale}})
    assert anon.get("/v1/ml/train/history", headers={"X-API-Key": key}).status_code == 200
    # the daily quota: a caller that used its 1,000 requests today is refused until midnight UTC
    db.rate_limits.update_one({"_id": f"{key_id}:{today}"}, {"$set": {"day": 1000}})
    resp = anon.get("/v1/ml/train/history", headers={"X-API-Key": key})
    assert resp.status_code == 429 and "per day" in resp.json()["error"]["message"]


def test_concurrency_cap_holds_with_parallel_slow_requests(api: httpx.Client, anon: httpx.Client) -> None:
    """Five parallel requests of one free-tier caller (cap: 2 in flight) to a route that computes a while."""
    key = _key(api, "free", ["read"])
    headers = {"X-API-Key": key, "Cache-Control": "no-cache"}  # computed fresh, with its backtest: slow

    def one(_: int) -> httpx.Response:
        return anon.get("/api/statistics/machine-analysis/2", params={"rounds": 300}, headers=headers)

    with ThreadPoolExecutor(5) as pool:
        responses = list(pool.map(one, range(5)))
    statuses = [r.status_code for r in responses]
    assert statuses.count(200) >= 2 and 429 in statuses and set(statuses) <= {200, 429}, statuses
    for resp in responses:
        if resp.status_code == 429:
            assert "2 concurrent" in resp.json()["error"]["message"] and resp.headers["Retry-After"] == "1"
    # the slots come back after the responses (released in the background): the caller is served again
    time.sleep(0.5)
    assert one(0).status_code == 200


def test_enterprise_limits_are_leased_in_blocks_and_never_exceeded(api: httpx.Client, anon: httpx.Client,
                                                                   db: Any) -> None:
    now = datetime.now(UTC)
    if now.second > 40:  # keep the whole check inside one minute window
        time.sleep(61 - now.second)
    key = _key(api, "enterprise", ["read"])
    key_id = db.api_keys.find_one({"prefix": key[:7], "revoked": False}, sort=[("created_at", -1)])["_id"]
    doc_id = f"{key_id}:{datetime.now(UTC):%Y%m%d}"
    headers = {"X-API-Key": key}
    for i in range(25):
        resp = anon.get("/v1/ml/train/history", headers=headers)
        assert resp.status_code == 200, resp.text
        assert resp.headers["X-RateLimit-Limit"] == "1000"
        assert int(resp.headers["X-RateLimit-Remaining"]) == 1000 - (i + 1)
    # 25 requests took two leases of 20 units: the shared counter went to MongoDB twice, not 25 times
    doc = db.rate_limits.find_one({"_id": doc_id})
    assert sum(doc["m"].values()) == 40 and doc["day"] == 40, doc
    # the leased in-flight slots (a block of 10) go back to the shared list once idle
    wait_for(lambda: db.rate_limits.find_one({"_id": doc_id})["inflight"] == [], timeout=5, what="idle slots back")
    # the concurrency cap holds against other API processes: 100 live slots held elsewhere → refused
    soon = datetime.now(UTC) + timedelta(minutes=5)
    elsewhere = [{"id": f"p{i}", "exp": soon} for i in range(100)]
    db.rate_limits.update_one({"_id": doc_id}, {"$set": {"inflight": elsewhere}})
    resp = anon.get("/v1/ml/train/history", headers=headers)
    assert resp.status_code == 429 and "100 concurrent" in resp.json()["error"]["message"], resp.text
    assert len(db.rate_limits.find_one({"_id": doc_id})["inflight"]) == 100  # the refused lease was handed back
    db.rate_limits.update_one({"_id": doc_id}, {"$set": {"inflight": []}})
    # the minute limit holds too: other processes used the rest of the minute; the 15 units this process
    # still holds are all it may admit
    minute = datetime.now(UTC).hour * 60 + datetime.now(UTC).minute
    db.rate_limits.update_one({"_id": doc_id}, {"$set": {f"m.{minute}": 1000}})
    statuses = [anon.get("/v1/ml/train/history", headers=headers).status_code for _ in range(20)]
    assert statuses == [200] * 15 + [429] * 5, statuses
    # one lease found the minute full; the refusals after it did not touch the shared counter again
    assert db.rate_limits.find_one({"_id": doc_id})["m"][str(minute)] == 1020


def test_security_headers_and_no_secrets_in_errors(anon: httpx.Client) -> None:
    resp = anon.get("/v1/ml/train/history", params={"api_key": "mb_secret-value-123"})
    assert resp.status_code == 401
    assert "mb_secret-value-123" not in resp.text
    for name in ("X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy"):
        assert name in resp.headers


def test_etag_round_trip_and_cache_control(api: httpx.Client) -> None:
    first = api.get("/v1/ml/train/history", params={"limit": 3})
    assert first.status_code == 200 and first.headers["ETag"].startswith('"')
    assert first.headers["Cache-Control"] == "private, no-cache"
    again = api.get("/v1/ml/train/history", params={"limit": 3}, headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and again.content == b""
    other = api.get("/v1/ml/train/history", params={"limit": 3}, headers={"If-None-Match": '"stale"'})
    assert other.status_code == 200 and other.json() == first.json()
    models = api.get("/v1/ml/models")
    assert models.headers["Cache-Control"] == "private, max-age=30"
