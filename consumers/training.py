"""Training worker: runs train commands in a process pool under a MongoDB lease.

* A job is claimed with a lease (owner, attempt, expiry) before any work; a repeated or
  older command for the same job cannot claim it again.
* While the job runs, the worker heartbeats the lease, forwards throttled progress events and
  passes a cancel request (seen on the job projection) to the training process.
* Every worker sweeps for expired leases: the job of a dead worker is published again with
  the next attempt number, or failed with the reason after ``job_max_attempts``.
* Completion is compare-and-set on the lease, so a job completes (and registers a model) once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import multiprocessing
import time
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import timedelta
from typing import Any

from bson import ObjectId
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from consumers import training_runner
from consumers.deps import Deps
from consumers.hooks import TrainingHook
from infra import artifacts, mongo
from infra.periodic import Periodic
from schemas import jobs
from schemas.common import utcnow
from schemas.envelope import Envelope

log = logging.getLogger("modelbus.training")

FINAL_STEP = jobs.ATTEMPT_STRIDE - 1
CANCEL_POLL_SECONDS = 0.1
"""how often a running job's cancel flag is read from the job projection"""
MAX_DRAIN = 1000
"""progress reports read per loop turn while the job runs"""
def holdout_predictions_filename(model_id: str) -> str:
    """GridFS name (``artifacts`` bucket) of a model's per-record hold-out predictions; the artifact is ``model_id``."""
    return f"{model_id}.holdout"


def counter_key(cmd: jobs.TrainRequested, scope: str | None) -> str:
    return f"model:{cmd.domain}:{cmd.model_type}" + (f":{scope}" if scope else "")


class LeaseLost(RuntimeError):
    """Another worker took the job over (our lease expired)."""


class JobEvents:
    """Numbers a job attempt's events so projections keep them in order (see infra/projections)."""

    def __init__(self, deps: Deps, cause: Envelope, job_id: str, attempt: int) -> None:
        self.deps, self.cause, self.job_id, self.attempt = deps, cause, job_id, attempt
        self.step = 0

    async def emit(
        self, type_: str, payload: jobs.Payload, *, final: bool = False, topic: str = "train.events"
    ) -> None:
        self.step += 1
        seq = self.attempt * jobs.ATTEMPT_STRIDE + (FINAL_STEP if final else self.step)
        env = Envelope.wrap(
            type_, self.job_id, payload, source=f"modelbus/worker/{self.deps.worker_id}", sequence=seq, cause=self.cause
        )
        await self.deps.publisher.publish(topic, env, key=self.job_id)


class TrainingService:
    def __init__(self, deps: Deps, hooks: Mapping[tuple[str, str], TrainingHook]) -> None:
        self.deps = deps
        self.hooks = dict(hooks)
        """(domain, job kind) -> its runner, model naming, warm-up and episode stream"""
        self.settings = deps.settings
        self.db: AsyncDatabase = deps.db
        self._ctx = multiprocessing.get_context("spawn")
        self._manager: Any = None
        self._pool: ProcessPoolExecutor | None = None
        self._slots = asyncio.Semaphore(self.settings.train_processes)
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper = Periodic("lease-sweeper", self.sweep, max(0.5, self.settings.job_lease_seconds / 3), log=log)

    # lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        self._manager = self._ctx.Manager()
        self._new_pool()
        self._sweeper.start()

    def _new_pool(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = ProcessPoolExecutor(
            self.settings.train_processes,
            mp_context=self._ctx,
            initializer=training_runner.limit_threads,
            initargs=(self.settings.train_threads_effective,),
        )
        warm_ups = list(dict.fromkeys(hook.warm_up for hook in self.hooks.values() if hook.warm_up is not None))
        for _ in range(self.settings.train_processes):
            self._pool.submit(training_runner.warm_up, warm_ups)

    async def stop(self) -> None:
        await self._sweeper.stop()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._pool:
            self._pool.shutdown(wait=False, cancel_futures=True)
            for proc in list((getattr(self._pool, "_processes", None) or {}).values()):
                with contextlib.suppress(Exception):
                    proc.terminate()
        if self._manager:
            self._manager.shutdown()

    def register(self, broker: KafkaBroker) -> None:
        @broker.subscriber(
            self.settings.topic("train.commands"),
            group_id=self.settings.group("training"),
            auto_offset_reset="earliest",
            fetch_max_wait_ms=self.settings.background_fetch_max_wait_ms,
            ack_policy=AckPolicy.ACK,  # commit after the lease is held: a crash before that redelivers
            max_poll_interval_ms=3_600_000,
            decoder=self.deps.raw_decoder,
            title="training",
            description="Claims train commands under a lease and runs them in the process pool.",
        )
        async def on_train_command(body: bytes) -> None:
            await self.handle(Envelope.from_bytes(body))

    # command handling ----------------------------------------------------------------------
    async def handle(self, env: Envelope) -> None:
        if env.type != jobs.TRAIN_REQUESTED:
            return
        cmd = env.payload(jobs.TrainRequested)
        job = await self.db[mongo.JOBS].find_one({"_id": cmd.job_id})
        if job is not None and job["status"] in jobs.TERMINAL:
            log.info("skip finished job", extra={"job_id": cmd.job_id, "status": job["status"]})
            return
        await self._slots.acquire()
        try:
            if not await self._claim(cmd, env):
                self._slots.release()
                return
        except BaseException:
            self._slots.release()
            raise
        events = JobEvents(self.deps, env, cmd.job_id, cmd.attempt)
        if job is not None and job.get("cancel_requested"):
            await self._finish(
                cmd, events, jobs.JOB_CANCELLED, jobs.JobCancelled(job_id=cmd.job_id, attempt=cmd.attempt)
            )
            self._slots.release()
            return
        await events.emit(
            jobs.JOB_RUNNING, jobs.JobRunning(job_id=cmd.job_id, attempt=cmd.attempt, worker_id=self.deps.worker_id)
        )
        task = asyncio.create_task(self._run(cmd, events), name=f"job-{cmd.job_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _claim(self, cmd: jobs.TrainRequested, env: Envelope) -> bool:
        now = utcnow()
        try:
            await self.db[mongo.LEASES].find_one_and_update(
                {"_id": cmd.job_id, "attempt": {"$lt": cmd.attempt}},
                {
                    "$set": {
                        "owner": self.deps.worker_id,
                        "attempt": cmd.attempt,
                        "state": "active",
                        "claimed_at": now,
                        "expires_at": now + timedelta(seconds=self.settings.job_lease_seconds),
                        "command": env.model_dump(mode="json"),
                    }
                },
                upsert=True,
            )
        except DuplicateKeyError:
            log.info("job already claimed", extra={"job_id": cmd.job_id, "attempt": cmd.attempt})
            return False
        log.info("job claimed", extra={"job_id": cmd.job_id, "attempt": cmd.attempt, "worker": self.deps.worker_id})
        return True

    def _lease_filter(self, cmd: jobs.TrainRequested) -> dict[str, Any]:
        return {"_id": cmd.job_id, "owner": self.deps.worker_id, "attempt": cmd.attempt, "state": "active"}

    async def _heartbeat(self, cmd: jobs.TrainRequested) -> bool:
        result = await self.db[mongo.LEASES].update_one(
            self._lease_filter(cmd),
            {"$set": {"expires_at": utcnow() + timedelta(seconds=self.settings.job_lease_seconds)}},
        )
        return result.matched_count == 1

    async def _finish(self, cmd: jobs.TrainRequested, events: JobEvents, type_: str, payload: jobs.Payload) -> bool:
        """Compare-and-set the lease to done, then publish the terminal event. False = lease lost."""
        done = await self.db[mongo.LEASES].find_one_and_update(
            self._lease_filter(cmd), {"$set": {"state": "done", "finished_at": utcnow()}}
        )
        if done is None:
            log.warning("lease lost before finishing; result dropped", extra={"job_id": cmd.job_id})
            return False
        await events.emit(type_, payload, final=True)
        return True

    # running -------------------------------------------------------------------------------
    async def _run(self, cmd: jobs.TrainRequested, events: JobEvents) -> None:
        try:
            outcome = await self._supervise(cmd, events)
            if outcome is None:
                await self._finish(
                    cmd, events, jobs.JOB_CANCELLED, jobs.JobCancelled(job_id=cmd.job_id, attempt=cmd.attempt)
                )
            else:
                await self._complete(cmd, events, outcome)
        except LeaseLost:
            log.warning("lease lost while running; stopped", extra={"job_id": cmd.job_id})
        except asyncio.CancelledError:
            raise
        except BrokenProcessPool as exc:
            self._new_pool()
            await self._fail_or_retry(cmd, events, f"training process died: {exc}")
        except Exception as exc:  # noqa: BLE001 - a failed job is an event, not a crashed worker
            log.exception("job failed", extra={"job_id": cmd.job_id})
            deterministic = exc.__class__.__name__ in {"TrainingDataError", "ValidationError", "ValueError"}
            await self._fail_or_retry(cmd, events, f"{exc.__class__.__name__}: {exc}", final=deterministic)
        finally:
            self._slots.release()

    async def _supervise(self, cmd: jobs.TrainRequested, events: JobEvents) -> jobs.JobOutcome | None:
        assert self._pool is not None and self._manager is not None
        progress_q = self._manager.Queue()
        cancel = self._manager.Event()
        future = asyncio.wrap_future(
            self._pool.submit(
                training_runner.run_job,
                self._hook(cmd).runner,
                self.settings.mongodb_url,
                self.settings.mongodb_db,
                cmd,
                progress_q,
                cancel,
            )
        )
        beat_every = self.settings.job_lease_seconds / 3
        last_beat = last_progress = last_cancel_check = time.monotonic()
        latest: tuple[float, dict[str, Any]] | None = None
        while True:
            done, _ = await asyncio.wait({future}, timeout=CANCEL_POLL_SECONDS)
            episodes: list[Any] = []
            drained = 0  # bounded while running, so heartbeats and cancel checks keep their pace
            while not progress_q.empty() and (done or drained < MAX_DRAIN):
                latest = progress_q.get_nowait()
                drained += 1
                episodes.extend(latest[1].pop("episodes", None) or ())
            if episodes:
                await self._publish_episodes(cmd, events, episodes)
            now = time.monotonic()
            if latest is not None and (now - last_progress >= self.settings.progress_interval_seconds or done):
                if not done:
                    await events.emit(
                        jobs.JOB_PROGRESS,
                        jobs.JobProgress(job_id=cmd.job_id, attempt=cmd.attempt, progress=latest[0], figures=latest[1]),
                    )
                latest, last_progress = None, now
            if done:
                return future.result()
            if now - last_beat >= beat_every:
                last_beat = now
                if not await self._heartbeat(cmd):
                    cancel.set()
                    raise LeaseLost(cmd.job_id)
            if now - last_cancel_check >= CANCEL_POLL_SECONDS:
                last_cancel_check = now
                job = await self.db[mongo.JOBS].find_one({"_id": cmd.job_id}, {"cancel_requested": 1})
                if job and job.get("cancel_requested"):
                    cancel.set()

    async def _publish_episodes(self, cmd: jobs.TrainRequested, events: JobEvents, episodes: list[Any]) -> None:
        """A runner's ``figures["episodes"]`` -> one event each on the domain's episode stream (see
        ``consumers.hooks.EpisodeStream``)."""
        stream = self._hook(cmd).episodes
        if stream is None:
            return
        envelopes = []
        for figures in episodes:
            payload = stream.payload.model_validate({**figures, "job_id": cmd.job_id, "attempt": cmd.attempt})
            envelopes.append(
                Envelope.wrap(
                    stream.event_type,
                    cmd.job_id,
                    payload,
                    source=f"modelbus/worker/{self.deps.worker_id}",
                    sequence=cmd.attempt * jobs.ATTEMPT_STRIDE + int(figures["episode"]),
                    cause=events.cause,
                )
            )
        # each episode is its own projected document, so the sends may complete in any order
        for i in range(0, len(envelopes), 200):
            await asyncio.gather(
                *(self.deps.publisher.publish(stream.topic, env, key=cmd.job_id) for env in envelopes[i : i + 200])
            )

    async def _complete(self, cmd: jobs.TrainRequested, events: JobEvents, outcome: jobs.JobOutcome) -> None:
        if isinstance(outcome, jobs.FilesOutcome):
            await self._complete_files(cmd, events, outcome)
            return
        if not isinstance(outcome, jobs.TrainingOutcome):
            raise TypeError(f"a job runner returned {type(outcome).__name__}")
        artifact = outcome.artifact
        sha = hashlib.sha256(artifact).hexdigest()
        if sha != outcome.sha256:
            raise RuntimeError("artifact checksum mismatch between training process and worker")
        # the lease must still be ours before anything is registered
        if not await self._heartbeat(cmd):
            raise LeaseLost(cmd.job_id)
        model_id, version, model_name = await self._next_version(cmd)
        artifact_id = await artifacts.store(
            self.db, model_id, artifact, {"sha256": sha, "job_id": cmd.job_id, "model_type": cmd.model_type}
        )
        stored = [artifact_id]
        holdout_id = None
        if outcome.holdout_predictions is not None:
            holdout_id = await artifacts.store(
                self.db,
                holdout_predictions_filename(model_id),
                outcome.holdout_predictions,
                {"kind": "holdout_predictions", "job_id": cmd.job_id, "model_id": model_id},
            )
            stored.append(holdout_id)
        registered = jobs.ModelRegistered(
            model_id=model_id,
            model_name=model_name,
            domain=cmd.domain,
            model_type=cmd.model_type,
            version=version,
            metrics=outcome.metrics,
            lineage={
                "job_id": cmd.job_id,
                "attempt": cmd.attempt,
                **outcome.lineage,
                "artifact_sha256": sha,
                "artifact_bytes": len(artifact),
            },
            artifact_id=str(artifact_id),
            artifact_sha256=sha,
            artifact_bytes=len(artifact),
            holdout_predictions_id=str(holdout_id) if holdout_id is not None else None,
            trained_at=utcnow(),
        )
        done = await self.db[mongo.LEASES].find_one_and_update(
            self._lease_filter(cmd), {"$set": {"state": "done", "finished_at": utcnow(), "model_id": model_id}}
        )
        if done is None:
            for file_id in stored:
                await artifacts.delete(self.db, file_id)
            raise LeaseLost(cmd.job_id)
        model_env = Envelope.wrap(
            jobs.MODEL_REGISTERED,
            model_id,
            registered,
            source=f"modelbus/worker/{self.deps.worker_id}",
            sequence=1,
            cause=events.cause,
        )
        await self.deps.publisher.publish("model.events", model_env, key=model_id)
        await events.emit(
            jobs.JOB_COMPLETED,
            jobs.JobCompleted(
                job_id=cmd.job_id,
                attempt=cmd.attempt,
                model_id=model_id,
                metrics=outcome.metrics,
                result=outcome.result,
            ),
            final=True,
        )
        log.info("job completed", extra={"job_id": cmd.job_id, "model_id": model_id})

    async def _complete_files(self, cmd: jobs.TrainRequested, events: JobEvents, outcome: jobs.FilesOutcome) -> None:
        """Stores the files of a job that used a model (batch scores) while the lease is still ours, then
        completes the job once (compare-and-set on the lease; a lost lease deletes what was stored)."""
        if not await self._heartbeat(cmd):
            raise LeaseLost(cmd.job_id)
        stored: dict[str, dict[str, Any]] = {}
        for name, data in outcome.files.items():
            file_id = await artifacts.store(
                self.db,
                f"{cmd.job_id}.{name}",
                data,
                {"kind": "job_output", "job_id": cmd.job_id, "attempt": cmd.attempt, "model_id": outcome.model_id},
            )
            stored[name] = {"file_id": str(file_id), "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        done = await self.db[mongo.LEASES].find_one_and_update(
            self._lease_filter(cmd), {"$set": {"state": "done", "finished_at": utcnow(), "model_id": outcome.model_id}}
        )
        if done is None:
            for entry in stored.values():
                await artifacts.delete(self.db, ObjectId(entry["file_id"]))
            raise LeaseLost(cmd.job_id)
        await events.emit(
            jobs.JOB_COMPLETED,
            jobs.JobCompleted(
                job_id=cmd.job_id,
                attempt=cmd.attempt,
                model_id=outcome.model_id,
                metrics=outcome.metrics,
                result={**outcome.result, "files": stored},
            ),
            final=True,
        )
        log.info("job completed", extra={"job_id": cmd.job_id, "model_id": outcome.model_id, "files": list(stored)})

    async def _next_version(self, cmd: jobs.TrainRequested) -> tuple[str, str, str]:
        hook = self._hook(cmd)
        if hook.naming is None:
            raise TypeError(f"the {cmd.domain} {cmd.kind} runner returned a model but has no model naming")
        key = counter_key(cmd, hook.counter(cmd) if hook.counter else None)
        counter = await self.db[mongo.COUNTERS].find_one_and_update(
            {"_id": key}, {"$inc": {"seq": 1}}, upsert=True, return_document=ReturnDocument.AFTER
        )
        return hook.naming(cmd, int(counter["seq"]))

    def _hook(self, cmd: jobs.TrainRequested) -> TrainingHook:
        hook = self.hooks.get((cmd.domain, cmd.kind))
        if hook is None:
            raise ValueError(f"no {cmd.kind!r} jobs in domain {cmd.domain!r}")
        return hook

    async def _fail_or_retry(
        self, cmd: jobs.TrainRequested, events: JobEvents, reason: str, *, final: bool = False
    ) -> None:
        if final or cmd.attempt >= self.settings.job_max_attempts:
            await self._finish(
                cmd, events, jobs.JOB_FAILED, jobs.JobFailed(job_id=cmd.job_id, attempt=cmd.attempt, reason=reason)
            )
            return
        released = await self.db[mongo.LEASES].find_one_and_update(
            self._lease_filter(cmd), {"$set": {"state": "failed", "finished_at": utcnow()}}
        )
        if released is not None:
            await self._publish_retry(cmd, reason, cause=events.cause)

    async def _publish_retry(self, cmd: jobs.TrainRequested, reason: str, *, cause: Envelope | None) -> None:
        retry = cmd.model_copy(update={"attempt": cmd.attempt + 1})
        payload = jobs.TrainRequested.model_validate(retry.model_dump(mode="json") | {"retry_reason": reason})
        env = Envelope.wrap(
            jobs.TRAIN_REQUESTED,
            cmd.job_id,
            payload,
            source=f"modelbus/worker/{self.deps.worker_id}",
            sequence=retry.attempt * jobs.ATTEMPT_STRIDE,
            cause=cause,
        )
        await self.deps.publisher.publish("train.commands", env, key=cmd.job_id)
        log.warning("job retried", extra={"job_id": cmd.job_id, "attempt": retry.attempt, "reason": reason})

    # lease sweeper -------------------------------------------------------------------------
    async def sweep(self) -> int:
        """Takes over the jobs whose worker stopped heartbeating. Returns how many."""
        now = utcnow()
        handled = 0
        async for lease in self.db[mongo.LEASES].find({"state": "active", "expires_at": {"$lt": now}}):
            won = await self.db[mongo.LEASES].find_one_and_update(
                {"_id": lease["_id"], "attempt": lease["attempt"], "state": "active", "expires_at": {"$lt": now}},
                {"$set": {"state": "expired", "expired_seen_by": self.deps.worker_id}},
            )
            if won is None:
                continue
            handled += 1
            cause = Envelope.model_validate(lease["command"])
            cmd = cause.payload(jobs.TrainRequested)
            reason = f"worker {lease['owner']} stopped heartbeating (lease expired) during attempt {cmd.attempt}"
            if cmd.attempt >= self.settings.job_max_attempts:
                events = JobEvents(self.deps, cause, cmd.job_id, cmd.attempt)
                await events.emit(
                    jobs.JOB_FAILED,
                    jobs.JobFailed(job_id=cmd.job_id, attempt=cmd.attempt, reason=reason + "; no attempts left"),
                    final=True,
                )
            else:
                await self._publish_retry(cmd, reason, cause=cause)
        return handled
