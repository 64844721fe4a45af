"""api.keep_warm: an API process pings over Kafka and the database only after ``seconds`` without a worker call."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from api.keep_warm import KeepWarm
from producers.rpc import RpcTimeout


class FakeRpc:
    def __init__(self, fail: bool = False) -> None:
        self.last_call = time.monotonic()
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.fail = fail

    async def call(self, kind: str, body: dict[str, Any], *, key: str, timeout_s: float | None = None) -> None:
        self.last_call = time.monotonic()
        self.calls.append((kind, body))
        if self.fail:
            raise RpcTimeout("nobody")


class FakeDb:
    def __init__(self) -> None:
        self.commands: list[str] = []

    async def command(self, name: str) -> dict[str, Any]:
        self.commands.append(name)
        return {"ok": 1}


def test_pings_only_after_a_quiet_interval() -> None:
    rpc, db = FakeRpc(), FakeDb()
    warm = KeepWarm(rpc, db, seconds=60)  # type: ignore[arg-type]
    assert asyncio.run(warm.step()) is False and rpc.calls == [] and db.commands == []
    rpc.last_call -= 61
    assert asyncio.run(warm.step()) is True
    assert rpc.calls == [("ping", {})] and db.commands == ["ping"]
    assert asyncio.run(warm.step()) is False  # the ping was a call: the next one waits another interval


def test_a_missing_worker_is_not_an_error_and_zero_disables() -> None:
    rpc, db = FakeRpc(fail=True), FakeDb()
    rpc.last_call -= 120
    assert asyncio.run(KeepWarm(rpc, db, seconds=60).step()) is True  # type: ignore[arg-type]
    off = KeepWarm(FakeRpc(), FakeDb(), seconds=0)  # type: ignore[arg-type]
    off.start()
    assert not off._loop.running
