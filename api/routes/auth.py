"""``/auth``: login and refresh (JWT), API keys and users for admins."""

from __future__ import annotations

from typing import Any, Literal

from litestar import Controller, Request, delete, get, post
from litestar.status_codes import HTTP_201_CREATED
from pydantic import BaseModel, ConfigDict, Field
from pymongo.asynchronous.database import AsyncDatabase

from api.errors import error_responses
from api.security import api_key_guard, decode_token, issue_tokens
from infra import keys, mongo, users
from schemas.auth import ApiKeyCreated, ApiKeyInfo, ApiKeyList, ApiKeyRevoked, TokenPair, UserCreated
from schemas.errors import ApiError

Tier = Literal["free", "premium", "enterprise"]
Scope = Literal["read", "predict", "train", "deploy", "admin"]


class LoginRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"username": "user@example.com", "password": "secure_password"}]}
    )  # the seed's example

    username: str = Field(min_length=1, max_length=200)
    password: str = Field(min_length=1, max_length=500)


class RefreshRequest(BaseModel):
    refresh_token: str = Field(min_length=10)


class KeyRequest(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    tier: Tier = "free"
    scopes: list[Scope] = Field(default_factory=lambda: ["read", "predict"])


class UserRequest(BaseModel):
    username: str = Field(min_length=1, max_length=200)
    password: str = Field(min_length=8, max_length=500)
    tier: Tier = "free"
    scopes: list[Scope] = Field(default_factory=lambda: ["read", "predict"])


def _tokens(request: Request[Any, Any, Any], username: str, tier: str, scopes: list[str]) -> TokenPair:
    s = request.app.state.settings
    return TokenPair(
        **issue_tokens(
            request.app.state.jwt_secret,
            username,
            tier,
            scopes,
            access_s=s.access_token_seconds,
            refresh_s=s.refresh_token_seconds,
        )
    )


class AuthController(Controller):
    path = "/auth"
    tags = ["auth"]

    @post(
        "/login",
        status_code=200,
        summary="Log in: access and refresh tokens",
        responses=error_responses(400, 401, 422, guarded=False),
    )
    async def login(self, request: Request[Any, Any, Any], data: LoginRequest, db: AsyncDatabase) -> TokenPair:
        user = await users.verify_user(db, data.username, data.password)
        if user is None:
            raise ApiError(401, "INVALID_CREDENTIALS", "wrong username or password")
        return _tokens(request, user["_id"], user["tier"], user["scopes"])

    @post(
        "/refresh",
        status_code=200,
        summary="Exchange a refresh token for a new pair",
        responses=error_responses(400, 401, 422, guarded=False),
    )
    async def refresh(self, request: Request[Any, Any, Any], data: RefreshRequest, db: AsyncDatabase) -> TokenPair:
        claims = decode_token(request.app.state.jwt_secret, data.refresh_token, "refresh")
        user = await db[mongo.USERS].find_one({"_id": claims["sub"], "disabled": False})
        if user is None:
            raise ApiError(401, "INVALID_TOKEN", "the user no longer exists")
        return _tokens(request, user["_id"], user["tier"], user["scopes"])

    @get("/keys", guards=[api_key_guard], summary="API keys (admin)", responses=error_responses())
    async def list_keys(self, db: AsyncDatabase) -> ApiKeyList:
        docs = db[mongo.API_KEYS].find({}, {"hash": 0}).sort("created_at", -1)
        return ApiKeyList(
            keys=[
                ApiKeyInfo(
                    key_id=d["_id"],
                    name=d["name"],
                    tier=d["tier"],
                    scopes=d["scopes"],
                    prefix=d.get("prefix"),
                    revoked=d["revoked"],
                    created_at=d["created_at"].isoformat(),
                )
                async for d in docs
            ]
        )

    @post(
        "/keys",
        guards=[api_key_guard],
        status_code=HTTP_201_CREATED,
        summary="Create an API key (admin)",
        responses=error_responses(400, 422),
    )
    async def create_key(self, data: KeyRequest, db: AsyncDatabase) -> ApiKeyCreated:
        key = keys.generate_key()
        doc = await keys.store_key(db, key, name=data.name, tier=data.tier, scopes=tuple(data.scopes))
        return ApiKeyCreated(
            key=key,
            key_id=doc["_id"],
            tier=doc["tier"],
            scopes=doc["scopes"],
            note="shown once; only its hash is stored",
        )

    @delete(
        "/keys/{key_id:str}",
        guards=[api_key_guard],
        status_code=200,
        summary="Revoke an API key (admin)",
        responses=error_responses(404, 422),
    )
    async def revoke_key(self, request: Request[Any, Any, Any], key_id: str, db: AsyncDatabase) -> ApiKeyRevoked:
        result = await db[mongo.API_KEYS].update_one({"_id": key_id}, {"$set": {"revoked": True}})
        if result.matched_count == 0:
            raise ApiError(404, "KEY_NOT_FOUND", f"no API key {key_id!r}", field="key_id")
        request.app.state.key_cache.clear()
        return ApiKeyRevoked(key_id=key_id, revoked=True)

    @post(
        "/users",
        guards=[api_key_guard],
        status_code=HTTP_201_CREATED,
        summary="Create a user (admin)",
        responses=error_responses(400, 422),
    )
    async def create_user(self, data: UserRequest, db: AsyncDatabase) -> UserCreated:
        doc = await users.create_user(db, data.username, data.password, tier=data.tier, scopes=tuple(data.scopes))
        return UserCreated(username=doc["_id"], tier=doc["tier"], scopes=doc["scopes"])
