"""Keeping the first request after a long pause fast: an API process that made no worker call for
``MODELBUS_KEEP_WARM_SECONDS`` pings the database once. Measured (docs/embedded.md): after 11 idle minutes the first
authenticated request (its API-key lookup reads the database) took 167.6 ms, its database connection having gone
cold, while the Kafka path was warm (the prediction after it took 17.6 ms: aiokafka keeps idle connections open,
``infra/kafka.py``); with a database ping a minute, 11.5 ms. The ping does not go over Kafka: a request would
switch the serving worker's idle consumer back to its busy polling for ``MODELBUS_IDLE_AFTER_SECONDS`` each
time (a fresh idle stack measured 11.3 % of a core with a Kafka ping a minute, against 7.8-9.6 % without)."""

from __future__ import annotations

import logging
import time

from pymongo.asynchronous.database import AsyncDatabase

from infra.periodic import Periodic
from producers.rpc import RpcClient

log = logging.getLogger("modelbus.keep_warm")


class KeepWarm:
    def __init__(self, rpc: RpcClient, db: AsyncDatabase, seconds: float) -> None:
        self.rpc, self.db, self.seconds = rpc, db, seconds
        self._pinged = time.monotonic()
        self._loop = Periodic("keep-warm", self.step, seconds, log=log)

    def start(self) -> None:
        if self.seconds > 0:
            self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    async def step(self) -> bool:
        """Pings the database when no worker call was made for ``seconds`` (a call uses the database too: its
        key lookup and rate-limit lease); True if it did."""
        now = time.monotonic()
        if now - max(self.rpc.last_call, self._pinged) < self.seconds:
            return False
        self._pinged = now
        await self.db.command("ping")
        return True
