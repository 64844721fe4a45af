"""Synthetic canary traffic for the benchmarks: served predictions and labels as a producer on
``predict.served`` / ``predict.feedback`` would send them, and a producer that sends them all."""

from __future__ import annotations

import asyncio
import random
import time
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer

from infra.settings import Settings
from ml.canary.routing import choose_arm
from schemas import deploy
from schemas.envelope import Envelope


def served_envelopes(
    canary_id: str, old: str, new: str, n: int, offset: int, seed: int
) -> list[tuple[str, str, bytes]]:
    """(topic short name, key, envelope bytes): n served predictions at 50 %, a third of them labelled."""
    rng = random.Random(seed)
    out = []
    for i in range(offset, offset + n):
        pid = f"bench-{i}"
        arm = choose_arm(pid, 50, salt=canary_id)
        now = datetime.now(UTC)
        served = deploy.PredictionServed(
            prediction_id=pid, model_id=new if arm == "canary" else old, arm=arm, canary_id=canary_id,
            percentage=50.0, score=0.5, label=rng.randrange(2), latency_ms=rng.lognormvariate(1.0, 0.3),
            served_at=now,
        )
        env = Envelope.wrap(deploy.PREDICTION_SERVED, pid, served, source="bench")
        out.append(("predict.served", pid, env.to_bytes()))
        if i % 3 == 0:
            fb = deploy.PredictionFeedback(prediction_id=pid, label=rng.randrange(2), canary_id=canary_id,
                                           received_at=now)
            out.append(("predict.feedback", pid,
                        Envelope.wrap(deploy.PREDICTION_FEEDBACK, pid, fb, source="bench").to_bytes()))
    return out


async def produce(settings: Settings, messages: list[tuple[str, str, bytes]]) -> float:
    """Sends them all (keyed by prediction id), waits for every acknowledgement; returns the seconds taken."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=5, acks="all")
    await producer.start()
    t0 = time.perf_counter()
    try:
        futures = [await producer.send(settings.topic(topic), raw, key=key.encode()) for topic, key, raw in messages]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return time.perf_counter() - t0
