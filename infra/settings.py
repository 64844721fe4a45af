"""All configuration in one pydantic-settings class. Every field is a ``MODELBUS_`` variable
and is documented in the README's configuration table."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MODELBUS_", extra="ignore")

    kafka_bootstrap: str | None = Field(None, description="Kafka bootstrap servers; unset = embedded Tansu broker")
    mongodb_url: str | None = Field(None, description="MongoDB URL; unset = embedded SecantusDB daemon")
    mongodb_db: str = Field("modelbus", description="MongoDB database name")
    archive_mongodb_url: str | None = Field(
        None,
        description="MongoDB URL of the event archive (same database name); unset = the main MongoDB, or with "
        "the embedded default a second SecantusDB daemon, so archiving every event does not slow the projections",
    )
    topic_prefix: str = Field("modelbus.", description="prefix of every topic name")
    topic_partitions: int = Field(3, ge=1, le=64, description="partitions per topic created by modelbus")
    kafka_idempotence: bool = Field(
        False, description="enable the idempotent producer (real Kafka only; Tansu refuses it)"
    )
    fetch_max_wait_ms: int = Field(
        20, ge=1, le=5000, description="fetch wait of the projector (command-to-projection latency); 10-20 ms on Tansu"
    )
    background_fetch_max_wait_ms: int = Field(
        100,
        ge=1,
        le=5000,
        description="fetch wait of the consumers nobody waits on (archive, ingest, training, analyser, RL deploys): "
        "Tansu answers a fetch only when the wait expires, so short waits cost broker CPU even when idle",
    )
    rpc_fetch_max_wait_ms: int = Field(
        5, ge=1, le=5000, description="fetch wait of the request/reply consumers (latency-critical path)"
    )
    idle_fetch_max_wait_ms: int = Field(
        1000,
        ge=0,
        le=5000,
        description="a consumer whose fetches brought nothing for `MODELBUS_IDLE_AFTER_SECONDS` waits up to 10x its "
        "fetch wait per fetch, at most this long (request consumers 5 -> 50 ms, projector 20 -> 200 ms, background "
        "100 -> 1000 ms); the first fetch with data restores its wait. Tansu charges every fetch, so this is what an "
        "idle stack costs. 0 = always the short wait (the polling before issue 16)",
    )
    idle_after_seconds: float = Field(
        10.0, gt=0, le=3600, description="how long a consumer fetches nothing before it waits the idle fetch wait"
    )
    keep_warm_seconds: float = Field(
        60.0,
        ge=0,
        le=3600,
        description="an API process that made no worker call for this long pings the database once, so the first "
        "request after a long pause finds its database connection open (it went cold after ~10 idle minutes on the "
        "embedded SecantusDB: 167.6 ms for the first authenticated request, 11.5 ms with the ping). 0 = never",
    )
    kafka_embedded: bool = Field(
        False,
        description="set by `modelbus up` when it started the embedded Tansu broker (turns on topic generations); "
        "leave unset with a real Kafka",
    )
    generation_max_records: int = Field(
        3000,
        ge=0,
        description="embedded broker only: once a partition of predict.requests, predict.served or an API "
        "process's reply topic holds this many records, new messages go to a fresh topic generation and the old "
        "one is deleted when every consumer group (the archive among them) has committed all of it "
        "(docs/embedded.md); 0 = never",
    )
    served_linger_ms: int = Field(
        20,
        ge=0,
        le=1000,
        description="how long a prediction worker gathers predict.served events into one record batch "
        "(fewer produce requests; on Tansu, fewer stored batches keep later fetches cheap)",
    )
    worker_layout: Literal["processes", "inline"] = Field(
        "processes",
        description="`modelbus up`: 'processes' = prediction workers and background consumers in two child "
        "processes beside the API (uses every core); 'inline' = every consumer in the API process",
    )
    serving_concurrency: int = Field(16, ge=1, le=256, description="requests one serving worker handles at once")
    consumer_group_prefix: str = Field("modelbus", description="prefix of every consumer group id")
    host: str = Field("127.0.0.1", description="API bind address")
    port: int = Field(8000, ge=0, le=65535, description="API port")
    public_url: str | None = Field(None, description="URL the API is reached at (default http://host:port)")
    data_dir: Path = Field(Path(".modelbus"), description="embedded database files, logs and stack.json")
    api_key: str | None = Field(
        None, description="bootstrap admin API key; unset = `up` generates one and prints it once"
    )
    train_processes: int = Field(1, ge=1, le=64, description="training process pool size per worker")
    train_threads: int = Field(
        0,
        ge=0,
        le=256,
        description="OpenMP threads per training process (LightGBM, torch); 0 = cores - 1, at least 1, so a core "
        "stays free for the broker, the database and the API",
    )
    job_lease_seconds: float = Field(15.0, gt=0.5, description="job lease; an expired lease means a dead worker")
    job_max_attempts: int = Field(3, ge=1, le=20, description="attempts before a job is failed")
    progress_interval_seconds: float = Field(1.0, gt=0, description="minimum time between progress events")
    dlq_retries: int = Field(2, ge=0, le=10, description="in-process retries before a message goes to the DLQ")
    request_timeout_seconds: float = Field(10.0, gt=0, description="Kafka request/reply timeout for the API")
    projection_batch_ms: int = Field(10, ge=1, description="how long projectors wait to fill a batch")
    jwt_secret: str | None = Field(
        None, description="JWT signing secret; unset = generated once and shared by all API processes via MongoDB"
    )
    access_token_seconds: int = Field(3600, ge=60, description="lifetime of access tokens")
    refresh_token_seconds: int = Field(30 * 86400, ge=300, description="lifetime of refresh tokens")
    rate_limits_enabled: bool = Field(True, description="enforce the per-tier rate limits and concurrency caps")
    auth_enabled: bool = Field(
        True, description="false = no authentication at all (benchmarks only; never in production)"
    )
    cors_origins: list[str] = Field(default_factory=lambda: ["*"], description="allowed CORS origins (JSON list)")
    metrics_public: bool = Field(True, description="serve /metrics without credentials")
    log_level: str = Field("INFO", description="log level")
    log_json: bool | None = Field(
        None,
        description="JSON log lines on stderr (true), short lines (false); unset: JSON unless stderr is a terminal, "
        "where only warnings and errors show and the full JSON log goes to <data_dir>/logs/modelbus.jsonl",
    )
    event_loop: Literal["uvloop", "asyncio"] = Field(
        "uvloop", description="event loop of `modelbus up` and `modelbus worker` (uvloop: less CPU per message)"
    )
    demo_records_per_day: int = Field(400, ge=10, le=20000, description="demo transactions per day")
    # RL agents (/api/v1): deployment and worker samples
    kubeconfig: str | None = Field(
        None, description="kubeconfig file; set = RL deploys are applied to that cluster, unset = local workers"
    )
    k8s_namespace: str = Field("modelbus", description="default namespace of RL agent deployments")
    k8s_image: str = Field("modelbus:1.0.0", description="container image of the RL agent pods")
    k8s_rollout_timeout_seconds: float = Field(300.0, gt=0, description="wait for a rollout before failing it")
    sample_interval_seconds: float = Field(10.0, gt=0, description="worker CPU/memory sample period")
    rl_model_id: str | None = Field(None, description="RL agent a serving worker loads at start (set in agent pods)")
    # Tabular serving and canary analysis (/v1/ml/predict, /v1/ml/deploy)
    deploy_refresh_ms: int = Field(
        200, ge=10, le=10000, description="how often prediction workers re-read the deployment state (ms)"
    )
    canary_window_seconds: float = Field(
        60.0, gt=0, le=3600, description="canary analysis window; a verdict is computed when a window closes"
    )
    canary_min_requests: int = Field(
        500, ge=1, description="canary: requests per arm before proceed (the minimum exposure)"
    )
    canary_min_labelled: int = Field(
        300, ge=1, description="canary: labelled predictions per arm before proceed (harm is judged from 30)"
    )
    canary_label_horizon_days: float = Field(
        30.0, gt=0, le=3650, description="canary/shadow: labels are joined until this long after it ends"
    )

    @property
    def train_threads_effective(self) -> int:
        return self.train_threads or max(1, (os.cpu_count() or 2) - 1)

    @property
    def archive_url(self) -> str | None:
        """Where the event archive lives: its own server when configured, else the main database."""
        return self.archive_mongodb_url or self.mongodb_url

    @property
    def embedded(self) -> bool:
        return not (self.kafka_bootstrap and self.mongodb_url)

    @property
    def api_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"

    def topic(self, short: str) -> str:
        return f"{self.topic_prefix}{short}"

    def group(self, name: str) -> str:
        return f"{self.consumer_group_prefix}-{name}"

    @property
    def stack_file(self) -> Path:
        return self.data_dir / "stack.json"

    def with_stack_file(self) -> Settings:
        """Fill the connection fields from ``stack.json`` written by a running ``modelbus up``."""
        if self.kafka_bootstrap and self.mongodb_url:
            return self
        if not self.stack_file.exists():
            raise FileNotFoundError(
                f"no {self.stack_file}: start `modelbus up` first "
                "or set MODELBUS_KAFKA_BOOTSTRAP and MODELBUS_MONGODB_URL"
            )
        stack = json.loads(self.stack_file.read_text())
        return self.model_copy(
            update={
                "kafka_bootstrap": self.kafka_bootstrap or stack["kafka_bootstrap"],
                "mongodb_url": self.mongodb_url or stack["mongodb_url"],
                "archive_mongodb_url": self.archive_mongodb_url or stack.get("archive_mongodb_url"),
            }
        )
