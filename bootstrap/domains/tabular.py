"""Tabular fraud/anomaly models (``/v1/ml`` training, data, registry): Isolation Forest and LightGBM."""

from __future__ import annotations

from pymongo import ASCENDING, IndexModel

from api.tabular.batch_scoring import BatchScoringController
from api.tabular.data import DataController
from api.tabular.models import ModelsController
from api.tabular.training import TrainingController
from bootstrap.domain import Domain
from consumers.hooks import TrainingHook, WorkerHook
from consumers.tabular import batch_scoring, ingest, serving, training
from infra import mongo
from schemas import data
from schemas.topics import TopicSpec

DOMAIN = Domain(
    name="tabular",
    routes=[TrainingController, DataController, ModelsController, BatchScoringController],
    workers=[
        WorkerHook("serving", serving.register),
        WorkerHook("ingest", ingest.register, prepare=ingest.prepare),
    ],
    training=TrainingHook(training.train_tabular_job, training.tabular_name, warm_up=training.warm_up),
    jobs={"score": TrainingHook(batch_scoring.score_job, warm_up=training.warm_up)},
    topics=[
        TopicSpec(
            "data.records",
            "Time-stamped transaction records: API batches (1,000 per message) and single streamed records.",
            "batch chunk or record id",
            {data.RECORDS_BATCH: data.RecordsBatch, data.RECORD: data.RecordIngested},
        ),
    ],
    indexes={
        mongo.RECORD_BLOCKS: [IndexModel([("start", ASCENDING), ("end", ASCENDING)])],
        mongo.RECORD_BLOCK_INDEX: [IndexModel([("start", ASCENDING), ("end", ASCENDING)])],
    },
)
