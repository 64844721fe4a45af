"""Deployment steps of tabular models: validated against the projections, compare-and-set, published.

Used by the API (``/v1/ml/deploy``) and by the canary orchestrator (automatic mode). A step:

1. reads the family's ``deployments`` document (version ``v``) and the models it touches, and checks the
   step is allowed (``DeployConflict`` 409 / 404 otherwise);
2. claims ``deploy:<family>@<v+1>`` in ``status_claims`` (unique): two concurrent steps cannot both win,
   the loser answers 409;
3. publishes the model status changes (``model.events``, compare-and-set on ``status_version``) and the
   ``DeploymentStep`` (``deploy.events``, key = family, sequence = ``v+1``) carrying the new state;
4. applies them to the projections at once (read-your-write; the projector applies them again, a no-op).

Model statuses: ``trained → staging → canary → production → archived``, plus ``rolled_back``. A shadow is
not a model status: a trained or staged model is shadowed (it scores mirrored requests, serves none) until
the shadow is stopped or its model becomes the canary (which ends the shadow in the same step).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from infra import mongo
from infra.projections import apply_events
from producers.publisher import EventPublisher
from schemas import deploy, jobs
from schemas.common import new_id, utcnow
from schemas.envelope import Envelope

SOURCE = "modelbus/deploy"
STAGEABLE = ("trained", "archived", "rolled_back")
SHADOWABLE = ("trained", "staging")


class DeployConflict(Exception):
    """A step that is not allowed now (409) or names something unknown (404)."""

    def __init__(self, status: int, code: str, message: str, *, field: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field, self.extra = status, code, message, field, extra


@dataclass
class Step:
    """What a step produced: the events published and the resulting state."""

    action: str
    events: list[Envelope] = field(default_factory=list)
    state: deploy.DeploymentState | None = None
    canary_id: str | None = None
    shadow_id: str | None = None
    at: datetime | None = None
    model_changes: list[deploy.ModelChange] = field(default_factory=list)


async def current_state(db: AsyncDatabase, family: str = deploy.FAMILY) -> deploy.DeploymentState:
    doc = await db[mongo.DEPLOYMENTS].find_one({"_id": family})
    if doc is None:
        return deploy.DeploymentState(family=family, version=0)
    return deploy.DeploymentState.model_validate(doc)


async def _model(db: AsyncDatabase, model_id: str) -> dict[str, Any]:
    doc = await db[mongo.MODELS].find_one({"_id": model_id, "domain": deploy.FAMILY})
    if doc is None:
        raise DeployConflict(404, "MODEL_NOT_FOUND", f"no model {model_id!r}", field="model_id")
    return doc


async def _trained_model(db: AsyncDatabase, model_id: str) -> dict[str, Any]:
    """Promoting or canarying a model that was never trained is a conflicting step (409), not a 404."""
    try:
        return await _model(db, model_id)
    except DeployConflict as exc:
        raise DeployConflict(409, "NOT_TRAINED", f"{model_id!r} was never trained", field="model_id") from exc


def _conflict(code: str, message: str, **extra: Any) -> DeployConflict:
    return DeployConflict(409, code, message, **extra)


class Deployer:
    def __init__(self, db: AsyncDatabase, publisher: EventPublisher, *, actor: str | None) -> None:
        self.db = db
        self.publisher = publisher
        self.actor = actor

    # -- the steps ------------------------------------------------------------------------------------------

    async def staging(self, model_id: str) -> Step:
        state = await current_state(self.db)
        model = await _model(self.db, model_id)
        if model["status"] not in STAGEABLE:
            raise _conflict(
                "INVALID_STATUS", f"{model_id} is {model['status']}; only {', '.join(STAGEABLE)} can be staged"
            )
        new = state.model_copy(deep=True)
        new.staging = [m for m in new.staging if m != model_id] + [model_id]
        return await self._commit(
            "staging", state, new, [(model, "staging")], model_id=model_id, metrics={"model": model.get("metrics")}
        )

    async def canary_start(
        self, model_id: str, percentage: float, minutes: float, *, auto: bool, policy: dict[str, Any]
    ) -> Step:
        state = await current_state(self.db)
        model = await _trained_model(self.db, model_id)
        if state.canary is not None:
            raise _conflict(
                "CANARY_ACTIVE",
                f"canary {state.canary.canary_id} of {state.canary.model_id} is running; one canary at a time",
                canary_id=state.canary.canary_id,
            )
        if model["status"] != "staging":
            raise _conflict("NOT_STAGED", f"{model_id} is {model['status']}; deploy it to staging first")
        if state.production is None:
            raise _conflict("NO_PRODUCTION_MODEL", "no production model to compare the canary against")
        canary_id = new_id("canary")
        new = state.model_copy(deep=True)
        new.staging = [m for m in new.staging if m != model_id]
        new.canary = deploy.CanaryState(
            canary_id=canary_id, model_id=model_id, baseline_model_id=state.production, percentage=percentage, auto=auto
        )
        ended = _end_shadow(new, model_id)
        return await self._commit(
            "canary_started",
            state,
            new,
            [(model, "canary")],
            model_id=model_id,
            canary_id=canary_id,
            canary_status="monitoring",
            percentage=percentage,
            monitoring_duration_minutes=minutes,
            policy=policy,
            metrics={"model": model.get("metrics")},
            shadow_id=ended,
            shadow_status="promoted_to_canary" if ended else None,
        )

    async def shadow_start(self, model_id: str, sample_percentage: float, *, policy: dict[str, Any]) -> Step:
        """Mirrors production's requests (a ``sample_percentage`` of them) to ``model_id``; one shadow at a time."""
        state = await current_state(self.db)
        model = await _trained_model(self.db, model_id)
        if state.shadow is not None:
            raise _conflict(
                "SHADOW_ACTIVE",
                f"shadow {state.shadow.shadow_id} of {state.shadow.model_id} is running; one shadow at a time",
                shadow_id=state.shadow.shadow_id,
            )
        if model["status"] not in SHADOWABLE:
            raise _conflict(
                "INVALID_STATUS", f"{model_id} is {model['status']}; only a trained or staged model can be shadowed"
            )
        if state.production is None:
            raise _conflict("NO_PRODUCTION_MODEL", "no production model to mirror requests from")
        shadow_id = new_id("shadow")
        new = state.model_copy(deep=True)
        new.shadow = deploy.ShadowState(
            shadow_id=shadow_id, model_id=model_id, baseline_model_id=state.production,
            sample_percentage=sample_percentage,
        )
        return await self._commit(
            "shadow_started",
            state,
            new,
            [],
            model_id=model_id,
            shadow_id=shadow_id,
            shadow_status="monitoring",
            sample_percentage=sample_percentage,
            policy=policy,
            metrics={"model": model.get("metrics")},
        )

    async def shadow_stop(self, shadow_id: str, *, reason: str) -> Step:
        state = await current_state(self.db)
        doc = await self.db[mongo.SHADOWS].find_one({"_id": shadow_id})
        if doc is None:
            raise DeployConflict(404, "SHADOW_NOT_FOUND", f"no shadow {shadow_id!r}", field="shadow_id")
        if state.shadow is None or state.shadow.shadow_id != shadow_id:
            raise _conflict("SHADOW_NOT_ACTIVE", f"shadow {shadow_id} is {doc['status']}", shadow_id=shadow_id)
        new = state.model_copy(deep=True)
        new.shadow = None
        return await self._commit(
            "shadow_stopped",
            state,
            new,
            [],
            model_id=state.shadow.model_id,
            reason=reason,
            shadow_id=shadow_id,
            shadow_status="stopped",
            metrics=_snapshot(doc),
        )

    async def increase(self, canary_id: str, target: float) -> Step:
        state = await current_state(self.db)
        canary = await self._canary_doc(canary_id)
        if state.canary is None or state.canary.canary_id != canary_id:
            raise _conflict("CANARY_NOT_ACTIVE", f"canary {canary_id} is {canary['status']}", canary_id=canary_id)
        if target <= state.canary.percentage:
            raise _conflict(
                "TRAFFIC_ONLY_INCREASES",
                f"canary traffic is {state.canary.percentage:g}%; the target must be higher (up to 100)",
                field="target_percentage",
            )
        new = state.model_copy(deep=True)
        assert new.canary is not None
        new.canary.percentage = target
        return await self._commit(
            "traffic_increased",
            state,
            new,
            [],
            model_id=state.canary.model_id,
            canary_id=canary_id,
            canary_status="monitoring",
            percentage=target,
            metrics=_snapshot(canary),
        )

    async def production(self, model_id: str, *, reason: str | None = None) -> Step:
        state = await current_state(self.db)
        model = await _trained_model(self.db, model_id)
        if model["status"] == "production":
            raise _conflict("ALREADY_IN_PRODUCTION", f"{model_id} is already in production")
        if model["status"] not in ("staging", "canary"):
            raise _conflict(
                "NOT_STAGED", f"{model_id} is {model['status']}; only a staged or canary model can be promoted"
            )
        if state.canary is not None and state.canary.model_id != model_id:
            raise _conflict(
                "CANARY_ACTIVE",
                f"canary {state.canary.canary_id} of {state.canary.model_id} is running; end it first",
                canary_id=state.canary.canary_id,
            )
        changes: list[tuple[dict[str, Any], str]] = [(model, "production")]
        new = state.model_copy(deep=True)
        if state.production is not None:
            changes.append((await _model(self.db, state.production), "archived"))
            new.previous = [m for m in new.previous if m != state.production] + [state.production]
        new.production = model_id
        new.staging = [m for m in new.staging if m != model_id]
        new.canary = None
        ended = _end_shadow(new, model_id)
        canary_doc = await self._canary_doc(state.canary.canary_id) if state.canary else None
        return await self._commit(
            "production",
            state,
            new,
            changes,
            model_id=model_id,
            reason=reason,
            canary_id=state.canary.canary_id if state.canary else None,
            canary_status="promoted" if state.canary else None,
            percentage=100.0,
            metrics=_snapshot(canary_doc) if canary_doc else {"model": model.get("metrics")},
            shadow_id=ended,
            shadow_status="stopped" if ended else None,
        )

    async def canary_rollback(self, canary_id: str, *, reason: str) -> Step:
        """Ends a canary without promoting it: the canary model is rolled back, production unchanged."""
        state = await current_state(self.db)
        canary = await self._canary_doc(canary_id)
        if state.canary is None or state.canary.canary_id != canary_id:
            raise _conflict("CANARY_NOT_ACTIVE", f"canary {canary_id} is {canary['status']}", canary_id=canary_id)
        model = await _model(self.db, state.canary.model_id)
        new = state.model_copy(deep=True)
        new.canary = None
        return await self._commit(
            "canary_rolled_back",
            state,
            new,
            [(model, "rolled_back")],
            model_id=model["_id"],
            reason=reason,
            canary_id=canary_id,
            canary_status="rolled_back",
            percentage=0.0,
            metrics=_snapshot(canary),
        )

    async def emergency_rollback(self, *, reason: str) -> Step:
        state = await current_state(self.db)
        if state.production is None or not state.previous:
            raise _conflict("NO_PREVIOUS_MODEL", "there is no previous production model to roll back to")
        return await self._restore(state, state.previous[-1], "emergency_rollback", reason)

    async def rollback(self, model_id: str, *, reason: str) -> Step:
        state = await current_state(self.db)
        await _model(self.db, model_id)
        if model_id == state.production:
            raise _conflict("ALREADY_IN_PRODUCTION", f"{model_id} is the production model")
        if model_id not in state.previous:
            raise _conflict("NEVER_IN_PRODUCTION", f"{model_id} was never a production model of this family")
        return await self._restore(state, model_id, "rollback", reason)

    # -- helpers --------------------------------------------------------------------------------------------

    async def _restore(self, state: deploy.DeploymentState, target: str, action: str, reason: str) -> Step:
        model = await _model(self.db, target)
        changes: list[tuple[dict[str, Any], str]] = [(model, "production")]
        if state.production is not None:
            changes.append((await _model(self.db, state.production), "rolled_back"))
        canary_doc = None
        if state.canary is not None:
            changes.append((await _model(self.db, state.canary.model_id), "rolled_back"))
            canary_doc = await self._canary_doc(state.canary.canary_id)
        new = state.model_copy(deep=True)
        new.previous = [m for m in new.previous if m != target]
        new.production = target
        new.canary = None
        current = await self.db[mongo.MODELS].find_one({"_id": state.production}) if state.production else None
        snapshot: dict[str, Any] = {"rolled_back_model": state.production, "model": (current or {}).get("metrics")}
        if canary_doc:
            snapshot["canary"] = _snapshot(canary_doc)
        return await self._commit(
            action,
            state,
            new,
            changes,
            model_id=target,
            reason=reason,
            canary_id=state.canary.canary_id if state.canary else None,
            canary_status="rolled_back" if state.canary else None,
            metrics=snapshot,
        )

    async def _canary_doc(self, canary_id: str) -> dict[str, Any]:
        doc = await self.db[mongo.CANARIES].find_one({"_id": canary_id})
        if doc is None:
            raise DeployConflict(404, "CANARY_NOT_FOUND", f"no canary {canary_id!r}", field="canary_id")
        return doc

    async def _commit(
        self,
        action: str,
        old: deploy.DeploymentState,
        new: deploy.DeploymentState,
        changes: list[tuple[dict[str, Any], str]],
        **fields: Any,
    ) -> Step:
        version = old.version + 1
        new.version = version
        claim_id = f"deploy:{old.family}@{version}"
        try:
            await self.db[mongo.STATUS_CLAIMS].insert_one(
                {"_id": claim_id, "family": old.family, "version": version, "action": action, "at": utcnow()}
            )
        except DuplicateKeyError as exc:
            raise _conflict("CONCURRENT_CHANGE", "another deployment step changed this family first; retry") from exc
        try:
            model_changes = [
                deploy.ModelChange(
                    model_id=doc["_id"],
                    from_status=doc["status"],
                    to_status=status,
                    status_version=doc.get("status_version", 1) + 1,
                )
                for doc, status in changes
            ]
            step = deploy.DeploymentStep(
                action=action,  # type: ignore[arg-type]
                family=old.family,
                actor=self.actor,
                state=new,
                changes=model_changes,
                **fields,
            )
            env = Envelope.wrap(deploy.DEPLOY_STEP, old.family, step, source=SOURCE, sequence=version)
            model_envs = [
                Envelope.wrap(
                    jobs.MODEL_STATUS_CHANGED,
                    c.model_id,
                    jobs.ModelStatusChanged(
                        model_id=c.model_id,
                        status=c.to_status,
                        previous_status=c.from_status,
                        status_version=c.status_version,
                        actor=self.actor,
                        reason=fields.get("reason") or action,
                    ),
                    source=SOURCE,
                    sequence=c.status_version,
                    cause=env,
                )
                for c in model_changes
            ]
            for model_env in model_envs:
                await self.publisher.publish("model.events", model_env, key=model_env.subject)
            await self.publisher.publish("deploy.events", env, key=old.family)
        except BaseException:
            await self.db[mongo.STATUS_CLAIMS].delete_one({"_id": claim_id})
            raise
        await apply_events(self.db, [*model_envs, env])
        return Step(
            action=action,
            events=[*model_envs, env],
            state=new,
            canary_id=fields.get("canary_id"),
            shadow_id=fields.get("shadow_id"),
            at=env.time,
            model_changes=model_changes,
        )


def _end_shadow(state: deploy.DeploymentState, model_id: str) -> str | None:
    """Ends the shadow of ``model_id`` in ``state`` (it is becoming the canary or production); its id, if any."""
    if state.shadow is None or state.shadow.model_id != model_id:
        return None
    shadow_id, state.shadow = state.shadow.shadow_id, None
    return shadow_id


def _snapshot(canary: dict[str, Any]) -> dict[str, Any]:
    """The canary's (or shadow's) latest evidence and verdict, as recorded in the audit trail."""
    verdict = canary.get("verdict") or {}
    metrics = canary.get("metrics") or {}
    return {
        "canary_id": canary.get("canary_id"),
        "shadow_id": canary.get("shadow_id"),
        "percentage": canary.get("percentage"),
        "comparison": metrics.get("comparison"),
        "metrics": metrics.get("metrics"),
        "totals": metrics.get("totals"),
        "window_end": metrics.get("window_end"),
        "recommendation": verdict.get("recommendation"),
        "reason_en": verdict.get("reason_en"),
    }
