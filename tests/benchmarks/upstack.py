"""A benchmark's stack exactly as users run it: ``modelbus up`` in a subprocess (embedded Tansu and
SecantusDB, the API process, the serving worker process and the background worker process), so the
load generator in the benchmark process does not share an interpreter with the system under test."""

from __future__ import annotations

import collections
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil

from infra.settings import Settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def modelbus_up(api_key: str, *, ready_timeout_s: float = 180, **env: str) -> Iterator[tuple[dict[str, Any], Settings]]:
    """Yields (stack.json, Settings pointing at the running servers). ``env``: extra MODELBUS_ variables."""
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        child_env = {k: v for k, v in os.environ.items() if not k.startswith("MODELBUS_")}
        child_env |= {"MODELBUS_API_KEY": api_key, "MODELBUS_LOG_LEVEL": "WARNING", **env}
        log = (Path(tmp) / "up.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "bootstrap.cli", "up", "--port", str(port), "--data-dir", str(Path(tmp) / "data")],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=child_env,
        )
        try:
            stack_file = Path(tmp) / "data" / "stack.json"
            deadline = time.monotonic() + ready_timeout_s
            while not stack_file.exists():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"modelbus up did not start: {(Path(tmp) / 'up.log').read_text()[-3000:]}")
                time.sleep(0.2)
            info = json.loads(stack_file.read_text())
            settings = Settings(
                _env_file=None,
                kafka_bootstrap=info["kafka_bootstrap"],
                mongodb_url=info["mongodb_url"],
                archive_mongodb_url=info.get("archive_mongodb_url"),
            )
            yield info, settings
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()


def stack_processes() -> dict[str, list[int]]:
    """The processes of a ``modelbus_up`` stack by part (children of this one, by command line): the API, the
    serving worker, the background worker, the broker and the databases."""
    found: dict[str, list[int]] = collections.defaultdict(list)
    for proc in psutil.Process().children(recursive=True):
        try:
            cmd = " ".join(proc.cmdline())
        except psutil.Error:
            continue
        if "bootstrap.cli" in cmd and " up " in f"{cmd} ":
            found["api"].append(proc.pid)
        elif "bootstrap.cli" in cmd and "serving" in cmd:
            found["serving"].append(proc.pid)
        elif "bootstrap.cli" in cmd and "worker" in cmd:
            found["background"].append(proc.pid)
        elif "tansu" in cmd:
            found["broker"].append(proc.pid)
        elif "secantus" in cmd.lower() or "mongo" in cmd:
            found["databases"].append(proc.pid)
    return dict(found)


def cpu_seconds(pids: dict[str, list[int]]) -> dict[str, float]:
    """User + system CPU time of each part's processes so far."""
    out = {}
    for name, group in pids.items():
        total = 0.0
        for pid in group:
            try:
                total += sum(psutil.Process(pid).cpu_times()[:2])
            except psutil.Error:
                continue
        out[name] = total
    return out
