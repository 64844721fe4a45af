"""MongoDB: the async client, collection names and the indexes modelbus relies on."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from infra.settings import Settings

# Projections (read models, rebuilt by replay)
JOBS = "jobs"
MODELS = "models"
LOTTO_DRAWS = "lotto_draws"
RL_EPISODES = "rl_episodes"
RL_DEPLOYMENTS = "rl_deployments"
RL_SERVED = "rl_served"
PREDICTIONS = "predictions"
"""tabular prediction records: what was served (and what a shadow would have answered) and the label once it
arrives, folded from ``predict.served`` and ``predict.feedback`` by the canary analyser; feedback is checked
against it"""
DEPLOYMENTS = "deployments"
"""tabular deployment state per family (production, previous productions, active canary)"""
CANARIES = "canaries"
SHADOWS = "shadows"
CANARY_STRATA = "canary_strata"
"""the evidence of every canary and shadow: per (analysis, traffic step, 10-minute block) and arm, requests,
errors, latency histogram, confusion matrix, labels too late; updated with the prediction records"""
CANARY_WINDOWS = "canary_windows"
"""one document per canary/shadow metrics event: the evidence and the anytime-valid intervals over time"""
DEPLOY_HISTORY = "deploy_history"
"""audit trail: one document per deployment step (``_id`` = event id)"""
# Durable record of every event
ARCHIVE = "archive"
# Operational state (not projections)
RECORD_BLOCKS = "record_blocks"
RECORD_BLOCK_INDEX = "record_block_index"
LEASES = "leases"
COUNTERS = "counters"
API_KEYS = "api_keys"
USERS = "users"
SECRETS = "secrets"
RATE_LIMITS = "rate_limits"
ARTIFACT_BUCKET = "artifacts"
STATUS_CLAIMS = "status_claims"
"""model status changes claimed by (model_id, status_version): the compare-and-set behind 409"""
# Telemetry with a TTL (monitoring endpoints)
REQUEST_LOG = "request_log"
LOTTO_GENERATIONS = "lotto_generations"
WORKER_SAMPLES = "worker_samples"
TELEMETRY_TTL_SECONDS = 7 * 24 * 3600


ID_CHUNK = 50
"""``_id`` lookups go ``$in`` this many ids at a time: SecantusDB's ``$in`` cost grows with the square of
the list (2,000 ids in one query: 4 s; in chunks of 50: 0.2 s), and real MongoDB does not mind."""


async def find_by_ids(
    coll: Any, ids: Iterable[Any], query: dict[str, Any] | None = None, projection: Any = None, session: Any = None
) -> dict[Any, dict[str, Any]]:
    """The documents whose ``_id`` is in ``ids`` (and that match ``query``), by ``_id``."""
    wanted = list(ids)
    found: dict[Any, dict[str, Any]] = {}
    for start in range(0, len(wanted), ID_CHUNK):
        flt = {"_id": {"$in": wanted[start : start + ID_CHUNK]}} | (query or {})
        found |= {d["_id"]: d async for d in coll.find(flt, projection, session=session)}
    return found


def client(settings: Settings, *, archive: bool = False) -> AsyncMongoClient:
    """A client of the main database server, or with ``archive`` of the event archive's server
    (``settings.archive_url``: the same server unless the archive has one of its own)."""
    url = settings.archive_url if archive else settings.mongodb_url
    if not url:
        raise RuntimeError("MODELBUS_MONGODB_URL is not set and no embedded server is running")
    return AsyncMongoClient(url, tz_aware=True, serverSelectionTimeoutMS=3000, connectTimeoutMS=3000)


async def ensure_archive_indexes(db: AsyncDatabase) -> None:
    """Indexes of the event archive (``db`` is the database on the archive's server)."""
    await db[ARCHIVE].create_indexes([IndexModel([("time", ASCENDING)]), IndexModel([("subject", ASCENDING)])])


PLATFORM_INDEXES: dict[str, list[IndexModel]] = {
    JOBS: [
        IndexModel([("submitted_at", DESCENDING)]),
        IndexModel([("domain", ASCENDING), ("model_type", ASCENDING), ("status", ASCENDING)]),
    ],
    MODELS: [IndexModel([("domain", ASCENDING), ("status", ASCENDING)]), IndexModel([("trained_at", DESCENDING)])],
    LEASES: [IndexModel([("state", ASCENDING), ("expires_at", ASCENDING)])],
    API_KEYS: [IndexModel([("hash", ASCENDING)], unique=True)],
    RATE_LIMITS: [IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0)],
    WORKER_SAMPLES: [
        IndexModel([("time", ASCENDING)], expireAfterSeconds=TELEMETRY_TTL_SECONDS),
        IndexModel([("models", ASCENDING), ("time", ASCENDING)]),
    ],
    REQUEST_LOG: [IndexModel([("ts", ASCENDING)], expireAfterSeconds=TELEMETRY_TTL_SECONDS)],
}
_INDEXES: dict[str, list[IndexModel]] = dict(PLATFORM_INDEXES)


def register_indexes(indexes: Mapping[str, Sequence[IndexModel]]) -> None:
    """Adds the indexes of a domain's collections (the composition root calls this once per process)."""
    for name, models in indexes.items():
        _INDEXES[name] = list(models)


async def ensure_indexes(db: AsyncDatabase) -> None:
    for name, models in _INDEXES.items():
        await db[name].create_indexes(models)
