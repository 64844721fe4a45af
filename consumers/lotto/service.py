"""Lotto 6/45 in the workers: serving handlers, the loaded-model cache, and the training runner.

Serving handlers (request/reply over Kafka, see ``consumers/serving.py``):

=====================  ===========================================================================
kind                   answers
=====================  ===========================================================================
lotto.parse_draws      JSON/CSV draw import parsed and validated by ``ml.lotto`` (row, field, reason)
lotto.statistics       ``GET /api/statistics/machine-analysis/{machine_type}``
lotto.backtest         ``GET /api/statistics/backtest``
lotto.generate         ``POST /api/predictions/generate``
lotto.ensemble         ``POST /api/ensemble/predictions/`` (409 when a member is not trained)
lotto.check_train      validates ``POST /api/models/train`` parameters before the job is accepted
lotto.status           loaded models, cache figures, memory (``GET /api/monitoring/health``)
=====================  ===========================================================================

Draws are read from the ``lotto_draws`` projection and kept in memory; the cache is reloaded when the
collection's document count changes (draws are only ever added: a round is recorded once). Results that
are deterministic (statistics, backtests: fixed seed) are cached per (arguments, draw count). Ensemble
members are loaded from GridFS by the newest ``models`` document of their (machine, model type) and
replaced when a newer one is registered. CPU work runs in a thread so the event loop stays responsive.

Every generation, ensemble, statistics and backtest request is written to ``lotto_generations``
(count, sets, mean confidence score, cache hit, worker time): the monitoring endpoint reads it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import psutil
from faststream.kafka import KafkaBroker
from pydantic import ValidationError

from consumers.deps import Deps
from consumers.serving import ServingService
from infra import artifacts, mongo
from schemas import jobs, lotto
from schemas.common import iso, utcnow
from schemas.envelope import Envelope
from schemas.errors import ApiError, validation_error
from schemas.lotto import MODEL_TYPES, machine_label
from schemas.rpc import NoBody

if TYPE_CHECKING:
    from ml.lotto.draws import Draw
    from ml.lotto.models import LottoModel

log = logging.getLogger("modelbus.lotto")

RESULT_CACHE_SIZE = 256
LOTTO_MODEL_MAJOR = 1


# ---------------------------------------------------------------------------------------------------------------
# draws


def draw_from_doc(doc: dict[str, Any]) -> Draw:
    """A projection document as an ``ml.lotto`` draw (already validated when it was imported)."""
    from ml.lotto.draws import Draw

    return Draw.model_construct(
        round=int(doc["round"]),
        date=dt.date.fromisoformat(doc["date"]),
        numbers=tuple(int(n) for n in doc["numbers"]),
        bonus=int(doc["bonus"]),
        machine=int(doc["machine"]),
        synthetic=bool(doc.get("synthetic", False)),
    )


_DRAW_FIELDS = {"round": 1, "date": 1, "numbers": 1, "bonus": 1, "machine": 1, "synthetic": 1}
RECONCILE_SECONDS = 30.0


class DrawStore:
    """All draws in memory, sorted by round, with a ``version`` that changes whenever they do.

    Draws are only ever added (a round is recorded once), so each request asks only for the documents
    recorded at or after the newest one held (an indexed range query: counting or sorting the collection
    costs tens of milliseconds on the embedded database). Every ``RECONCILE_SECONDS`` the count is compared
    too, and a mismatch (a draw projected with an older ``recorded_at``, a rebuilt collection) reloads all."""

    def __init__(self, db: Any) -> None:
        self.db = db
        self.version = 0
        self.draws: list[Draw] = []
        self._rounds: set[int] = set()
        self._newest: dt.datetime | None = None
        self._reconciled = float("-inf")
        self._lock = asyncio.Lock()

    async def get(self) -> tuple[int, list[Draw]]:
        async with self._lock:
            coll = self.db[mongo.LOTTO_DRAWS]
            if self._newest is None or time.monotonic() - self._reconciled > RECONCILE_SECONDS:
                if self._newest is None or await coll.count_documents({}) != len(self.draws):
                    await self._reload(await coll.find({}, _DRAW_FIELDS | {"recorded_at": 1}).to_list(None))
                self._reconciled = time.monotonic()
                return self.version, self.draws
            recent = await coll.find(
                {"recorded_at": {"$gte": self._newest}}, _DRAW_FIELDS | {"recorded_at": 1}
            ).to_list(None)
            fresh = [d for d in recent if int(d["round"]) not in self._rounds]
            if fresh:
                added = await asyncio.to_thread(lambda: [draw_from_doc(d) for d in fresh])
                self.draws = sorted([*self.draws, *added], key=lambda d: d.round)
                self._rounds.update(d.round for d in added)
                self._newest = max(self._newest, *(d["recorded_at"] for d in fresh))
                self.version += 1
            return self.version, self.draws

    async def _reload(self, docs: list[dict[str, Any]]) -> None:
        self.draws = await asyncio.to_thread(lambda: sorted((draw_from_doc(d) for d in docs), key=lambda d: d.round))
        self._rounds = {d.round for d in self.draws}
        self._newest = max((d["recorded_at"] for d in docs), default=dt.datetime.min.replace(tzinfo=dt.UTC))
        self.version += 1
        log.info("lotto draws loaded", extra={"draws": len(self.draws)})


class ResultCache:
    """LRU of deterministic results, with hit/miss counters for the monitoring endpoints."""

    def __init__(self, size: int = RESULT_CACHE_SIZE) -> None:
        self.size = size
        self.entries: OrderedDict[tuple[Any, ...], dict[str, Any]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple[Any, ...]) -> dict[str, Any] | None:
        value = self.entries.get(key)
        if value is None:
            self.misses += 1
            return None
        self.hits += 1
        self.entries.move_to_end(key)
        return value

    def put(self, key: tuple[Any, ...], value: dict[str, Any]) -> None:
        self.entries[key] = value
        self.entries.move_to_end(key)
        while len(self.entries) > self.size:
            self.entries.popitem(last=False)

    def figures(self) -> dict[str, Any]:
        total = self.hits + self.misses
        return {
            "hits": self.hits,
            "misses": self.misses,
            "hit_rate": round(self.hits / total, 4) if total else None,
            "entries": len(self.entries),
            "max_entries": self.size,
        }


def _models_module() -> Any:
    """``ml.lotto.models`` (imports torch and scikit-learn: seconds the first time)."""
    import ml.lotto.models

    return ml.lotto.models


def _preload() -> None:
    try:
        import ml.lotto.ensemble  # noqa: F401

        _models_module()
    except Exception:  # noqa: BLE001 - the handlers will import again and report the error
        log.exception("preloading ml.lotto models failed")


# ---------------------------------------------------------------------------------------------------------------
# serving


class LoadedModel:
    def __init__(self, doc: dict[str, Any], model: LottoModel) -> None:
        self.model_id: str = doc["model_id"]
        self.model_name: str = doc.get("model_name", doc["model_id"])
        self.model_type: str = doc["model_type"]
        self.machine: int = int(doc["lineage"]["machine"])
        self.metrics: dict[str, Any] = doc.get("metrics", {})
        self.trained_at = doc.get("trained_at")
        self.loaded_at = utcnow()
        self.model = model


class LottoServing:
    """The lotto handlers of one serving worker."""

    def __init__(self, serving: ServingService) -> None:
        self.deps = serving.deps
        self.db = serving.deps.db
        self.store = DrawStore(self.db)
        self.cache = ResultCache()
        self.models: dict[tuple[int, str], LoadedModel] = {}
        self.stackers: dict[tuple[str, ...], Any] = {}
        self.last_prediction: dt.datetime | None = None
        self._model_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        serving.add(lotto.LOTTO_STATISTICS, self.statistics)
        serving.add(lotto.LOTTO_BACKTEST, self.backtest)
        serving.add(lotto.LOTTO_GENERATE, self.generate)
        serving.add(lotto.LOTTO_ENSEMBLE, self.ensemble)
        serving.add(lotto.LOTTO_STATUS, self.status)

    # -- helpers ------------------------------------------------------------------------------------------------
    def _record(self, doc: dict[str, Any]) -> None:
        """One line in ``lotto_generations`` (what GET /api/monitoring/metrics aggregates); never blocks a reply."""
        doc = {"ts": utcnow(), "worker_id": self.deps.worker_id, **doc}
        task = asyncio.create_task(self._insert(doc))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _insert(self, doc: dict[str, Any]) -> None:
        try:
            await self.db[mongo.LOTTO_GENERATIONS].insert_one(doc)
        except Exception:  # noqa: BLE001 - telemetry must not break serving
            log.warning("could not record a lotto serving event", exc_info=True)

    @staticmethod
    def _no_draws(exc: Exception) -> ApiError:
        return ApiError(404, "NO_DRAW_DATA", str(exc), field="machine_type")

    async def _cached(self, key: tuple[Any, ...], compute: Callable[[], dict[str, Any]]) -> tuple[dict[str, Any], bool]:
        hit = self.cache.get(key)
        if hit is not None:
            return hit, True
        value = await asyncio.to_thread(compute)
        self.cache.put(key, value)
        return value, False

    # -- handlers -----------------------------------------------------------------------------------------------
    async def statistics(self, body: lotto.StatisticsBody, env: Envelope) -> lotto.LottoMachineAnalysis:
        from ml.lotto.backtest import machine_statistics
        from ml.lotto.draws import draws_for_machine
        from ml.lotto.statistics import EmptyHistoryError

        t0 = time.perf_counter()
        machine, rounds = body.machine, body.rounds
        version, draws = await self.store.get()

        def compute() -> dict[str, Any]:
            result = machine_statistics(draws, machine, rounds)
            window = draws_for_machine(draws, machine)[-rounds:]
            synthetic = sum(1 for d in window if d.synthetic)
            result["data_source"] = {
                "draws_analysed": len(window),
                "synthetic_draws": synthetic,
                "real_draws": len(window) - synthetic,
                "note": (
                    "SYNTHETIC demo history (uniform random, not real results) is part of this window"
                    if synthetic
                    else "imported draws"
                ),
            }
            return result

        try:
            result, hit = await self._cached(("statistics", machine, rounds, version), compute)
        except EmptyHistoryError as exc:
            raise self._no_draws(exc) from exc
        self._record(
            {
                "kind": "statistics",
                "machine": machine,
                "cache_lookup": 1,
                "cache_hit": int(hit),
                "handled_ms": round((time.perf_counter() - t0) * 1000, 3),
            }
        )
        return lotto.LottoMachineAnalysis.model_validate(result)

    async def backtest(self, body: lotto.BacktestBody, env: Envelope) -> lotto.LottoBacktest:
        from ml.lotto.backtest import backtest
        from ml.lotto.statistics import EmptyHistoryError

        t0 = time.perf_counter()
        machine = body.machine
        args = body.model_dump(exclude={"machine"})
        version, draws = await self.store.get()

        def compute() -> dict[str, Any]:
            result = backtest(draws, machine, rng=0, **args).model_dump(mode="json")
            result["analysis_window"] = args["analysis_window"]
            result["method"] = (
                "rolling origin: for each of the machine's last `rounds` draws, sets are generated from the "
                "machine's earlier draws only and matched against that draw (bonus ignored); 95% intervals: "
                "Student t over per-draw means, Wilson on the effective sample size for the 3+ rate"
            )
            result["note"] = "Draws are uniform random: every honest generator should match the random baseline."
            return result

        try:
            result, hit = await self._cached(("backtest", machine, *args.values(), version), compute)
        except EmptyHistoryError as exc:
            raise self._no_draws(exc) from exc
        except (ValueError, ValidationError) as exc:
            if isinstance(exc, ValidationError):
                raise validation_error(exc) from exc
            raise ApiError(422, "VALIDATION_ERROR", str(exc)) from exc
        self._record(
            {
                "kind": "backtest",
                "machine": machine,
                "algorithm": args["algorithm"],
                "cache_lookup": 1,
                "cache_hit": int(hit),
                "backtest": 1,
                "prediction_accuracy": round(result["mean_matches"] / 6, 4),
                "mean_matches": result["mean_matches"],
                "handled_ms": round((time.perf_counter() - t0) * 1000, 3),
            }
        )
        return lotto.LottoBacktest.model_validate(result)

    async def generate(self, body: lotto.GenerateBody, env: Envelope) -> lotto.GeneratedSets:
        from ml.lotto.generators import generate_sets
        from ml.lotto.statistics import EmptyHistoryError

        t0 = time.perf_counter()
        machine = body.machine
        _, draws = await self.store.get()
        try:
            result = await asyncio.to_thread(
                generate_sets,
                draws,
                machine,
                sets_count=body.sets_count,
                algorithm=body.algorithm,
                analysis_window=body.analysis_window,
            )
        except EmptyHistoryError as exc:
            raise self._no_draws(exc) from exc
        except ValidationError as exc:
            raise validation_error(exc) from exc
        out = result.model_dump(mode="json")
        self._served("generate", machine, out["metadata"]["algorithm"], out["predictions"], t0)
        return lotto.GeneratedSets.model_validate(out)

    def _served(self, kind: str, machine: int, algorithm: str, sets: list[dict[str, Any]], t0: float) -> None:
        scores = [float(s["confidence_score"]) for s in sets]
        self.last_prediction = utcnow()
        self._record(
            {
                "kind": kind,
                "machine": machine,
                "algorithm": algorithm,
                "sets": len(sets),
                "confidence_sum": round(sum(scores), 6),
                "mean_confidence": round(sum(scores) / len(scores), 6) if scores else None,
                "handled_ms": round((time.perf_counter() - t0) * 1000, 3),
            }
        )

    async def _latest_models(self, machine: int, names: Sequence[str]) -> dict[str, dict[str, Any]]:
        latest: dict[str, dict[str, Any]] = {}
        cursor = (
            self.db[mongo.MODELS]
            .find(
                {
                    "domain": "lotto",
                    "model_type": {"$in": list(names)},
                    "lineage.machine": machine,
                    "status": {"$nin": ["archived", "rolled_back"]},
                }
            )
            .sort("trained_at", -1)
        )
        async for doc in cursor:
            latest.setdefault(doc["model_type"], doc)
        return latest

    async def _load(self, doc: dict[str, Any]) -> LoadedModel:
        data = await artifacts.model_artifact(self.db, doc)
        model = await asyncio.to_thread(lambda: _models_module().load_model(data))
        log.info("lotto model loaded", extra={"model_id": doc["model_id"]})
        return LoadedModel(doc, model)

    async def members(self, machine: int, names: Sequence[str]) -> dict[str, LoadedModel]:
        """The newest registered model of each name for the machine (loaded once; replaced when a newer one
        appears). Raises 409 naming what to train."""
        latest = await self._latest_models(machine, names)
        missing = [n for n in names if n not in latest]
        if missing:
            running = (
                await self.db[mongo.JOBS]
                .find(
                    {
                        "domain": "lotto",
                        "model_type": {"$in": missing},
                        "spec.machine": machine,
                        "status": {"$in": ["started", "running"]},
                    },
                    {"job_id": 1, "model_type": 1, "status": 1},
                )
                .to_list(None)
            )
            label = machine_label(machine)
            requests = [{"machine_type": label, "model_type": n} for n in missing]
            raise ApiError(
                409,
                "MODEL_NOT_TRAINED",
                f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not trained for {label} yet: "
                + "; ".join(
                    f'POST /api/models/train {{"machine_type": "{label}", "model_type": "{n}"}}' for n in missing
                )
                + (f" (in progress: {', '.join(j['job_id'] for j in running)})" if running else ""),
                field="models",
                missing_models=missing,
                train_requests=requests,
                jobs_in_progress=[
                    {"job_id": j["job_id"], "model_type": j["model_type"], "status": j["status"]} for j in running
                ],
            )
        async with self._model_lock:
            for name, doc in latest.items():
                current = self.models.get((machine, name))
                if current is None or current.model_id != doc["model_id"]:
                    self.models[(machine, name)] = await self._load(doc)
        return {n: self.models[(machine, n)] for n in names}

    async def ensemble(self, body: lotto.EnsembleBody, env: Envelope) -> lotto.GeneratedSets:
        t0 = time.perf_counter()
        machine = body.machine
        names = [n for n in body.models if n in MODEL_TYPES]
        loaded = await self.members(machine, names)
        _, draws = await self.store.get()
        method = body.ensemble_method
        stacker = None
        if method == "stacking":
            key = tuple(loaded[n].model_id for n in names)
            stacker = self.stackers.get(key)
            if stacker is None:
                from ml.lotto.ensemble import StackingCombiner

                try:
                    stacker = await asyncio.to_thread(
                        lambda: StackingCombiner().fit({n: loaded[n].model for n in names})
                    )
                except ValueError as exc:
                    raise ApiError(
                        409, "STACKING_UNAVAILABLE", f"{exc}: retrain the members on the same draws", field="models"
                    ) from exc
                self.stackers[key] = stacker

        def run() -> dict[str, Any]:
            from ml.lotto.ensemble import ensemble_predict

            result = ensemble_predict(
                {n: loaded[n].model for n in names},
                draws,
                machine,
                sets_count=body.sets_count,
                method=method,
                model_names=names,
                confidence_threshold=body.confidence_threshold,
                stacker=stacker,
            )
            return result.model_dump(mode="json")

        try:
            out = await asyncio.to_thread(run)
        except ValidationError as exc:
            raise validation_error(exc) from exc
        out["metadata"]["model_ids"] = {n: loaded[n].model_id for n in names}
        out["metadata"]["model_names"] = {n: loaded[n].model_name for n in names}
        self._served("ensemble", machine, out["metadata"]["algorithm"], out["predictions"], t0)
        return lotto.GeneratedSets.model_validate(out)

    async def status(self, body: NoBody, env: Envelope) -> lotto.LottoWorkerStatus:
        loaded = sorted(self.models.values(), key=lambda m: (m.machine, m.model_type))
        process = psutil.Process(os.getpid())
        return lotto.LottoWorkerStatus(**{
            "worker_id": self.deps.worker_id,
            "models_loaded": sorted({machine_label(m.machine) for m in loaded}),
            "models": [
                {
                    "machine_type": machine_label(m.machine),
                    "model_type": m.model_type,
                    "model_id": m.model_id,
                    "model_name": m.model_name,
                    "loaded_at": iso(m.loaded_at),
                }
                for m in loaded
            ],
            "memory_usage_mb": round(process.memory_info().rss / 2**20, 1),
            "last_prediction": iso(self.last_prediction) if self.last_prediction else None,
            "draws_in_memory": len(self.store.draws),
            "cache": self.cache.figures(),
        })


def register(broker: KafkaBroker, deps: Deps, serving: ServingService | None) -> None:
    """Adds the lotto handlers to a serving worker and starts importing torch/scikit-learn in the background
    (so the first ensemble or training request does not pay for it)."""
    assert serving is not None, "the lotto handlers run in the serving role"
    threading.Thread(target=_preload, name="lotto-preload", daemon=True).start()
    LottoServing(serving)


# ---------------------------------------------------------------------------------------------------------------
# training (runs in a training pool process; see consumers/training_runner.py)


def lotto_model_name(cmd: jobs.TrainRequested, n: int) -> tuple[str, str, str]:
    """``lotto_<model>_m<machine>_v1.N.0`` / ``1.N.0`` / ``pytorch_transformer 1호기 v1.N.0`` (N counts per
    machine and model type)."""
    machine = lotto.LottoJobSpec.model_validate(cmd.spec).machine
    version = f"{LOTTO_MODEL_MAJOR}.{n}.0"
    return (
        f"lotto_{cmd.model_type}_m{machine}_v{version}",
        version,
        f"{cmd.model_type} {machine_label(machine)} v{version}",
    )


def train_lotto(mongodb_url: str, db_name: str, command: jobs.TrainRequested, report: Any) -> jobs.TrainingOutcome:
    """Fits one ensemble member on one machine's draws (runner for domain "lotto")."""
    import numpy as np
    import sklearn
    from pymongo import MongoClient

    models = _models_module()
    spec = lotto.LottoJobSpec.model_validate(command.spec)
    machine = spec.machine
    parameters = {**spec.parameters, "machine": machine}
    t0 = time.perf_counter()
    with MongoClient(mongodb_url, tz_aware=True) as client:
        docs = list(client[db_name][mongo.LOTTO_DRAWS].find({"machine": machine}, _DRAW_FIELDS).sort("round", 1))
    draws = [draw_from_doc(d) for d in docs]
    load_s = time.perf_counter() - t0
    synthetic = sum(1 for d in draws if d.synthetic)
    report(0.0, {"draws": len(draws), "load_seconds": round(load_s, 3)})
    model = models.create_model(command.model_type, parameters)
    t1 = time.perf_counter()
    model.fit(draws, progress=report)
    fit_s = time.perf_counter() - t1
    artifact = model.to_bytes()
    metrics = {k: float(v) for k, v in model.metrics.items()}
    within = (
        metrics["holdout_mean_hits_top6_ci95_low"]
        <= metrics["holdout_mean_hits_top6_random_baseline"]
        <= metrics["holdout_mean_hits_top6_ci95_high"]
    )
    holdout = {
        "rounds": [model.holdout_rounds[0], model.holdout_rounds[-1]] if model.holdout_rounds else None,
        "draws": len(model.holdout_rounds),
        "fraction": model.params.holdout_fraction,
        "log_loss": metrics["holdout_log_loss"],
        "mean_hits_top6": metrics["holdout_mean_hits_top6"],
        "mean_hits_top6_ci95": [
            metrics["holdout_mean_hits_top6_ci95_low"],
            metrics["holdout_mean_hits_top6_ci95_high"],
        ],
    }
    baseline = {
        "log_loss": metrics["holdout_log_loss_random_baseline"],
        "mean_hits_top6": metrics["holdout_mean_hits_top6_random_baseline"],
        "description": "constant 6/45 predictor / uniformly random set: draws are uniform random",
    }
    versions = {"numpy": np.__version__, "sklearn": sklearn.__version__}
    if command.model_type == "pytorch_transformer":
        import torch

        versions["torch"] = torch.__version__
    first, last = (draws[0].round, draws[-1].round) if draws else (None, None)
    return jobs.TrainingOutcome(**{
        "artifact": artifact,
        "sha256": hashlib.sha256(artifact).hexdigest(),
        "metrics": metrics,
        "result": {
            "machine_type": machine_label(machine),
            "draws": len(draws),
            "synthetic_draws": synthetic,
            "holdout": holdout,
            "baseline": baseline,
            "baseline_within_ci": within,
            "confidence_evidence": model.evidence().model_dump(mode="json"),
            "timings_seconds": {"load": round(load_s, 3), "fit_and_evaluate": round(fit_s, 3)},
        },
        "lineage": {
            "machine": machine,
            "machine_type": machine_label(machine),
            "dataset": {
                "collection": mongo.LOTTO_DRAWS,
                "draws": len(draws),
                "synthetic_draws": synthetic,
                "first_round": first,
                "last_round": last,
            },
            "hyperparameters": model.params.model_dump(mode="json"),
            "library_versions": versions,
            "holdout": holdout,
        },
    })


def counter_scope(cmd: jobs.TrainRequested) -> str:
    """Lotto model versions count per machine."""
    return str(lotto.LottoJobSpec.model_validate(cmd.spec).machine)
