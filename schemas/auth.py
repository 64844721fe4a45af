"""``/auth`` answers: login and refresh tokens, API keys and users."""

from __future__ import annotations

from pydantic import BaseModel, Field

from schemas.common import document_zero_bounds


class TokenPair(BaseModel):
    """``POST /auth/login`` and ``POST /auth/refresh``: a new access and refresh token (HS256 JWT)."""

    access_token: str = Field(description="send as 'Authorization: Bearer <token>'")
    refresh_token: str = Field(description="exchange at POST /auth/refresh for a new pair")
    token_type: str = Field(description="bearer")
    expires_in: int = Field(description="lifetime of the access token in seconds")


class ApiKeyInfo(BaseModel):
    """An API key as listed (its hash and value are never shown)."""

    key_id: str
    name: str
    tier: str = Field(description="free, premium or enterprise (rate limits)")
    scopes: list[str] = Field(description="read, predict, train, deploy, admin")
    prefix: str | None = Field(description="the first characters of the key, to recognise it")
    revoked: bool
    created_at: str = Field(description="ISO 8601 with the UTC offset")


class ApiKeyList(BaseModel):
    """``GET /auth/keys``: every API key, newest first."""

    keys: list[ApiKeyInfo]


class ApiKeyCreated(BaseModel):
    """``POST /auth/keys``: the new key, shown once."""

    key: str = Field(description="the key itself: send it as X-API-Key; only its hash is stored")
    key_id: str
    tier: str
    scopes: list[str]
    note: str


class ApiKeyRevoked(BaseModel):
    """``DELETE /auth/keys/{key_id}``."""

    key_id: str
    revoked: bool


class UserCreated(BaseModel):
    """``POST /auth/users``: the user (created, or replaced when the username exists)."""

    username: str
    tier: str
    scopes: list[str]


document_zero_bounds(globals())
