"""What runs inside a training process: load the job's data, call the pure trainer in ``ml/``,
return the artifact and figures. Progress goes back to the parent through a queue and the
parent's cancel flag is checked at every progress step."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from consumers.hooks import Runner
from ml.base import TrainingCancelled
from schemas import jobs


def limit_threads(threads: int) -> None:
    """Pool initializer, before any numeric library is loaded: OpenMP (LightGBM, torch) uses ``threads``.
    Two OpenMP threads on a two-core machine that also runs the broker, the database and the API stall
    at every barrier when one is descheduled: measured, a LightGBM fit took 0.99 s in the pool against
    0.53 s alone; with one thread it does not stall."""
    os.environ["OMP_NUM_THREADS"] = str(threads)


def warm_up(steps: Sequence[Callable[[], Any]]) -> int:
    """Runs the domains' warm-ups (heavy imports, lazy set-up) once per pool process so the first job does not
    pay for them."""
    for step in steps:
        step()
    return os.getpid()


def run_job(
    runner: Runner, mongodb_url: str, db_name: str, command: jobs.TrainRequested, progress_q: Any, cancel: Any
) -> jobs.JobOutcome | None:
    """Runs the domain's ``runner``; returns its outcome, or None when the job was cancelled; raises on failure."""

    def report(pct: float, figures: Any) -> None:
        progress_q.put((float(pct), dict(figures)))  # first, so what was reported just before a cancel arrives
        if cancel.is_set():
            raise TrainingCancelled()

    try:
        return runner(mongodb_url, db_name, command, report)
    except TrainingCancelled:
        return None
