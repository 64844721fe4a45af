"""api.keep_warm against the session's real database: the API pings it only after ``seconds`` without a worker
call or a ping (what is sent is seen by a pymongo command listener on the real server's connection)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from pymongo import AsyncMongoClient, monitoring

from api.keep_warm import KeepWarm
from bootstrap.stack import StackThread
from infra.settings import Settings


class Commands(monitoring.CommandListener):
    def __init__(self) -> None:
        self.names: list[str] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.names.append(event.command_name)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


class LastCall:
    """What KeepWarm reads of the request/reply client: when the last worker call was made."""

    def __init__(self) -> None:
        self.last_call = time.monotonic()


async def _scenario(settings: Settings) -> dict[str, Any]:
    listener = Commands()
    client: AsyncMongoClient[Any] = AsyncMongoClient(str(settings.mongodb_url), event_listeners=[listener])
    try:
        rpc = LastCall()
        warm = KeepWarm(rpc, client[settings.mongodb_db], seconds=60)  # type: ignore[arg-type]
        out = {"recent_call": await warm.step()}
        rpc.last_call -= 61
        warm._pinged -= 61
        out["quiet"] = await warm.step()
        out["just_pinged"] = await warm.step()
        warm._pinged -= 61
        rpc.last_call = time.monotonic()
        out["call_since"] = await warm.step()
        out["pings"] = listener.names.count("ping")
        off = KeepWarm(rpc, client[settings.mongodb_db], seconds=0)  # type: ignore[arg-type]
        off.start()
        out["off_running"] = off._loop.running
        return out
    finally:
        await client.close()


def test_pings_the_database_only_after_a_quiet_interval(stack: StackThread, settings: Settings) -> None:
    out = asyncio.run(_scenario(settings))
    assert out["recent_call"] is False  # a worker call just now: nothing to keep warm
    assert out["quiet"] is True and out["just_pinged"] is False  # one ping, then another interval
    assert out["call_since"] is False  # a worker call since the ping: no ping needed
    assert out["pings"] == 1
    assert out["off_running"] is False  # 0 disables
