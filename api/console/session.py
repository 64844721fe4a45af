"""The console's session: login (API key or user), the signed session cookie, CSRF and scopes.

* ``POST /ui/login`` takes ``api_key`` or ``username`` + ``password`` (the same checks as the API:
  ``infra.keys.find_key``, ``infra.users.verify_user``) and sets ``mb_console``: an HttpOnly,
  SameSite=Strict cookie holding a JWT signed with the app's ``jwt_secret`` (type ``console``, 30 minutes,
  the key id or ``user:<name>``, tier, scopes and a random CSRF token). The login form itself is protected
  by a double-submit token (``mb_login_csrf`` cookie + hidden field).
* Every console page is guarded by ``console_principal``: no valid session → redirect to ``/ui/login``.
  The key or user is looked up again (cached a few seconds), so a revoked key or disabled user is out at
  once and a scope change applies at the next request.
* State-changing requests need the session's CSRF token: in the ``X-CSRF-Token`` header (console JS) or
  the ``csrf`` form field. ``require_action(request, scope)`` checks it and the scope, exactly as
  ``api.security.required_scope`` would for the API route (403 otherwise).
* The console's JS calls the JSON API with this cookie: ``api.security.authenticate`` accepts it through
  ``api_principal`` (CSRF header required for anything but GET/HEAD/OPTIONS), then the API's own scope
  check and rate limits apply; no business logic is written twice."""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote

import jwt
from litestar import Request, Response, get, post
from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie, MutableScopeHeaders
from litestar.enums import RequestEncodingType
from litestar.exceptions import HTTPException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import ASGIMiddleware
from litestar.params import Body
from litestar.response import Redirect, Template
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import handle_api_error
from api.security import Principal
from infra import mongo
from infra.keys import find_key
from infra.users import verify_user
from schemas.errors import ApiError

COOKIE = "mb_console"
RENEW_BELOW_SECONDS = 20 * 60
"""A console response renews the session (same CSRF token, 30 minutes again) once less than this is left."""
LOGIN_CSRF_COOKIE = "mb_login_csrf"
CSRF_HEADER = "x-csrf-token"
SESSION_SECONDS = 30 * 60
TOKEN_TYPE = "console"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PUBLIC = {"console_public": True}
"""``opt`` of the handlers a visitor without a session may reach (login page, static assets)."""


class LoginRequired(HTTPException):
    """No valid console session: pages redirect to the login form, other requests get a 401."""

    status_code = 401


@dataclass(frozen=True)
class ConsoleSession:
    principal: Principal
    csrf: str
    expires_at: int
    kind: str
    """``key`` or ``user``"""

    def can(self, scope: str) -> bool:
        return scope in self.principal.scopes or "admin" in self.principal.scopes

    @property
    def read_only(self) -> bool:
        return not any(self.can(s) for s in ("train", "deploy", "predict"))


def issue_session(
    secret: str, principal: Principal, kind: str, *, seconds: int = SESSION_SECONDS, csrf: str | None = None
) -> str:
    now = int(time.time())
    claims = {
        "type": TOKEN_TYPE,
        "sub": principal.key_id,
        "name": principal.name,
        "kind": kind,
        "tier": principal.tier,
        "scopes": list(principal.scopes),
        "csrf": csrf or secrets.token_urlsafe(24),
        "iat": now,
        "exp": now + seconds,
    }
    return jwt.encode(claims, secret, algorithm="HS256")


async def _current(connection: ASGIConnection[Any, Any, Any, Any], claims: dict[str, Any]) -> Principal | None:
    """The key or user behind the session as stored now (None if revoked/disabled), cached a few seconds."""
    state = connection.app.state

    async def load() -> Principal | None:
        if claims.get("kind") == "user":
            doc = await state.db[mongo.USERS].find_one({"_id": claims["name"], "disabled": False})
            return None if doc is None else Principal(claims["sub"], doc["_id"], doc["tier"], tuple(doc["scopes"]))
        doc = await state.db[mongo.API_KEYS].find_one({"_id": claims["sub"], "revoked": False})
        return None if doc is None else Principal(doc["_id"], doc["name"], doc["tier"], tuple(doc["scopes"]))

    principal: Principal | None = await state.key_cache.lookup(f"console:{claims['sub']}", load)
    return principal


async def load_session(connection: ASGIConnection[Any, Any, Any, Any]) -> ConsoleSession | None:
    """The request's console session, or None (no cookie, bad signature, expired, key revoked)."""
    cached = connection.scope.get("state", {}).get("console_session")
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    token = connection.cookies.get(COOKIE)
    if not token:
        return None
    try:
        claims = jwt.decode(
            token, connection.app.state.jwt_secret, algorithms=["HS256"], options={"require": ["exp", "sub", "type"]}
        )
    except jwt.InvalidTokenError:
        return None
    if claims.get("type") != TOKEN_TYPE or not claims.get("csrf"):
        return None
    principal = await _current(connection, claims)
    if principal is None:
        return None
    session = ConsoleSession(principal, claims["csrf"], int(claims["exp"]), claims.get("kind", "key"))
    state: dict[str, Any] = connection.scope.setdefault("state", {})  # type: ignore[assignment]
    state["console_session"] = session
    state.setdefault("principal", principal)
    return session


def csrf_ok(session: ConsoleSession, presented: str | None) -> bool:
    return bool(presented) and hmac.compare_digest(session.csrf, str(presented))


async def console_principal(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """Guard of every console handler (except those with ``opt=PUBLIC``): a valid session or the login page."""
    if handler.opt.get("console_public"):
        return
    if not connection.app.state.settings.auth_enabled:
        from api.security import ANONYMOUS

        state: dict[str, Any] = connection.scope.setdefault("state", {})  # type: ignore[assignment]
        state["console_session"] = ConsoleSession(ANONYMOUS, "anonymous", int(time.time()) + SESSION_SECONDS, "key")
        return
    if await load_session(connection) is None:
        raise LoginRequired(detail="log in at /ui/login")


def console_session(request: Request[Any, Any, Any]) -> ConsoleSession:
    """Dependency ``console``: the session checked by the guard."""
    session = request.scope.get("state", {}).get("console_session")
    if session is None:
        raise LoginRequired(detail="log in at /ui/login")
    return session  # type: ignore[no-any-return]


async def require_action(request: Request[Any, Any, Any], scope: str, csrf: str | None = None) -> ConsoleSession:
    """For a console handler that changes state: the CSRF token (``X-CSRF-Token`` header, or ``csrf`` given
    from a form field) and the scope the matching API route needs (``api.security.required_scope``).
    Raises ``ApiError`` 403 (``CSRF_FAILED`` / ``FORBIDDEN``)."""
    session = console_session(request)
    if not csrf_ok(session, csrf or request.headers.get(CSRF_HEADER)):
        raise ApiError(403, "CSRF_FAILED", "missing or wrong CSRF token; reload the page")
    if not session.can(scope):
        raise ApiError(
            403,
            "FORBIDDEN",
            f"this action needs the '{scope}' scope; the credentials have {', '.join(session.principal.scopes)}",
            required_scope=scope,
        )
    return session


async def api_principal(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    """For ``api.security.authenticate``: the console cookie as API credentials (the console's own fetches).
    Anything but GET/HEAD/OPTIONS must carry the session's CSRF token in ``X-CSRF-Token``."""
    session = await load_session(connection)
    if session is None:
        raise ApiError(401, "UNAUTHORIZED", "the console session has expired; log in again at /ui/login")
    if connection.scope.get("method", "GET") not in SAFE_METHODS and not csrf_ok(
        session, connection.headers.get(CSRF_HEADER)
    ):
        raise ApiError(403, "CSRF_FAILED", "a request with the console session needs its X-CSRF-Token header")
    return session.principal


def login_required_handler(request: Request[Any, Any, Any], exc: LoginRequired) -> Response[Any]:
    """Pages (GET) → 303 to the login form with ``next``; JSON, event streams and writes → the API's 401 body."""
    accept = request.headers.get("accept", "")
    if request.method == "GET" and "application/json" not in accept and "text/event-stream" not in accept:
        query = request.url.query
        return Redirect(f"/ui/login?next={quote(request.url.path + ('?' + query if query else ''))}", status_code=303)
    return handle_api_error(request, ApiError(401, "UNAUTHORIZED", "no console session; log in at /ui/login"))


def _secure(request: Request[Any, Any, Any]) -> bool:
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"


def _safe_next(value: str | None) -> str:
    if value and value.startswith("/ui/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/ui/jobs"


def _login_page(
    request: Request[Any, Any, Any], next_url: str, error: str | None = None, status: int = 200, mode: str = "key"
) -> Template:
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(24)
    response = Template(
        "login.html",
        context={"error": error, "next": next_url, "login_csrf": token, "mode": mode},
        status_code=status,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        path="/ui/login",
        httponly=True,
        samesite="strict",
        secure=_secure(request),
        max_age=3600,
    )
    return response


@get("/login", opt=PUBLIC, name="console:login")
async def login_form(request: Request[Any, Any, Any], next: str | None = None) -> Template:  # noqa: A002
    return _login_page(request, _safe_next(next))


@post("/login", opt=PUBLIC, status_code=200)
async def login(
    request: Request[Any, Any, Any],
    data: Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)],
) -> Response[Any]:
    next_url = _safe_next(data.get("next"))
    api_key = (data.get("api_key") or "").strip()
    username = (data.get("username") or "").strip()
    mode = "user" if username and not api_key else "key"
    sent, expected = data.get("csrf") or "", request.cookies.get(LOGIN_CSRF_COOKIE) or ""
    if not expected or not hmac.compare_digest(sent, expected):
        return _login_page(request, next_url, "The form has expired; please try again.", 403, mode)
    db = request.app.state.db
    principal: Principal | None = None
    kind = "key"
    if api_key:
        doc = await find_key(db, api_key) if len(api_key) <= 500 else None
        if doc is not None:
            principal = Principal(doc["_id"], doc["name"], doc["tier"], tuple(doc["scopes"]))
        error = "That API key is not valid."
    elif username and data.get("password"):
        user = await verify_user(db, username[:200], (data.get("password") or "")[:500])
        if user is not None:
            principal = Principal(f"user:{user['_id']}", user["_id"], user["tier"], tuple(user["scopes"]))
            kind = "user"
        error = "Wrong username or password."
    else:
        error = "Give an API key, or a username and a password."
    if principal is None:
        return _login_page(request, next_url, error, 401, mode)
    token = issue_session(request.app.state.jwt_secret, principal, kind)
    response: Response[Any] = Redirect(next_url, status_code=303)
    response.set_cookie(_session_cookie(token, _secure(request)))
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/ui/login")
    return response


@post("/logout", opt=PUBLIC, status_code=303)
async def logout(
    request: Request[Any, Any, Any],
    data: Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)],
) -> Response[Any]:
    session = await load_session(request)
    if session is not None and not csrf_ok(session, data.get("csrf")):
        raise ApiError(403, "CSRF_FAILED", "missing or wrong CSRF token; reload the page")
    request.scope.get("state", {}).pop("console_session", None)  # type: ignore[attr-defined]  # not renewed
    response: Response[Any] = Redirect("/ui/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


@get("/", name="console:home")
async def home() -> Redirect:
    return Redirect("/ui/jobs", status_code=303)


HANDLERS = [login_form, login, logout, home]


def render(template: str, console: ConsoleSession, active: str, title: str, **context: Any) -> Template:
    """A console page: ``base.html``'s nav (``active`` is a ``NAV`` key), the session (``console``: scopes for
    enabling buttons, ``console.csrf`` for forms and ``X-CSRF-Token``) and the page's own context."""
    return Template(template, context={"console": console, "active": active, "title": title, **context})


def _session_cookie(token: str, secure: bool) -> Cookie:
    return Cookie(
        key=COOKIE, value=token, path="/", httponly=True, samesite="strict", secure=secure, max_age=SESSION_SECONDS
    )


class RenewSession(ASGIMiddleware):
    """Sliding session: a console response to a session with less than ``RENEW_BELOW_SECONDS`` left carries a
    fresh cookie (same key or user, scopes as stored now, same CSRF token so open pages keep working). A tab
    left alone expires after 30 minutes; its streams then get 401 and the page says so."""

    scopes = ("http",)  # type: ignore[assignment]

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        async def send_renewed(message: Message) -> None:
            if message["type"] == "http.response.start":
                session = scope.get("state", {}).get("console_session")  # type: ignore[union-attr]
                if (
                    session is not None
                    and session.principal.key_id != "anonymous"
                    and session.expires_at - time.time() < RENEW_BELOW_SECONDS
                ):
                    app = scope["app"]  # type: ignore[index]
                    token = issue_session(app.state.jwt_secret, session.principal, session.kind, csrf=session.csrf)
                    headers = dict(scope.get("headers", []))  # type: ignore[arg-type]
                    secure = scope.get("scheme") == "https" or headers.get(b"x-forwarded-proto") == b"https"
                    name, value = _session_cookie(token, secure).to_encoded_header()
                    MutableScopeHeaders.from_message(message).add(name.decode(), value.decode("latin-1"))
            await send(message)

        await next_app(scope, receive, send_renewed)


NOT_FOUND_PAGE = """{% extends "base.html" %}{% block content %}
<section class="card"><h1>Not found</h1><p>{{ message }}</p><p><a href="/ui/jobs">Back to the jobs</a></p></section>
{% endblock %}"""


def not_found_handler(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    """A console page that does not exist (an unknown job or model): an HTML page with the nav for a browser,
    the API's JSON error body otherwise."""
    accept = request.headers.get("accept", "")
    if request.method != "GET" or "text/html" not in accept:
        return handle_api_error(request, ApiError(404, "NOT_FOUND", str(exc.detail), field=None))
    session = request.scope.get("state", {}).get("console_session")
    return Template(
        template_str=NOT_FOUND_PAGE,
        context={"console": session, "active": "", "title": "Not found", "message": exc.detail},
        status_code=404,
    )


def fmt_time(value: Any) -> str:
    """``2026-12-06T22:40:01Z`` (UTC, seconds) from a datetime or an ISO string; ``""`` for nothing."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)[:19] + "Z" if len(str(value)) >= 19 else str(value)
