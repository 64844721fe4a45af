"""Console, part B: a canary's page ``/ui/canaries/{canary_id}`` (and a shadow's, ``/ui/shadows/{shadow_id}``).

What it shows, and where it comes from:

* requests and labels per arm (labelled / waiting / too late): the canary's projection (``canaries``), shaped
  by the same function as ``GET /v1/ml/deploy/canary/{id}/status`` (``api.canary.deploy.canary_status``);
* each compared metric's anytime-valid interval of the canary − production difference over time, one point
  per analysis window, with the tolerance: the ``canary_windows`` projection (one document per
  ``canary.metrics`` event);
* the traffic steps (the projection's ``steps``) and the verdict history with its reasons: the
  ``canary.recommendations`` events in the event archive (the windows keep only each window's verdict; when
  the archive cannot be read the history falls back to the verdict changes between windows);
* buttons that act through the API's own code path (``producers.canary.deploy.Deployer``), behind part A's scope and
  CSRF check.

The browser then follows ``canary.metrics``, ``canary.recommendations`` and ``deploy.events`` through the
console's server-sent-events hub (``static/canary.js``): it never polls the database."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from litestar import Request, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect, Template
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from api.canary.deploy import EMERGENCY_REASON, canary_status, shadow_status, unmatched_labels
from api.console.hub import live_after
from api.console.session import ConsoleSession, fmt_time, render, require_action
from infra import mongo
from infra.settings import Settings
from producers.canary.deploy import DeployConflict, Deployer, Step
from producers.publisher import EventPublisher
from schemas import deploy
from schemas.errors import ApiError

log = logging.getLogger("modelbus.console")

TRAFFIC_STEPS = (10.0, 25.0, 50.0, 100.0)
HIGHER_IS_WORSE = frozenset({"error_rate"})
ACTIONS = ("increase", "promote", "rollback", "emergency")
WINDOW_FIELDS = {"_id": 0, "window_end": 1, "comparison": 1, "recommendation": 1, "arms": 1}


def epoch(value: Any) -> float | None:
    """Seconds since the epoch of a datetime or an ISO string (uPlot's x axis)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return round(value.timestamp(), 3)


def next_step(percentage: float) -> float:
    return next((s for s in TRAFFIC_STEPS if s > percentage), 100.0)


# -- the series ---------------------------------------------------------------------------------------------


def metric_point(row: dict[str, Any]) -> dict[str, Any]:
    """One compared metric of one window, as the charts plot it (``static/canary.js`` reads the same
    shape from a live ``canary.metrics`` event)."""
    if row.get("metric") == "latency":
        c_low, c_high = (row.get("canary_interval_ms") or [None, None])[:2]
        return {
            "canary": row.get("canary_ms"),
            "low": c_low,
            "high": c_high,
            "baseline": row.get("baseline_ms"),
            "limit": row.get("limit_ms"),
        }
    low, high = (row.get("anytime_valid_interval") or [None, None])[:2]
    tol = row.get("tolerance")
    if tol is not None and row.get("metric") not in HIGHER_IS_WORSE:
        tol = -tol
    return {"difference": row.get("difference"), "low": low, "high": high, "tolerance": tol}


def empty_series() -> dict[str, Any]:
    return {
        "x": [],
        "metrics": {},
        "arms": {"canary_requests": [], "baseline_requests": [], "canary_labelled": [], "baseline_labelled": []},
        "verdicts": [],
    }


def extend_series(out: dict[str, Any], windows: list[dict[str, Any]]) -> dict[str, Any]:
    """Appends windows (oldest first) to column-wise series: ``x`` (window end, epoch seconds), per compared
    metric its points, the requests / labelled per arm, and ``verdicts`` (each window's end and verdict)."""
    xs, metrics, arms = out["x"], out["metrics"], out["arms"]
    for window in windows:
        i = len(xs)
        xs.append(epoch(window.get("window_end")))
        out["verdicts"].append((window.get("window_end"), window.get("recommendation")))
        seen = set()
        for row in window.get("comparison") or []:
            name = row.get("metric")
            if not name:
                continue
            seen.add(name)
            point = metric_point(row)
            columns = metrics.setdefault(name, {k: [None] * i for k in point})
            for k, v in point.items():
                columns.setdefault(k, [None] * i).append(v)
        for name, columns in metrics.items():
            if name not in seen:
                for column in columns.values():
                    column.append(None)
        figures = window.get("arms") or {}
        for arm in ("canary", "baseline"):
            a = figures.get(arm) or figures.get("shadow" if arm == "canary" else arm) or {}
            arms[f"{arm}_requests"].append(a.get("requests"))
            arms[f"{arm}_labelled"].append(a.get("labelled"))
    return out


def series(windows: list[dict[str, Any]]) -> dict[str, Any]:
    return extend_series(empty_series(), windows)


@dataclass
class _Cached:
    last_end: Any
    series: dict[str, Any]


_SERIES: OrderedDict[tuple[str, str, str], _Cached] = OrderedDict()
SERIES_CACHE_SIZE = 16
"""canaries whose series are kept in memory: a window document never changes once projected (``_id`` = its event
id), so a page reads only the windows that closed since the last view of that canary"""


async def window_series(db: AsyncDatabase, analysis_id: str) -> dict[str, Any]:
    """The series of ``analysis_id``'s windows, read incrementally (``SERIES_CACHE_SIZE`` canaries kept)."""
    key = (str(id(db.client)), db.name, analysis_id)
    cached = _SERIES.get(key)
    query: dict[str, Any] = {"canary_id": analysis_id}
    if cached is not None and cached.last_end is not None:
        query["window_end"] = {"$gt": cached.last_end}
    cursor = db[mongo.CANARY_WINDOWS].find(query, WINDOW_FIELDS).sort("window_end", 1)
    fetched = [w async for w in cursor]
    cached = _SERIES.get(key) or _Cached(None, empty_series())  # again: another request may have extended it
    new = [w for w in fetched if cached.last_end is None or w.get("window_end") > cached.last_end]
    if new:
        extend_series(cached.series, new)
        cached.last_end = new[-1].get("window_end")
    _SERIES[key] = cached
    _SERIES.move_to_end(key)
    while len(_SERIES) > SERIES_CACHE_SIZE:
        _SERIES.popitem(last=False)
    ser = cached.series  # a copy: later windows extend the cached lists while this page renders
    return {
        "x": list(ser["x"]),
        "metrics": {m: {k: list(v) for k, v in cols.items()} for m, cols in ser["metrics"].items()},
        "arms": {k: list(v) for k, v in ser["arms"].items()},
        "verdicts": list(ser["verdicts"]),
    }


# -- the verdict history ------------------------------------------------------------------------------------


async def _archived_verdicts(
    settings: Settings, db: AsyncDatabase, analysis_id: str, rec_type: str
) -> list[dict[str, Any]]:
    """The ``canary.recommendations`` events of one canary or shadow in the event archive (on the main database
    server, or on a server of its own: then through a client opened for this read and closed after it)."""
    client: AsyncMongoClient | None = None
    archive = db
    if settings.archive_url and settings.archive_url != settings.mongodb_url:
        client = mongo.client(settings, archive=True)
        archive = client[settings.mongodb_db]
    try:
        out = []
        query = {"subject": analysis_id, "type": rec_type}
        async for doc in archive[mongo.ARCHIVE].find(query, {"raw": 1, "time": 1}).sort("time", 1):
            data = json.loads(doc["raw"]).get("data") or {}
            out.append(
                {
                    "at": fmt_time(doc.get("time")),
                    "window_end": fmt_time(data.get("window_end")),
                    "recommendation": data.get("recommendation"),
                    "previous": data.get("previous"),
                    "reason": data.get("reason_en") or "",
                }
            )
        return out
    finally:
        if client is not None:
            await client.close()


async def verdict_history(
    settings: Settings | None,
    db: AsyncDatabase,
    analysis_id: str,
    kind: str,
    windows: list[tuple[Any, str | None]],
) -> list[dict[str, Any]]:
    """Every verdict of a canary or shadow, oldest first: ``{at, window_end, recommendation, previous, reason}``."""
    rec_type = deploy.SHADOW_RECOMMENDATION if kind == "shadow" else deploy.CANARY_RECOMMENDATION
    if settings is not None:
        try:
            found = await asyncio.wait_for(_archived_verdicts(settings, db, analysis_id, rec_type), timeout=5)
            if found:
                return found
        except Exception:  # the archive may be a server of its own: the page still renders without it
            log.warning("console: the event archive could not be read for %s", analysis_id, exc_info=True)
    out, last = [], None
    for window_end, rec in windows:  # (window end, verdict) of each window
        if rec and rec != last:
            end = fmt_time(window_end)
            out.append({"at": end, "window_end": end, "recommendation": rec, "previous": last, "reason": ""})
            last = rec
    return out


# -- the page ------------------------------------------------------------------------------------------------


async def analysis_view(
    db: AsyncDatabase, analysis_id: str, *, kind: str = "canary", settings: Settings | None = None
) -> dict[str, Any] | None:
    """Everything ``canary.html`` shows of a canary (or a shadow), or None if there is none."""
    collection = mongo.SHADOWS if kind == "shadow" else mongo.CANARIES
    doc = await db[collection].find_one({"_id": analysis_id})
    if doc is None:
        return None
    unmatched = await unmatched_labels(db)
    if kind == "shadow":
        status = shadow_status(doc, "en", unmatched).model_dump(mode="json")
    else:
        status = canary_status(doc, "en", unmatched).model_dump(mode="json")
    ser = await window_series(db, analysis_id)
    evidence = status["evidence"]
    arms = []
    for arm, label in (("new_model", kind), ("old_model", "production")):
        m = status["metrics"][arm]
        arms.append(
            {
                "arm": label,
                "model_id": doc.get("model_id") if arm == "new_model" else doc.get("baseline_model_id"),
                "requests": m["requests"],
                "errors": m["errors"],
                "labelled": evidence["labelled"][arm],
                "waiting": evidence["waiting_for_label"][arm],
                "too_late": evidence["labels_too_late"][arm],
                "accuracy": m.get("accuracy"),
                "latency_p95_ms": m.get("latency_p95_ms"),
            }
        )
    running = doc.get("status") == "monitoring"
    percentage = float(doc.get("percentage") or 0.0)
    return {
        "kind": kind,
        "id": analysis_id,
        "model_id": doc.get("model_id"),
        "baseline_model_id": doc.get("baseline_model_id"),
        "status": doc.get("status"),
        "running": running,
        "version": doc.get("last_version"),
        "percentage": percentage if kind == "canary" else doc.get("sample_percentage"),
        "next_percentage": next_step(percentage),
        "auto": doc.get("auto", False),
        "started_at": fmt_time(doc.get("started_at")),
        "ended_at": fmt_time(doc.get("ended_at")),
        "end_action": doc.get("end_action"),
        "recommendation": status["recommendation"],
        "reason": status["reason"],
        "verdict_at": status.get("verdict_at"),
        "policy": doc.get("policy") or {},
        "arms": arms,
        "unmatched_labels": unmatched,
        "steps": [
            {"percentage": s.get("percentage"), "at": fmt_time(s.get("at")), "actor": s.get("actor") or ""}
            for s in doc.get("steps") or []
        ],
        "comparison": status["comparison"],
        "windows": len(ser["x"]),
        "series": {k: ser[k] for k in ("x", "metrics", "arms")},
        "verdicts": await verdict_history(settings, db, analysis_id, kind, ser["verdicts"]),
    }


# -- the actions ---------------------------------------------------------------------------------------------


async def act(
    db: AsyncDatabase,
    publisher: EventPublisher,
    *,
    actor: str | None,
    canary_id: str,
    action: str,
    target: float | None = None,
) -> tuple[Step, str]:
    """One button of the canary page, through the API's code path (``Deployer``, as ``/v1/ml/deploy/...``).
    Raises ``producers.canary.deploy.DeployConflict`` (409 / 404) as the API does; returns the step and a sentence."""
    deployer = Deployer(db, publisher, actor=actor)
    if action == "increase":
        doc = await db[mongo.CANARIES].find_one({"_id": canary_id}, {"percentage": 1})
        goal = float(target if target is not None else next_step(float((doc or {}).get("percentage") or 0)))
        step = await deployer.increase(canary_id, goal)
        return step, f"Canary traffic raised to {goal:g}%."
    if action == "promote":
        doc = await db[mongo.CANARIES].find_one({"_id": canary_id}, {"model_id": 1})
        if doc is None:
            raise DeployConflict(404, "CANARY_NOT_FOUND", f"no canary {canary_id!r}", field="canary_id")
        step = await deployer.production(doc["model_id"])
        return step, f"{doc['model_id']} promoted to production (100%)."
    if action == "rollback":
        step = await deployer.canary_rollback(canary_id, reason="canary stopped on request")
        return step, "Canary rolled back; production unchanged."
    if action == "emergency":
        step = await deployer.emergency_rollback(reason=EMERGENCY_REASON["en"])
        restored = step.state.production if step.state else None
        return step, f"Emergency rollback: {restored} is back in production."
    raise ValueError(f"unknown action {action!r}; one of {', '.join(ACTIONS)}")


# -- handlers -------------------------------------------------------------------------------------------------

LIVE_TOPICS = ("canary.metrics", "canary.recommendations", "deploy.events")


def _not_found(kind: str, analysis_id: str) -> ApiError:
    return ApiError(404, f"{kind.upper()}_NOT_FOUND", f"no {kind} {analysis_id!r}", field=f"{kind}_id")


@get("/canaries/{canary_id:str}", name="console:canary")
async def canary_page(
    request: Request[Any, Any, Any], console: ConsoleSession, db: AsyncDatabase, canary_id: str
) -> Template:
    live = await live_after(request, LIVE_TOPICS)
    view = await analysis_view(db, canary_id, kind="canary", settings=request.app.state.settings)
    if view is None:
        raise _not_found("canary", canary_id)
    view["live"] = live
    flash = {k: request.query_params.get(k) for k in ("done", "error") if request.query_params.get(k)}
    return render(
        "canary.html",
        console,
        "deployments",
        f"Canary {canary_id}",
        view=view,
        flash=flash,
        can_deploy=console.can("deploy"),
    )


@get("/shadows/{shadow_id:str}", name="console:shadow")
async def shadow_page(
    request: Request[Any, Any, Any], console: ConsoleSession, db: AsyncDatabase, shadow_id: str
) -> Template:
    live = await live_after(request, LIVE_TOPICS)
    view = await analysis_view(db, shadow_id, kind="shadow", settings=request.app.state.settings)
    if view is None:
        raise _not_found("shadow", shadow_id)
    view["live"] = live
    return render("canary.html", console, "deployments", f"Shadow {shadow_id}", view=view, flash={}, can_deploy=False)


@post("/canaries/{canary_id:str}/action", status_code=303, name="console:canary-action")
async def canary_action(
    request: Request[Any, Any, Any],
    db: AsyncDatabase,
    publisher: EventPublisher,
    canary_id: str,
    data: Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)],
) -> Redirect:
    """A button of the canary page: CSRF and the ``deploy`` scope (403 otherwise), then the API's code path."""
    session = await require_action(request, "deploy", data.get("csrf"))
    action = data.get("action", "")
    if action not in ACTIONS:
        raise ApiError(422, "VALIDATION_ERROR", f"action: one of {', '.join(ACTIONS)}", field="action")
    target = None
    if action == "increase" and data.get("target_percentage"):
        try:
            target = float(data["target_percentage"])
        except ValueError as exc:
            raise ApiError(422, "VALIDATION_ERROR", "target_percentage: a number", field="target_percentage") from exc
        if not 0 < target <= 100:
            raise ApiError(422, "VALIDATION_ERROR", "target_percentage: in (0, 100]", field="target_percentage")
    try:
        _, message = await act(
            db, publisher, actor=session.principal.key_id, canary_id=canary_id, action=action, target=target
        )
        query = {"done": message}
    except DeployConflict as exc:
        query = {"error": f"{exc.code}: {exc.message}"}
    return Redirect(f"/ui/canaries/{canary_id}?{urlencode(query)}", status_code=303)


HANDLERS = [canary_page, shadow_page, canary_action]
