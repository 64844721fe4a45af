"""``kill -9`` of the canary analyser's worker loses nothing and counts nothing twice.

The stack runs every role but the analyser in this process (embedded Tansu + SecantusDB under a data
directory of its own); the analyser is ``modelbus worker --roles analyser`` in a subprocess. Predictions and
labels go through the API while the analyser is killed with SIGKILL twice (between its MongoDB transaction
and its offset commit, or anywhere else); after the last restart, the stored strata hold exactly one request
per prediction served and one labelled prediction per label sent, and the status says the same."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bootstrap.stack import StackThread
from bootstrap.wiring import ALL_ROLES
from infra.settings import Settings
from tests.analyser_process import AnalyserProcess, strata_totals
from tests.conftest import TEST_KEY, wait_for
from tests.integration.test_canary_restart import counted, label, predict, small_stack_settings, start_canary


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[StackThread, Settings, Path]]:
    data_dir: Path = tmp_path_factory.mktemp("kill9")
    settings = small_stack_settings(data_dir, "kill9")
    thread = StackThread(settings, demo=True, roles=tuple(r for r in ALL_ROLES if r != "analyser"))
    thread.start()
    try:
        yield thread, thread.stack.settings, data_dir
    finally:
        thread.stop()


def test_kill_9_of_the_analyser_loses_nothing(stack: tuple[StackThread, Settings, Path]) -> None:
    thread, settings, data_dir = stack
    api = httpx.Client(base_url=thread.stack.info["api_url"], headers={"X-API-Key": TEST_KEY}, timeout=30)
    analyser = AnalyserProcess(settings, data_dir / "analyser.log")
    analyser.start()
    try:
        canary_id, served = start_canary(api)

        # traffic in three rounds; the analyser is killed while each of the first two is being folded
        labelled_sent = 0
        for round_no, start in enumerate((1, 2001, 4001)):
            batch = predict(api, start, 2000)
            served += batch
            label(api, batch[::2])
            labelled_sent += len(batch[::2])
            if round_no < 2:
                time.sleep(0.3 + 0.4 * round_no)  # mid-stream: some of the round folded, some not
                analyser.kill9()
                analyser.start()
        want = (len(served), labelled_sent)
        wait_for(lambda: strata_totals(settings, canary_id) == want, timeout=90,
                 what=f"strata to hold {want} (now {strata_totals(settings, canary_id)})")
        time.sleep(3)  # three more windows: nothing is folded twice
        assert strata_totals(settings, canary_id) == want
        wait_for(lambda: counted(api, canary_id) == want, timeout=30, what="status to count everything")
        evidence = api.get(f"/v1/ml/deploy/canary/{canary_id}/status").json()["evidence"]
        assert evidence["labels_without_prediction"] == 0, evidence
    finally:
        analyser.stop()
