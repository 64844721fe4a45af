"""POST /v1/ml/models/compare with uncertainty, on the real stack: models trained on the same data are
compared paired on their shared hold-out records; a winner is named only when the f1 difference is
conclusive; different hold-outs are said to be different and compared unpaired."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import SEED_TRAIN_BODY, wait_job

BAGGED = {"max_depth": 7, "learning_rate": 0.1, "n_estimators": 100, "subsample": 0.8, "colsample_bytree": 0.8}
"""with bagging the seed changes the trees (without it LightGBM is deterministic and the seed changes nothing)"""


def _train(api: httpx.Client, **changes: Any) -> str:
    resp = api.post("/v1/ml/train", json=SEED_TRAIN_BODY | changes)
    assert resp.status_code == 202, resp.text
    return str(resp.json()["job_id"])


@pytest.fixture(scope="module")
def models(api: httpx.Client) -> dict[str, str]:
    jobs = {
        "seed1": _train(api, hyperparameters=BAGGED | {"seed": 1}),
        "seed2": _train(api, hyperparameters=BAGGED | {"seed": 2}),
        "stump": _train(api, hyperparameters={"n_estimators": 1, "max_depth": 1}),
        "shorter": _train(
            api,
            data_period={"start_date": "2025-10-01", "end_date": "2025-11-10"},
            hyperparameters=BAGGED | {"seed": 1},
        ),
    }
    out = {}
    for name, job_id in jobs.items():
        final = wait_job(api, job_id, timeout=180)
        assert final["status"] == "completed", final
        out[name] = final["model_id"]
    return out


def _compare(api: httpx.Client, *ids: str) -> dict[str, Any]:
    resp = api.post("/v1/ml/models/compare", json={"model_ids": list(ids)})
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def test_hold_out_predictions_are_stored_with_the_model(api: httpx.Client, models: dict[str, str], db: Any) -> None:
    doc = db.models.find_one({"_id": models["seed1"]})
    assert doc["holdout_predictions_id"], doc
    stored = db["artifacts.files"].find_one({"filename": f"{models['seed1']}.holdout"})
    assert stored is not None and str(stored["_id"]) == doc["holdout_predictions_id"]
    assert stored["metadata"]["kind"] == "holdout_predictions"
    lineage = api.get(f"/v1/ml/models/{models['seed1']}").json()["lineage"]
    assert len(lineage["holdout"]["records_sha256"]) == 64


def test_seeds_on_the_same_data_are_not_a_winner(api: httpx.Client, models: dict[str, str]) -> None:
    out = _compare(api, models["seed1"], models["seed2"])
    assert out["same_holdout"] is True and out["paired"] is True
    assert out["winner"] is None and out["improvement"] == {}, out
    (diff,) = out["differences"]
    f1 = diff["metrics"]["f1_score"]
    assert f1["level"] == 0.95 and f1["conclusive"] is False and f1["ci_low"] <= 0 <= f1["ci_high"]
    assert set(diff["metrics"]) == {"accuracy", "precision", "recall", "f1_score", "roc_auc", "false_positive_rate"}
    records = diff["records"]["shared"]
    assert records > 1000
    assert out["reason"].startswith("no difference is conclusive: f1 ")
    assert f"on {records:,} shared hold-out records" in out["reason"]
    assert out["method"]["resamples"] == 2000 and out["method"]["seed"] and out["method"]["level"] == 0.95
    # the seed's fields, with their meaning
    assert [r["model_id"] for r in out["comparison"]] == [models["seed1"], models["seed2"]]
    assert set(out["comparison"][0]) >= {"model_id", "accuracy", "precision", "recall", "f1_score"}
    # deterministic: asked again, the same answer
    assert _compare(api, models["seed1"], models["seed2"]) == out


def test_a_clearly_better_model_wins_with_its_interval(api: httpx.Client, models: dict[str, str]) -> None:
    out = _compare(api, models["stump"], models["seed1"])
    assert out["winner"] == models["seed1"] and out["paired"] is True, out
    f1 = out["differences"][0]["metrics"]["f1_score"]
    assert f1["conclusive"] is True and 0 < f1["ci_low"] <= f1["diff"] <= f1["ci_high"]
    rows = {r["model_id"]: r for r in out["comparison"]}
    assert out["improvement"]["f1_score"] == round(
        rows[models["seed1"]]["f1_score"] - rows[models["stump"]]["f1_score"], 4
    )
    assert out["reason"].startswith(f"{models['seed1']} has a conclusively higher f1_score than {models['stump']}")
    # three models: the candidate against each other one, Bonferroni-adjusted; the seeds' tie stays open
    three = _compare(api, models["seed1"], models["seed2"], models["stump"])
    assert three["method"]["adjustment"] == "bonferroni" and three["method"]["interval_level"] == 0.975
    assert three["winner"] is None and "not conclusively better than" in three["reason"], three["reason"]


def test_different_hold_outs_are_said_to_differ(api: httpx.Client, models: dict[str, str]) -> None:
    out = _compare(api, models["seed1"], models["shorter"])
    assert out["same_holdout"] is False and out["paired"] is False
    assert out["differences"][0]["method"] == "unpaired"
    assert out["reason"].startswith("the hold-outs differ"), out["reason"]
    assert out["winner"] is None or out["differences"][0]["metrics"]["f1_score"]["conclusive"]
