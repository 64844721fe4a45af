"""``/docs`` (Swagger UI) and ``/redoc`` render in a real headless Chromium (Debian's ``chromium``, driven by
Playwright) with every request to another host refused, as on a machine without internet access: their
assets are served by the API itself (``api/static/vendor``, with their licences)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Route, sync_playwright

from tests.browser import CHROMIUM, FLAGS


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser
        browser.close()


def _offline_page(browser: Browser, base_url: str) -> tuple[Any, list[str]]:
    """A page whose requests to any host but the API's are aborted (and listed)."""
    own = urlsplit(base_url).netloc
    foreign: list[str] = []
    page = browser.new_page()

    def route(r: Route) -> None:
        if urlsplit(r.request.url).netloc == own:
            r.continue_()
        else:
            foreign.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    return page, foreign


def test_swagger_ui_renders_offline(browser: Browser, base_url: str) -> None:
    page, foreign = _offline_page(browser, base_url)
    page.goto(f"{base_url}/docs")
    page.wait_for_selector(".swagger-ui .info .title", timeout=30_000)
    assert "modelbus" in page.inner_text(".swagger-ui .info .title").lower()
    page.wait_for_selector(".opblock-tag", timeout=30_000)  # the operations, grouped by tag
    assert page.locator(".opblock").count() > 40
    assert foreign == []
    page.close()


def test_redoc_renders_offline(browser: Browser, base_url: str) -> None:
    page, foreign = _offline_page(browser, base_url)
    page.goto(f"{base_url}/redoc")
    page.wait_for_selector("h1", timeout=30_000)
    assert "modelbus" in page.inner_text("h1").lower()
    page.wait_for_selector("[data-section-id]", timeout=30_000)  # the operations' sections
    assert foreign == []
    page.close()


def test_vendored_assets_ship_with_their_licences(anon: httpx.Client) -> None:
    for path in ("/static/vendor/swagger-ui/LICENSE", "/static/vendor/redoc/LICENSE"):
        resp = anon.get(path)
        assert resp.status_code == 200 and "permission" in resp.text.lower(), path
    js = anon.get("/static/vendor/swagger-ui/swagger-ui-bundle.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
