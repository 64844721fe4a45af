"""The one periodic background task: ``step`` every ``interval`` seconds (a number, or a function read before each
sleep) until stopped; a failing step is logged and the next one runs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any


class Periodic:
    def __init__(
        self,
        name: str,
        step: Callable[[], Awaitable[Any]],
        interval: float | Callable[[], float],
        *,
        log: logging.Logger,
        first_delay: float | None = None,
    ) -> None:
        self.name, self.step, self.log = name, step, log
        self._interval = interval if callable(interval) else (lambda: float(interval))
        self._first_delay = first_delay
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        delay = self._interval() if self._first_delay is None else self._first_delay
        while True:
            await asyncio.sleep(delay)
            try:
                await self.step()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a background loop survives a failed step; the next one retries
                self.log.exception(f"{self.name} failed")
            delay = self._interval()
