"""Everything of ``modelbus up`` in one asyncio loop: the embedded servers (when nothing is
configured), topics, the API (uvicorn) and every consumer. ``StackThread`` runs the same in a
background thread for tests and benchmarks."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

import uvicorn

from bootstrap.domains import install
from infra import mongo
from infra.embedded import EmbeddedServers
from infra.kafka import ensure_topics
from infra.keys import ALL_SCOPES, generate_key, store_key
from infra.settings import Settings
from infra.users import DEMO_USER, create_user

log = logging.getLogger("modelbus.stack")

DEMO_KEYS = ("test-key", "your-api-key", "your-token")
"""Keys the seed documents use in their examples (curl, Python and JS clients, Bearer token).
Registered only by ``modelbus up --demo`` (what ``make run`` does), never otherwise."""


def demo_admin_key(settings: Settings) -> str:
    """The admin key of a ``--demo`` stack: generated once, kept in the data directory (``demo-admin-key``,
    mode 600) so that every start prints the same working key; only its hash goes to the database."""
    path = settings.data_dir / "demo-admin-key"
    if path.exists():
        return path.read_text().strip()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    key = generate_key()
    path.touch(mode=0o600)
    path.write_text(key + "\n")
    return key


@dataclass
class Stack:
    settings: Settings
    demo: bool = False
    with_api: bool = True
    with_consumers: bool = True
    roles: tuple[str, ...] | None = None
    announce: bool = True
    progress: Any = None
    """called with one short line per start-up stage (``modelbus up`` prints them on a terminal)"""
    generated_key: str | None = None
    demo_key: str | None = None
    servers: EmbeddedServers | None = None
    _server: uvicorn.Server | None = None
    _server_task: asyncio.Task[None] | None = None
    _consumers: Any = None
    info: dict[str, Any] = field(default_factory=dict)

    async def start(self) -> dict[str, Any]:
        settings = self.settings
        install()  # the domains' topics, read models and indexes, before any of them is created
        if settings.embedded:
            # the archive gets its own daemon only when the main database is embedded and it has no URL
            archive = not (settings.mongodb_url or settings.archive_mongodb_url)
            self.servers = EmbeddedServers(settings.data_dir, archive=archive)
            self.servers.start()  # in this thread: PR_SET_PDEATHSIG ties the children to the thread that forks
            self._stage(f"embedded servers started (kafka {self.servers.kafka_bootstrap})")
            settings = settings.model_copy(
                update={
                    "kafka_bootstrap": settings.kafka_bootstrap or self.servers.kafka_bootstrap,
                    "mongodb_url": settings.mongodb_url or self.servers.mongodb_url,
                    "archive_mongodb_url": settings.archive_mongodb_url or self.servers.archive_mongodb_url,
                    "kafka_embedded": not settings.kafka_bootstrap,  # topic generations (infra/topic_generations.py)
                }
            )
            self.settings = settings
        try:
            await self._start_parts()
        except BaseException:
            await self.stop()
            raise
        return self.info

    async def _start_parts(self) -> None:
        settings = self.settings
        await ensure_topics(settings)
        self._stage("topics in place")
        client = mongo.client(settings)
        try:
            db = client[settings.mongodb_db]
            await mongo.ensure_indexes(db)
            await self._bootstrap_key(db)
            if self.demo:
                from bootstrap.demo import load_demo

                await load_demo(db, settings)
                self._stage("demo data loaded")
        finally:
            await client.close()
        if self.with_consumers and self.roles is None and settings.worker_layout == "processes":
            from bootstrap.workers import WorkerProcesses

            self._consumers = WorkerProcesses(settings)
            await self._consumers.start()
            self._stage("workers started (serving; training, projector, archive, ingest, analyser)")
        elif self.with_consumers:
            from bootstrap.wiring import consumers as build_consumers

            self._consumers = build_consumers(settings, self.roles or None)
            await self._consumers.start()
        api_url = None
        if self.with_api:
            from bootstrap.wiring import app as create_app

            config = uvicorn.Config(
                create_app(settings),
                host=settings.host,
                port=settings.port,
                log_config=None,
                access_log=False,
                lifespan="on",
            )
            self._server = uvicorn.Server(config)
            self._server_task = asyncio.create_task(self._server.serve(), name="uvicorn")
            while not self._server.started:
                if self._server_task.done():
                    await self._server_task
                    raise RuntimeError(f"the API did not start on {settings.host}:{settings.port}")
                await asyncio.sleep(0.02)
            port = self._server.servers[0].sockets[0].getsockname()[1]
            api_url = settings.public_url or f"http://{settings.host}:{port}"
        self.info = {
            "api_url": api_url,
            "kafka_bootstrap": settings.kafka_bootstrap,
            "mongodb_url": settings.mongodb_url,
            "archive_mongodb_url": settings.archive_url,
            "embedded": self.servers is not None,
            "topic_prefix": settings.topic_prefix,
        }
        if self.demo_key:
            self.info["demo_api_key"] = self.demo_key  # the data directory holds it anyway (demo-admin-key)
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        settings.stack_file.write_text(json.dumps(self.info, indent=2))

    def _stage(self, line: str) -> None:
        if self.progress is not None:
            self.progress(line)

    async def _bootstrap_key(self, db: Any) -> None:
        if self.demo:
            self.demo_key = demo_admin_key(self.settings)
            await store_key(db, self.demo_key, name="demo admin key (--demo)", tier="enterprise", scopes=ALL_SCOPES)
            # the seed documents' literal example keys and login, so their examples run as written
            for key in DEMO_KEYS:
                await store_key(
                    db,
                    key,
                    name=f"demo example key {key!r} (only with --demo)",
                    tier="premium",
                    scopes=("read", "predict", "train", "deploy"),
                )
            if await db[mongo.USERS].count_documents({"_id": DEMO_USER[0]}) == 0:
                await create_user(db, *DEMO_USER, tier="premium", scopes=("read", "predict", "train", "deploy"))
        if self.settings.api_key:
            await store_key(db, self.settings.api_key, name="bootstrap (MODELBUS_API_KEY)")
        elif await db[mongo.API_KEYS].count_documents({"revoked": False}) == 0:
            self.generated_key = generate_key()
            await store_key(db, self.generated_key, name="bootstrap (generated)", scopes=ALL_SCOPES)

    async def stop(self) -> None:
        if self._server is not None and self._server_task is not None:
            self._server.should_exit = True
            try:
                await asyncio.wait_for(self._server_task, timeout=10)
            except (TimeoutError, asyncio.CancelledError):
                self._server_task.cancel()
        if self._consumers is not None:
            await self._consumers.stop()
        if self.servers is not None:
            await asyncio.to_thread(self.servers.stop)
        if self.settings.stack_file.exists():
            self.settings.stack_file.unlink()


class StackThread:
    """A whole stack on a background thread's event loop (tests, benchmarks)."""

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        self.stack = Stack(settings, **kwargs)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="modelbus-stack", daemon=True)
        self._thread.start()

    def start(self, timeout: float = 120) -> dict[str, Any]:
        return asyncio.run_coroutine_threadsafe(self.stack.start(), self.loop).result(timeout)

    def run(self, coro: Any, timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        try:
            self.run(self.stack.stop(), timeout=60)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
