"""RL API bodies (schemas/rl.py) and Kubernetes manifests (infra/k8s.py), without a broker or a cluster."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pydantic import ValidationError

from infra import k8s
from schemas import rl


def _manifests(**overrides: Any) -> list[dict[str, Any]]:
    args: dict[str, Any] = {
        "model_id": "rl_dqn_v1.3.0",
        "model_type": "dqn",
        "model_name": "test-training",
        "namespace": "modelbus",
        "replicas": 3,
        "cpu": "1",
        "memory": "1Gi",
        "strategy": "rolling",
        "image": "modelbus:1.0.0",
        "artifact_sha256": "ab" * 32,
        "env": {"MODELBUS_MONGODB_DB": "modelbus"},
    }
    return k8s.build_manifests(**(args | overrides))


def test_seed_bodies_validate() -> None:
    req = rl.TrainingRequest.model_validate(
        {
            "name": "test-training",
            "model_type": "dqn",
            "parameters": {"learning_rate": 0.001, "discount_factor": 0.99},
            "total_episodes": 1000,
        }
    )
    assert isinstance(req.params(), rl.DQNParams)
    deploy = rl.DeployRequest.model_validate({"replicas": 3, "resources": {"cpu": "1", "memory": "1Gi"}})
    assert deploy.strategy == "rolling" and deploy.resources.cpu == "1"
    assert rl.DeployRequest.model_validate({"resources": {"cpu": 2, "memory": "512Mi"}}).resources.cpu == "2"


def test_parameters_are_validated_per_type() -> None:
    req = rl.TrainingRequest(name="x", model_type="ppo", parameters={"clip_coef": 0}, total_episodes=10)
    with pytest.raises(ValidationError) as err:
        req.params()
    assert err.value.errors()[0]["loc"] == ("clip_coef",)
    with pytest.raises(ValidationError):  # a DQN-only parameter is unknown to Q-learning
        rl.TrainingRequest(name="x", model_type="q_learning", parameters={"buffer_size": 10}, total_episodes=1).params()


@pytest.mark.parametrize(
    ("resources", "field"),
    [
        ({"cpu": "lots"}, "cpu"),
        ({"cpu": "5m"}, "cpu"),
        ({"cpu": "65"}, "cpu"),
        ({"memory": "1GB"}, "memory"),
        ({"memory": "16Mi"}, "memory"),
        ({"memory": "1Ti"}, "memory"),
        ({"gpu": "1"}, "gpu"),
    ],
)
def test_bad_resources_name_the_field(resources: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as err:
        rl.Resources.model_validate(resources)
    assert err.value.errors()[0]["loc"] == (field,)


def test_quantities() -> None:
    assert rl.cpu_cores("500m") == 0.5 and rl.cpu_cores("2") == 2.0
    assert rl.memory_bytes("1Gi") == 2**30 and rl.memory_bytes("1G") == 1e9


def test_manifests_validate_against_the_client_models() -> None:
    from kubernetes import client

    manifests = _manifests()
    deployment, service = k8s.validate_manifests(manifests)
    assert isinstance(deployment, client.V1Deployment) and isinstance(service, client.V1Service)
    assert deployment.metadata.name == service.metadata.name == "rl-test-training"
    assert deployment.spec.replicas == 3 and deployment.spec.strategy.type == "RollingUpdate"
    resources = deployment.spec.template.spec.containers[0].resources
    assert resources.requests == resources.limits == {"cpu": "1", "memory": "1Gi"}
    assert service.spec.cluster_ip == "None" and service.spec.selector == deployment.spec.selector.match_labels
    recreate = k8s.validate_manifests(_manifests(strategy="recreate"))[0]
    assert recreate.spec.strategy.type == "Recreate" and recreate.spec.strategy.rolling_update is None


def test_invalid_manifests_are_caught() -> None:
    typo = copy.deepcopy(_manifests())
    typo[0]["spec"]["replica"] = 2  # unknown field: the model would drop it
    with pytest.raises(k8s.ManifestError, match="fields"):
        k8s.validate_manifests(typo)
    bad_quantity = copy.deepcopy(_manifests())
    bad_quantity[0]["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"] = "lots"
    with pytest.raises(k8s.ManifestError, match="quantity"):
        k8s.validate_manifests(bad_quantity)
    mismatch = copy.deepcopy(_manifests())
    mismatch[0]["spec"]["selector"]["matchLabels"]["app.kubernetes.io/instance"] = "other"
    with pytest.raises(k8s.ManifestError, match="selector"):
        k8s.validate_manifests(mismatch)
    with pytest.raises(k8s.ManifestError, match="kind"):
        k8s.validate_manifests([{"apiVersion": "v1", "kind": "Pod"}])


@pytest.mark.parametrize(
    ("name", "expected"),
    [("test-training", "rl-test-training"), ("My Agent #2", "rl-my-agent-2"), ("___", "rl"), ("Ünïcode", "rl-n-code")],
)
def test_deployment_names_are_dns_labels(name: str, expected: str) -> None:
    assert k8s.deployment_name(name) == expected
    long = k8s.deployment_name("x" * 200)
    assert len(long) == 63 and long.startswith("rl-")
    k8s.validate_manifests(_manifests(model_name=name))
