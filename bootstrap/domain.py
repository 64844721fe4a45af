"""What a domain contributes to modelbus, declared in one place (``bootstrap/domains/<name>.py``): its routes,
its consumer-process workers (RPC handlers, stream consumers), its training runner and model naming, its read
models, its topics and event types, its collections' indexes. ``install`` hands the parts to the platform,
which imports no domain."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from pymongo import IndexModel

from consumers.hooks import TrainingHook, WorkerHook
from infra import mongo, projections
from infra.projections import Projection
from schemas import topics
from schemas.topics import TopicSpec


@dataclass(frozen=True)
class Domain:
    name: str
    routes: Sequence[Any] = ()
    """Litestar controllers/routers added to the one API app"""
    console: Sequence[Any] = ()
    """the domain's console pages (handlers with paths under ``/ui``, see ``api.console``)"""
    console_nav: Sequence[tuple[str, str, str]] = ()
    """(key, label, href) of the domain's console pages in the navigation"""
    workers: Sequence[WorkerHook] = ()
    training: TrainingHook | None = None
    """the runner and model naming of the domain's ``train.commands`` (``TrainRequested.domain == name``)"""
    jobs: Mapping[str, TrainingHook] = field(default_factory=dict)
    """other kinds of jobs the domain runs on the same job platform (lease, retry, cancel): kind -> runner"""
    projections: Sequence[Projection] = ()
    topics: Sequence[TopicSpec] = ()
    payloads: Mapping[str, Mapping[str, type[BaseModel]]] = field(default_factory=dict)
    """topic -> {event type: payload model}: the domain's events on topics it shares with others"""
    indexes: Mapping[str, Sequence[IndexModel]] = field(default_factory=dict)


def install(domains: Iterable[Domain]) -> None:
    """Registers every domain's topics, read models and indexes with the platform (idempotent; each process's
    entry point calls it before it builds anything)."""
    for domain in domains:
        topics.register(domain.topics, domain.payloads)
        projections.register(domain.projections)
        mongo.register_indexes(domain.indexes)


def routes(domains: Iterable[Domain]) -> list[Any]:
    return [route for domain in domains for route in domain.routes]


def console_pages(domains: Iterable[Domain]) -> list[Any]:
    return [page for domain in domains for page in domain.console]


def console_nav(domains: Iterable[Domain]) -> list[tuple[str, str, str]]:
    return [item for domain in domains for item in domain.console_nav]


def workers(domains: Iterable[Domain]) -> list[WorkerHook]:
    return [hook for domain in domains for hook in domain.workers]


def training(domains: Iterable[Domain]) -> dict[tuple[str, str], TrainingHook]:
    """(domain, job kind) -> hook: every domain's training and its other job kinds"""
    hooks: dict[tuple[str, str], TrainingHook] = {}
    for domain in domains:
        if domain.training is not None:
            hooks[(domain.name, "train")] = domain.training
        hooks |= {(domain.name, kind): hook for kind, hook in domain.jobs.items()}
    return hooks
