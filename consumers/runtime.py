"""Runs every consumer of this process on one FastStream broker: training worker, projector,
archive. ``modelbus up`` runs one in-process; ``modelbus worker`` runs more."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Mapping, Sequence

from pymongo import AsyncMongoClient

from consumers import archive, projector
from consumers.deps import Deps, drain
from consumers.dlq import dlq_middleware
from consumers.hooks import Service, TrainingHook, WorkerHook
from consumers.serving import ServingService
from consumers.training import TrainingService
from infra import mongo
from infra.kafka import make_broker
from infra.settings import Settings
from infra.topic_generations import Generations
from producers.publisher import EventPublisher

log = logging.getLogger("modelbus.consumers")


PLATFORM_ROLES = ("training", "serving", "projector", "archive")
"""the platform's roles; the domains' worker hooks add theirs (``all_roles``)"""
UNDRAINED_ROLES = ("training", "serving")
"""every other role is a batch consumer whose published input is handled before a stop (``drain``)"""
DRAIN_SECONDS = 15.0


def all_roles(workers: Sequence[WorkerHook]) -> tuple[str, ...]:
    return tuple(dict.fromkeys([*PLATFORM_ROLES, *(hook.role for hook in workers)]))


class Consumers:
    """The consumers of one process: the platform's (training, serving, projector, archive) and the domains'
    ``workers`` for the process's ``roles``; ``training`` maps each (domain, job kind) to its runner and naming."""

    def __init__(
        self,
        settings: Settings,
        *,
        workers: Sequence[WorkerHook],
        training: Mapping[tuple[str, str], TrainingHook],
        roles: tuple[str, ...] | None = None,
    ) -> None:
        self.settings = settings
        self.roles = roles if roles is not None else all_roles(workers)
        self.worker_id = f"{socket.gethostname()}-{os.getpid()}-{id(self) % 10000}"
        self.broker = make_broker(settings, client_id=f"consumers-{self.worker_id}")
        self.publisher = EventPublisher(self.broker, settings)
        self.broker.add_middleware(dlq_middleware(self.publisher, settings.group("dlq"), settings.dlq_retries))
        self.client: AsyncMongoClient = mongo.client(settings)
        self.deps = Deps(
            settings=settings, db=self.client[settings.mongodb_db], publisher=self.publisher, worker_id=self.worker_id
        )
        self.training = TrainingService(self.deps, training) if "training" in self.roles else None
        self.generations: Generations | None = None
        if "projector" in self.roles:
            projector.register(self.broker, self.deps)
        # the archive's own database server (the main one unless MODELBUS_ARCHIVE_MONGODB_URL says otherwise)
        self.archive_client: AsyncMongoClient | None = None
        if "archive" in self.roles:
            self.archive_client = mongo.client(settings, archive=True)
            archive.register(self.broker, self.deps, self.archive_client[settings.mongodb_db])
        if self.training:
            self.training.register(self.broker)
        self.serving = ServingService(self.deps) if "serving" in self.roles else None
        self.request_reader = self.serving.reader() if self.serving else None
        self.hooks = [hook for hook in workers if hook.role in self.roles]
        self.services: list[tuple[str, Service]] = []
        for hook in self.hooks:
            service = hook.register(self.broker, self.deps, self.serving)
            if service is not None:
                self.services.append((hook.role, service))

    async def start(self) -> None:
        await mongo.ensure_indexes(self.deps.db)
        if self.archive_client is not None:
            await mongo.ensure_archive_indexes(self.archive_client[self.settings.mongodb_db])
        for hook in self.hooks:
            if hook.prepare is not None:
                await hook.prepare(self.deps)
        if self.training:
            await self.training.start()
        t0 = time.perf_counter()
        # starts the broker and every subscriber; the request reader joins its group meanwhile (~5 s on Tansu)
        await asyncio.gather(
            self.publisher.connect(wait_s=120), *([self.request_reader.start()] if self.request_reader else [])
        )
        log.info("broker started", extra={"seconds": round(time.perf_counter() - t0, 2)})
        readers = [self.request_reader] if self.request_reader else []
        self.generations = Generations(self.broker, self.publisher, self.settings, self.deps.db, readers)  # issue 16
        await self.generations.start()
        for _, service in self.services:
            await service.start()
        log.info("consumers started", extra={"worker_id": self.worker_id, "roles": list(self.roles)})

    async def stop(self) -> None:
        """Stops serving first, then lets the batch consumers handle everything already published (the embedded
        broker forgets its topics when it stops), then stops the rest."""
        if self.request_reader is not None:
            await self.request_reader.stop()
        for role, service in self.services:
            if role in UNDRAINED_ROLES:
                await service.stop()
        await self.publisher.flush()
        if any(role not in UNDRAINED_ROLES for role in self.roles):
            t0 = time.perf_counter()
            drained = await drain(self.broker, self.deps, timeout_s=DRAIN_SECONDS)
            log.info("consumers drained" if drained else "consumers not drained in time",
                     extra={"seconds": round(time.perf_counter() - t0, 2)})
        if self.generations is not None:
            await self.generations.stop(DRAIN_SECONDS)
        for role, service in self.services:
            if role not in UNDRAINED_ROLES:
                await service.stop()
        await self.publisher.close()
        if self.training:
            await self.training.stop()
        await self.client.close()
        if self.archive_client is not None:
            await self.archive_client.close()
