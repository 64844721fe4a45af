"""Batch scoring, inside a job pool process: load the job's model (sha256 checked), read the records (a data
period's blocks in time order, or the uploaded file), score them a chunk at a time with ``ml.tabular.scoring``
(the same code online serving uses), report progress after each chunk (a cancel stops the job there), and return
the scores as JSON lines; the worker stores them in GridFS once it still holds the job's lease. A retried attempt
scores from the start, and only the completing attempt's file is stored: every record is scored once."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import numpy as np

from schemas import jobs
from schemas.batch_scoring import BatchScoringSpec

RESULTS = "scores.jsonl"
"""the job's output file (one JSON object per record, in the order read)"""


def score_job(mongodb_url: str, db_name: str, command: jobs.TrainRequested, report: Any) -> jobs.FilesOutcome:
    from bson import ObjectId
    from gridfs import GridFSBucket
    from pymongo import MongoClient

    from infra.mongo import ARTIFACT_BUCKET, MODELS
    from ml.tabular import score_files, scoring

    spec = BatchScoringSpec.model_validate(command.spec)
    t0 = time.perf_counter()
    with MongoClient(mongodb_url, tz_aware=True) as client:
        db = client[db_name]
        bucket = GridFSBucket(db, bucket_name=ARTIFACT_BUCKET)
        doc = db[MODELS].find_one({"_id": spec.model_id})
        if doc is None:
            raise ValueError(f"model {spec.model_id} is not in the registry")
        artifact = bucket.open_download_stream(ObjectId(doc["artifact_id"])).read()
        if hashlib.sha256(artifact).hexdigest() != doc["artifact_sha256"]:
            raise RuntimeError(f"artifact of {spec.model_id} does not match its sha256")
        model = scoring.load_model(doc["model_type"], artifact)
        features = list(model.feature_names)
        if spec.source == "file":
            data = bucket.open_download_stream(ObjectId(spec.input_file_id)).read()
            rows = score_files.read_rows(data, spec.input_format or "csv")
            chunks: Iterable[Chunk] = _file_chunks(rows, features, spec)
        else:
            chunks = _period_chunks(db, spec, features)
        load_s = time.perf_counter() - t0
        total = command.record_count or 0
        pacer = _Pacer(spec.max_records_per_second)
        lines: list[bytes] = []
        scored = positives = 0
        score_sum = 0.0
        score_s = 0.0
        report(0.0, {"records_scored": 0, "records_total": total, "load_seconds": round(load_s, 3)})
        for chunk in chunks:
            t1 = time.perf_counter()
            scores, labels = scoring.score(model, chunk.X)
            score_s += time.perf_counter() - t1
            lines.extend(chunk.lines(scores, labels))
            scored += len(scores)
            positives += int(labels.sum())
            score_sum += float(scores.sum())
            elapsed = time.perf_counter() - t0
            pct = min(99.9, 100.0 * scored / total) if total else 0.0
            figures = {
                "records_scored": scored,
                "records_total": total,
                "records_per_second": round(scored / elapsed, 1) if elapsed > 0 else None,
            }
            report(pct, figures)
            pacer.wait(scored, lambda pct=pct, figures=figures: report(pct, figures))
    elapsed = time.perf_counter() - t0
    body = b"".join(lines)
    metrics = {
        "records_scored": scored,
        "predicted_positives": positives,
        "predicted_positive_rate": round(positives / scored, 6) if scored else None,
        "mean_score": round(score_sum / scored, 6) if scored else None,
        "records_per_second": round(scored / elapsed, 1) if elapsed > 0 else None,
    }
    return jobs.FilesOutcome(
        model_id=spec.model_id,
        files={RESULTS: body},
        metrics=metrics,
        result={
            "records_scored": scored,
            "model_type": doc["model_type"],
            "feature_names": features,
            "timings_seconds": {
                "load": round(load_s, 3),
                "model_calls": round(score_s, 3),
                "total": round(elapsed, 3),
            },
        },
    )


class Chunk:
    """Records scored in one model call and how each becomes an output line."""

    def __init__(self, X: np.ndarray, keys: list[dict[str, Any]]) -> None:
        self.X, self.keys = X, keys

    def lines(self, scores: np.ndarray, labels: np.ndarray) -> Iterator[bytes]:
        for key, s, label in zip(self.keys, scores.tolist(), labels.tolist(), strict=True):
            yield json.dumps({**key, "score": s, "label": label}, separators=(",", ":")).encode() + b"\n"


def _period_chunks(db: Any, spec: BatchScoringSpec, features: list[str]) -> Iterator[Chunk]:
    """The period's records, block by block in time order, grouped into chunks of at least ``chunk_records``."""
    from datetime import time as dtime
    from datetime import timedelta

    from infra.mongo import RECORD_BLOCKS
    from ml.tabular.scoring import block_matrix

    assert spec.data_period is not None
    start = datetime.combine(spec.data_period.start_date, dtime.min, UTC)
    end = datetime.combine(spec.data_period.end_date, dtime.min, UTC) + timedelta(days=1)
    lo, hi = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
    parts: list[np.ndarray] = []
    keys: list[dict[str, Any]] = []
    for block in db[RECORD_BLOCKS].find({"start": {"$lt": end}, "end": {"$gte": start}}).sort("start", 1):
        positions, ts, X, labels = block_matrix(block, lo, hi, features)
        if not len(positions):
            continue
        parts.append(X)
        block_id = str(block["_id"])
        keys.extend(
            {
                "record": f"{block_id}:{p}",
                "timestamp": datetime.fromtimestamp(t / 1000, UTC).isoformat().replace("+00:00", "Z"),
                "actual_label": None if y < 0 else y,
            }
            for p, t, y in zip(positions.tolist(), ts.tolist(), labels.tolist(), strict=True)
        )
        if len(keys) >= spec.chunk_records:
            yield Chunk(np.vstack(parts), keys)
            parts, keys = [], []
    if keys:
        yield Chunk(np.vstack(parts), keys)


def _file_chunks(rows: Iterable[Any], features: list[str], spec: BatchScoringSpec) -> Iterator[Chunk]:
    """The file's rows in order, ``chunk_records`` at a time."""
    from ml.tabular.scoring import feature_matrix

    def chunk(batch: list[Any]) -> Chunk:
        keys = [{"row": r.row, "record_id": r.record_id} for r in batch]
        return Chunk(feature_matrix([r.features for r in batch], features), keys)

    batch: list[Any] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= spec.chunk_records:
            yield chunk(batch)
            batch = []
    if batch:
        yield chunk(batch)


class _Pacer:
    """Sleeps so that ``scored`` records took at least ``scored / rate`` seconds (no pacing without a rate),
    calling ``tick`` (a progress report, where a cancel is seen) at least every half second."""

    def __init__(self, rate: int | None) -> None:
        self.rate, self.t0 = rate, time.monotonic()

    def wait(self, scored: int, tick: Callable[[], None]) -> None:
        while self.rate:
            ahead = scored / self.rate - (time.monotonic() - self.t0)
            if ahead <= 0:
                return
            time.sleep(min(ahead, 0.5))
            tick()
