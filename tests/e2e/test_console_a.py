"""The web console (``/ui``, part A: login, jobs, models, events) in a real headless Chromium (Debian's
``chromium`` driven by Playwright) against the session stack: log in with a key, watch a training job reach
``completed`` on ``/ui/jobs`` live (server-sent events from Kafka, no reload), a read-only key sees but cannot
cancel, a bad key is refused with a message, the models registry and the compare chart, the events tail and the
dead letters. Every request any page makes is collected: none may leave the server's own address.

``MODELBUS_SCREENSHOTS=1`` also writes ``docs/img/console-*.png``."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
import pytest
from aiokafka import AIOKafkaProducer
from playwright.sync_api import Browser, BrowserContext, Page, Route, expect, sync_playwright

from api.console.session import issue_session
from api.security import Principal
from infra.settings import Settings
from tests.browser import CHROMIUM, FLAGS
from tests.conftest import SEED_TRAIN_BODY, TEST_KEY, wait_job

SHOTS = Path(__file__).resolve().parents[2] / "docs" / "img"
LIVE_TIMEOUT_MS = 120_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser
        browser.close()


class Session:
    """A browser context with every request recorded (and any request to another host aborted)."""

    def __init__(self, browser: Browser, base_url: str) -> None:
        self.base_url = base_url
        self.own = urlsplit(base_url).netloc
        self.requests: list[str] = []
        self.context: BrowserContext = browser.new_context(viewport={"width": 1360, "height": 860})
        self.context.on("request", lambda r: self.requests.append(r.url))
        self.context.route("**/*", self._route)
        self.page: Page = self.context.new_page()
        self.page.set_default_timeout(30_000)

    def _route(self, route: Route) -> None:
        if urlsplit(route.request.url).netloc == self.own:
            route.continue_()
        else:
            route.abort()

    def foreign(self) -> list[str]:
        return [u for u in self.requests if not u.startswith(("data:", "blob:")) and urlsplit(u).netloc != self.own]

    def login(self, key: str, next_path: str = "/ui/jobs") -> None:
        self.page.goto(f"{self.base_url}{next_path}")
        self.page.wait_for_url("**/ui/login**")
        self.page.fill('input[name="api_key"]', key)
        self.page.click("#login-key button[type=submit]")
        self.page.wait_for_url(lambda url: url.endswith(next_path))

    def shot(self, name: str) -> None:
        if os.environ.get("MODELBUS_SCREENSHOTS") == "1":
            SHOTS.mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(SHOTS / f"console-{name}.png"), full_page=False)

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def session(browser: Browser, base_url: str) -> Iterator[Session]:
    s = Session(browser, base_url)
    yield s
    foreign = s.foreign()
    s.close()
    assert s.requests, "the page made no request at all"
    assert foreign == [], f"requests left the server's address: {foreign}"


def _key(api: httpx.Client, scopes: list[str], name: str) -> str:
    resp = api.post("/auth/keys", json={"name": name, "tier": "enterprise", "scopes": scopes})
    assert resp.status_code == 201, resp.text
    return str(resp.json()["key"])


def _live(page: Page) -> None:
    expect(page.locator("#live-state")).to_have_class("live-dot on", timeout=30_000)


def test_login_form_and_bad_key(session: Session) -> None:
    page = session.page
    page.goto(f"{session.base_url}/ui/jobs")
    page.wait_for_url("**/ui/login?next=/ui/jobs")
    for field in ("api_key", "username", "password"):
        expect(page.locator(f'input[name="{field}"]')).to_be_visible()
    session.shot("login")
    page.fill('input[name="api_key"]', "mb_not-a-real-key")
    page.click("#login-key button[type=submit]")
    expect(page.locator("#login-error")).to_contain_text("not valid")
    assert "/ui/login" in page.url
    page.fill('input[name="username"]', "nobody@example.com")
    page.fill('input[name="password"]', "wrong-password")
    page.click("#login-user button[type=submit]")
    expect(page.locator("#login-error")).to_contain_text("Wrong username or password")
    # without a session the pages redirect and the stream answers 401
    resp = page.request.get(
        f"{session.base_url}/ui/stream/train.events", headers={"Accept": "text/event-stream"}, max_redirects=0
    )
    assert resp.status == 401


def test_session_cookie_is_httponly_strict(session: Session, base_url: str) -> None:
    session.login(TEST_KEY)
    cookies = {c["name"]: c for c in session.context.cookies(base_url)}
    cookie = cookies["mb_console"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert session.page.evaluate("document.cookie").find("mb_console") == -1  # not readable by scripts
    # the console's JSON calls need the CSRF token for anything but reads
    status = session.page.evaluate(
        """async () => (await fetch('/v1/ml/models/compare', {method: 'POST', headers: {'Content-Type':
        'application/json'}, body: JSON.stringify({model_ids: ['a', 'b']})})).status"""
    )
    assert status == 403
    reads = session.page.evaluate("async () => (await fetch('/v1/ml/train/history?limit=1')).status")
    assert reads == 200
    # log out: the cookie is gone and pages redirect again
    session.page.click("header form button[type=submit]")
    session.page.wait_for_url("**/ui/login")
    assert "mb_console" not in {c["name"] for c in session.context.cookies(base_url)}


def test_job_reaches_completed_live(session: Session, api: httpx.Client) -> None:
    page = session.page
    session.login(TEST_KEY)
    _live(page)
    page.evaluate("window.__noReload = true")
    job_id = api.post("/v1/ml/train", json=SEED_TRAIN_BODY).json()["job_id"]
    row = page.locator(f'#jobs tr[data-job-id="{job_id}"]')
    expect(row).to_be_visible(timeout=30_000)  # added from train.commands, not by reloading
    expect(row.locator('[data-field="status"]')).to_have_text("completed", timeout=LIVE_TIMEOUT_MS)
    expect(row.locator('[data-field="progress"]')).to_have_text("100.0%")
    assert page.evaluate("window.__noReload") is True
    model_id = wait_job(api, job_id)["model_id"]
    expect(row.locator('[data-field="model"]')).to_have_text(model_id)
    session.shot("jobs")
    # filters
    page.goto(f"{session.base_url}/ui/jobs?domain=tabular&status=completed")
    expect(page.locator(f'#jobs tr[data-job-id="{job_id}"]')).to_be_visible()
    page.goto(f"{session.base_url}/ui/jobs?domain=rl")
    expect(page.locator(f'#jobs tr[data-job-id="{job_id}"]')).to_have_count(0)
    # the job's page: metrics beside the majority-class baseline
    page.goto(f"{session.base_url}/ui/jobs/{job_id}")
    metrics = page.locator("#metrics")
    expect(metrics).to_contain_text("f1_score")
    baseline = metrics.locator("tr", has_text="roc_auc").locator("td").nth(2)
    expect(baseline).to_have_text("0.5")
    expect(page.locator("#cancel")).to_be_disabled()  # completed
    session.shot("job")


def test_job_page_follows_progress_and_cancel(session: Session, api: httpx.Client) -> None:
    page = session.page
    session.login(TEST_KEY)
    body = SEED_TRAIN_BODY | {"hyperparameters": {"max_depth": 7, "learning_rate": 0.05, "n_estimators": 2000}}
    job_id = api.post("/v1/ml/train", json=body).json()["job_id"]
    page.goto(f"{session.base_url}/ui/jobs/{job_id}")
    _live(page)
    page.once("dialog", lambda d: d.accept())
    expect(page.locator("#cancel")).to_be_enabled()
    expect(page.locator("#progress-chart canvas").first).to_be_attached()  # uPlot draws the progress chart
    page.click("#cancel")
    expect(page.locator("#job-status")).to_have_text("cancelled", timeout=LIVE_TIMEOUT_MS)
    assert wait_job(api, job_id)["status"] == "cancelled"


def test_read_only_key_sees_but_cannot_cancel(browser: Browser, base_url: str, api: httpx.Client) -> None:
    key = _key(api, ["read"], "console read-only")
    body = SEED_TRAIN_BODY | {"hyperparameters": {"max_depth": 7, "learning_rate": 0.05, "n_estimators": 400}}
    job_id = api.post("/v1/ml/train", json=body).json()["job_id"]
    s = Session(browser, base_url)
    try:
        s.login(key, f"/ui/jobs/{job_id}")
        page = s.page
        expect(page.locator("header .who")).to_contain_text("read-only")
        expect(page.locator("#cancel")).to_be_disabled()
        expect(page.locator("#cancel")).to_have_attribute("title", "needs the train scope")
        # the server refuses too, with or without the CSRF token
        result = page.evaluate(
            """async (path) => {
                const r = await MB.api('POST', path);
                return [r.status, r.data.error.code];
            }""",
            f"/v1/ml/train/{job_id}/cancel",
        )
        assert result == [403, "FORBIDDEN"]
        page.goto(f"{base_url}/ui/jobs")
        expect(page.locator(f'#jobs tr[data-job-id="{job_id}"]')).to_be_visible()
        assert s.foreign() == []
    finally:
        s.close()
    wait_job(api, job_id)


def test_models_registry_and_compare(session: Session, api: httpx.Client) -> None:
    page = session.page
    other = SEED_TRAIN_BODY | {"hyperparameters": {"max_depth": 3, "learning_rate": 0.1, "n_estimators": 30}}
    session.login(TEST_KEY, "/ui/models")
    _live(page)
    jobs = [api.post("/v1/ml/train", json=b).json()["job_id"] for b in (SEED_TRAIN_BODY, other)]
    a, b = (wait_job(api, j)["model_id"] for j in jobs)  # registered while the page is open: rows added live
    expect(page.locator(f'#models tr[data-model-id="{a}"]')).to_be_visible()
    expect(page.locator(f'#models tr[data-model-id="{b}"]')).to_contain_text(jobs[1])
    session.shot("models")
    page.goto(f"{session.base_url}/ui/models/no-such-model")
    expect(page.locator("main")).to_contain_text("no model 'no-such-model'")
    page.go_back()
    page.check(f'#models tr[data-model-id="{a}"] input.pick')
    page.check(f'#models tr[data-model-id="{b}"] input.pick')
    page.click("#compare-go")
    page.wait_for_url("**/ui/models/compare?a=*")
    verdict = page.locator("#compare-verdict")
    expect(verdict).not_to_contain_text("Computing", timeout=60_000)
    expect(verdict).to_contain_text("leader" if "No conclusive" in verdict.inner_text() else "Winner")
    expect(page.locator("#compare-chart canvas").first).to_be_attached()  # drawn by uPlot
    expect(page.locator("#side-by-side")).to_contain_text("f1_score")
    session.shot("compare")
    # the model's page: lineage and versions
    page.goto(f"{session.base_url}/ui/models/{a}")
    lineage = page.locator("#lineage")
    expect(lineage).to_contain_text(jobs[0])
    expect(lineage).to_contain_text("2025-10-01")
    expect(lineage).to_contain_text("max_depth")
    expect(page.locator("#history")).to_contain_text("trained")


def _produce(settings: Settings, topic: str, value: bytes, key: bytes) -> None:
    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait(settings.topic(topic), value, key=key)
        finally:
            await producer.stop()

    with ThreadPoolExecutor(1) as pool:  # Playwright's sync API runs a loop in this thread
        pool.submit(asyncio.run, send()).result()


def test_events_tail_and_dead_letters(session: Session, api: httpx.Client, settings: Settings) -> None:
    page = session.page
    session.login(TEST_KEY, "/ui/events")
    expect(page.locator("#topic")).to_have_value("train.events")
    _live(page)
    job_id = api.post("/v1/ml/train", json=SEED_TRAIN_BODY).json()["job_id"]
    table = page.locator("#events")
    expect(table.locator("tr", has_text="modelbus.train.job.completed").filter(has_text=job_id)).to_have_count(
        1, timeout=LIVE_TIMEOUT_MS
    )
    session.shot("events")
    # filtered by type and subject, server-side
    page.goto(f"{session.base_url}/ui/events?topic=train.events&type=modelbus.train.job.completed&subject={job_id}")
    expect(table.locator("tbody > tr")).to_have_count(1)
    # the dead-letter topic: a poison message shows with its error headers
    page.goto(f"{session.base_url}/ui/events?topic=dlq")
    _live(page)
    _produce(settings, "train.commands", b"\x00console poison", b"console-poison-1")
    # (each consumer group of train.commands dead-letters its own copy)
    row = table.locator("tbody > tr", has_text="console-poison-1").first
    expect(row).to_be_visible(timeout=60_000)
    expect(row).to_contain_text("x-original-topic")
    expect(row).to_contain_text(settings.topic("train.commands"))
    page.goto(f"{session.base_url}/ui/events?topic=dlq")  # and after a reload, from the topic itself
    expect(table.locator("tbody > tr", has_text="console-poison-1").first).to_be_visible()
    session.shot("dead-letters")


def test_console_assets_ship_offline_with_their_licence(anon: httpx.Client) -> None:
    for path in ("/ui/static/vendor/uplot/LICENSE", "/ui/static/vendor/uplot/uPlot.iife.min.js"):
        assert anon.get(path).status_code == 200, path
    assert "permission" in anon.get("/ui/static/vendor/uplot/LICENSE").text.lower()
    resp = anon.get("/ui/jobs", follow_redirects=False)
    assert resp.status_code == 303 and resp.headers["location"].startswith("/ui/login")
    page = anon.get("/ui/login")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "http://" not in page.text.replace(str(anon.base_url), "") and "https://" not in page.text


def test_session_renews_and_revoked_key_is_out(api: httpx.Client, base_url: str, db: Any) -> None:
    key = _key(api, ["read"], "console renewal")
    secret = db["secrets"].find_one({"_id": "jwt"})["value"]
    doc = db["api_keys"].find_one({"prefix": key[:7], "name": "console renewal"})
    principal = Principal(doc["_id"], doc["name"], doc["tier"], tuple(doc["scopes"]))
    with httpx.Client(base_url=base_url, timeout=30) as c:
        token = issue_session(secret, principal, "key", seconds=120, csrf="t0k3n")
        c.cookies.set("mb_console", token, domain=urlsplit(base_url).hostname or "")
        page = c.get("/ui/jobs")
        assert page.status_code == 200
        renewed = jwt.decode(page.cookies["mb_console"], secret, algorithms=["HS256"])
        assert renewed["exp"] - time.time() > 25 * 60 and renewed["csrf"] == "t0k3n"  # same token for open pages
        assert 'content="t0k3n"' in page.text
        fresh = c.get("/ui/events?last=0")
        assert "mb_console" not in fresh.cookies  # plenty left: not renewed on every response
        api.delete(f"/auth/keys/{doc['_id']}")  # clears this process's key cache: out at once
        out = c.get("/ui/jobs", follow_redirects=False)
        assert out.status_code == 303 and out.headers["location"].startswith("/ui/login")
        assert c.get("/v1/ml/train/history").status_code == 401


def test_console_login_with_user_and_csrf(anon: httpx.Client, api: httpx.Client, base_url: str) -> None:
    api.post("/auth/users", json={"username": "console-user", "password": "console-pass-1", "scopes": ["read"]})
    with httpx.Client(base_url=base_url, timeout=30) as c:
        form = c.get("/ui/login")
        token = form.cookies["mb_login_csrf"]
        bad = c.post("/ui/login", data={"username": "console-user", "password": "console-pass-1", "csrf": "x"})
        assert bad.status_code == 403
        ok = c.post("/ui/login", data={"username": "console-user", "password": "console-pass-1", "csrf": token})
        assert ok.status_code == 303 and "mb_console" in ok.cookies
        page = c.get("/ui/jobs")
        assert page.status_code == 200 and "console-user" in page.text
        # the API accepts the cookie for reads; a write without the CSRF header is refused
        assert c.get("/v1/ml/train/history").status_code == 200
        refused: Any = c.post("/v1/ml/train", json=SEED_TRAIN_BODY)
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "CSRF_FAILED"


def test_rl_and_lotto_jobs_and_models(session: Session, api: httpx.Client) -> None:
    """The jobs and models pages cover the three families (they share the jobs and models projections)."""
    body = {"name": "console-rl", "model_type": "dqn", "parameters": {}, "total_episodes": 5}
    rl = api.post("/api/v1/training", json=body)
    assert rl.status_code == 202, rl.text
    lotto = api.post(
        "/api/models/train",
        json={"machine_type": "1호기", "model_type": "enhanced_predictor"},  # 2호기's registry is test_lotto_api's
    )
    assert lotto.status_code == 202, lotto.text
    rl_id, lotto_id = rl.json()["task_id"], lotto.json()["job_id"]
    page = session.page
    session.login(TEST_KEY, "/ui/jobs?domain=rl")
    row = page.locator(f'#jobs tr[data-job-id="{rl_id}"]')
    expect(row.locator('[data-field="status"]')).to_have_text("completed", timeout=LIVE_TIMEOUT_MS)
    expect(page.locator(f'#jobs tr[data-job-id="{lotto_id}"]')).to_have_count(0)
    page.goto(f"{session.base_url}/ui/jobs/{rl_id}")
    expect(page.locator("#metrics")).to_contain_text("normalised_score")
    expect(page.locator("#job")).to_contain_text("rl")
    page.goto(f"{session.base_url}/ui/jobs?domain=lotto")
    row = page.locator(f'#jobs tr[data-job-id="{lotto_id}"]')
    expect(row.locator('[data-field="status"]')).to_have_text("completed", timeout=LIVE_TIMEOUT_MS)
    model_id = row.locator('[data-field="model"] a').inner_text()
    page.goto(f"{session.base_url}/ui/jobs/{lotto_id}")
    expect(page.locator("#metrics tbody tr").first).not_to_have_class("empty")
    page.goto(f"{session.base_url}/ui/models/{model_id}")
    expect(page.locator("#lineage")).to_contain_text(lotto_id)
    page.goto(f"{session.base_url}/ui/models?domain=rl")
    expect(page.locator("#models tbody tr[data-model-id]").first).to_contain_text("rl")
