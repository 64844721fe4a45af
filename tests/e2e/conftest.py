"""Order of the end-to-end modules in a session. ``test_deploy_canary`` starts from an empty deployment
(nothing in production); a module that needs a model in production changes that for every later test, so it
runs after the others (the audit in ``tests/zz_audit`` still runs last). pytest's own order is kept
otherwise (a stable sort)."""

from __future__ import annotations

import pytest

NEEDS_PRODUCTION = frozenset({"test_canary_simulator.py"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: 2 if "zz_audit" in item.path.parts else int(item.path.name in NEEDS_PRODUCTION))
