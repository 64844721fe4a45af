"""A stack of its own for the contract tests (the schema fuzzer and the generated client): fuzzing trains,
deploys and rolls back at random, which would disturb the shared session stack the other e2e modules read.
Started once per module that uses the ``contract_stack`` fixture (``from tests.e2e.contract_stack import
contract_stack``), with the settings of ``tests/integration/test_canary_restart.py`` (small demo data, one
training process, consumers inline, rate limits off)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bootstrap.stack import StackThread
from tests.integration.test_canary_restart import small_stack_settings


@pytest.fixture(scope="module")
def contract_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackThread]:
    settings = small_stack_settings(tmp_path_factory.mktemp("contract"), "contract").model_copy(
        # the fuzzer asks for the largest documented lotto backtests while training runs beside them on two
        # shared cores: give the serving worker 25 s (not 10) before the API answers 503 WORKER_UNAVAILABLE
        update={"request_timeout_seconds": 25.0}
    )
    assert not settings.rate_limits_enabled
    thread = StackThread(settings, demo=True)
    thread.start()
    try:
        yield thread
    finally:
        thread.stop()


@pytest.fixture(scope="module")
def contract_url(contract_stack: StackThread) -> str:
    return str(contract_stack.stack.info["api_url"])
