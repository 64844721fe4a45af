"""The canary analyser as a child process (``modelbus worker --roles analyser``) that a test or benchmark
can kill with SIGKILL, and the totals of a canary's stored strata."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pymongo

from bootstrap.workers import READY_PREFIX, settings_env
from infra import mongo
from infra.settings import Settings


class AnalyserProcess:
    def __init__(self, settings: Settings, log_path: Path) -> None:
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("MODELBUS_")} | settings_env(settings)
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 60) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bootstrap.cli", "worker", "--roles", "analyser"],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=self.log_path.open("ab"),
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline().decode(errors="replace")
            if line.startswith(READY_PREFIX):
                threading.Thread(target=self.proc.stdout.read, daemon=True).start()  # keep the pipe drained
                return
            if not line and self.proc.poll() is not None:
                break
        raise RuntimeError(f"the analyser did not start: {self.log_path.read_text()[-2000:]}")

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def strata_totals(settings: Settings, canary_id: str) -> tuple[int, int]:
    """(requests, labelled) summed over the canary's stored strata, both arms."""
    with pymongo.MongoClient(settings.mongodb_url) as client:
        docs = list(client[settings.mongodb_db][mongo.CANARY_STRATA].find({"analysis_id": canary_id}))
    requests = labelled = 0
    for doc in docs:
        for arm in ("c", "b"):
            part: dict[str, Any] = doc["counts"].get(arm, {})
            requests += part.get("requests", 0)
            labelled += sum(part.get(cell, 0) for cell in ("tn", "fn", "fp", "tp"))
    return requests, labelled
