"""``/ui/events``: the last messages of any catalog topic and its live tail, filtered by event type or
subject; the dead-letter topic with its error headers. ``/ui/stream/{topic}``: the server-sent-events
stream every live console page uses (one hub consumer per topic, ``api/console/hub.py``)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from aiokafka.errors import KafkaError
from litestar import Request, get
from litestar.params import Parameter
from litestar.response import ServerSentEvent, ServerSentEventMessage, Template

from api.console.hub import hub_of
from api.console.session import ConsoleSession, render
from schemas.errors import ApiError
from schemas.topics import TOPICS

RETRY_MS = 500


def matches(item: dict[str, Any], event_type: str | None, subject: str | None) -> bool:
    """``type``: exact, or a prefix ending in ``.`` / ``*`` (``modelbus.train.job.*``); ``subject``: a substring
    of the subject or the key."""
    if event_type:
        t = item.get("type") or ""
        if not (t.startswith(event_type[:-1]) if event_type.endswith("*") else t == event_type):
            return False
    if subject:
        haystack = f"{item.get('subject') or ''} {item.get('key') or ''}"
        if subject not in haystack:
            return False
    return True


def _topic(topic: str) -> str:
    if topic not in TOPICS:
        raise ApiError(
            404, "TOPIC_NOT_FOUND", f"no topic {topic!r}; the catalog has {', '.join(TOPICS)}", field="topic"
        )
    return topic


@get("/stream/{topic:str}", name="console:stream")
async def stream(
    request: Request[Any, Any, Any],
    console: ConsoleSession,
    topic: str,
    after: Annotated[int | None, Parameter(ge=0)] = None,
    event_type: Annotated[str | None, Parameter(query="type", max_length=200)] = None,
    subject: Annotated[str | None, Parameter(max_length=200)] = None,
) -> ServerSentEvent:
    """Messages of ``topic`` after sequence number ``after`` (or the browser's ``Last-Event-ID``), each SSE
    message a JSON array of decoded messages; the stream ends after ~20 s and the browser resumes."""
    hub = hub_of(request.app)
    _topic(topic)
    last_id = request.headers.get("last-event-id")
    if last_id and last_id.isdigit():
        after = int(last_id)
    start = await hub.ensure(topic)

    async def events() -> AsyncIterator[ServerSentEventMessage]:
        yield ServerSentEventMessage(event="hello", data=json.dumps({"topic": topic, "seq": start}), retry=RETRY_MS)
        async for batch in hub.stream(topic, after):
            if not batch:
                yield ServerSentEventMessage(comment="keep-alive")
                continue
            chosen = [item for item in batch if matches(item, event_type, subject)]
            # the id moves on even when the filter keeps nothing, so a reconnect does not replay the batch
            yield ServerSentEventMessage(data=json.dumps(chosen, default=str), id=str(batch[-1]["seq"]))

    return ServerSentEvent(events(), headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@get("/events", name="console:events")
async def events_page(
    request: Request[Any, Any, Any],
    console: ConsoleSession,
    topic: Annotated[str, Parameter(max_length=100)] = "train.events",
    event_type: Annotated[str | None, Parameter(query="type", max_length=200)] = None,
    subject: Annotated[str | None, Parameter(max_length=200)] = None,
    last: Annotated[int, Parameter(ge=0, le=500)] = 50,
) -> Template:
    hub = hub_of(request.app)
    _topic(topic)
    seq = await hub.try_ensure(topic)
    try:
        recent = await hub.recent(topic, last) if last and seq is not None else []
    except (KafkaError, OSError, TimeoutError):
        recent = []
    rows = [item for item in recent if matches(item, event_type, subject)]
    rows.reverse()  # newest first, as the live rows are added on top
    spec = TOPICS[topic]
    return render(
        "events.html",
        console,
        "events",
        f"Events · {topic}",
        topics=TOPICS,
        topic=topic,
        spec=spec,
        event_types=sorted(spec.payloads),
        event_type=event_type or "",
        subject=subject or "",
        last=last,
        rows=rows,
        seq=seq,
        dlq=not spec.envelope,
    )


HANDLERS = [stream, events_page]
