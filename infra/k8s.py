"""Kubernetes manifests for a deployed RL agent, their validation, and (with ``MODELBUS_KUBECONFIG``) applying
them with the official client.

``build_manifests`` is pure: a Deployment (replicas, per-replica CPU/memory as request and limit, rolling or
recreate strategy) and a Service. The pods run ``modelbus worker --roles serving``: serving workers that answer
``rl.act`` requests from Kafka (``predict.requests``), with the model id in ``MODELBUS_RL_MODEL_ID`` so they
load it at start. They take no inbound connections, so the Service is headless: it gives the pods stable DNS
names and one selector for monitoring, and opens no port. Connection settings come from the Secret
``modelbus-connection`` (``MODELBUS_KAFKA_BOOTSTRAP``, ``MODELBUS_MONGODB_URL``), created once per namespace.

``validate_manifests`` deserialises every manifest into the client's models (``V1Deployment``, ``V1Service``)
and serialises it back: a misspelt field is dropped by the models, so the round trip would differ. It also
checks names, labels, quantities and that the selector matches the pod template.

The kubernetes package is imported lazily: it is only needed when manifests are built or applied.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

Manifest = dict[str, Any]

SECRET_NAME = "modelbus-connection"
APP_NAME = "modelbus-rl-agent"
_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_MODEL_CLASSES = {("apps/v1", "Deployment"): "V1Deployment", ("v1", "Service"): "V1Service"}


class ManifestError(ValueError):
    """A generated manifest does not validate against the Kubernetes models."""


def dns_label(text: str, *, prefix: str = "rl-", max_len: int = 63) -> str:
    """A DNS-1035 label (lower case alphanumerics and '-', starts with a letter, at most 63 characters)."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    name = (prefix + slug)[:max_len].rstrip("-")
    return name if _DNS_LABEL.match(name) else (prefix.rstrip("-") or "rl")


def label_value(text: str) -> str:
    """A valid label value (at most 63 characters of [A-Za-z0-9_.-], alphanumeric at both ends)."""
    value = re.sub(r"[^A-Za-z0-9_.\-]+", "-", text)[:63].strip("-_.")
    return value


def deployment_name(model_name: str) -> str:
    """The Deployment/Service name of an agent: one per task name, so a newer model replaces the older one."""
    return dns_label(model_name)


def build_manifests(
    *,
    model_id: str,
    model_type: str,
    model_name: str,
    namespace: str,
    replicas: int,
    cpu: str,
    memory: str,
    strategy: str,
    image: str,
    artifact_sha256: str,
    env: dict[str, str] | None = None,
) -> list[Manifest]:
    """[Deployment, Service] of the agent ``model_id`` (see the module doc)."""
    name = deployment_name(model_name)
    selector = {"app.kubernetes.io/name": APP_NAME, "app.kubernetes.io/instance": name}
    labels = selector | {
        "app.kubernetes.io/part-of": "modelbus",
        "app.kubernetes.io/managed-by": "modelbus",
        "modelbus.io/model-id": label_value(model_id),
        "modelbus.io/model-type": label_value(model_type),
    }
    container_env = [{"name": k, "value": v} for k, v in sorted((env or {}).items())]
    container_env.append({"name": "MODELBUS_RL_MODEL_ID", "value": model_id})
    deploy_strategy: dict[str, Any] = (
        {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}}
        if strategy == "rolling"
        else {"type": "Recreate"}
    )
    deployment: Manifest = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "annotations": {"modelbus.io/model-id": model_id, "modelbus.io/artifact-sha256": artifact_sha256},
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector},
            "strategy": deploy_strategy,
            "template": {
                "metadata": {"labels": labels, "annotations": {"modelbus.io/artifact-sha256": artifact_sha256}},
                "spec": {
                    "containers": [
                        {
                            "name": "agent",
                            "image": image,
                            "imagePullPolicy": "IfNotPresent",
                            "args": ["worker", "--roles", "serving"],
                            "env": container_env,
                            "envFrom": [{"secretRef": {"name": SECRET_NAME}}],
                            "resources": {
                                "requests": {"cpu": cpu, "memory": memory},
                                "limits": {"cpu": cpu, "memory": memory},
                            },
                        }
                    ],
                    "terminationGracePeriodSeconds": 30,
                },
            },
        },
    }
    service: Manifest = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {"clusterIP": "None", "selector": selector},
    }
    return [deployment, service]


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


def to_model(manifest: Manifest) -> Any:
    """The client model (``V1Deployment``, ``V1Service``) of a manifest; ManifestError if it does not fit."""
    from kubernetes import client

    key = (manifest.get("apiVersion"), manifest.get("kind"))
    if key not in _MODEL_CLASSES:
        raise ManifestError(f"unsupported manifest kind {key}")
    api = client.ApiClient()
    try:
        model = api.deserialize(json.dumps(manifest), _MODEL_CLASSES[key], "application/json")
    except (ValueError, TypeError) as exc:
        raise ManifestError(f"{manifest['kind']} does not validate: {exc}") from exc
    back = _drop_none(api.sanitize_for_serialization(model))
    if back != _drop_none(manifest):
        raise ManifestError(f"{manifest['kind']} has fields the Kubernetes model does not know")
    return model


def validate_manifests(manifests: list[Manifest]) -> list[Any]:
    """Checks every manifest (see the module doc); returns the client models. Raises ManifestError."""
    from kubernetes.utils import parse_quantity

    models = []
    for manifest in manifests:
        model = to_model(manifest)
        meta = model.metadata
        if not meta.name or not _DNS_LABEL.match(meta.name):
            raise ManifestError(f"{manifest['kind']} name {meta.name!r} is not a DNS-1035 label")
        if not meta.namespace or not _DNS_LABEL.match(meta.namespace):
            raise ManifestError(f"namespace {meta.namespace!r} is not a DNS-1123 label")
        for key, value in (meta.labels or {}).items():
            if not _LABEL_VALUE.match(value) or len(value) > 63:
                raise ManifestError(f"label {key}={value!r} is not a valid label value")
        if manifest["kind"] == "Deployment":
            spec = model.spec
            if spec.replicas is None or spec.replicas < 0:
                raise ManifestError("replicas must be >= 0")
            template_labels = spec.template.metadata.labels or {}
            if any(template_labels.get(k) != v for k, v in spec.selector.match_labels.items()):
                raise ManifestError("the selector does not match the pod template labels")
            if spec.strategy.type not in ("RollingUpdate", "Recreate"):
                raise ManifestError(f"unknown strategy {spec.strategy.type!r}")
            for container in spec.template.spec.containers:
                for part in (container.resources.requests, container.resources.limits):
                    for resource, quantity in (part or {}).items():
                        try:
                            if parse_quantity(quantity) <= 0:
                                raise ManifestError(f"{resource} must be positive")
                        except ValueError as exc:
                            raise ManifestError(f"{resource} {quantity!r} is not a quantity") from exc
        models.append(model)
    return models


# -- applying (MODELBUS_KUBECONFIG) ---------------------------------------------------------------------------


def _clients(kubeconfig: str) -> tuple[Any, Any, Any]:
    from kubernetes import client, config

    api_client = config.new_client_from_config(config_file=kubeconfig)
    return api_client, client.AppsV1Api(api_client), client.CoreV1Api(api_client)


def apply_manifests(kubeconfig: str, manifests: list[Manifest], *, timeout_s: float = 300.0) -> dict[str, Any]:
    """Create or replace every manifest, then wait until the Deployment's replicas are updated and available.

    Blocking (run it in a thread). Raises ``kubernetes.client.ApiException`` or TimeoutError."""
    from kubernetes.client import ApiException

    api_client, apps, core = _clients(kubeconfig)
    try:
        namespace = manifests[0]["metadata"]["namespace"]
        try:
            core.read_namespace(namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
            core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
        applied = []
        for manifest in manifests:
            name = manifest["metadata"]["name"]
            if manifest["kind"] == "Deployment":
                read, create, replace = (
                    apps.read_namespaced_deployment,
                    apps.create_namespaced_deployment,
                    apps.replace_namespaced_deployment,
                )
            else:
                read, create, replace = (
                    core.read_namespaced_service,
                    core.create_namespaced_service,
                    core.replace_namespaced_service,
                )
            try:
                current = read(name, namespace)
            except ApiException as exc:
                if exc.status != 404:
                    raise
                create(namespace, manifest)
                applied.append({"kind": manifest["kind"], "name": name, "action": "created"})
                continue
            body = json.loads(json.dumps(manifest))
            body["metadata"]["resourceVersion"] = current.metadata.resource_version
            replace(name, namespace, body)
            applied.append({"kind": manifest["kind"], "name": name, "action": "replaced"})
        deployment = next(m for m in manifests if m["kind"] == "Deployment")
        ready = wait_ready(apps, deployment, timeout_s=timeout_s)
        return {"applied": applied, "ready": ready}
    finally:
        api_client.close()


def wait_ready(apps: Any, deployment: Manifest, *, timeout_s: float) -> dict[str, Any]:
    name, namespace = deployment["metadata"]["name"], deployment["metadata"]["namespace"]
    want = deployment["spec"]["replicas"]
    deadline = time.monotonic() + timeout_s
    while True:
        current = apps.read_namespaced_deployment_status(name, namespace)
        status = current.status
        figures = {
            "replicas": want,
            "updated_replicas": status.updated_replicas or 0,
            "available_replicas": status.available_replicas or 0,
            "observed_generation": status.observed_generation,
        }
        if (
            (status.observed_generation or 0) >= (current.metadata.generation or 0)
            and figures["updated_replicas"] >= want
            and figures["available_replicas"] >= want
        ):
            return figures
        if time.monotonic() > deadline:
            raise TimeoutError(f"deployment {namespace}/{name} not ready after {timeout_s:.0f} s: {figures}")
        time.sleep(2.0)


def delete_manifests(kubeconfig: str, name: str, namespace: str) -> None:
    """Delete the agent's Deployment and Service (missing ones are fine). Blocking."""
    from kubernetes.client import ApiException

    api_client, apps, core = _clients(kubeconfig)
    try:
        for delete in (apps.delete_namespaced_deployment, core.delete_namespaced_service):
            try:
                delete(name, namespace)
            except ApiException as exc:
                if exc.status != 404:
                    raise
    finally:
        api_client.close()


def check_cluster(kubeconfig: str) -> dict[str, Any]:
    """``{"status": "healthy", "version": ...}`` if the API server answers, else unhealthy with the error."""
    try:
        from kubernetes import client

        api_client, _, _ = _clients(kubeconfig)
        try:
            version = client.VersionApi(api_client).get_code(_request_timeout=3)
            return {"status": "healthy", "version": version.git_version}
        finally:
            api_client.close()
    except Exception as exc:  # noqa: BLE001 - a health check reports, it does not raise
        return {"status": "unhealthy", "error": exc.__class__.__name__}


def cluster_summary(kubeconfig: str, namespace: str) -> dict[str, Any]:
    """Node count, modelbus agent pod count and their requested CPU/memory share of the cluster. Blocking."""
    from kubernetes.utils import parse_quantity

    api_client, _, core = _clients(kubeconfig)
    try:
        nodes = core.list_node(_request_timeout=5).items
        pods = core.list_namespaced_pod(
            namespace, label_selector="app.kubernetes.io/part-of=modelbus", _request_timeout=5
        ).items
        cpu_total = sum(float(parse_quantity(n.status.allocatable.get("cpu", "0"))) for n in nodes) or 1.0
        mem_total = sum(float(parse_quantity(n.status.allocatable.get("memory", "0"))) for n in nodes) or 1.0
        cpu = mem = 0.0
        for pod in pods:
            for container in pod.spec.containers:
                requests = (container.resources and container.resources.requests) or {}
                cpu += float(parse_quantity(requests.get("cpu", "0")))
                mem += float(parse_quantity(requests.get("memory", "0")))
        return {
            "node_count": len(nodes),
            "pod_count": len(pods),
            "resource_usage": {"cpu": round(cpu / cpu_total, 4), "memory": round(mem / mem_total, 4)},
            "source": "kubernetes (requested share of allocatable)",
        }
    finally:
        api_client.close()
