"""Lotto 6/45 (``/api/predictions``, ``/api/ensemble``, ``/api/statistics``): draws, statistics, generators."""

from __future__ import annotations

from pymongo import ASCENDING, IndexModel

from api.lotto import console
from api.lotto.routes import LottoController
from bootstrap.domain import Domain
from consumers.hooks import TrainingHook, WorkerHook
from consumers.lotto import projections, service
from infra import mongo
from schemas import lotto
from schemas.topics import TopicSpec

DOMAIN = Domain(
    name="lotto",
    routes=[LottoController],
    console=console.HANDLERS,
    console_nav=[("lotto", "Lotto", "/ui/lotto")],
    workers=[WorkerHook("serving", service.register)],
    training=TrainingHook(service.train_lotto, service.lotto_model_name, counter=service.counter_scope),
    projections=projections.PROJECTIONS,
    topics=[
        TopicSpec(
            "lotto.draws",
            "Lotto draws recorded (imported through the API or the synthetic demo), one event per round.",
            "round",
            {lotto.DRAW_RECORDED: lotto.DrawRecorded},
            one_partition=True,
        ),
    ],
    indexes={
        mongo.LOTTO_DRAWS: [
            IndexModel([("machine", ASCENDING), ("round", ASCENDING)]),
            IndexModel([("round", ASCENDING)]),
            IndexModel([("recorded_at", ASCENDING)]),
        ],
        mongo.LOTTO_GENERATIONS: [IndexModel([("ts", ASCENDING)], expireAfterSeconds=mongo.TELEMETRY_TTL_SECONDS)],
    },
)
