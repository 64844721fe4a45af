"""Runs every consumer of this process on one FastStream broker: training worker, projector,
archive. ``modelbus up`` runs one in-process; ``modelbus worker`` runs more."""

from __future__ import annotations

import logging
import os
import socket
import time

from pymongo import AsyncMongoClient

from consumers import archive, canary_analyser, ingest, lotto, projector, rl, tabular_serving
from consumers.deps import Deps, drain
from consumers.dlq import dlq_middleware
from consumers.serving import ServingService
from consumers.training import TrainingService
from infra import mongo, records
from infra.kafka import make_broker
from infra.settings import Settings
from infra.topic_generations import Generations
from producers.publisher import EventPublisher

log = logging.getLogger("modelbus.consumers")


ALL_ROLES = ("training", "serving", "projector", "archive", "ingest", "analyser")
DRAINED_ROLES = ("projector", "archive", "ingest", "analyser")
DRAIN_SECONDS = 15.0


class Consumers:
    def __init__(self, settings: Settings, *, roles: tuple[str, ...] = ALL_ROLES) -> None:
        self.settings = settings
        self.roles = roles
        self.worker_id = f"{socket.gethostname()}-{os.getpid()}-{id(self) % 10000}"
        self.broker = make_broker(settings, client_id=f"consumers-{self.worker_id}")
        self.publisher = EventPublisher(self.broker, settings)
        self.broker.add_middleware(dlq_middleware(self.publisher, settings.group("dlq"), settings.dlq_retries))
        self.client: AsyncMongoClient = mongo.client(settings)
        self.deps = Deps(
            settings=settings, db=self.client[settings.mongodb_db], publisher=self.publisher, worker_id=self.worker_id
        )
        self.training = TrainingService(self.deps) if "training" in roles else None
        self.generations: Generations | None = None
        if "projector" in roles:
            projector.register(self.broker, self.deps)
        # the archive's own database server (the main one unless MODELBUS_ARCHIVE_MONGODB_URL says otherwise)
        self.archive_client: AsyncMongoClient | None = None
        if "archive" in roles:
            self.archive_client = mongo.client(settings, archive=True)
            archive.register(self.broker, self.deps, self.archive_client[settings.mongodb_db])
        if "ingest" in roles:
            ingest.register(self.broker, self.deps)
        if self.training:
            self.training.register(self.broker)
        self.serving = ServingService(self.deps) if "serving" in roles else None
        if self.serving:
            self.serving.register(self.broker)
            lotto.register(self.serving)
        self.rl = rl.register(self.broker, self.deps, self.serving) if self.serving else None
        self.tabular = tabular_serving.register(self.serving, self.deps) if self.serving else None
        self.analyser = canary_analyser.register(self.broker, self.deps) if "analyser" in roles else None

    async def start(self) -> None:
        await mongo.ensure_indexes(self.deps.db)
        if self.archive_client is not None:
            await mongo.ensure_archive_indexes(self.archive_client[self.settings.mongodb_db])
        if "ingest" in self.roles:  # the process that stores streamed blocks repairs their index, once
            await records.sync_block_index(self.deps.db)
        if self.training:
            await self.training.start()
        t0 = time.perf_counter()
        await self.publisher.connect(wait_s=120)  # starts the broker and every subscriber
        log.info("broker started", extra={"seconds": round(time.perf_counter() - t0, 2)})
        self.generations = Generations(self.broker, self.publisher, self.settings, self.deps.db)  # issue 16
        await self.generations.start()
        if self.rl:
            await self.rl.start()
        if self.tabular:
            await self.tabular.start()
        if self.analyser:
            await self.analyser.start()
        log.info("consumers started", extra={"worker_id": self.worker_id, "roles": list(self.roles)})

    async def stop(self) -> None:
        """Stops serving first, then lets the batch consumers handle everything already published (the embedded
        broker forgets its topics when it stops), then stops the rest."""
        if self.tabular:
            await self.tabular.stop()
        if self.rl:
            await self.rl.stop()
        await self.publisher.flush()
        if any(role in self.roles for role in DRAINED_ROLES):
            t0 = time.perf_counter()
            drained = await drain(self.broker, self.deps, timeout_s=DRAIN_SECONDS)
            log.info("consumers drained" if drained else "consumers not drained in time",
                     extra={"seconds": round(time.perf_counter() - t0, 2)})
        if self.generations is not None:
            await self.generations.stop(DRAIN_SECONDS)
        if self.analyser:
            await self.analyser.stop()
        await self.publisher.close()
        if self.training:
            await self.training.stop()
        await self.client.close()
        if self.archive_client is not None:
            await self.archive_client.close()
