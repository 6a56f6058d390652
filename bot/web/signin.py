"""Sign-in and sign-out pages."""

from __future__ import annotations

import logging

from aiohttp import web

from bot.web import texts
from bot.web.auth import new_login_token, safe_next_path, tokens_match
from bot.web.keys import CONFIG, CREDENTIALS, LIMITER, SESSION, SESSION_COOKIE, SESSIONS, SETTINGS
from bot.web.platform_signin import discord_sign_in_enabled, slack_sign_in_enabled
from bot.web.render import render

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

LOGIN_COOKIE = "imagine_login"  # double-submit CSRF token for the sign-in form (there is no session yet)


def _client(request: web.Request) -> str:
    # The peer address, never X-Forwarded-For: a header the client writes would let it pick its own bucket.
    return request.remote or "unknown"


def _login_page(request: web.Request, *, next_path: str, error: str = "", status: int = 200) -> web.Response:
    token = new_login_token()
    response = render(
        request,
        "login.html",
        status=status,
        login_token=token,
        next=next_path,
        error=error,
        discord_sign_in=discord_sign_in_enabled(request.app[SETTINGS]),
        slack_sign_in=slack_sign_in_enabled(request.app[SETTINGS]),
    )
    response.set_cookie(
        LOGIN_COOKIE,
        token,
        httponly=True,
        samesite="Strict",
        path="/login",
        secure=request.app[CONFIG].secure_cookie or request.secure,
    )
    return response


@routes.get("/login")
async def login_form(request: web.Request) -> web.StreamResponse:
    next_path = safe_next_path(request.query.get("next"))
    if await request.app[SESSIONS].from_cookie(request.cookies.get(SESSION_COOKIE)) is not None:
        raise web.HTTPFound(next_path)
    return _login_page(request, next_path=next_path)


@routes.post("/login")
async def login(request: web.Request) -> web.StreamResponse:
    limiter = request.app[LIMITER]
    client = _client(request)
    wait = limiter.retry_after(client)
    if wait > 0:
        log.warning(
            "sign-in from %s refused: too many failed attempts",
            client,
            extra={"action": "dashboard_sign_in_limited", "client": client},
        )
        raise web.HTTPTooManyRequests(
            text=texts.refused_too_many_sign_ins(int(wait) + 1),
            headers={"Retry-After": str(int(wait) + 1)},
        )
    form = await request.post()
    next_path = safe_next_path(str(form.get("next", "")))
    if not tokens_match(str(form.get("csrf_token", "")), request.cookies.get(LOGIN_COOKIE)):
        return _login_page(
            request,
            next_path=next_path,
            status=403,
            error=texts.ERROR_SIGN_IN_FORM_EXPIRED,
        )
    if not request.app[CREDENTIALS].check(str(form.get("password", ""))):
        limiter.record_failure(client)
        log.warning(
            "failed sign-in from %s", client, extra={"action": "dashboard_sign_in_failed", "client": client}
        )
        return _login_page(request, next_path=next_path, status=401, error=texts.ERROR_WRONG_PASSWORD)
    limiter.forget(client)
    config = request.app[CONFIG]
    _session, cookie = await request.app[SESSIONS].start()
    log.info("admin signed in from %s", client, extra={"action": "dashboard_signed_in", "client": client})
    response = web.HTTPFound(next_path)
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        httponly=True,
        samesite="Strict",
        secure=config.secure_cookie or request.secure,
        path="/",
        max_age=int(config.session_seconds),
    )
    response.del_cookie(LOGIN_COOKIE, path="/login")
    raise response


@routes.post("/logout")
async def logout(request: web.Request) -> web.StreamResponse:
    await request.app[SESSIONS].end(request[SESSION])
    response = web.HTTPFound("/login")
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response
