"""Order of the end-to-end modules in a session. ``test_deploy_canary`` starts from an empty deployment
(nothing in production); a module that needs a model in production changes that for every later test, so it
runs after the others; ``test_readme_commands`` (the README's commands, which deploy, canary and roll back
as a user would) runs after those, and the audit in ``tests/zz_audit`` still runs last. pytest's own order is kept
otherwise (a stable sort)."""

from __future__ import annotations

import pytest

NEEDS_PRODUCTION = frozenset({"test_canary_simulator.py", "test_cli_client.py", "test_console_b.py"})
"""modules that need a model in production, or that add deployment steps (the CLI's ``deploy staging``) which
``test_deploy_canary``'s audit-trail assertion would see"""
RUNS_LAST = frozenset({"test_readme_commands.py"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        if "zz_audit" in item.path.parts:
            return 3
        return 2 if item.path.name in RUNS_LAST else int(item.path.name in NEEDS_PRODUCTION)

    items.sort(key=rank)
