"""Projector: folds job and model events into their MongoDB read models, in batches."""

from __future__ import annotations

import logging
from typing import Any

from faststream.kafka import KafkaBroker

from consumers.deps import Deps, batch_subscriber, decode_batch
from infra.projections import apply_events, projected_types
from schemas.topics import TOPICS

log = logging.getLogger("modelbus.projector")

SERVED_TOPICS = ("predict.served",)
"""one event per prediction: RL actions are folded into ``rl_served`` by a second subscriber that polls at the
background pace and takes bigger batches, so serving traffic costs few fetches and few writes (tabular
predictions go into ``predictions`` through the canary analyser, with the canary strata)"""


def register(broker: KafkaBroker, deps: Deps) -> None:
    group = deps.settings.group("projector")
    wanted = projected_types()
    # the topics of the projections people wait on (job status, registry, deployments): every catalog topic
    # carrying a projected event type, polled every ``fetch_max_wait_ms``
    topics = [
        name for name, spec in TOPICS.items() if name not in SERVED_TOPICS and wanted.intersection(spec.payloads)
    ]

    @batch_subscriber(
        broker,
        deps,
        topics,
        group=group,
        background=False,
        title="projector",
        description="Folds job and model events into the jobs and models collections.",
    )
    async def project(records: Any) -> None:
        events = [env for _, env in await decode_batch(deps, records, group, wanted=wanted)]
        written = await apply_events(deps.db, events)
        log.debug("projected", extra={"events": len(events), "written": written})

    served_group = deps.settings.group("projector-served")

    @batch_subscriber(
        broker,
        deps,
        SERVED_TOPICS,
        group=served_group,
        background=True,
        max_records=5000,
        title="projector-served",
        description="Folds served RL actions into the rl_served collection.",
    )
    async def project_served(records: Any) -> None:
        events = [env for _, env in await decode_batch(deps, records, served_group, wanted=wanted)]
        await apply_events(deps.db, events)
