"""Console, part B: RL training tasks, ``/ui/rl`` (the tasks) and ``/ui/rl/{task_id}`` (a task's episode reward
curve, live from ``rl.episodes`` through the console's event hub, with the random and greedy baselines).

The baselines are the mean episode (one day) rewards of the random and the greedy policies on the held-out days
of the default scenario, the scenario every task trains on (``consumers/rl/service.py``, docs/rl.md): a completed task
carries them in its metrics (``random_mean_reward``, ``greedy_mean_reward``); while a task runs they are taken
from a completed task, or computed once per process (deterministic, about a second) in a worker thread."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Request, get
from litestar.response import Template
from pymongo.asynchronous.database import AsyncDatabase

from api.console.hub import live_after
from api.console.session import ConsoleSession, fmt_time, render
from api.rl.routes import task_status
from infra import mongo
from schemas.errors import ApiError

TASK_LIMIT = 100
_BASELINES: dict[str, float] = {}
_LOCK: asyncio.Lock | None = None


def _compute_baselines() -> dict[str, float]:
    from ml.rl.evaluation import anchors, held_out_seeds

    random, greedy = anchors(held_out_seeds())
    return {"random": round(float(random.mean()), 4), "greedy": round(float(greedy.rewards.mean()), 4)}


async def baselines(db: AsyncDatabase, task: dict[str, Any] | None = None) -> dict[str, Any]:
    """``{random, greedy, source}``: mean reward per episode (day) of the two reference policies."""
    metrics = (task or {}).get("metrics") or {}
    if metrics.get("random_mean_reward") is not None and metrics.get("greedy_mean_reward") is not None:
        return {
            "random": metrics["random_mean_reward"],
            "greedy": metrics["greedy_mean_reward"],
            "source": "this task's evaluation on the held-out days",
        }
    other = await db[mongo.JOBS].find_one(
        {"domain": "rl", "status": "completed", "metrics.greedy_mean_reward": {"$exists": True}},
        {"metrics.random_mean_reward": 1, "metrics.greedy_mean_reward": 1},
        sort=[("submitted_at", -1)],
    )
    if other is not None:
        m = other["metrics"]
        return {
            "random": m.get("random_mean_reward"),
            "greedy": m.get("greedy_mean_reward"),
            "source": "held-out days of the default scenario (from a completed task)",
        }
    global _LOCK
    if not _BASELINES:
        _LOCK = _LOCK or asyncio.Lock()
        async with _LOCK:
            if not _BASELINES:
                _BASELINES.update(await asyncio.to_thread(_compute_baselines))
    return {**_BASELINES, "source": "held-out days of the default scenario (computed by the console)"}


def _task_row(doc: dict[str, Any]) -> dict[str, Any]:
    spec = doc.get("spec") or {}
    metrics = doc.get("metrics") or {}
    return {
        "task_id": doc["_id"],
        "name": spec.get("name") or "",
        "model_type": doc.get("model_type"),
        "status": task_status(doc),
        "progress": doc.get("progress"),
        "total_episodes": spec.get("total_episodes"),
        "submitted_at": fmt_time(doc.get("submitted_at")),
        "model_id": doc.get("model_id"),
        "mean_reward": metrics.get("mean_reward"),
        "normalised_score": metrics.get("normalised_score"),
    }


async def tasks_view(db: AsyncDatabase) -> dict[str, Any]:
    fields = {
        "spec": 1,
        "model_type": 1,
        "status": 1,
        "progress": 1,
        "submitted_at": 1,
        "model_id": 1,
        "metrics.mean_reward": 1,
        "metrics.normalised_score": 1,
        "cancel_requested": 1,
        "attempts": 1,
    }
    cursor = db[mongo.JOBS].find({"domain": "rl"}, fields).sort("submitted_at", -1).limit(TASK_LIMIT)
    return {"tasks": [_task_row(d) async for d in cursor]}


async def task_view(db: AsyncDatabase, task_id: str) -> dict[str, Any] | None:
    """A task with its episode series (``episode``, ``reward``) and the baselines, or None."""
    doc = await db[mongo.JOBS].find_one({"_id": task_id, "domain": "rl"})
    if doc is None:
        return None
    attempt = doc.get("attempts", 1)
    cursor = (
        db[mongo.RL_EPISODES]
        .find({"job_id": task_id, "attempt": attempt}, {"_id": 0, "episode": 1, "reward": 1})
        .sort("episode", 1)
    )
    episodes, rewards = [], []
    async for ep in cursor:
        episodes.append(ep["episode"] + 1)
        rewards.append(round(ep["reward"], 4))
    metrics = doc.get("metrics") or {}
    evaluation = {
        k: metrics[k]
        for k in (
            "mean_reward",
            "normalised_score",
            "normalised_score_ci95_low",
            "normalised_score_ci95_high",
            "vs_greedy_win_rate",
            "beats_greedy",
            "evaluation_days",
        )
        if k in metrics
    }
    return {
        **_task_row(doc),
        "attempt": attempt,
        "error": doc.get("error") if doc.get("status") in ("failed", "cancelled") else None,
        "verdict": (doc.get("result") or {}).get("verdict"),
        "evaluation": evaluation,
        "series": {"episode": episodes, "reward": rewards},
        "baselines": await baselines(db, doc),
    }


# -- handlers -------------------------------------------------------------------------------------------------


@get("/rl", name="console:rl")
async def rl_page(console: ConsoleSession, db: AsyncDatabase) -> Template:
    return render("rl.html", console, "rl", "RL tasks", view=await tasks_view(db))


@get("/rl/{task_id:str}", name="console:rl-task")
async def rl_task_page(
    request: Request[Any, Any, Any], console: ConsoleSession, db: AsyncDatabase, task_id: str
) -> Template:
    live = await live_after(request, ("rl.episodes", "train.events"))
    view = await task_view(db, task_id)
    if view is None:
        raise ApiError(404, "TASK_NOT_FOUND", f"no RL training task {task_id!r}", field="task_id")
    view["live"] = live
    return render("rl_task.html", console, "rl", f"RL task {task_id}", view=view)


HANDLERS = [rl_page, rl_task_page]
