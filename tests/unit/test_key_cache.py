"""The API-key cache: one lookup per key at a time, a known principal served while it is refreshed, a revocation
(``clear``) never undone by a lookup that was already running."""

from __future__ import annotations

import asyncio

import pytest

from api.security import KeyCache, Principal

ALICE = Principal("k1", "alice", "free", ("read",))
ALICE_PRO = Principal("k1", "alice", "pro", ("read",))


class SlowStore:
    """A database whose lookups take ``delay_s`` and answer what ``value`` is when they finish."""

    def __init__(self, value: Principal | None, delay_s: float = 0.05) -> None:
        self.value = value
        self.delay_s = delay_s
        self.calls = 0

    async def load(self) -> Principal | None:
        self.calls += 1
        await asyncio.sleep(self.delay_s)
        return self.value


async def _many(cache: KeyCache, store: SlowStore, n: int) -> list[Principal | None]:
    return list(await asyncio.gather(*(cache.lookup("d", store.load) for _ in range(n))))


def test_requests_that_miss_together_share_one_lookup() -> None:
    async def run() -> None:
        cache, store = KeyCache(), SlowStore(ALICE)
        assert await _many(cache, store, 50) == [ALICE] * 50
        assert store.calls == 1
        assert await cache.lookup("d", store.load) == ALICE  # cached now
        assert store.calls == 1

    asyncio.run(run())


def test_a_known_principal_is_served_while_it_is_refreshed() -> None:
    async def run() -> None:
        cache, store = KeyCache(ttl_s=0.05, stale_s=10.0), SlowStore(ALICE, delay_s=0.2)
        await cache.lookup("d", store.load)
        await asyncio.sleep(0.06)  # past the ttl
        store.value = ALICE_PRO
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        assert await _many(cache, store, 20) == [ALICE] * 20  # the old answer, at once
        assert loop.time() - t0 < 0.1
        assert store.calls == 2  # one refresh for all twenty
        await asyncio.sleep(0.25)
        assert await cache.lookup("d", store.load) == ALICE_PRO

    asyncio.run(run())


def test_past_the_stale_window_and_for_unknown_keys_the_lookup_is_awaited() -> None:
    async def run() -> None:
        cache = KeyCache(ttl_s=0.02, stale_s=0.02)
        unknown = SlowStore(None)
        assert await cache.lookup("d", unknown.load) is None
        await asyncio.sleep(0.03)
        unknown.value = ALICE  # a key created meanwhile: not refused from the stale negative answer
        assert await cache.lookup("d", unknown.load) == ALICE
        await asyncio.sleep(0.05)  # past ttl + stale
        unknown.value = None  # revoked
        assert await cache.lookup("d", unknown.load) is None

    asyncio.run(run())


def test_clear_is_not_undone_by_a_running_lookup() -> None:
    async def run() -> None:
        cache, store = KeyCache(), SlowStore(ALICE, delay_s=0.1)
        running = asyncio.ensure_future(cache.lookup("d", store.load))
        await asyncio.sleep(0.02)
        cache.clear()  # the key was revoked while the lookup ran
        assert await running == ALICE  # that request got what the database said when it asked
        store.value = None
        assert await cache.lookup("d", store.load) is None  # the next one asks again
        assert store.calls == 2

    asyncio.run(run())


def test_a_failed_lookup_reaches_the_waiting_requests_and_is_not_cached() -> None:
    async def run() -> None:
        cache = KeyCache()
        calls = 0

        async def down() -> Principal | None:
            nonlocal calls
            calls += 1
            await asyncio.sleep(0.01)
            raise ConnectionError("database unreachable")

        results = await asyncio.gather(*(cache.lookup("d", down) for _ in range(5)), return_exceptions=True)
        assert all(isinstance(r, ConnectionError) for r in results) and calls == 1
        with pytest.raises(ConnectionError):
            await cache.lookup("d", down)
        assert calls == 2 and "d" not in cache.entries

    asyncio.run(run())
