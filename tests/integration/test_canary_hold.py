"""The canary analyser holds events that name a canary whose document is not projected yet (traffic can
be faster than the projector right after ``canary/start``), and drops those of a canary that never appears."""

from __future__ import annotations

from typing import Any

import pytest

from consumers import canary_analyser
from consumers.canary_analyser import CanaryAnalyser
from consumers.deps import Deps
from infra import mongo
from infra.kafka import make_broker
from infra.settings import Settings
from infra.stack import StackThread
from producers.publisher import EventPublisher
from schemas import deploy
from schemas.common import new_id, utcnow
from schemas.envelope import Envelope


def _served(canary_id: str, i: int) -> Envelope:
    served = deploy.PredictionServed(
        prediction_id=f"{canary_id}-p{i}",
        model_id="model_v9.0.0",
        arm="canary" if i % 2 else "baseline",
        canary_id=canary_id,
        score=0.3,
        label=0,
        latency_ms=4.0,
        served_at=utcnow(),
    )
    return Envelope.wrap(deploy.PREDICTION_SERVED, served.prediction_id, served, source="test")


def _canary_doc(canary_id: str) -> dict[str, Any]:
    return {"_id": canary_id, "canary_id": canary_id, "status": "monitoring", "model_id": "model_v9.0.0", "policy": {}}


def test_events_before_the_canary_document_are_held_then_counted(
    stack: StackThread, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    early, late, never = new_id("cnh"), new_id("cnh"), new_id("cnh")

    async def scenario() -> dict[str, Any]:
        client = mongo.client(settings)
        publisher = EventPublisher(make_broker(settings, client_id="test-hold", with_metrics=False), settings)
        db = client[settings.mongodb_db]
        try:
            analyser = CanaryAnalyser(Deps(settings=settings, db=db, publisher=publisher, worker_id="test"))
            for i in range(10):  # nothing in `canaries` yet for either id
                await analyser.add(_served(early, i))
                await analyser.add(_served(never, i))
            held_before = {k: len(v.events) for k, v in analyser.held.items()}
            await db[mongo.CANARIES].insert_one(_canary_doc(early))
            await analyser.add(_served(early, 10))  # still held behind the first ten, in order
            await analyser.tick(utcnow())
            counted = analyser.tracked[early].stats["served"]
            still_held = set(analyser.held)
            monkeypatch.setattr(canary_analyser, "HOLD_SECONDS", 0.0)
            await analyser.tick(utcnow())
            await db[mongo.CANARIES].insert_one(_canary_doc(late))  # after the drop: events count at once
            await analyser.add(_served(late, 0))
            return {
                "held_before": held_before,
                "counted": counted,
                "still_held": still_held,
                "held_after": set(analyser.held),
                "tracked": set(analyser.tracked),
                "late": analyser.tracked[late].stats["served"],
            }
        finally:
            await db[mongo.CANARIES].delete_many({"_id": {"$in": [early, late]}})
            await publisher.close()
            await client.close()

    out = stack.run(scenario())
    assert out["held_before"] == {early: 10, never: 10}
    assert out["counted"] == 11, "the held events and the one behind them all reach the aggregator"
    assert out["still_held"] == {never}, "a canary that has not appeared stays held until HOLD_SECONDS"
    assert out["held_after"] == set() and never not in out["tracked"], "then its events are dropped"
    assert out["late"] == 1
