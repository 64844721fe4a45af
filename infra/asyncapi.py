"""The AsyncAPI 3.0 document, built from the topic catalog (so the API, which never imports
the consumers, can serve it): one channel per topic with its payload schemas."""

from __future__ import annotations

from typing import Any

from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI
from pydantic import BaseModel, create_model

from infra.settings import Settings
from schemas.envelope import Envelope, Payload
from schemas.topics import TOPICS


def _message_model(topic: str, payloads: dict[str, type[BaseModel]]) -> type[BaseModel]:
    if not payloads:
        return Envelope if TOPICS[topic].envelope else Payload
    fields: dict[str, Any] = {
        event_type.removeprefix("modelbus.").replace(".", "_"): (model | None, None)
        for event_type, model in payloads.items()
    }
    return create_model(f"{topic.replace('.', '_')}_data", __base__=Payload, **fields)


def build_document(settings: Settings) -> Any:
    broker = KafkaBroker(settings.kafka_bootstrap or "localhost:9092", description="modelbus event topics")
    for short, spec in TOPICS.items():
        types = ", ".join(f"`{t}`" for t in spec.payloads) or "see description"
        broker.publisher(
            settings.topic(short),
            title=settings.topic(short),
            description=f"{spec.description} Key: {spec.key}. Envelope: CloudEvents 1.0 (JSON); event types: {types}."
            if spec.envelope
            else f"{spec.description} Key: {spec.key}.",
            schema=_message_model(short, spec.payloads),
        )
    return AsyncAPI(
        broker, title="modelbus events", version="1.0.0", description="Every command and event modelbus puts on Kafka."
    ).to_specification()


def asyncapi_json(settings: Settings) -> str:
    return build_document(settings).to_json()


def asyncapi_html(settings: Settings) -> str:
    from faststream.specification.asyncapi import get_asyncapi_html

    return get_asyncapi_html(build_document(settings), try_it_out_path=None)
