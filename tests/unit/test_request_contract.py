"""The request side of the contract, without servers: the bodies ``/openapi.json`` documents are the bodies the
server validates. The same requests are judged by the document (jsonschema, formats checked) and by the server's own
validation; they must agree (the e2e schema fuzz checks the same against the running server at random)."""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft202012Validator
from pydantic import ValidationError

from api.lotto.routes import DRAWS_BODY, checked_parameters
from api.rl.routes import parse_time
from api.tabular.data import INGEST_BODY, _validated
from bootstrap.wiring import app as create_app
from infra.settings import Settings
from schemas.errors import ApiError
from schemas.lotto import LottoTrainRequest
from schemas.rl import TrainingRequest
from schemas.tabular import TrainRequest

DOCUMENT = create_app(Settings(_env_file=None)).openapi_schema.to_schema()


def _schema_of(method: str, path: str, media_type: str = "application/json") -> dict[str, Any]:
    return DOCUMENT["paths"][path][method]["requestBody"]["content"][media_type]["schema"]


def _documented(method: str, path: str, body: Any) -> bool:
    schema = _schema_of(method, path) | {"components": DOCUMENT["components"]}  # "#/components/..." resolves
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    return validator.is_valid(body)


def _tabular_server(body: Any) -> bool:
    try:
        TrainRequest.model_validate(body).params()
    except ValidationError:
        return False
    return True


def _rl_server(body: Any) -> bool:
    try:
        TrainingRequest.model_validate(body).params()
    except ValidationError:
        return False
    return True


def _lotto_server(body: Any) -> bool:
    try:
        data = LottoTrainRequest.model_validate(body)
        checked_parameters(1, data.model_type, data.parameters)
    except (ValidationError, ApiError):
        return False
    return True


PERIOD = {"start_date": "2025-10-01", "end_date": "2025-11-15"}

TABULAR = [
    {"model_type": "lightgbm", "data_period": PERIOD, "hyperparameters": {"max_depth": 7, "learning_rate": 0.1}},
    {"model_type": "lightgbm", "data_period": PERIOD, "hyperparameters": {"learning_rate": 0}},
    {"model_type": "lightgbm", "data_period": PERIOD, "hyperparameters": {"contamination": 0.1}},
    {"model_type": "lightgbm", "data_period": PERIOD, "hyperparameters": {"class_weight": "balanced"}},
    {"model_type": "isolation_forest", "data_period": PERIOD, "hyperparameters": {"contamination": 0.02}},
    {"model_type": "isolation_forest", "data_period": PERIOD, "hyperparameters": {"contamination": 0.6}},
    {"model_type": "isolation_forest", "data_period": PERIOD, "hyperparameters": {"max_samples": 1}},
    {"model_type": "isolation_forest", "data_period": PERIOD, "hyperparameters": {"max_samples": 1.0}},
    {"model_type": "isolation_forest", "data_period": PERIOD, "hyperparameters": {"max_samples": 2.0}},
    {"model_type": "isolation_forest", "data_period": PERIOD, "hyperparameters": {"max_samples": 1.5}},
    {"model_type": "isolation_forest", "data_period": PERIOD, "hyperparameters": {"max_samples": 0}},
    {"model_type": "isolation_forest", "data_period": PERIOD, "hyperparameters": {"num_leaves": 31}},
    {"model_type": "lightgbm", "data_period": {"start_date": 0, "end_date": "2025-11-15"}},
    {"model_type": "lightgbm", "data_period": {"start_date": "0", "end_date": "2025-11-15"}},
    {"model_type": "lightgbm", "data_period": {"start_date": "2025-10-01T00:00:00", "end_date": "2025-11-15"}},
]

RL = [
    {"name": "t", "model_type": "dqn", "parameters": {"learning_rate": 0.001, "discount_factor": 0.99},
     "total_episodes": 10},
    {"name": "t", "model_type": "dqn", "parameters": {"rollout_episodes": 4}, "total_episodes": 10},
    {"name": "t", "model_type": "ppo", "parameters": {"rollout_episodes": 4}, "total_episodes": 10},
    {"name": "t", "model_type": "q_learning", "parameters": {"time_bins": 0}, "total_episodes": 10},
    {"name": "t", "model_type": "q_learning", "parameters": {"time_bins": 96}, "total_episodes": 10},
]  # fmt: skip

LOTTO = [
    {"machine_type": "1호기", "model_type": "enhanced_predictor", "parameters": {"window": 50}},
    {"machine_type": "1호기", "model_type": "enhanced_predictor", "parameters": {"window": 5}},
    {"machine_type": "1호기", "model_type": "sklearn_ensemble", "parameters": {"estimator": "random_forest"}},
    {"machine_type": "1호기", "model_type": "sklearn_ensemble", "parameters": {"estimator": "svm"}},
    {"machine_type": "1호기", "model_type": "sklearn_ensemble", "parameters": {"max_depth": -410}},  # optional: bounds
    {"machine_type": "1호기", "model_type": "sklearn_ensemble", "parameters": {"max_depth": None}},
    {"machine_type": 2.0, "model_type": "enhanced_predictor", "parameters": {"window": True}},
    {"machine_type": "1호기", "model_type": "pytorch_transformer", "parameters": {"window": 50}},
    {"machine_type": "1호기", "model_type": "pytorch_transformer", "parameters": {"heads": 8, "epochs": 1}},
]


@pytest.mark.parametrize("body", TABULAR)
def test_tabular_training_schema_and_server_agree(body: dict[str, Any]) -> None:
    assert _documented("post", "/v1/ml/train", body) == _tabular_server(body)


@pytest.mark.parametrize("body", RL)
def test_rl_training_schema_and_server_agree(body: dict[str, Any]) -> None:
    assert _documented("post", "/api/v1/training", body) == _rl_server(body)


@pytest.mark.parametrize("body", LOTTO)
def test_lotto_training_schema_and_server_agree(body: dict[str, Any]) -> None:
    assert _documented("post", "/api/models/train", body) == _lotto_server(body)


def test_the_rules_a_schema_cannot_state_are_the_only_differences() -> None:
    """start_date after end_date, and a dqn buffer smaller than its batch: valid for the schema, refused by the
    server, and said in the descriptions."""
    late = {"model_type": "lightgbm", "data_period": {"start_date": "2025-11-16", "end_date": "2025-11-15"}}
    assert _documented("post", "/v1/ml/train", late) and not _tabular_server(late)
    small = {"name": "t", "model_type": "dqn", "parameters": {"buffer_size": 8, "batch_size": 16}, "total_episodes": 1}
    assert _documented("post", "/api/v1/training", small) and not _rl_server(small)
    schemas = DOCUMENT["components"]["schemas"]
    assert "start_date must not be after end_date" in schemas["TrainRequest"]["description"]
    assert (
        "buffer_size must be at least batch_size"
        in schemas["TrainingRequest"]["properties"]["parameters"]["description"]
    )


@pytest.mark.parametrize("value", ["", "2024-03-20", "2024-03-20T12:00:00", "yesterday", " 2024-03-20T12:00:00Z"])
def test_a_time_parameter_is_an_rfc3339_time_with_its_zone(value: str) -> None:
    with pytest.raises(ApiError) as raised:
        parse_time(value, "start_time")
    assert (raised.value.status_code, raised.value.code, raised.value.field) == (422, "VALIDATION_ERROR", "start_time")


def test_time_parameters_in_the_documented_form_are_read() -> None:
    assert parse_time("2024-03-20T12:00:00Z", "start_time").isoformat() == "2024-03-20T12:00:00+00:00"  # type: ignore[union-attr]
    assert parse_time("2024-03-20T12:00:00.5+01:00", "end_time").hour == 11  # type: ignore[union-attr]
    assert parse_time(None, "end_time") is None


def test_the_hand_read_bodies_are_documented_with_every_media_type() -> None:
    assert set(INGEST_BODY.content) == {"application/json", "text/csv", "multipart/form-data"}
    assert set(DRAWS_BODY.content) == {"application/json", "text/csv", "text/plain", "multipart/form-data"}
    for path in ("/v1/ml/data", "/api/draws"):
        body = DOCUMENT["paths"][path]["post"]["requestBody"]
        assert body["required"] is True
        assert body["content"]["application/json"]["examples"]
    example = INGEST_BODY.content["application/json"].examples["records"].value  # type: ignore[index,union-attr]
    assert _documented("post", "/v1/ml/data", example)
    records, errors = _validated(example["records"])
    assert len(records) == 1 and not errors


@pytest.mark.parametrize(
    "records",
    [
        [{"timestamp": 1e20, "features": {"amount": 1}}],  # an epoch beyond the calendar: was a 500
        [{"timestamp": "2025-01-01T00:00:00Z", "features": {}}],
        [{"timestamp": "2025-01-01T00:00:00Z", "features": {"amount": "abc"}}],
        [{"timestamp": "2025-01-01T00:00:00Z", "features": {"amount": 1}, "label": 2}],
        [{"timestamp": "2025-01-01T00:00:00Z", "features": {"amount": 1}, "extra": 1}],
    ],
)
def test_records_the_schema_refuses_are_refused(records: list[dict[str, Any]]) -> None:
    assert not _documented("post", "/v1/ml/data", {"records": records})
    good, errors = _validated(records)
    assert not good and errors


def test_a_feature_beyond_64_bits_is_kept_as_a_number() -> None:
    records, errors = _validated([{"timestamp": 0, "features": {"big": 10**30, "small": 3}}])
    assert not errors and records[0]["features"] == {"big": 1e30, "small": 3}
