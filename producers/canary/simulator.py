"""Canary (or shadow) traffic simulator: real predictions through ``POST /v1/ml/predict`` and delayed ground
truth through ``POST /v1/ml/feedback``, so a person can watch ``/v1/ml/deploy/canary/{id}/status`` (or
``/v1/ml/deploy/shadow/{id}/status``) change.

Labels. The true label of each prediction is drawn from the label the caller was served: it is that label
with the arm's accuracy, else the other one (``better``: canary 95 % vs baseline 90 %, ``worse``: 85 % vs
90 %, ``equal``: 90 % both). Labels are sent after ``label_delay_s``. A **shadow** never changes what the
caller sees: every answer is production's, so the truth is drawn from production's predictions with the
baseline accuracy, and the shadow's accuracy is whatever its own predictions score against those labels
(the scenario's canary accuracy cannot be imposed on it; the simulator says so when it starts).

Rate limits. Every request goes through ``producers.api_client.PacedClient``: it stays within the key's
tier (a premium key: 100 requests a minute), waits ``Retry-After`` on 429, and ends the run with one
readable line on an error answer. When the requests are paced, each prediction request carries the
records due since the last one (up to ``MAX_BATCH``), so the predictions per second hold up.

Used by ``modelbus simulate canary --scenario better|worse|equal [--canary-id ID | --shadow-id ID]``."""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from producers.api_client import ApiFailure, DeadlineReached, PacedClient
from schemas.errors import validation_details

ACCURACY = {"better": (0.90, 0.95), "worse": (0.90, 0.85), "equal": (0.90, 0.90)}
"""scenario -> (baseline accuracy, canary accuracy)"""
MAX_BATCH = 1000
"""records per prediction request (the API's limit) and labels per feedback request"""
ACTIVE = "monitoring"
"""the status of a canary or shadow that is still analysed (a canary ends ``promoted`` or ``rolled_back``, a
shadow ``stopped`` or ``promoted_to_canary``)"""

Kind = Literal["canary", "shadow"]


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ArmFigures(_Loose):
    accuracy: float | None = None
    requests: int = 0
    labelled: int = 0


class StatusMetrics(_Loose):
    new_model: ArmFigures = ArmFigures()
    old_model: ArmFigures = ArmFigures()


class DeploymentStatus(_Loose):
    """What the simulator reads of ``canary/{id}/status`` and ``shadow/{id}/status`` (the same shape)."""

    status: str
    recommendation: str | None = None
    reason: str | None = None
    current_traffic_percentage: float | None = None
    metrics: StatusMetrics = StatusMetrics()
    ended_at: str | None = None

    @property
    def active(self) -> bool:
        return self.status == ACTIVE and self.ended_at is None


class Running(_Loose):
    canary_id: str | None = None
    shadow_id: str | None = None
    model_id: str | None = None


class Current(_Loose):
    """``GET /v1/ml/deploy/current``: the running canary and shadow (null when none)."""

    canary: Running | None = None
    shadow: Running | None = None


class Served(_Loose):
    prediction_id: str
    label: int | None = None
    arm: str | None = None


class Predictions(_Loose):
    predictions: list[Served]


class FeedbackAnswer(_Loose):
    accepted: int = 0


class Stop(Exception):
    """Ends the run; ``reason`` says why in one line."""

    def __init__(self, reason: str, *, ok: bool) -> None:
        super().__init__(reason)
        self.reason, self.ok = reason, ok


def record(rng: random.Random, users: int) -> dict[str, Any]:
    amount = rng.lognormvariate(3.5, 1.2)
    return {
        "routing_key": f"user-{rng.randrange(users)}",
        "features": {
            "amount": round(amount, 2),
            "hour": float(rng.randrange(24)),
            "log_amount": round(math.log1p(amount), 4),
        },
    }


def status_path(kind: Kind, target_id: str) -> str:
    return f"/v1/ml/deploy/{kind}/{target_id}/status"


def _parse(model: type[BaseModel], resp: httpx.Response, what: str) -> Any:
    try:
        return model.model_validate_json(resp.content)
    except ValidationError as exc:
        first = validation_details(exc, "body")[0]
        raise ApiFailure(
            f"{what} answered {resp.status_code} with an unexpected body ({first['field']}: {first['message']})"
        ) from exc


def status_line(kind: Kind, st: DeploymentStatus) -> str:
    new, old = st.metrics.new_model, st.metrics.old_model
    share = (
        f" {st.current_traffic_percentage:g}%" if kind == "canary" and st.current_traffic_percentage is not None else ""
    )
    return (
        f"[{kind} {st.status}{share}] {st.recommendation or '-'}: "
        f"new acc={new.accuracy} n={new.requests}/{new.labelled} | "
        f"old acc={old.accuracy} n={old.requests}/{old.labelled} — {st.reason or ''}"
    )


async def _target(api: PacedClient, kind: Kind | None, target_id: str | None) -> tuple[Kind, str]:
    """The given canary or shadow, else the running one (the canary first)."""
    if kind is not None and target_id is not None:
        return kind, target_id
    current = _parse(Current, await api.get("/v1/ml/deploy/current"), "GET /v1/ml/deploy/current")
    if current.canary is not None and current.canary.canary_id:
        return "canary", current.canary.canary_id
    if current.shadow is not None and current.shadow.shadow_id:
        return "shadow", current.shadow.shadow_id
    raise Stop(
        "no canary or shadow is running (GET /v1/ml/deploy/current): start one with "
        "POST /v1/ml/deploy/canary/start, or pass --canary-id / --shadow-id",
        ok=False,
    )


class Simulation:
    """One run: predictions, delayed labels and a status line every ``report_every_s``."""

    def __init__(
        self,
        api: PacedClient,
        scenario: str,
        accuracies: tuple[float, float],
        *,
        rps: float,
        label_delay_s: float,
        batch: int,
        users: int,
        seed: int,
        report_every_s: float,
        deadline: float,
        out: Callable[[str], None],
    ) -> None:
        self.api, self.scenario, self.out = api, scenario, out
        self.base_acc, self.canary_acc = accuracies
        self.rps, self.label_delay_s, self.batch, self.users = rps, label_delay_s, batch, users
        self.report_every_s, self.deadline = report_every_s, deadline
        self.rng = random.Random(seed)
        self.kind: Kind | None = None
        self.target_id: str | None = None
        """the canary or shadow driven (found through ``GET /v1/ml/deploy/current`` when not given)"""
        self.sent = {"predictions": 0, "feedback": 0, "errors": 0}
        self.last: dict[str, Any] = {}
        self.pending: deque[tuple[float, dict[str, Any]]] = deque()

    async def run(self) -> None:
        """Returns when the duration is over; raises ``Stop``, ``DeadlineReached`` or ``ApiFailure``."""
        self.kind, self.target_id = await _target(self.api, self.kind, self.target_id)
        await self.poll()  # an unknown id ends the run here, with the API's error line
        self.announce()
        next_report = time.monotonic() + self.report_every_s
        interval = self.batch / self.rps
        last_predict = time.monotonic() - interval
        while time.monotonic() < self.deadline:
            tick = time.monotonic()
            # the records due since the last request: bigger batches when the rate limit spaces requests out
            size = min(MAX_BATCH, max(self.batch, round(self.rps * (tick - last_predict))))
            last_predict = tick
            await self.predict(size)
            await self.send_due_labels()
            if time.monotonic() >= next_report:
                next_report = time.monotonic() + self.report_every_s
                await self.poll()
            await asyncio.sleep(max(0.0, min(interval - (time.monotonic() - tick), self.deadline - time.monotonic())))

    def announce(self) -> None:
        self.out(
            f"simulating scenario {self.scenario!r} on {self.kind} {self.target_id}: {self.rps:g} predictions/s "
            f"for {max(0.0, self.deadline - time.monotonic()):.0f} s, labels after {self.label_delay_s:g} s"
        )
        if self.kind == "shadow":
            note = (
                f" (scenario {self.scenario!r} sets a canary's accuracy, which cannot be imposed on a shadow)"
                if self.scenario != "equal"
                else ""
            )
            self.out(
                "shadow: the truth is drawn from production's predictions (the answers callers see), production "
                f"right {self.base_acc:.0%} of the time; the shadow's accuracy is whatever its own predictions "
                f"score against those labels{note}"
            )

    async def predict(self, size: int) -> None:
        resp = await self.api.post("/v1/ml/predict", {"records": [record(self.rng, self.users) for _ in range(size)]})
        for p in _parse(Predictions, resp, "POST /v1/ml/predict").predictions:
            self.sent["predictions"] += 1
            if p.label is None:
                continue
            # what the caller saw: a canary arm's label, else production's (always production's for a shadow)
            acc = self.canary_acc if self.kind == "canary" and p.arm == "canary" else self.base_acc
            truth = p.label if self.rng.random() < acc else 1 - p.label
            due = time.monotonic() + self.label_delay_s
            self.pending.append((due, {"prediction_id": p.prediction_id, "label": truth}))

    async def send_due_labels(self) -> None:
        due = []
        while self.pending and self.pending[0][0] <= time.monotonic() and len(due) < MAX_BATCH:
            due.append(self.pending.popleft()[1])
        if due:
            resp = await self.api.post("/v1/ml/feedback", {"feedback": due})
            self.sent["feedback"] += _parse(FeedbackAnswer, resp, "POST /v1/ml/feedback").accepted

    async def poll(self) -> None:
        assert self.kind is not None and self.target_id is not None
        path = status_path(self.kind, self.target_id)
        st = _parse(DeploymentStatus, await self.api.get(path), f"GET {path}")
        self.last = st.model_dump()
        self.out(status_line(self.kind, st))
        if not st.active:
            ended = f"{self.kind} {self.target_id} ended with status {st.status}"
            raise Stop(ended + (f": {st.reason}" if st.reason else ""), ok=True)


async def simulate(
    base_url: str,
    api_key: str,
    scenario: str,
    *,
    canary_id: str | None = None,
    shadow_id: str | None = None,
    rps: float = 50.0,
    duration_s: float = 300.0,
    label_delay_s: float = 5.0,
    batch: int = 10,
    users: int = 5000,
    seed: int = 7,
    report_every_s: float = 5.0,
    accuracies: tuple[float, float] | None = None,
    out: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Runs until ``duration_s`` is over, the canary (shadow) ends or the API answers an error: the result's
    ``stopped_because`` says which, and ``ok`` is False after an error. ``accuracies`` overrides the
    scenario's (baseline, canary)."""
    if canary_id is not None and shadow_id is not None:
        raise ValueError("give canary_id or shadow_id, not both")
    deadline = time.monotonic() + duration_s
    async with httpx.AsyncClient(base_url=base_url, headers={"X-API-Key": api_key}, timeout=30) as client:
        api = PacedClient(client, deadline=deadline, out=out)
        sim = Simulation(
            api,
            scenario,
            accuracies or ACCURACY[scenario],
            rps=rps,
            label_delay_s=label_delay_s,
            batch=batch,
            users=users,
            seed=seed,
            report_every_s=report_every_s,
            deadline=deadline,
            out=out,
        )
        if canary_id is not None:
            sim.kind, sim.target_id = "canary", canary_id
        elif shadow_id is not None:
            sim.kind, sim.target_id = "shadow", shadow_id
        try:
            await sim.run()
            reason, ok = f"duration over ({duration_s:g} s)", True
        except Stop as stop:
            reason, ok = stop.reason, stop.ok
        except DeadlineReached as late:
            reason, ok = f"duration over ({duration_s:g} s)", True
            if late.refusal:
                reason += f" before the refused request could be retried: {late.refusal}"
        except ApiFailure as failure:
            sim.sent["errors"] += 1
            reason, ok = f"error: {failure.line}", False
    out(f"stopped: {reason}")
    return {
        "canary_id": sim.target_id if sim.kind == "canary" else None,
        "shadow_id": sim.target_id if sim.kind == "shadow" else None,
        **sim.sent,
        "rate_limited": api.rate_limited,
        "waited_for_rate_limit_s": round(api.waited_s, 1),
        "stopped_because": reason,
        "ok": ok,
        "last_status": sim.last,
    }
