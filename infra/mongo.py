"""MongoDB: the async client, collection names and the indexes modelbus relies on."""

from __future__ import annotations

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from infra.settings import Settings

# Projections (read models, rebuilt by replay)
JOBS = "jobs"
MODELS = "models"
PROJECTIONS: tuple[str, ...] = (JOBS, MODELS)
# Durable record of every event
ARCHIVE = "archive"
# Operational state (not projections)
RECORD_BLOCKS = "record_blocks"
LEASES = "leases"
COUNTERS = "counters"
API_KEYS = "api_keys"
USERS = "users"
SECRETS = "secrets"
RATE_LIMITS = "rate_limits"
ARTIFACT_BUCKET = "artifacts"


def client(settings: Settings) -> AsyncMongoClient:
    if not settings.mongodb_url:
        raise RuntimeError("MODELBUS_MONGODB_URL is not set and no embedded server is running")
    return AsyncMongoClient(settings.mongodb_url, tz_aware=True, serverSelectionTimeoutMS=3000, connectTimeoutMS=3000)


async def ensure_indexes(db: AsyncDatabase) -> None:
    await db[JOBS].create_indexes(
        [
            IndexModel([("submitted_at", DESCENDING)]),
            IndexModel([("domain", ASCENDING), ("model_type", ASCENDING), ("status", ASCENDING)]),
        ]
    )
    await db[MODELS].create_indexes(
        [IndexModel([("domain", ASCENDING), ("status", ASCENDING)]), IndexModel([("trained_at", DESCENDING)])]
    )
    await db[ARCHIVE].create_indexes([IndexModel([("time", ASCENDING)]), IndexModel([("subject", ASCENDING)])])
    await db[RECORD_BLOCKS].create_indexes([IndexModel([("start", ASCENDING), ("end", ASCENDING)])])
    await db[LEASES].create_indexes([IndexModel([("state", ASCENDING), ("expires_at", ASCENDING)])])
    await db[API_KEYS].create_indexes([IndexModel([("hash", ASCENDING)], unique=True)])
    await db[RATE_LIMITS].create_indexes([IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0)])
