"""Projector: folds job and model events into their MongoDB read models, in batches."""

from __future__ import annotations

import logging
from typing import Any

from faststream.kafka import KafkaBroker

from consumers.deps import Deps, batch_subscriber, decode_batch
from infra.projections import PROJECTED_TYPES, apply_events

log = logging.getLogger("modelbus.projector")

TOPICS = (
    "train.commands",
    "train.events",
    "model.events",
    "lotto.draws",
    "rl.episodes",
    "deploy.commands",
    "deploy.events",
    "canary.metrics",
    "canary.recommendations",
)
"""topics of the projections people wait on (job status, registry, deployments): polled every
``fetch_max_wait_ms``"""

SERVED_TOPICS = ("predict.served",)
"""one event per prediction: RL actions are folded into ``rl_served`` by a second subscriber that polls at the
background pace and takes bigger batches, so serving traffic costs few fetches and few writes (tabular
predictions go into ``predictions`` through the canary analyser, with the canary strata)"""


def register(broker: KafkaBroker, deps: Deps) -> None:
    group = deps.settings.group("projector")

    @batch_subscriber(
        broker,
        deps,
        TOPICS,
        group=group,
        background=False,
        title="projector",
        description="Folds job and model events into the jobs and models collections.",
    )
    async def project(records: Any) -> None:
        events = [env for _, env in await decode_batch(deps, records, group, wanted=PROJECTED_TYPES)]
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
        events = [env for _, env in await decode_batch(deps, records, served_group, wanted=PROJECTED_TYPES)]
        await apply_events(deps.db, events)
