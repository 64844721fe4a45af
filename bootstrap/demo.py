"""Demo data (SYNTHETIC): labelled card transactions covering the seed's data_period
(2025-10-01 … 2025-11-15) and the 60 days ending today, and a 1,200-draw uniform random lotto
history (``synthetic: true`` on every draw). Loading is idempotent.

Part of the composition root (``bootstrap``), which may import every layer."""

from __future__ import annotations

import asyncio
import logging
from datetime import date, timedelta
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from bootstrap.domains import install
from infra import mongo
from infra.settings import Settings
from infra.tabular.records import delete_blocks, insert_records, overlapping
from schemas.common import utcnow

log = logging.getLogger("modelbus.demo")

SEED_PERIOD = (date(2025, 10, 1), date(2025, 11, 15))


def demo_periods(today: date) -> list[tuple[date, date]]:
    recent = (today - timedelta(days=59), today)
    if recent[0] <= SEED_PERIOD[1]:
        return [(min(SEED_PERIOD[0], recent[0]), max(SEED_PERIOD[1], recent[1]))]
    return [SEED_PERIOD, recent]


async def load_demo(db: AsyncDatabase, settings: Settings, *, today: date | None = None) -> dict[str, Any]:
    from ml.tabular.synthetic import transactions

    install()
    lotto = await load_lotto_demo(db, settings)
    today = today or utcnow().date()
    marker = await db[mongo.COUNTERS].find_one({"_id": "demo"})
    if marker and marker.get("today") == today.isoformat():
        return {"loaded": 0, "already_loaded": True, "periods": marker["periods"], "lotto": lotto}
    loaded = 0
    periods = demo_periods(today)
    for i, (start, end) in enumerate(periods):
        # replace what an earlier demo load left in the window, so reloading never duplicates
        await delete_blocks(
            db, {"source": "synthetic-demo", **overlapping(_midnight(start), _midnight(end + timedelta(days=1)))}
        )
        recs = transactions(start, end, per_day=settings.demo_records_per_day, seed=7 + i)
        loaded += await insert_records(db, recs, source="synthetic-demo")
    info = {
        "today": today.isoformat(),
        "periods": [[s.isoformat(), e.isoformat()] for s, e in periods],
        "records": loaded,
        "synthetic": True,
    }
    await db[mongo.COUNTERS].replace_one({"_id": "demo"}, {"_id": "demo", **info}, upsert=True)
    log.info("demo data loaded", extra=info)
    return {"loaded": loaded, "already_loaded": False, "periods": info["periods"], "lotto": lotto}


LOTTO_DEMO_DRAWS = 1200
LOTTO_DEMO_IMPORT_ID = "demo-synthetic"


async def load_lotto_demo(db: AsyncDatabase, settings: Settings, n: int = LOTTO_DEMO_DRAWS) -> dict[str, Any]:
    """SYNTHETIC lotto history (``ml.lotto.synthetic_history``: uniform random draws, machines at random),
    each draw marked ``synthetic: true``. Skipped when any draw is already recorded (never mixed into real
    history). The draws are published on ``lotto.draws`` like imported ones and projected at once, so the
    archive, replay and every reader see them exactly as imported draws."""
    from infra.kafka import make_broker
    from infra.projections import apply_events
    from ml.lotto.draws import synthetic_history
    from producers.publisher import EventPublisher
    from schemas.envelope import Envelope
    from schemas.lotto import DRAW_RECORDED, DrawRecorded

    existing = await db[mongo.LOTTO_DRAWS].count_documents({})
    if existing:
        return {"draws": 0, "already_loaded": True, "draws_recorded": existing}
    events = [
        Envelope.wrap(
            DRAW_RECORDED,
            str(d.round),
            DrawRecorded(
                round=d.round,
                date=d.date,
                numbers=list(d.numbers),
                bonus=d.bonus,
                machine=d.machine,
                synthetic=True,
                source="demo",
                import_id=LOTTO_DEMO_IMPORT_ID,
            ),
            source="modelbus/demo",
            sequence=1,
            correlationid=LOTTO_DEMO_IMPORT_ID,
        )
        for d in synthetic_history(n)
    ]
    publisher = EventPublisher(make_broker(settings, client_id="demo", with_metrics=False), settings)
    try:
        await publisher.connect()
        await asyncio.gather(*(publisher.publish("lotto.draws", env) for env in events))
    finally:
        await publisher.close()
    await apply_events(db, events)
    info = {"draws": len(events), "synthetic": True, "rounds": [1, n], "already_loaded": False}
    log.info("synthetic lotto history loaded", extra=info)
    return info


def _midnight(d: date) -> Any:
    from datetime import UTC, datetime, time

    return datetime.combine(d, time.min, UTC)
