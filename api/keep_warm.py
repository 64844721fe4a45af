"""Keeping the first request after a long pause fast: an API process that made no worker call for
``MODELBUS_KEEP_WARM_SECONDS`` pings a serving worker over Kafka request/reply and the database once. A prediction
crosses the API's producer, the serving worker's consumer and reply producer, the API's reply reader and the
API's database connections (key lookup, rate-limit lease); a broker or database closes a connection idle for
long enough (Kafka's ``connections.max.idle.ms`` is 10 minutes), and the first request after that paid for
reconnecting each of them. One ping a minute keeps them open and costs nothing measurable."""

from __future__ import annotations

import logging
import time

from pymongo.asynchronous.database import AsyncDatabase

from infra.periodic import Periodic
from producers.rpc import RpcClient, RpcTimeout
from schemas.rpc import PING

log = logging.getLogger("modelbus.keep_warm")

PING_TIMEOUT_SECONDS = 5.0


class KeepWarm:
    def __init__(self, rpc: RpcClient, db: AsyncDatabase, seconds: float) -> None:
        self.rpc, self.db, self.seconds = rpc, db, seconds
        self._loop = Periodic("keep-warm", self.step, seconds, log=log)

    def start(self) -> None:
        if self.seconds > 0:
            self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    async def step(self) -> bool:
        """Pings when no call was made for ``seconds``; True if it did."""
        if time.monotonic() - self.rpc.last_call < self.seconds:
            return False
        await self.db.command("ping")
        try:
            await self.rpc.call(PING.name, {}, key="keep-warm", timeout_s=PING_TIMEOUT_SECONDS)
        except RpcTimeout:
            log.info("keep-warm ping: no serving worker answered")
        return True
