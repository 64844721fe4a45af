"""A client generated from ``/openapi.json`` (openapi-python-client, into a temporary directory, from the
document fetched from the server: no network beyond the test stack) drives the seed 000 flow with its typed
models: train → job status → models → deploy to staging → deploy to production → predict. Every answer is
parsed into the generated model the document declares (an error body would be an ``ErrorBody``).

On the contract stack of this module (``tests/e2e/contract_stack.py``): it deploys."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import httpx
import pytest

from tests.conftest import SEED_TRAIN_BODY, TEST_KEY
from tests.e2e.contract_stack import contract_stack, contract_url  # noqa: F401 - the module's own stack

PACKAGE = "modelbus_generated_client"
UNSUPPORTED_MEDIA = {
    ("POST /v1/ml/data", "text/csv"),
    ("POST /api/draws", "text/csv"),
    ("POST /api/draws", "text/plain"),
    ("GET /v1/ml/predict/batch/{job_id}/results", "application/x-ndjson"),
}
"""the bodies openapi-python-client cannot generate (it reads JSON and multipart only): those operations keep
their JSON/multipart forms in the client, the CSV/text upload and the JSON-lines download are left out"""


def generator_warnings(output: str) -> list[str]:
    """The generator's warnings (``WARNING parsing <operation> within <tag>.`` and the reason after it), except
    the unsupported media types listed above."""
    lines = [line.strip() for line in output.splitlines()]
    found = []
    for i, line in enumerate(lines):
        if line.startswith("WARNING parsing "):
            operation = line.removeprefix("WARNING parsing ").split(" within ")[0]
            reason = next((later for later in lines[i + 1 :] if later), "")
            if not any(op == operation and media in reason for op, media in UNSUPPORTED_MEDIA):
                found.append(f"{operation}: {reason}")
        elif line.startswith("Cannot") and not any(media in line for _, media in UNSUPPORTED_MEDIA):
            found.append(line)
    return found


@pytest.fixture(scope="module")
def generated(contract_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:  # noqa: F811
    root = tmp_path_factory.mktemp("client")
    document = httpx.get(f"{contract_url}/openapi.json", timeout=30).raise_for_status().json()
    spec = root / "openapi.json"
    spec.write_text(json.dumps(document))
    result = subprocess.run(
        [sys.executable, "-m", "openapi_python_client", "generate", "--path", str(spec), "--meta", "none",
         "--output-path", str(root / PACKAGE)],
        capture_output=True, text=True, timeout=300, cwd=root,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    warnings = generator_warnings(result.stdout + "\n" + result.stderr)  # it warns on stderr
    assert not warnings, "the generator left parts of the document out:\n" + "\n".join(warnings)
    sys.path.insert(0, str(root))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(root))
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def _module(package: ModuleType, dotted: str) -> Any:
    return importlib.import_module(f"{package.__name__}.{dotted}")


def _value(field: Any) -> Any:
    """An enum member's value (the generator makes enums of ``Literal`` fields), or the value itself."""
    return getattr(field, "value", field)


def _call(package: ModuleType, operation: str, client: Any, expected: str, **kwargs: Any) -> Any:
    """Call a generated operation (``api.<tag>.<module>``) and return its parsed body, which must be an
    instance of the generated model ``expected``."""
    response = _module(package, f"api.{operation}").sync_detailed(client=client, **kwargs)
    body = response.parsed
    assert type(body).__name__ == expected, (response.status_code, response.content[:500])
    return body


def test_the_seed_flow_through_the_generated_client(generated: ModuleType, contract_url: str) -> None:  # noqa: F811
    client = generated.AuthenticatedClient(
        base_url=contract_url, token=TEST_KEY, prefix="", auth_header_name="X-API-Key", timeout=httpx.Timeout(60)
    )
    models = _module(generated, "models")

    # 1. train (the seed's request, as a generated model)
    request = models.TrainRequest.from_dict(SEED_TRAIN_BODY)
    assert request.to_dict() == SEED_TRAIN_BODY
    accepted = _call(generated, "ml_training.v1_ml_train_train", client, "TrainAccepted", body=request)
    assert accepted.status == "started" and _value(accepted.model_type) == "lightgbm"

    # 2. job status until it finishes
    deadline = time.monotonic() + 180
    while True:
        status = _call(
            generated, "ml_training.v1_ml_train_status_job_id_status", client, "JobStatus", job_id=accepted.job_id
        )
        if _value(status.status) in ("completed", "failed", "cancelled") or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert _value(status.status) == "completed", status.to_dict()
    model_id = status.model_id
    assert isinstance(model_id, str) and model_id

    # 3. the model in the registry: the list and the one model
    listed = _call(generated, "ml_registry.v1_ml_models_list_models", client, "ModelList")
    assert model_id in [m.model_id for m in listed.models]
    detail = _call(generated, "ml_registry.v1_ml_models_model_id_get_model", client, "ModelDetail", model_id=model_id)
    assert detail.model_id == model_id

    # 4. deploy: staging, then production
    ref = models.ModelRef(model_id=model_id)
    staged = _call(generated, "ml_deployment.v1_ml_deploy_staging_staging", client, "StagingDeployment", body=ref)
    assert staged.to_dict()["environment"] == "staging"
    promoted = _call(
        generated, "ml_deployment.v1_ml_deploy_production_production", client, "ProductionDeployment", body=ref
    )
    assert promoted.to_dict()["environment"] == "production"

    # 5. predict: one record, then a batch
    features = {"amount": 125.5, "hour": 14.0, "log_amount": 4.83}
    one = _call(
        generated, "ml_serving.v1_ml_predict_predict", client, "Prediction",
        body=models.PredictRequest.from_dict({"features": features, "routing_key": "user-1"}),
    )  # fmt: skip
    assert one.model_id == model_id and one.error is None and one.label in (0, 1)
    batch = _call(
        generated, "ml_serving.v1_ml_predict_predict", client, "PredictionBatch",
        body=models.PredictRequest.from_dict({"records": [{"features": features}, {"features": features}]}),
    )  # fmt: skip
    assert len(batch.predictions) == 2


def test_an_error_is_the_documented_error_body(generated: ModuleType, contract_url: str) -> None:  # noqa: F811
    client = generated.AuthenticatedClient(
        base_url=contract_url, token=TEST_KEY, prefix="", auth_header_name="X-API-Key", timeout=httpx.Timeout(60)
    )
    error = _call(
        generated, "ml_training.v1_ml_train_status_job_id_status", client, "ErrorBody", job_id="job_does_not_exist"
    )
    assert error.error.code == "JOB_NOT_FOUND" and error.error.field == "job_id" and error.request_id
