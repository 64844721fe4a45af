"""api.keep_warm: an API process pings the database only after ``seconds`` without a worker call or a ping."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from api.keep_warm import KeepWarm


class FakeRpc:
    def __init__(self) -> None:
        self.last_call = time.monotonic()


class FakeDb:
    def __init__(self) -> None:
        self.commands: list[str] = []

    async def command(self, name: str) -> dict[str, Any]:
        self.commands.append(name)
        return {"ok": 1}


def test_pings_only_after_a_quiet_interval() -> None:
    rpc, db = FakeRpc(), FakeDb()
    warm = KeepWarm(rpc, db, seconds=60)  # type: ignore[arg-type]
    assert asyncio.run(warm.step()) is False and db.commands == []
    rpc.last_call -= 61
    warm._pinged -= 61
    assert asyncio.run(warm.step()) is True and db.commands == ["ping"]
    assert asyncio.run(warm.step()) is False  # pinged just now: the next one waits another interval
    warm._pinged -= 61
    rpc.last_call = time.monotonic()  # a worker call since: no ping needed
    assert asyncio.run(warm.step()) is False and db.commands == ["ping"]


def test_zero_disables() -> None:
    off = KeepWarm(FakeRpc(), FakeDb(), seconds=0)  # type: ignore[arg-type]
    off.start()
    assert not off._loop.running
