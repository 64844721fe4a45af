"""The caller's side of request/reply when no answer comes (``producers.rpc``), on the real broker: a request
the broker acknowledged but no worker answers fails with ``RpcTimeout`` once its timeout expires (the API's 503
``WORKER_UNAVAILABLE``); one the broker never acknowledged (its topic does not exist) fails with
``BrokerUnavailable``; neither leaves a waiting call behind."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from bootstrap.stack import StackThread
from infra.kafka import make_broker
from infra.settings import Settings
from infra.topic_generations import create_topic
from producers.publisher import BrokerUnavailable, EventPublisher
from producers.rpc import RpcClient, RpcTimeout


def test_unanswered_and_unacknowledged_requests_fail_in_time(stack: StackThread, settings: Settings) -> None:
    # a topic prefix of its own: no serving worker reads these request topics
    alone = settings.model_copy(
        update={
            "topic_prefix": f"rpct{uuid.uuid4().hex[:6]}.",
            "generation_max_records": 0,
            "request_timeout_seconds": 2.0,
        }
    )

    async def scenario() -> dict[str, object]:
        await create_topic(alone, alone.topic("predict.replies"), 3)
        publisher = EventPublisher(make_broker(alone, client_id="rpc-timeout-test", with_metrics=False), alone)
        rpc = RpcClient(publisher, alone)
        try:
            await rpc.start()
            # no request topic yet: the broker never acknowledges the request
            t0 = time.monotonic()
            with pytest.raises(BrokerUnavailable):
                await rpc.call("ping", {}, key="k1", timeout_s=1.0)
            unacknowledged_s = time.monotonic() - t0
            await create_topic(alone, alone.topic("predict.requests"), 3)
            await asyncio.sleep(1.0)
            t0 = time.monotonic()
            with pytest.raises(RpcTimeout):
                await rpc.call("ping", {}, key="k2", timeout_s=1.5)
            unanswered_s = time.monotonic() - t0
            return {
                "unacknowledged_s": unacknowledged_s,
                "unanswered_s": unanswered_s,
                "pending": dict(rpc._pending),  # noqa: SLF001 - nothing may stay behind
                "reply_topics": dict(rpc._reply_topic_of),  # noqa: SLF001
            }
        finally:
            await rpc.close()
            await publisher.close()

    out = stack.run(scenario(), timeout=90)
    assert 0.9 <= out["unacknowledged_s"] < 4, out
    assert 1.4 <= out["unanswered_s"] < 4, out
    assert out["pending"] == {} and out["reply_topics"] == {}, out
