"""``--demo`` (what ``make run`` does) gives one admin key that works for every README example: all scopes,
the enterprise tier, the same key at every start (kept in the data directory, only its hash in MongoDB),
written to ``stack.json`` for the CLI."""

from __future__ import annotations

import json

import httpx

from bootstrap.stack import StackThread, demo_admin_key
from infra.keys import ALL_SCOPES, hash_key


def test_the_demo_admin_key_works_everywhere_and_survives_restarts(stack: StackThread, base_url: str, db) -> None:
    key = stack.stack.demo_key
    assert key and key.startswith("mb_")
    settings = stack.stack.settings
    assert demo_admin_key(settings) == key  # what the next start prints
    assert (settings.data_dir / "demo-admin-key").stat().st_mode & 0o077 == 0
    assert json.loads(settings.stack_file.read_text())["demo_api_key"] == key
    stored = db["api_keys"].find_one({"hash": hash_key(key)})
    assert stored is not None and stored["tier"] == "enterprise" and tuple(stored["scopes"]) == ALL_SCOPES
    assert db["api_keys"].count_documents({"hash": key}) == 0  # never the key itself
    with httpx.Client(base_url=base_url, headers={"X-API-Key": key}, timeout=30) as client:
        for path in ("/v1/ml/models", "/v1/ml/deploy/current", "/api/v1/models", "/auth/keys"):
            assert client.get(path).status_code == 200, path
