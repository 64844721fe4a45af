"""A librdkafka producer (confluent-kafka) driven by the asyncio event loop: ``send`` returns a future that the
broker's acknowledgement settles.

Why librdkafka: on the request/reply path every prediction sends two or three messages (the request, the reply,
the served event). An aiokafka producer builds each record batch and produce request in Python on the event loop;
librdkafka does it in its own C threads, so the loop only hands the message over (``produce`` does not block)
(issue 16; ``bench_kafka_floor``: request/reply costs 2.1 ms of CPU over aiokafka, 0.56 ms over librdkafka).

Why no thread of its own: librdkafka queues each acknowledgement (a delivery report) until someone calls
``poll``. A thread blocked in ``poll`` would be woken for every message and would then wake the loop; on this
kind of machine (a Firecracker VM) each wake of a sleeping thread costs ~20 us of CPU. Here the loop calls
``poll(0)`` itself, ``REPORT_S`` after a send while messages are outstanding: the reports of all messages sent
meanwhile are settled in one call, on the loop, with no thread woken. So an acknowledgement reaches its future up to
``REPORT_S`` late. Callers on the request/reply path therefore do not wait for it (a reply proves its request
arrived; a worker logs a reply or served event that failed) and await it only to learn of failures.

``allow.auto.create.topics`` is off: a librdkafka producer names the topics it knows in its metadata requests,
and the embedded broker (Tansu) creates a topic a metadata request names when the flag is on, which would bring
back topic generations deleted after they were drained (``infra.topic_generations``; probed by
``tests/benchmarks/probe_autocreate.py``). Off, a message to a topic that does not exist is never sent and its
future fails when ``message.timeout.ms`` expires."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

log = logging.getLogger("modelbus.kafka")

REPORT_S = 0.05
"""how long after a send the loop serves the delivery reports (again and again while messages are outstanding)"""
IDLE_POLL_S = 10.0
"""with nothing outstanding, how often the loop still polls (librdkafka's logs and errors reach Python on a poll)"""


def producer_config(bootstrap: str, client_id: str, *, linger_ms: int, timeout_ms: int, **extra: Any) -> dict[str, Any]:
    return {
        "bootstrap.servers": bootstrap,
        "client.id": client_id,
        "acks": "all",
        "linger.ms": linger_ms,
        "message.timeout.ms": timeout_ms,
        "message.max.bytes": 4 * 1024 * 1024,
        # the key -> partition mapping of Java's and aiokafka's producers (librdkafka's default hashes otherwise),
        # so an entity's messages land on one partition whichever client wrote them
        "partitioner": "murmur2_random",
        "max.in.flight.requests.per.connection": 5,
        "allow.auto.create.topics": False,
        "socket.nagle.disable": True,
        "log.connection.close": False,
        "logger": logging.getLogger("modelbus.librdkafka"),
        **extra,
    }


class LoopProducer:
    def __init__(self, config: dict[str, Any], *, error: Callable[[KafkaException], Exception] = lambda e: e) -> None:
        """``error``: what a failed acknowledgement raises, made from librdkafka's error."""
        self._producer = Producer(config)
        self._error = error
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._closed = False
        self._arm(IDLE_POLL_S)

    def send(
        self, topic: str, value: bytes, *, key: bytes | None, headers: list[tuple[str, bytes]]
    ) -> asyncio.Future[None]:
        """Hands the message to librdkafka (raises ``BufferError`` when its queue is full, ``KafkaException`` for a
        message it refuses); the future is settled with the acknowledgement, or fails with ``error(...)``, at most
        ``REPORT_S`` after librdkafka has it."""
        future: asyncio.Future[None] = self._loop.create_future()
        error = self._error

        def delivered(err: KafkaError | None, _msg: Any) -> None:
            if not future.done():
                if err is None:
                    future.set_result(None)
                else:
                    future.set_exception(error(KafkaException(err)))

        self._producer.produce(topic, value, key, headers=headers, on_delivery=delivered)
        self._arm(REPORT_S)
        return future

    def _arm(self, after_s: float) -> None:
        """A poll ``after_s`` from now, unless one is due sooner."""
        at = self._loop.time() + after_s
        if self._timer is not None:
            if self._timer_at <= at:
                return
            self._timer.cancel()
        self._timer, self._timer_at = self._loop.call_at(at, self._poll), at

    def _poll(self) -> None:
        self._timer = None
        if self._closed:
            return
        try:
            self._producer.poll(0)  # the delivery callbacks run here, on the loop
        except Exception:  # noqa: BLE001 - a failing callback must not stop the reports
            log.exception("serving delivery reports failed")
        self._arm(REPORT_S if len(self._producer) else IDLE_POLL_S)

    async def flush(self, timeout_s: float) -> None:
        """Waits until every message handed over was acknowledged or failed (at most ``timeout_s``), settling
        their futures."""
        deadline = time.monotonic() + timeout_s
        while True:
            self._producer.poll(0)
            if not len(self._producer) or time.monotonic() > deadline:
                return
            await asyncio.sleep(0.01)

    async def close(self, timeout_s: float = 10.0) -> None:
        """Sends what is still queued (at most ``timeout_s``) and stops polling."""
        if self._closed:
            return
        await self.flush(timeout_s)
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
