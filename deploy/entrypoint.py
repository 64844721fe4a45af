"""The container's entrypoint: one image for the API and every worker role, the first argument picks the part.

    api                      the API alone (no consumers), on real Kafka and MongoDB: creates the missing topics,
                             the indexes and the bootstrap key (MODELBUS_API_KEY) at start, like `modelbus up`
    init                     only that preparation, then exits (k8s init container, compose one-shot job);
                             fails if a catalog topic is missing afterwards or has fewer partitions than planned
    probe http PATH          exit 0 if GET http://127.0.0.1:$MODELBUS_PORT/PATH answers 2xx (container health)
    probe serving            exit 0 if a serving worker on this host wrote a resource sample lately (serving
                             workers write one to MongoDB every MODELBUS_SAMPLE_INTERVAL_SECONDS)
    kafka-topics             print the kafka-topics.sh commands that create every topic with a replication
                             factor (modelbus itself creates missing topics with replication factor 1)
    anything else            the `modelbus` command line: `worker --roles ...`, `up`, `keys ...`, `replay ...`

Why a script beside the CLI: `modelbus up` on configured servers (both MODELBUS_KAFKA_BOOTSTRAP and
MODELBUS_MONGODB_URL set) starts no embedded server but still starts every consumer (two worker processes,
or inline); a deployment scales the API and each worker role on its own, so the API needs a mode without
consumers. The script only composes what `bootstrap.stack.Stack` already offers (``with_consumers=False``)."""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

NEEDS_SERVERS = ("api", "init", "up", "worker")
"""Commands that would start the embedded servers (not installed in the image) without both URLs."""
PLACEHOLDER = "change-me"
"""The secrets of deploy/modelbus.env and deploy/k8s/secret.yaml until someone replaces them."""


def _settings() -> Any:
    from infra.settings import Settings

    return Settings()


def _require_servers(settings: Any, command: str) -> str | None:
    """Why ``command`` cannot run with these settings, or None."""
    if not (settings.kafka_bootstrap and settings.mongodb_url):
        return (
            f"`{command}` needs MODELBUS_KAFKA_BOOTSTRAP and MODELBUS_MONGODB_URL: this image has no embedded "
            "Kafka or MongoDB (the `embedded` extra is not installed)"
        )
    if command in ("api", "init", "up"):
        if not settings.auth_enabled:
            return "MODELBUS_AUTH_ENABLED=false turns authentication off: never in a deployment"
        if not settings.api_key:
            return (
                "set MODELBUS_API_KEY (from a secret): without it a generated admin key would be printed "
                "to the container log"
            )
        for name in ("api_key", "jwt_secret"):
            if PLACEHOLDER in (getattr(settings, name) or ""):
                return f"MODELBUS_{name.upper()} still holds the placeholder of deploy/modelbus.env: replace it"
    return None


async def _prepare(settings: Any, *, with_api: bool) -> Any:
    """Starts a ``Stack`` without consumers (and without the API for ``init``): topics, indexes, bootstrap key.
    Two API replicas starting at once can race to store the same bootstrap key (unique index): try again."""
    from pymongo.errors import DuplicateKeyError

    from bootstrap.stack import Stack

    for attempt in range(3):
        stack = Stack(settings, with_api=with_api, with_consumers=False)
        try:
            await stack.start()
            return stack
        except DuplicateKeyError:
            if attempt == 2:
                raise
            await asyncio.sleep(0.5)
    raise AssertionError("unreachable")


async def check_topics(settings: Any) -> list[str]:
    """Problems with the catalog topics on the broker: missing, or fewer partitions than modelbus plans."""
    from aiokafka.admin import AIOKafkaAdminClient

    from bootstrap.domains import install
    from schemas.topics import TOPICS

    install()

    planned = {settings.topic(name): partitions(settings, spec) for name, spec in TOPICS.items()}
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=10000)
    await admin.start()
    try:
        found = {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics(list(planned))}
    finally:
        await admin.close()
    problems = []
    for name, want in planned.items():
        have = found.get(name, 0)
        if have == 0:
            problems.append(f"{name}: missing")
        elif have < want:
            problems.append(f"{name}: {have} partition(s), {want} planned (auto-created by the broker?)")
    return problems


def partitions(settings: Any, spec: Any) -> int:
    """The partitions ``infra.kafka.ensure_topics`` gives a catalog topic."""
    return 1 if spec.one_partition else int(settings.topic_partitions)


def cmd_api(settings: Any) -> int:
    from bootstrap.cli import _until_signal, run_loop
    from infra.telemetry import setup_logging, setup_tracing

    setup_logging(settings.log_level, settings.log_json)
    setup_tracing()

    async def main() -> None:
        waiter = asyncio.create_task(_until_signal())
        stack = None
        try:
            stack = await _prepare(settings, with_api=True)
            print(
                f"modelbus api ready at {stack.info['api_url']} (kafka {stack.info['kafka_bootstrap']}, no consumers)",
                flush=True,
            )
            await waiter
        finally:
            waiter.cancel()
            if stack is not None:
                await stack.stop()
            print("modelbus api stopped", flush=True)

    run_loop(main(), settings)
    return 0


def cmd_init(settings: Any) -> int:
    from infra.telemetry import setup_logging

    setup_logging(settings.log_level, settings.log_json)

    async def main() -> int:
        stack = await _prepare(settings, with_api=False)
        await stack.stop()
        problems = await check_topics(settings)
        for problem in problems:
            print(f"topic problem: {problem}", file=sys.stderr)
        if not problems:
            print(f"modelbus init done: topics {settings.topic_prefix}*, indexes, bootstrap key", flush=True)
        return 1 if problems else 0

    return asyncio.run(main())


def probe_http(path: str, port: int, timeout_s: float) -> tuple[bool, str]:
    url = f"http://127.0.0.1:{port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 - a fixed local URL
            return 200 <= response.status < 300, f"{url}: {response.status}"
    except urllib.error.HTTPError as exc:
        return False, f"{url}: {exc.code}"
    except OSError as exc:
        return False, f"{url}: {exc.__class__.__name__}: {exc}"


def probe_serving(settings: Any, host: str, max_age_s: float) -> tuple[bool, str]:
    """A serving worker writes a resource sample (``worker_samples``) every ``sample_interval_seconds`` from its
    event loop: a recent one from this host means the worker runs, its loop is not stuck and MongoDB answers."""
    from pymongo import MongoClient

    from infra import mongo

    since = datetime.now(UTC) - timedelta(seconds=max_age_s)
    client: MongoClient = MongoClient(settings.mongodb_url, serverSelectionTimeoutMS=3000, tz_aware=True)
    try:
        doc = client[settings.mongodb_db][mongo.WORKER_SAMPLES].find_one(
            {"host": host, "time": {"$gte": since}}, {"_id": 0, "worker_id": 1, "time": 1}
        )
    except Exception as exc:  # noqa: BLE001 - a probe reports, it does not raise
        return False, f"MongoDB: {exc.__class__.__name__}"
    finally:
        client.close()
    if doc is None:
        return False, f"no worker sample from host {host} in the last {max_age_s:.0f} s"
    return True, f"worker {doc['worker_id']} sampled at {doc['time'].isoformat()}"


def cmd_probe(args: argparse.Namespace) -> int:
    settings = _settings()
    if args.what == "http":
        ok, detail = probe_http(args.path, settings.port, args.timeout)
    else:
        max_age = args.max_age if args.max_age is not None else 3 * settings.sample_interval_seconds + 5
        ok, detail = probe_serving(settings, args.host or socket.gethostname(), max_age)
    print(detail, file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


def kafka_topics_commands(settings: Any, replication_factor: int, min_insync_replicas: int) -> list[str]:
    from bootstrap.domains import install
    from schemas.topics import TOPICS

    install()

    bootstrap = settings.kafka_bootstrap or "$MODELBUS_KAFKA_BOOTSTRAP"
    return [
        f"kafka-topics.sh --bootstrap-server {bootstrap} --create --if-not-exists --topic {settings.topic(name)} "
        f"--partitions {partitions(settings, spec)} --replication-factor {replication_factor} "
        f"--config min.insync.replicas={min_insync_replicas}"
        for name, spec in TOPICS.items()
    ]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="entrypoint.py", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("api", help="the API without consumers (real Kafka and MongoDB)")
    sub.add_parser("init", help="topics, indexes and the bootstrap key, then exit")
    probe = sub.add_parser("probe", help="health probes for containers")
    psub = probe.add_subparsers(dest="what", required=True)
    http = psub.add_parser("http", help="GET a path of the API in this container")
    http.add_argument("path")
    http.add_argument("--timeout", type=float, default=4.0)
    serving = psub.add_parser("serving", help="a serving worker on this host sampled lately")
    serving.add_argument("--host", help="default: this host's name (the pod or container name)")
    serving.add_argument("--max-age", type=float, help="seconds (default 3 x MODELBUS_SAMPLE_INTERVAL_SECONDS + 5)")
    topics = sub.add_parser("kafka-topics", help="print kafka-topics.sh commands for every catalog topic")
    topics.add_argument("--replication-factor", type=int, default=3)
    topics.add_argument("--min-insync-replicas", type=int, default=2)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ("api", "init", "probe", "kafka-topics", "-h", "--help"):
        from bootstrap.cli import main as modelbus

        if argv and argv[0] in NEEDS_SERVERS and (problem := _require_servers(_settings(), argv[0])):
            print(problem, file=sys.stderr)
            return 2
        return modelbus(argv)
    args = build_parser().parse_args(argv)
    if args.command == "probe":
        return cmd_probe(args)
    settings = _settings()
    if args.command == "kafka-topics":
        for line in kafka_topics_commands(settings, args.replication_factor, args.min_insync_replicas):
            print(line)
        return 0
    if problem := _require_servers(settings, args.command):
        print(problem, file=sys.stderr)
        return 2
    return cmd_api(settings) if args.command == "api" else cmd_init(settings)


if __name__ == "__main__":
    sys.exit(main())
