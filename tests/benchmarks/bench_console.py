"""Console pages in headless Chromium: time to first render of ``/ui/jobs`` with 1,000 jobs and of a canary page
with 1,000 analysis windows, median of 5; bytes of JavaScript and CSS per page.

Run: ``python -m tests.benchmarks.bench_console [out_path]`` (default ``bench-results/console.json``).

A stack of its own (``StackThread``: embedded Tansu and SecantusDB, the API and the consumers in this process's
stack thread, no demo data) gets synthetic projection documents inserted straight into MongoDB: 1,000 completed
tabular jobs, and one canary with 1,000 ``canary_windows`` documents (accuracy, error rate and latency compared
in each, as the analyser writes them). Each measured load is a navigation in a *fresh* browser context that
holds only the session cookie (a first visit: nothing cached), then, in the same context, a second navigation
(``warm``: scripts and styles from the cache, revalidated by ETag). Figures per page:

* ``first_contentful_paint_ms``: ``performance.getEntriesByType('paint')`` ``first-contentful-paint``, from
  navigation start;
* ``load_event_ms``: the navigation entry's ``loadEventEnd`` (HTML, scripts, styles and the page's own scripts,
  charts included, done);
* ``charts_drawn_ms`` (pages with charts): navigation start to the last uPlot canvas present, measured by a
  ``requestAnimationFrame`` after ``load``;
* ``html_bytes``, ``js_bytes``, ``css_bytes``: decoded sizes from the resource timing entries (and the
  transferred sizes: the server does not compress);
* ``server_ms``: request start to response end of the HTML (the handler's MongoDB reads and the template); the
  canary page's first view reads all its windows, later views only the windows closed since (the series are
  kept in memory per canary, ``api.canary.console.window_series``), so its first run is listed apart in ``all``.

The machine is shared with other work: ``load_average`` before and after is recorded.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, sync_playwright
from pymongo import MongoClient

from bootstrap.stack import StackThread
from infra import mongo
from infra.settings import Settings
from tests.browser import CHROMIUM, FLAGS
from tests.conftest import TEST_KEY

DEFAULT_OUT = Path("bench-results/console.json")
RUNS = 5
JOBS = 1000
WINDOWS = 1000
CANARY_ID = "canary_bench0001"

MEASURE = """() => new Promise((resolve) => {
  let fcp = null;
  const seen = new Promise((ok) => {
    // the paint entry can be queued after the load event in headless Chromium: wait for it (at most 5 s)
    new PerformanceObserver((list) => {
      const e = list.getEntries().find((p) => p.name === 'first-contentful-paint');
      if (e) { fcp = e; ok(); }
    }).observe({type: 'paint', buffered: true});
    setTimeout(ok, 5000);
  });
  const done = () => requestAnimationFrame(() => setTimeout(async () => {
    const charts = document.querySelectorAll('canvas').length ? performance.now() : null;
    await seen;
    const nav = performance.getEntriesByType('navigation')[0];
    const res = performance.getEntriesByType('resource');
    const sum = (pred, key) => res.filter(pred).reduce((a, r) => a + (r[key] || 0), 0);
    const isJs = (r) => r.initiatorType === 'script' || /\\.js(\\?|$)/.test(r.name);
    const isCss = (r) => /\\.css(\\?|$)/.test(r.name);
    resolve({
      fcp: fcp ? fcp.startTime : null,
      load: nav.loadEventEnd,
      charts: charts,
      canvases: document.querySelectorAll('canvas').length,
      server: nav.responseEnd - nav.requestStart,
      html: nav.decodedBodySize,
      js: sum(isJs, 'decodedBodySize'), js_transfer: sum(isJs, 'transferSize'),
      css: sum(isCss, 'decodedBodySize'), css_transfer: sum(isCss, 'transferSize'),
      scripts: res.filter(isJs).map((r) => r.name.replace(location.origin, '')),
      styles: res.filter(isCss).map((r) => r.name.replace(location.origin, '')),
      rows: document.querySelectorAll('tbody tr').length,
    });
  }, 0));
  if (document.readyState === 'complete') done(); else addEventListener('load', done, {once: true});
})"""


def settings_for(data_dir: Path) -> Settings:
    return Settings(
        _env_file=None,
        data_dir=data_dir,
        port=0,
        api_key=TEST_KEY,
        train_processes=1,
        worker_layout="inline",
        rate_limits_enabled=False,
        mongodb_db="modelbus_bench_console",
        topic_prefix="benchconsole.",
    )


def _jobs(now: datetime) -> list[dict[str, Any]]:
    out = []
    for i in range(JOBS):
        t = now - timedelta(minutes=JOBS - i)
        job_id = f"job_bench{i:05d}"
        out.append(
            {
                "_id": job_id,
                "job_id": job_id,
                "domain": "tabular",
                "model_type": ("lightgbm", "xgboost", "random_forest", "isolation_forest")[i % 4],
                "status": "completed" if i % 10 else "failed",
                "progress": 100.0,
                "model_id": f"model_v1.{i // 100}.{i % 100}" if i % 10 else None,
                "metrics": {"auc": 0.9 + (i % 7) / 100, "f1": 0.7 + (i % 5) / 100, "precision": 0.8, "recall": 0.6},
                "result": {},
                "spec": {"hyperparameters": {"n_estimators": 100, "max_depth": 7}},
                "record_count": 9200,
                "estimated_duration_minutes": 0.5,
                "requested_by": "key_bench",
                "submitted_at": t,
                "started_at": t,
                "completed_at": t + timedelta(seconds=20),
                "duration_minutes": 0.33,
                "attempts": 1,
                "cancel_requested": False,
                "error": None if i % 10 else "synthetic failure",
                "figures": {},
                "updated_at": t + timedelta(seconds=20),
            }
        )
    return out


def _comparison(i: int) -> list[dict[str, Any]]:
    shrink = 1.0 / (1 + i) ** 0.5
    diff = -0.002 + 0.001 * ((i % 13) - 6) / 6 * shrink
    return [
        {
            "metric": "accuracy",
            "status": "inconclusive" if i < 600 else "non_inferior",
            "difference": diff,
            "anytime_valid_interval": [diff - 0.3 * shrink, diff + 0.3 * shrink],
            "level": 0.99,
            "tolerance": 0.01,
        },
        {
            "metric": "error_rate",
            "status": "within",
            "difference": 0.0,
            "anytime_valid_interval": [-0.2 * shrink, 0.2 * shrink],
            "level": 0.99,
            "tolerance": 0.005,
        },
        {
            "metric": "latency",
            "status": "within",
            "quantile": 0.95,
            "baseline_ms": 12.0,
            "canary_ms": 12.5 + (i % 5) / 10,
            "canary_interval_ms": [11.0, 14.0 + 10 * shrink],
            "baseline_interval_ms": [11.0, 13.0],
            "limit_ms": 17.0,
            "level": 0.99,
        },
    ]


def _canary(now: datetime) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    start = now - timedelta(seconds=WINDOWS * 10)
    windows = []
    for i in range(WINDOWS):
        end = start + timedelta(seconds=10 * (i + 1))
        n = 40 * (i + 1)
        windows.append(
            {
                "_id": f"evt_bench{i:05d}",
                "canary_id": CANARY_ID,
                "kind": "canary",
                "window_start": (end - timedelta(seconds=10)).isoformat().replace("+00:00", "Z"),
                "window_end": end.isoformat().replace("+00:00", "Z"),
                "comparison": _comparison(i),
                "metrics": None,
                "recommendation": "hold" if i < 600 else "proceed",
                "arms": {
                    "canary": {"requests": n // 10, "errors": 0, "labelled": n // 20, "waiting_for_label": n // 20},
                    "baseline": {"requests": n, "errors": 0, "labelled": n // 2, "waiting_for_label": n // 2},
                },
            }
        )
    last = windows[-1]
    totals = {
        arm: {**figures, "labels_too_late": 0, "error_rate": 0.0, "latency_p95_ms": 12.0}
        for arm, figures in last["arms"].items()
    }
    doc = {
        "_id": CANARY_ID,
        "kind": "canary",
        "family": "tabular",
        "model_id": "model_v1.0.2",
        "status": "monitoring",
        "policy": {"min_requests": 200, "min_labelled": 100, "label_horizon_days": 7, "window_seconds": 10},
        "started_at": start,
        "started_by": "key_bench",
        "ended_at": None,
        "end_action": None,
        "metrics": {
            "window_start": last["window_start"],
            "window_end": last["window_end"],
            "totals": totals,
            "metrics": {"new_model": {"accuracy": 0.95}, "old_model": {"accuracy": 0.95}},
            "comparison": last["comparison"],
            "recommendation": "proceed",
            "reason_en": "Canary is not worse than baseline beyond tolerance (synthetic).",
            "reason_ko": "합성 데이터",
            "strata": 3,
        },
        "metrics_window_end": last["window_end"],
        "verdict": {
            "recommendation": "proceed",
            "previous": "hold",
            "reason_en": "Canary is not worse than baseline beyond tolerance (synthetic).",
            "reason_ko": "합성 데이터",
            "numbers": {},
            "at": now,
        },
        "verdict_window_end": last["window_end"],
        "last_version": 3,
        "canary_id": CANARY_ID,
        "baseline_model_id": "model_v1.0.1",
        "percentage": 25.0,
        "auto": False,
        "monitoring_duration_minutes": 30,
        "step_at": start,
        "steps": [{"percentage": 10.0, "at": start, "actor": "key_bench"}],
    }
    return doc, windows


def seed(settings: Settings) -> None:
    client: MongoClient = MongoClient(settings.mongodb_url, tz_aware=True)
    try:
        db = client[settings.mongodb_db]
        now = datetime.now(UTC).replace(microsecond=0)
        db[mongo.JOBS].insert_many(_jobs(now))
        doc, windows = _canary(now)
        db[mongo.CANARIES].insert_one(doc)
        db[mongo.CANARY_WINDOWS].insert_many(windows)
    finally:
        client.close()


def _median(values: list[float | None]) -> float | None:
    clean = [v for v in values if v is not None]
    return round(statistics.median(clean), 1) if clean else None


def measure_page(browser: Browser, base_url: str, cookies: list[dict[str, Any]], path: str) -> dict[str, Any]:
    cold, warm = [], []
    for _ in range(RUNS):
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.add_cookies(cookies)  # type: ignore[arg-type]
        page = context.new_page()
        page.goto(f"{base_url}{path}", wait_until="load", timeout=120_000)
        cold.append(page.evaluate(MEASURE))
        page.goto(f"{base_url}{path}", wait_until="load", timeout=120_000)
        warm.append(page.evaluate(MEASURE))
        context.close()
    first = cold[0]
    out: dict[str, Any] = {
        "path": path,
        "runs": RUNS,
        "first_contentful_paint_ms": {"median": _median([r["fcp"] for r in cold]), "all": [r["fcp"] for r in cold]},
        "load_event_ms": {"median": _median([r["load"] for r in cold]), "all": [round(r["load"], 1) for r in cold]},
        "server_ms": {"median": _median([r["server"] for r in cold]), "all": [round(r["server"], 1) for r in cold]},
        "warm": {
            "first_contentful_paint_ms": _median([r["fcp"] for r in warm]),
            "load_event_ms": _median([r["load"] for r in warm]),
        },
        "html_bytes": first["html"],
        "js_bytes": first["js"],
        "js_transfer_bytes": first["js_transfer"],
        "css_bytes": first["css"],
        "css_transfer_bytes": first["css_transfer"],
        "scripts": first["scripts"],
        "styles": first["styles"],
        "table_rows": first["rows"],
        "canvases": first["canvases"],
    }
    if first["canvases"]:
        out["charts_drawn_ms"] = {"median": _median([r["charts"] for r in cold])}
    return out


def main(out_path: str | Path = DEFAULT_OUT) -> dict[str, Any]:
    started = time.perf_counter()
    result: dict[str, Any] = {
        "benchmark": "console",
        "when": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "browser": CHROMIUM,
        "load_average_before": os.getloadavg(),
        "data": {"jobs": JOBS, "canary_windows": WINDOWS},
    }
    with tempfile.TemporaryDirectory() as tmp:
        settings = settings_for(Path(tmp))
        stack = StackThread(settings, demo=False)
        stack.start()
        try:
            settings = stack.stack.settings
            base_url = str(stack.stack.info["api_url"])
            seed(settings)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
                try:
                    context = browser.new_context()
                    page = context.new_page()
                    page.goto(f"{base_url}/ui/login")
                    page.fill("input[name=api_key]", TEST_KEY)
                    page.locator("input[name=api_key]").press("Enter")
                    page.wait_for_url("**/ui/jobs")
                    cookies = [c for c in context.cookies() if c["name"] == "mb_console"]
                    context.close()
                    result["pages"] = {
                        "jobs_1000": measure_page(browser, base_url, cookies, f"/ui/jobs?limit={JOBS}"),
                        "jobs_default": measure_page(browser, base_url, cookies, "/ui/jobs"),
                        "canary_1000_windows": measure_page(browser, base_url, cookies, f"/ui/canaries/{CANARY_ID}"),
                        "deployments": measure_page(browser, base_url, cookies, "/ui/deployments"),
                    }
                finally:
                    browser.close()
        finally:
            stack.stop()
    result["load_average_after"] = os.getloadavg()
    result["seconds"] = round(time.perf_counter() - started, 1)
    path = Path(out_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    previous: list[dict[str, Any]] = []
    if path.exists():  # earlier runs are kept (the machine is shared: one run is one sample of its load)
        with contextlib.suppress(ValueError):
            old = json.loads(path.read_text(encoding="utf-8"))
            previous = [*old.pop("previous_runs", []), old]
    path.write_text(json.dumps({**result, "previous_runs": previous[-4:]}, indent=2) + "\n", encoding="utf-8")
    return result


if __name__ == "__main__":
    print(json.dumps(main(*(sys.argv[1:2] or [DEFAULT_OUT])), indent=2))
