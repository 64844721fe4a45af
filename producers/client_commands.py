"""The client commands of ``modelbus`` (``train``, ``jobs``, ``models``, ``deploy``, ``canary watch``, ``events
tail``): they talk to a running API over HTTP through ``producers.api_client.PacedClient`` (429/Retry-After
honoured, error answers turned into one line), except ``events tail`` which reads a Kafka topic.

Every command is a function taking parsed values and returning the exit code; every error is one line on
stderr (``error 404 MODEL_NOT_FOUND: no model 'x' (field model_id)``) and exit code 1, never a traceback.
The table helpers (``table``, ``metrics_table``, ...) are pure. ``bootstrap/cli.py`` only wires argparse."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TextIO

import httpx

from infra.settings import Settings
from producers.api_client import ApiFailure, DeadlineReached, PacedClient

TERMINAL_JOB = ("completed", "failed", "cancelled")
FOLLOW_POLL_S = 0.5
WATCH_POLL_S = 2.0
HISTORY_MAX = 100
"""the API's largest ``limit`` of ``GET /v1/ml/train/history``"""
KEY_METRICS = ("accuracy", "f1_score", "roc_auc")
NO_KEY = "give --api-key (or set MODELBUS_API_KEY; `make run` stacks are found by themselves)"


# --- where the API is -------------------------------------------------------------------------------------


def _stack_info(settings: Settings) -> dict[str, Any]:
    """What a running ``modelbus up`` wrote to its stack file (empty without one)."""
    try:
        return dict(json.loads(settings.stack_file.read_text()))
    except (OSError, ValueError):
        return {}


def api_target(settings: Settings, url: str | None, api_key: str | None) -> tuple[str, str | None]:
    """The API's URL and key: ``--url``, else ``api_url`` of the stack file (written by ``modelbus up``), else
    ``settings.api_url``; ``--api-key``, else ``MODELBUS_API_KEY``, else the stack file's ``demo_api_key``."""
    stack = _stack_info(settings)
    return (
        url or stack.get("api_url") or settings.api_url,
        api_key or settings.api_key or stack.get("demo_api_key"),
    )


def kafka_target(settings: Settings) -> str | None:
    """``MODELBUS_KAFKA_BOOTSTRAP``, else ``kafka_bootstrap`` of the stack file."""
    return settings.kafka_bootstrap or _stack_info(settings).get("kafka_bootstrap")


# --- pure formatting helpers ------------------------------------------------------------------------------


def cell(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain text table: a header, a rule, one line per row, columns left-aligned."""
    text = [[str(h) for h in headers], *[[cell(v) for v in row] for row in rows]]
    widths = [max(len(r[i]) for r in text) for i in range(len(headers))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in text]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def parse_param(text: str) -> tuple[str, Any]:
    """``k=v`` with v an int, a float, a bool (true/false) or else a string; raises ValueError."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"--param {text!r}: expected key=value")
    raw = raw.strip()
    value: Any
    if raw.lower() in ("true", "false"):
        value = raw.lower() == "true"
    else:
        try:
            value = int(raw)
        except ValueError:
            try:
                value = float(raw)
            except ValueError:
                value = raw
    return key.strip(), value


def metrics_table(metrics: dict[str, Any] | None, baseline: dict[str, Any] | None) -> str:
    """The model's hold-out metrics beside the majority-class baseline's, one metric per line."""
    metrics, baseline = metrics or {}, baseline or {}
    names = [n for n in metrics if not isinstance(metrics[n], dict | list)]
    names += [n for n in baseline if n not in metrics and not isinstance(baseline[n], dict | list)]
    return table(("metric", "model", "baseline"), [(n, metrics.get(n), baseline.get(n)) for n in names])


def progress_bar(progress: float, width: int = 30) -> str:
    done = max(0, min(width, round(progress / 100 * width)))
    return f"[{'#' * done}{'.' * (width - done)}] {progress:5.1f}%"


def jobs_table(jobs: Sequence[dict[str, Any]]) -> str:
    rows = [
        (
            j.get("job_id"),
            j.get("status"),
            j.get("model_type"),
            f"{j.get('progress') or 0:.0f}%",
            j.get("model_id"),
            j.get("started_at"),
            None if j.get("duration_minutes") is None else f"{j['duration_minutes']:.2f} min",
            (j.get("metrics") or {}).get("f1_score"),
        )
        for j in jobs
    ]
    return table(("job_id", "status", "type", "progress", "model_id", "started_at", "duration", "f1_score"), rows)


def models_table(models: Sequence[dict[str, Any]]) -> str:
    rows = [
        (
            m.get("model_id"),
            m.get("model_type"),
            m.get("status"),
            *((m.get("metrics") or {}).get(k) for k in KEY_METRICS),
        )
        for m in models
    ]
    return table(("model_id", "type", "status", *KEY_METRICS), rows)


def canary_table(status: dict[str, Any]) -> str:
    """Both arms of a canary status (requests, labelled, accuracy, p95 latency), then its recommendation."""
    arms = status.get("metrics") or {}
    rows = []
    for label, key in (("canary", "new_model"), ("production", "old_model")):
        arm = arms.get(key) or {}
        p95 = arm.get("latency_p95_ms")
        rows.append(
            (
                label,
                arm.get("model_id"),
                arm.get("requests"),
                arm.get("labelled"),
                arm.get("accuracy"),
                None if p95 is None else f"{p95:.1f} ms",
            )
        )
    head = (
        f"canary {status.get('canary_id')} ({status.get('status')}, "
        f"{cell(status.get('current_traffic_percentage'), 1)} % of traffic)"
    )
    verdict = f"recommendation: {status.get('recommendation')} ({status.get('reason')})"
    return "\n".join(
        (head, table(("arm", "model_id", "requests", "labelled", "accuracy", "p95 latency"), rows), verdict)
    )


def error_text(exc: ApiFailure, url: str) -> str:
    """``error 404 MODEL_NOT_FOUND: no model 'x' (field model_id)``, or that the API is not reachable."""
    if isinstance(exc.__cause__, httpx.ConnectError):
        return f"error: the API is not reachable at {url} (is `modelbus up` running?)"
    if exc.status is not None and " answered " in exc.line:
        return f"error {exc.line.split(' answered ', 1)[1]}"
    return f"error: {exc.line}"


# --- running a command against the API --------------------------------------------------------------------


def _stderr(line: str) -> None:
    if not line.startswith("this key may send"):  # the pacing note: not worth a line in a one-shot command
        print(line, file=sys.stderr, flush=True)


def run_api(url: str, api_key: str | None, body: Callable[[PacedClient], Awaitable[int]]) -> int:
    """Runs ``body`` with a client of the API; every failure becomes one line on stderr and exit code 1,
    Ctrl-C exit code 130."""
    if not api_key:
        print(NO_KEY, file=sys.stderr)
        return 2

    async def main() -> int:
        headers = {"X-API-Key": api_key, "Accept-Language": "en"}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:
            return await body(PacedClient(client, deadline=time.monotonic() + 10 * 24 * 3600, out=_stderr))

    try:
        return asyncio.run(main())
    except ApiFailure as exc:
        print(error_text(exc, url), file=sys.stderr)
        return 1
    except DeadlineReached as exc:
        print(f"error: {exc.refusal or 'gave up waiting for the rate limit'}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("stopped: interrupted", file=sys.stderr)
        return 130


def _json(body: Any) -> str:
    return json.dumps(body, indent=2)


# --- the commands -----------------------------------------------------------------------------------------


def train(
    url: str,
    api_key: str | None,
    *,
    model_type: str,
    start_date: str,
    end_date: str,
    params: Sequence[str] = (),
    follow: bool = False,
    err: TextIO | None = None,
) -> int:
    try:
        hyperparameters = dict(parse_param(p) for p in params)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    request = {
        "model_type": model_type,
        "data_period": {"start_date": start_date, "end_date": end_date},
        "hyperparameters": hyperparameters,
    }
    out_err = err or sys.stderr

    async def body(api: PacedClient) -> int:
        accepted = (await api.post("/v1/ml/train", request)).json()
        if not follow:
            print(_json(accepted))
            return 0
        job_id = accepted["job_id"]
        tty = out_err.isatty()
        print(f"job {job_id} submitted ({model_type}, {start_date}..{end_date})", file=out_err, flush=True)
        last = None
        while True:
            status = (await api.get(f"/v1/ml/train/status/{job_id}")).json()
            progress = float(status.get("progress") or 0.0)
            line = f"{progress_bar(progress)} {status['status']}"
            if tty:
                print(f"\r{line}", end="", file=out_err, flush=True)
            elif (status["status"], round(progress)) != last:
                print(line, file=out_err, flush=True)
            last = (status["status"], round(progress))
            if status["status"] in TERMINAL_JOB:
                break
            await asyncio.sleep(FOLLOW_POLL_S)
        if tty:
            print(file=out_err, flush=True)
        if status["status"] != "completed":
            print(f"job {job_id} {status['status']}: {status.get('error') or 'no reason given'}", file=sys.stderr)
            return 1
        history = (await api.get(f"/v1/ml/train/history?limit={HISTORY_MAX}")).json().get("jobs", [])
        baseline = next((j.get("baseline") for j in history if j.get("job_id") == job_id), None)
        minutes = status.get("duration_minutes")
        print(f"job {job_id} completed: model {status.get('model_id')}" + (f" in {minutes:.2f} min" if minutes else ""))
        print(metrics_table(status.get("metrics"), baseline))
        return 0

    return run_api(url, api_key, body)


def jobs(url: str, api_key: str | None, *, status: str | None = None, limit: int = 10) -> int:
    """The history endpoint has only ``limit``: with ``--status`` the newest 100 jobs are filtered here."""

    async def body(api: PacedClient) -> int:
        fetch = HISTORY_MAX if status else limit
        items = (await api.get(f"/v1/ml/train/history?limit={fetch}")).json().get("jobs", [])
        if status:
            items = [j for j in items if j.get("status") == status][:limit]
        print(jobs_table(items))
        return 0

    return run_api(url, api_key, body)


def models(url: str, api_key: str | None) -> int:
    async def body(api: PacedClient) -> int:
        print(models_table((await api.get("/v1/ml/models")).json().get("models", [])))
        return 0

    return run_api(url, api_key, body)


def deploy(url: str, api_key: str | None, action: str, target: str | None = None, percentage: float = 10) -> int:
    """``staging`` / ``canary`` / ``promote`` a model, ``rollback`` a canary, ``emergency-rollback``."""
    requests: dict[str, tuple[str, Any]] = {
        "staging": ("/v1/ml/deploy/staging", {"model_id": target}),
        "canary": ("/v1/ml/deploy/canary/start", {"model_id": target, "initial_traffic_percentage": percentage}),
        "promote": ("/v1/ml/deploy/production", {"model_id": target}),
        "rollback": (f"/v1/ml/deploy/canary/{target}/rollback", None),
        "emergency-rollback": ("/v1/ml/deploy/rollback/emergency", None),
    }
    path, payload = requests[action]

    async def body(api: PacedClient) -> int:
        print(_json((await api.post(path, payload)).json()))
        return 0

    return run_api(url, api_key, body)


def canary_watch(url: str, api_key: str | None, canary_id: str | None = None, *, once: bool = False) -> int:
    async def body(api: PacedClient) -> int:
        cid = canary_id
        if cid is None:
            running = (await api.get("/v1/ml/deploy/current")).json().get("canary")
            if not running:
                print("no canary is running (give a CANARY_ID to see a finished one)", file=sys.stderr)
                return 1
            cid = running["canary_id"]
        while True:
            status = (await api.get(f"/v1/ml/deploy/canary/{cid}/status")).json()
            print(canary_table(status), flush=True)
            if status.get("status") != "monitoring":
                print(f"canary {cid} ended: {status.get('status')} ({status.get('reason')})", flush=True)
                return 0
            if once:
                return 0
            print(flush=True)
            await asyncio.sleep(WATCH_POLL_S)

    return run_api(url, api_key, body)


def type_matches(event_type: str, wanted: str | None) -> bool:
    """``--type`` is an event type or a prefix of whole dotted parts (``modelbus.train.job``)."""
    return wanted is None or event_type == wanted or event_type.startswith(wanted.rstrip(".*") + ".")


def events_tail(
    settings: Settings,
    topic: str,
    *,
    event_type: str | None = None,
    subject: str | None = None,
    from_beginning: bool = False,
    max_events: int | None = None,
) -> int:
    """Prints the topic's envelopes as JSON lines; no consumer group (every partition assigned by hand)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.errors import KafkaError
    from pydantic import ValidationError

    from schemas.envelope import Envelope

    bootstrap = kafka_target(settings)
    if not bootstrap:
        print(
            f"error: no Kafka to read: set MODELBUS_KAFKA_BOOTSTRAP or start `modelbus up` ({settings.stack_file})",
            file=sys.stderr,
        )
        return 1
    full = settings.topic(topic)

    async def main() -> int:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, request_timeout_ms=30000)
        try:
            await consumer.start()
        except KafkaError as exc:
            print(f"error: Kafka is not reachable at {bootstrap} ({type(exc).__name__})", file=sys.stderr)
            return 1
        try:
            parts = consumer.partitions_for_topic(full)
            if not parts:
                await consumer.topics()
                parts = consumer.partitions_for_topic(full)
            if not parts:
                print(f"error: no topic {full!r} (see `modelbus topics`)", file=sys.stderr)
                return 1
            tps = [TopicPartition(full, p) for p in sorted(parts)]
            consumer.assign(tps)
            if from_beginning:
                await consumer.seek_to_beginning(*tps)
            else:
                await consumer.seek_to_end(*tps)
            printed = 0
            while max_events is None or printed < max_events:
                batches = await consumer.getmany(timeout_ms=500, max_records=500)
                for records in batches.values():
                    for rec in records:
                        try:
                            env = Envelope.from_bytes(rec.value)
                        except ValidationError:
                            print(f"skipped a record that is not an envelope at offset {rec.offset}", file=sys.stderr)
                            continue
                        if not type_matches(env.type, event_type) or (subject and env.subject != subject):
                            continue
                        print(env.model_dump_json(), flush=True)
                        printed += 1
                        if max_events is not None and printed >= max_events:
                            return 0
            return 0
        finally:
            await consumer.stop()

    try:
        return asyncio.run(main())
    except KeyboardInterrupt:
        return 130
    except KafkaError as exc:
        print(f"error: reading {full} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
