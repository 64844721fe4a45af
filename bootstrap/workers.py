"""``modelbus up``'s consumer processes: the prediction workers in one child process and the
background consumers (training, projector, archive, ingest, analyser) in another, beside the API
process. Python runs one thread at a time per process; splitting the latency-critical request/reply
path from the batch consumers lets them use separate cores and keeps a projection batch or a
training job's bookkeeping from delaying a prediction reply.

Each child is ``modelbus worker --roles ...`` with the parent's settings passed as ``MODELBUS_``
variables. The parent waits for each child's ready line, forwards its output, stops the children
with SIGTERM, and the children get SIGTERM if the parent dies (PR_SET_PDEATHSIG)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from pathlib import Path

from infra.embedded import die_with_parent
from infra.settings import Settings

log = logging.getLogger("modelbus.workers")

PROCESS_GROUPS: tuple[tuple[str, ...], ...] = (
    ("serving",),
    ("training", "projector", "archive", "ingest", "analyser"),
)
"""The roles of each child process in the ``processes`` layout."""

READY_PREFIX = "modelbus worker "


def settings_env(settings: Settings) -> dict[str, str]:
    """The settings as ``MODELBUS_`` variables (what was set explicitly, plus the connection fields)."""
    env: dict[str, str] = {}
    names = set(settings.model_fields_set) | {"kafka_bootstrap", "mongodb_url", "archive_mongodb_url", "data_dir"}
    for name in names:
        value = getattr(settings, name)
        if value is None:
            continue
        if isinstance(value, str | Path):
            text = str(value)
        else:
            text = json.dumps(value)
        env[f"MODELBUS_{name.upper()}"] = text
    return env


class WorkerProcesses:
    def __init__(self, settings: Settings, groups: tuple[tuple[str, ...], ...] = PROCESS_GROUPS) -> None:
        self.settings = settings
        self.groups = groups
        self.procs: list[asyncio.subprocess.Process] = []
        self._pumps: list[asyncio.Task[None]] = []

    async def start(self, timeout_s: float = 180.0) -> None:
        env = {**os.environ, **settings_env(self.settings)}
        try:
            for roles in self.groups:
                proc = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "bootstrap.cli",
                    "worker",
                    "--roles",
                    *roles,
                    env=env,
                    stdout=asyncio.subprocess.PIPE,
                    start_new_session=True,  # a terminal's Ctrl-C reaches the parent, which stops us in order
                    preexec_fn=die_with_parent,
                )
                self.procs.append(proc)
            await asyncio.wait_for(
                asyncio.gather(*(self._ready(p, r) for p, r in zip(self.procs, self.groups, strict=True))), timeout_s
            )
        except BaseException:
            await self.stop()
            raise
        log.info("worker processes started", extra={"pids": [p.pid for p in self.procs]})

    async def _ready(self, proc: asyncio.subprocess.Process, roles: tuple[str, ...]) -> None:
        assert proc.stdout is not None
        while True:
            line = await proc.stdout.readline()
            if not line:
                raise RuntimeError(f"worker {roles} exited with code {await proc.wait()} before it was ready")
            text = line.decode(errors="replace")
            sys.stdout.write(text)
            if text.startswith(READY_PREFIX):
                break
        self._pumps.append(asyncio.create_task(self._forward(proc), name=f"worker-{proc.pid}-stdout"))

    @staticmethod
    async def _forward(proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        while line := await proc.stdout.readline():
            sys.stdout.write(line.decode(errors="replace"))

    async def stop(self, timeout_s: float = 30.0) -> None:
        """Stops the children in order (serving before the background consumers, which then drain what it
        published)."""
        for proc in self.procs:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), timeout_s)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        for task in self._pumps:
            task.cancel()
        await asyncio.gather(*self._pumps, return_exceptions=True)
        self.procs.clear()
        self._pumps.clear()
