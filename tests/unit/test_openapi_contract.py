"""Every operation documents its answer: the 2xx JSON body of each route in ``/openapi.json`` is a declared
model (a ``$ref``, or a list of them), so a generated client gets types for every call. Built from the app
itself, without servers."""

from __future__ import annotations

from typing import Any

from bootstrap.wiring import app as create_app
from infra.settings import Settings


def _typed(schema: dict[str, Any] | None) -> bool:
    if not schema:
        return False
    if "$ref" in schema:
        return True
    if schema.get("type") == "array":
        return _typed(schema.get("items"))
    return any(_typed(s) for s in schema.get("oneOf", []) + schema.get("anyOf", []))


def test_every_json_answer_is_a_declared_model() -> None:
    spec = create_app(Settings(_env_file=None)).openapi_schema.to_schema()
    untyped = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for code, response in operation.get("responses", {}).items():
                if not code.startswith("2") or code == "204":
                    continue
                content = response.get("content") or {}
                if "application/json" not in content:
                    continue  # text/plain (metrics), HTML (docs), files
                if not _typed(content["application/json"].get("schema")):
                    untyped.append(f"{method.upper()} {path} {code}")
    assert not untyped, f"{len(untyped)} operations without a declared response model: {untyped}"
