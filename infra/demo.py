"""Demo data (SYNTHETIC): labelled card transactions covering the seed's data_period
(2025-10-01 … 2025-11-15) and the 60 days ending today. Loading is idempotent.

This module and ``infra/cli.py`` / ``infra/stack.py`` are the composition root: they may
import ``ml`` and the consumers; the rest of ``infra`` imports only ``schemas``."""

from __future__ import annotations

import logging
from datetime import date, timedelta
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from infra import mongo
from infra.records import insert_records, overlapping
from infra.settings import Settings
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

    today = today or utcnow().date()
    marker = await db[mongo.COUNTERS].find_one({"_id": "demo"})
    if marker and marker.get("today") == today.isoformat():
        return {"loaded": 0, "already_loaded": True, "periods": marker["periods"]}
    loaded = 0
    periods = demo_periods(today)
    for i, (start, end) in enumerate(periods):
        # replace what an earlier demo load left in the window, so reloading never duplicates
        await db[mongo.RECORD_BLOCKS].delete_many(
            {"source": "synthetic-demo", **overlapping(_midnight(start), _midnight(end + timedelta(days=1)))}
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
    return {"loaded": loaded, "already_loaded": False, "periods": info["periods"]}


def _midnight(d: date) -> Any:
    from datetime import UTC, datetime, time

    return datetime.combine(d, time.min, UTC)
