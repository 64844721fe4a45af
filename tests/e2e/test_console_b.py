"""The console's deployment, canary, RL and lotto pages (part B of issue 15) in a real headless Chromium (Debian's
``chromium`` driven by Playwright) against the session's stack: log in with an API key, see production, the
canary and the audit trail, the canary's verdict and its evidence growing live (server-sent events), a
read-only key's disabled buttons and 403, an emergency rollback from the page (with its confirmation) and the
page reflecting it; the RL reward curve with its baselines and the lotto statistics beside the uniform
expectation. No request leaves the server's own address.

Runs after ``test_deploy_canary`` (``tests/e2e/conftest.py``): it puts models in production and rolls back.
``MODELBUS_SCREENSHOTS=1`` writes ``docs/img/console-{deployments,canary,rl,lotto}.png``."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from bootstrap.stack import StackThread
from infra import keys, mongo
from infra.settings import Settings
from tests.browser import CHROMIUM, FLAGS
from tests.conftest import SEED_TRAIN_BODY, TEST_KEY, wait_for, wait_job

POLICY = {"min_requests": 40, "min_labelled": 20, "window_seconds": 1}
SCREENSHOTS = os.environ.get("MODELBUS_SCREENSHOTS") == "1"
IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
TIMEOUT_MS = 60_000


def _features(i: int) -> dict[str, float]:
    return {"amount": 10.0 + (i * 37) % 900, "hour": float(i % 24), "log_amount": 2.0 + (i % 7) * 0.5}


def _train(api: httpx.Client, n_estimators: int) -> str:
    body = SEED_TRAIN_BODY | {"hyperparameters": {"max_depth": 4, "learning_rate": 0.1, "n_estimators": n_estimators}}
    resp = api.post("/v1/ml/train", json=body)
    assert resp.status_code == 202, resp.text
    return str(resp.json()["job_id"])


def _ok(resp: httpx.Response) -> dict[str, Any]:
    assert resp.status_code in (200, 202), resp.text
    return resp.json()  # type: ignore[no-any-return]


def traffic(api: httpx.Client, canary_id: str, rounds: int = 2, prefix: str = "ui") -> int:
    """Predictions on 300 routing keys (sticky arms) and their true labels (= the predictions)."""
    keys_ = [f"{prefix}-{i}" for i in range(300)]
    sent = 0
    for _ in range(rounds):
        records = [{"features": _features(i), "routing_key": k} for i, k in enumerate(keys_)]
        preds = _ok(api.post("/v1/ml/predict", json={"records": records}))["predictions"]
        fb = [{"prediction_id": p["prediction_id"], "label": p["label"]} for p in preds]
        _ok(api.post("/v1/ml/feedback", json={"feedback": fb}))
        sent += len(preds)
    return sent


@pytest.fixture(scope="module")
def deployment(api: httpx.Client) -> Iterator[dict[str, Any]]:
    """Four trained models: ``first`` then ``second`` in production (so an emergency rollback has somewhere to
    go), ``new`` the canary at 10 % against ``second``, with traffic and labels until a verdict exists, ``shadowed``
    for the shadow test; an RL task training meanwhile. Whatever is still running at the end is ended."""
    task = _ok(
        api.post(
            "/api/v1/training",
            json={"name": "console-b", "model_type": "q_learning", "parameters": {}, "total_episodes": 60},
        )
    )["task_id"]
    jobs = {name: _train(api, n) for name, n in (("first", 20), ("second", 30), ("new", 40), ("shadowed", 25))}
    models = {}
    for name, job_id in jobs.items():
        final = wait_job(api, job_id)
        assert final["status"] == "completed", final
        models[name] = final["model_id"]
    state = api.get("/v1/ml/deploy/current").json()
    if state.get("canary"):  # left by another module
        _ok(api.post(f"/v1/ml/deploy/canary/{state['canary']['canary_id']}/rollback"))
    for name in ("first", "second"):
        _ok(api.post("/v1/ml/deploy/staging", json={"model_id": models[name]}))
        _ok(api.post("/v1/ml/deploy/production", json={"model_id": models[name]}))
    _ok(api.post("/v1/ml/deploy/staging", json={"model_id": models["new"]}))
    canary_id = _ok(
        api.post(
            "/v1/ml/deploy/canary/start",
            json={
                "model_id": models["new"],
                "initial_traffic_percentage": 10,
                "monitoring_duration_minutes": 30,
                "policy": POLICY,
            },
        )
    )["canary_id"]
    wait_for(
        lambda: all(
            p.get("canary_id") == canary_id
            for p in api.post(
                "/v1/ml/predict", json={"records": [{"features": _features(1), "routing_key": "ui-warm"}]}
            ).json()["predictions"]
        ),
        10,
        what="workers route the canary",
    )
    traffic(api, canary_id)

    def verdict() -> dict[str, Any] | None:
        body = api.get(f"/v1/ml/deploy/canary/{canary_id}/status").json()
        return body if body["numbers"] and body["metrics"]["new_model"]["labelled"] > 0 else None

    status = wait_for(verdict, 60, what="the canary's first verdict")
    yield {**models, "canary_id": canary_id, "status": status, "task_id": task}
    state = api.get("/v1/ml/deploy/current").json()  # leave no canary or shadow to the later modules
    if state.get("canary"):
        api.post(f"/v1/ml/deploy/canary/{state['canary']['canary_id']}/rollback")
    if state.get("shadow"):
        api.post(f"/v1/ml/deploy/shadow/{state['shadow']['shadow_id']}/stop")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser
        browser.close()


class Session:
    """A browser context logged in to the console with an API key; every request URL it made is kept."""

    def __init__(self, browser: Browser, base_url: str, api_key: str) -> None:
        self.base_url = base_url
        self.context: BrowserContext = browser.new_context(viewport={"width": 1280, "height": 900})
        self.urls: list[str] = []
        self.context.on("request", lambda r: self.urls.append(r.url))
        self.page: Page = self.context.new_page()
        self.page.set_default_timeout(TIMEOUT_MS)
        self.page.goto(f"{base_url}/ui/login?next=/ui/deployments")
        self.page.fill("input[name=api_key]", api_key)
        self.page.locator("input[name=api_key]").press("Enter")
        self.page.wait_for_url(re.compile(r".*/ui/deployments$"))

    def foreign(self) -> list[str]:
        own = urlsplit(self.base_url).netloc
        return [
            u for u in self.urls if urlsplit(u).scheme in ("http", "https", "ws", "wss") and urlsplit(u).netloc != own
        ]

    def shot(self, name: str) -> None:
        if SCREENSHOTS:
            IMG.mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(IMG / f"console-{name}.png"), full_page=True)


@pytest.fixture(scope="module")
def admin(browser: Browser, base_url: str, deployment: dict[str, Any]) -> Iterator[Session]:
    session = Session(browser, base_url, TEST_KEY)
    yield session
    session.context.close()


def test_deployments_page_shows_production_canary_and_the_audit_trail(
    admin: Session, deployment: dict[str, Any]
) -> None:
    page = admin.page
    page.goto(f"{admin.base_url}/ui/deployments")
    assert deployment["second"] in page.inner_text("#slot-production")
    canary = page.inner_text("#slot-canary")
    assert deployment["canary_id"] in canary and deployment["new"] in canary and "10 %" in canary
    assert deployment["first"] in page.inner_text("#slot-previous")
    first = page.locator("#timeline li").first
    assert first.get_attribute("data-action") == "canary_started"
    assert "canary started" in first.inner_text()
    actions = [li.get_attribute("data-action") for li in page.locator("#timeline li").all()[:5]]
    assert actions[:4] == ["canary_started", "staging", "production", "staging"], actions
    admin.shot("deployments")
    assert admin.foreign() == []


def test_canary_page_shows_the_verdict_and_follows_new_windows_live(
    admin: Session, api: httpx.Client, deployment: dict[str, Any]
) -> None:
    page = admin.page
    canary_id = deployment["canary_id"]
    page.goto(f"{admin.base_url}/ui/canaries/{canary_id}")
    verdict = page.inner_text("#verdict")
    assert verdict in ("proceed", "hold", "rollback"), verdict
    assert page.inner_text("#reason").strip() and not re.search(r"[\uac00-\ud7a3]", page.inner_text("#reason"))
    assert page.locator("#verdict-history li .badge").count() >= 1
    assert "→" in page.locator("#verdict-history li").first.inner_text()  # its reason, from the event archive
    assert page.locator("#no-verdict").count() == 0
    rows = {tr.get_attribute("data-arm"): tr for tr in page.locator("#arms tbody tr").all()}
    assert set(rows) == {"canary", "production"}
    assert int(rows["canary"].locator('[data-k="labelled"]').inner_text()) > 0
    # the charts are uPlot canvases: each compared metric and the evidence per arm
    page.wait_for_selector("#chart-accuracy canvas")
    page.wait_for_selector("#chart-evidence canvas")
    assert page.locator("#charts .b-chart").count() >= 3
    assert page.locator("#steps tbody tr").count() == 1
    windows = int(page.inner_text("#window-count"))
    assert windows >= 1
    admin.shot("canary")

    # more traffic: the analyser closes more windows, the page shows them without a reload (server-sent events)
    page.evaluate("window.__same_document = true")
    traffic(api, canary_id, rounds=1, prefix="ui-live")
    wait_for(lambda: int(page.inner_text("#window-count")) > windows, 60, what="a new window on the page")
    assert page.evaluate("window.__same_document") is True
    assert admin.foreign() == []


def test_a_read_only_key_sees_disabled_buttons_and_gets_403(
    browser: Browser, base_url: str, stack: StackThread, settings: Settings, deployment: dict[str, Any]
) -> None:
    async def create() -> str:
        client = mongo.client(settings)
        try:
            key = keys.generate_key()
            await keys.store_key(client[settings.mongodb_db], key, name="console-read-only", scopes=("read",))
            return key
        finally:
            await client.close()

    key = stack.run(create())
    session = Session(browser, base_url, key)
    try:
        page = session.page
        page.goto(f"{base_url}/ui/canaries/{deployment['canary_id']}")
        for action in ("increase", "promote", "rollback", "emergency"):
            assert page.locator(f'button[data-action="{action}"]').is_disabled(), action
        assert "deploy" in page.inner_text("#no-deploy-scope")
        status = page.evaluate(
            """async (id) => {
                const csrf = document.querySelector('meta[name=csrf-token]').content;
                const body = new URLSearchParams({csrf: csrf, action: 'emergency'});
                const init = {method: 'POST', body: body, redirect: 'manual'};
                const r = await fetch('/ui/canaries/' + id + '/action', init);
                return [r.status, await r.text()];
            }""",
            deployment["canary_id"],
        )
        assert status[0] == 403 and "FORBIDDEN" in status[1], status
        assert session.foreign() == []
    finally:
        session.context.close()


def test_emergency_rollback_from_the_canary_page(admin: Session, api: httpx.Client, deployment: dict[str, Any]) -> None:
    page = admin.page
    canary_id = deployment["canary_id"]
    page.goto(f"{admin.base_url}/ui/canaries/{canary_id}")
    dialogs: list[str] = []

    def accept(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)
    page.click('button[data-action="emergency"]')
    expect(page.locator("#status")).to_have_text("rolled_back", timeout=TIMEOUT_MS)
    page.remove_listener("dialog", accept)
    assert dialogs and "EMERGENCY ROLLBACK" in dialogs[0]
    assert page.locator('button[data-action="promote"]').is_disabled()
    current = api.get("/v1/ml/deploy/current").json()
    assert current["production"] == deployment["first"] and current["canary"] is None
    assert api.get(f"/v1/ml/deploy/canary/{canary_id}/status").json()["status"] == "rolled_back"
    page.goto(f"{admin.base_url}/ui/deployments")
    assert deployment["first"] in page.inner_text("#slot-production")
    assert "none running" in page.inner_text("#slot-canary")
    assert page.locator("#timeline li").first.get_attribute("data-action") == "emergency_rollback"
    history = api.get("/v1/ml/deploy/history", params={"limit": 1}).json()["history"][0]
    assert history["action"] == "emergency_rollback" and history["actor"]  # the console's key, as the API records
    assert admin.foreign() == []


def test_rl_task_reward_curve_with_baselines(admin: Session, api: httpx.Client, deployment: dict[str, Any]) -> None:
    page = admin.page
    task_id = deployment["task_id"]
    page.goto(f"{admin.base_url}/ui/rl")
    assert task_id in page.inner_text("#rl-tasks")
    page.goto(f"{admin.base_url}/ui/rl/{task_id}")
    page.wait_for_selector("#reward-chart canvas")
    view = page.evaluate("window.rlPage.view")
    assert view["baselines"]["greedy"] > view["baselines"]["random"]
    wait_for(lambda: api.get(f"/api/v1/training/{task_id}").json()["status"] == "completed", 180, what="RL task")
    # episodes arrive live, and the page reloads once when the task completes
    expect(page.locator("#task-status")).to_have_text("completed", timeout=TIMEOUT_MS)
    expect(page.locator("#episode-count")).to_have_text("60", timeout=TIMEOUT_MS)
    assert page.locator("#evaluation").count() == 1
    admin.shot("rl")
    assert admin.foreign() == []


def test_lotto_statistics_beside_the_uniform_expectation(admin: Session) -> None:
    page = admin.page
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{admin.base_url}/ui/lotto")
    assert "no figure on this page is a chance of winning" in page.inner_text("#lotto-note")
    for machine in (1, 2, 3):
        section = page.locator(f"#machine-{machine}")
        assert section.locator('[data-chart="frequency"]').count() == 1, section.inner_text()
        section.locator('[data-chart="frequency"] canvas').wait_for()
        assert "6/45" in section.inner_text()
        assert section.locator(f'[data-backtest="{machine}"]').count() == 1, section.inner_text()
    assert errors == []
    text = page.inner_text("main").lower()
    assert "probability of winning" not in text and "chance to win" not in text
    admin.shot("lotto")
    assert admin.foreign() == []


def test_shadow_page(admin: Session, api: httpx.Client, deployment: dict[str, Any]) -> None:
    resp = api.post(
        "/v1/ml/deploy/shadow/start",
        json={"model_id": deployment["shadowed"], "sample_percentage": 100, "policy": POLICY},
    )
    shadow_id = _ok(resp)["shadow_id"]
    try:
        keys_ = [f"ui-shadow-{i}" for i in range(120)]

        def mirrored() -> bool:
            records = [{"features": _features(i), "routing_key": k} for i, k in enumerate(keys_)]
            preds = _ok(api.post("/v1/ml/predict", json={"records": records}))["predictions"]
            _ok(
                api.post(
                    "/v1/ml/feedback",
                    json={"feedback": [{"prediction_id": p["prediction_id"], "label": p["label"]} for p in preds]},
                )
            )
            arm = api.get(f"/v1/ml/deploy/shadow/{shadow_id}/status").json()["metrics"]["new_model"]
            return arm["requests"] > 0

        wait_for(mirrored, 60, interval=1, what="mirrored requests counted")
        page = admin.page
        page.goto(f"{admin.base_url}/ui/shadows/{shadow_id}")
        expect(page.locator("#status")).to_have_text("monitoring")
        rows = {tr.get_attribute("data-arm") for tr in page.locator("#arms tbody tr").all()}
        assert rows == {"shadow", "production"}
        assert page.locator("#actions").count() == 0  # a shadow is stopped through the API, not from here
        page.wait_for_selector("#chart-evidence canvas")
        page.goto(f"{admin.base_url}/ui/deployments")
        assert shadow_id in page.inner_text("#slot-shadow")
        assert admin.foreign() == []
    finally:
        api.post(f"/v1/ml/deploy/shadow/{shadow_id}/stop")
