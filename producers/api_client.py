"""An HTTP client for modelbus's API that a script can run for minutes with an ordinary key: it paces its
requests to stay within the key's tier (``X-RateLimit-Limit`` / ``-Remaining`` / ``-Reset``), waits
``Retry-After`` and tries again on 429 and 503, and turns every other non-2xx answer into one readable line
from the API's one error body ``{"status":"error","error":{"code","message","field"},...}``.

Used by the traffic simulators (``producers/canary/simulator.py``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

RETRYABLE = (429, 503)
"""answers that say "not now": wait ``Retry-After`` and send the same request again"""
DEFAULT_RETRY_AFTER_S = 1.0
MAX_CONSECUTIVE_RETRIES = 30
"""a request refused this many times in a row ends the run (each refusal has already been waited out)"""


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="allow")
    code: str
    message: str
    field: str | None = None
    retry_after_seconds: float | None = None


class ErrorBody(BaseModel):
    """The API's one error body (``api/errors.py``)."""

    model_config = ConfigDict(extra="allow")
    status: str
    error: ErrorDetail
    request_id: str | None = None


class ApiFailure(Exception):
    """The run cannot go on; ``str(exc)`` is one line a person can read."""

    def __init__(self, line: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(line)
        self.line, self.status, self.code = line, status, code


class DeadlineReached(Exception):
    """Waiting would run past the caller's deadline: to pace requests (``refusal`` None), or to retry a
    request the API refused (``refusal``: its error line and Retry-After)."""

    def __init__(self, refusal: str | None) -> None:
        super().__init__(refusal or "pacing")
        self.refusal = refusal


def error_line(method: str, path: str, resp: httpx.Response) -> str:
    """``GET /v1/ml/deploy/canary/x/status answered 404 CANARY_NOT_FOUND: no canary 'x' (field canary_id)``;
    a body that is not the API's error body is quoted (shortened) instead."""
    head = f"{method} {path} answered {resp.status_code}"
    try:
        body = ErrorBody.model_validate_json(resp.content)
    except ValidationError:
        text = " ".join(resp.text.split())[:200]
        return f"{head}: {text}" if text else head
    err = body.error
    return f"{head} {err.code}: {err.message}" + (f" (field {err.field})" if err.field else "")


def _header(resp: httpx.Response, name: str) -> float | None:
    try:
        return float(resp.headers[name])
    except (KeyError, ValueError):
        return None


class PacedClient:
    """Sends requests one at a time, spread so the key's remaining requests of the current window last until
    the window resets: with ``remaining`` left and ``reset`` seconds to go, requests are at least
    ``reset / remaining`` seconds apart, and none goes out while ``remaining`` is 0. Every wait ends by
    ``deadline`` (``time.monotonic()``) or raises ``DeadlineReached``."""

    def __init__(self, client: httpx.AsyncClient, *, deadline: float, out: Callable[[str], None] = print) -> None:
        self.client, self.deadline, self.out = client, deadline, out
        self.limit: int | None = None
        self.remaining: int | None = None
        self.reset_epoch: float | None = None
        self.last_sent = 0.0
        self.retried = 0
        """requests refused with 429/503 and sent again"""
        self.rate_limited = 0
        self.waited_s = 0.0
        """seconds spent waiting for the rate limit (pacing and Retry-After)"""

    async def request(self, method: str, path: str, *, json: Any = None) -> httpx.Response:
        """The 2xx answer; raises ``ApiFailure`` (one line) or ``DeadlineReached``."""
        for _ in range(MAX_CONSECUTIVE_RETRIES):
            await self._pace()
            self.last_sent = time.monotonic()
            try:
                resp = await self.client.request(method, path, json=json)
            except httpx.HTTPError as exc:
                raise ApiFailure(f"{method} {path} failed: cannot reach {self.client.base_url} ({exc!r})") from exc
            self._observe(resp)
            if resp.is_success:
                return resp
            if resp.status_code not in RETRYABLE:
                raise ApiFailure(error_line(method, path, resp), status=resp.status_code, code=_code(resp))
            wait = _header(resp, "Retry-After") or DEFAULT_RETRY_AFTER_S
            self.retried += 1
            if resp.status_code == 429:
                self.rate_limited += 1
                self.remaining = 0
            line = error_line(method, path, resp)
            self.out(f"{line} — waiting {wait:g} s (Retry-After), then trying again")
            await self._sleep(wait, f"{line}; Retry-After {wait:g} s")
        raise ApiFailure(f"{method} {path} was refused {MAX_CONSECUTIVE_RETRIES} times in a row (429/503)")

    async def get(self, path: str) -> httpx.Response:
        return await self.request("GET", path)

    async def post(self, path: str, json: Any) -> httpx.Response:
        return await self.request("POST", path, json=json)

    def _observe(self, resp: httpx.Response) -> None:
        limit, remaining, reset = (
            _header(resp, "X-RateLimit-Limit"),
            _header(resp, "X-RateLimit-Remaining"),
            _header(resp, "X-RateLimit-Reset"),
        )
        if limit is None or remaining is None or reset is None:
            return
        if self.limit is None:
            self.out(f"this key may send {limit:g} requests a minute: requests are paced to stay within that")
        self.limit, self.remaining, self.reset_epoch = int(limit), int(remaining), reset

    def spacing(self, now_epoch: float) -> float:
        """Seconds to leave between requests now (0 when no limit is known or the window has reset)."""
        if self.remaining is None or self.reset_epoch is None:
            return 0.0
        window_left = self.reset_epoch - now_epoch
        if window_left <= 0:
            return 0.0
        if self.remaining <= 0:
            return window_left
        return window_left / self.remaining

    async def _pace(self) -> None:
        wait = self.spacing(time.time())
        if self.remaining is not None and self.remaining <= 0:
            wait += 0.05  # past the server's window edge
        else:
            wait = max(0.0, self.last_sent + wait - time.monotonic())
        if wait > 0:
            await self._sleep(wait, None)

    async def _sleep(self, seconds: float, refusal: str | None) -> None:
        """Waits ``seconds`` (pacing, or the Retry-After of ``refusal``) unless that passes the deadline."""
        if time.monotonic() + seconds > self.deadline:
            raise DeadlineReached(refusal)
        self.waited_s += seconds
        await asyncio.sleep(seconds)


def _code(resp: httpx.Response) -> str | None:
    try:
        return ErrorBody.model_validate_json(resp.content).error.code
    except ValidationError:
        return None
