"""What a domain adds to the consumer processes, as plain data the platform reads: workers that run in a role
(serving handlers, stream consumers) and training (runner, model naming, per-episode events). The platform's
consumers (``runtime``, ``training``, ``training_runner``) take these from the composition root and import no
domain; ``bootstrap/domains`` fills them in."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from faststream.kafka import KafkaBroker
from pydantic import BaseModel

from consumers.deps import Deps
from schemas import jobs

if TYPE_CHECKING:
    from consumers.serving import ServingService


class Service(Protocol):
    """Something a worker hook returns that runs alongside the broker (background loops, caches)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass(frozen=True)
class WorkerHook:
    """Runs in every consumer process that has ``role``. ``register`` subscribes to ``broker`` and/or adds
    request kinds to ``serving`` (present when the process serves), and may return a service to start/stop."""

    role: str
    register: Callable[[KafkaBroker, Deps, ServingService | None], Service | None]
    prepare: Callable[[Deps], Awaitable[None]] | None = None
    """run once before the broker starts (e.g. repairing an index the hook's consumers rely on)"""


Report = Callable[[float, Any], None]
Runner = Callable[[str, str, jobs.TrainRequested, Report], jobs.JobOutcome]
"""(mongodb_url, db_name, command, report) -> outcome (``TrainingOutcome``: a model to register;
``FilesOutcome``: files to store), inside a training pool process; the runner reads the command's ``spec`` with
its domain's spec model. It is passed to the pool by reference (module and name), so it
must be a module-level function."""
Naming = Callable[[jobs.TrainRequested, int], tuple[str, str, str]]
"""(command, n-th model of its counter) -> (model_id, version, model_name)"""


@dataclass(frozen=True)
class EpisodeStream:
    """A runner's ``figures["episodes"]`` (one dict per episode, with an ``episode`` number) published as one
    event each on ``topic``, keyed by job and numbered attempt * ATTEMPT_STRIDE + episode."""

    topic: str
    event_type: str
    payload: type[BaseModel]


@dataclass(frozen=True)
class TrainingHook:
    """How the job platform runs one kind of a domain's jobs (``train`` or ``score``) under its lease."""

    runner: Runner
    naming: Naming | None = None
    """model naming of a runner that returns a ``TrainingOutcome`` (required for those)"""
    warm_up: Callable[[], Any] | None = None
    """run once in each training pool process at start (module-level function)"""
    counter: Callable[[jobs.TrainRequested], str] | None = None
    """what model versions count within besides the domain and the model type (e.g. the lotto machine)"""
    episodes: EpisodeStream | None = None
