"""The dashboard's aiohttp application: `create_app(settings=…, queue=…)`.

Middlewares, outermost first: security headers on every answer; error pages for people (JSON/text for
scripts); sign-in and CSRF. Only `/healthz`, `/login` and `/static/*` are served without a session; a GET
may instead carry `Authorization: Bearer <dashboard password>` (Prometheus scraping `/metrics`), but every
POST needs a session and its CSRF token.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiohttp import web

from bot.web import gallery, history, live, moderation, ops, platform_signin, signin, texts, try_prompt, usage
from bot.web.auth import Credentials, LoginLimiter, SessionStore, tokens_match
from bot.web.config import DashboardConfig
from bot.web.keys import (
    CONFIG,
    CREDENTIALS,
    LIMITER,
    NOW,
    QUEUE,
    SESSION,
    SESSION_COOKIE,
    SESSIONS,
    SETTINGS,
    TEMPLATES,
)
from bot.web.render import make_environment, render_text

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
PUBLIC_PATHS = frozenset(
    {
        "/healthz",
        "/login",
        "/favicon.ico",
        "/login/discord",
        "/login/discord/callback",
        "/login/slack",
        "/login/slack/callback",
    }
)
# What someone signed in with a platform identity may open; the rest is the operator's.
PLATFORM_USER_PREFIXES = ("/gallery", "/guild/", "/logout", "/static/")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# Everything the pages use is served from /static; inline scripts and styles are refused outright.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith("/static/")


def _wants_html(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "")
    return "text/html" in accept or (not accept.startswith("application/json") and request.path != "/metrics")


def _bearer_ok(request: web.Request) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return scheme.lower() == "bearer" and bool(token) and request.app[CREDENTIALS].check(token.strip())


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = exc
        _add_headers(request, response)
        raise
    _add_headers(request, response)
    return response


def _add_headers(request: web.Request, response: web.StreamResponse) -> None:
    if response.prepared:  # a streamed answer (CSV) already sent its headers; it set them itself
        return
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if not request.path.startswith("/static/"):
        # Pages show private data: never keep them in a shared or back-button cache.
        response.headers.setdefault("Cache-Control", "no-store")


ERROR_TITLES = {
    400: "That request was not understood",
    401: "Sign in first",
    403: "Not allowed",
    404: "Not found",
    405: "Not allowed here",
    413: "Too large",
    429: "Too many attempts",
    500: "Something went wrong",
}


@web.middleware
async def error_pages(request: web.Request, handler: Handler) -> web.StreamResponse:
    """People get a page in the dashboard's style; scripts (JSON, /metrics) keep aiohttp's plain answer."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or not _wants_html(request):
            raise
        return _error_page(request, exc)
    except Exception:
        # A bug or an unreachable database: the traceback goes to the log, the admin gets a page that says so.
        log.exception("dashboard page %s failed", request.path, extra={"action": "dashboard_error"})
        if not _wants_html(request):
            return web.Response(status=500, text="internal error: see the dashboard's log")
        return _error_page(
            request,
            web.HTTPInternalServerError(text=texts.ERROR_PAGE_FAILED),
        )


def _error_page(request: web.Request, exc: web.HTTPException) -> web.Response:
    message = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else exc.reason
    text = render_text(
        request,
        "error.html",
        status=exc.status,
        title=ERROR_TITLES.get(exc.status, exc.reason),
        message=message,
    )
    response = web.Response(text=text, status=exc.status, content_type="text/html")
    for name, value in exc.headers.items():
        if name.lower() not in ("content-type", "content-length"):
            response.headers[name] = value  # keep Retry-After, Allow, WWW-Authenticate
    return response


@web.middleware
async def require_sign_in(request: web.Request, handler: Handler) -> web.StreamResponse:
    if _is_public(request.path):
        return await handler(request)
    session = await request.app[SESSIONS].from_cookie(request.cookies.get(SESSION_COOKIE))
    if session is None:
        if request.method in SAFE_METHODS and _bearer_ok(request):
            return await handler(request)
        if request.method in SAFE_METHODS and _wants_html(request):
            raise web.HTTPFound("/login?next=" + quote(request.path_qs, safe=""))
        raise web.HTTPUnauthorized(
            text=texts.REFUSED_SIGNED_OUT,
            headers={"WWW-Authenticate": 'Bearer realm="imagine admin"'},
        )
    request[SESSION] = session
    if not session.is_operator and not request.path.startswith(PLATFORM_USER_PREFIXES):
        if request.path == "/":
            raise web.HTTPFound("/gallery")
        raise web.HTTPForbidden(text=texts.REFUSED_OPERATOR_ONLY)
    if request.method not in SAFE_METHODS:
        given = request.headers.get(CSRF_HEADER)
        if given is None:
            form = await request.post()
            value = form.get(CSRF_FIELD)
            given = value if isinstance(value, str) else None
        if not tokens_match(given, session.csrf_token):
            log.warning(
                "refused a POST to %s without a valid CSRF token from %s",
                request.path,
                request.remote,
                extra={"action": "dashboard_csrf_refused", "path": request.path},
            )
            raise web.HTTPForbidden(text=texts.REFUSED_CSRF)
    return await handler(request)


def create_app(
    *,
    settings: Any,
    queue: Any,
    config: DashboardConfig | None = None,
    now: Callable[[], datetime] | None = None,
) -> web.Application:
    """The dashboard for `queue`, configured from `settings` (or an explicit `config`, for tests).

    `queue` is the `jobs` queue the chat frontends use, so the dashboard's bans, cancels and caps follow
    the same rules as the chat admin commands. Nothing here opens or closes it: `main()` owns its life.
    """
    config = config or DashboardConfig.from_settings(settings)
    app = web.Application(
        middlewares=[security_headers, error_pages, require_sign_in], client_max_size=256 * 1024
    )
    app[CONFIG] = config
    app[SETTINGS] = settings
    app[QUEUE] = queue
    app[CREDENTIALS] = Credentials([config.password])
    app[NOW] = now or (lambda: datetime.now(UTC))
    app[SESSIONS] = SessionStore(queue, lifetime_seconds=config.session_seconds, now=app[NOW])
    app[LIMITER] = LoginLimiter(attempts=config.login_attempts, window_seconds=config.login_window_seconds)
    app[TEMPLATES] = make_environment()
    for module in (signin, platform_signin, gallery, ops, usage, history, live, moderation, try_prompt):
        app.router.add_routes(module.routes)
    app.router.add_static("/static", STATIC_DIR, append_version=False)
    return app
