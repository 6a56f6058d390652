"""Sign in with Discord: the OAuth2 authorization code flow (scopes `identify guilds`), by authlib.

    GET /login/discord            a state in an HttpOnly cookie, then Discord's authorize page
    GET /login/discord/callback   the state checked, the code exchanged for a token (authlib), the user
                                  and their guilds read, a session started:
                                  account "discord:<user id>", grants "discord:<guild id>" for every guild
                                  where they have Manage Server (or Administrator) and the bot is installed

A platform user sees their own pictures (bot/web/gallery.py) and the pages of the servers they were
granted; the operator's password account sees everything. The grants are read at sign-in: a user who
loses Manage Server keeps the pages until the session ends (sign out, or `session_seconds`).
"""

from __future__ import annotations

import hmac
import logging
import secrets
from typing import Any

import httpx2
from aiohttp import web
from authlib.integrations.httpx_client import AsyncOAuth2Client

from bot.web import texts
from bot.web.keys import CONFIG, SESSION_COOKIE, SESSIONS, SETTINGS

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

STATE_COOKIE = "imagine_oauth_state"
STATE_SECONDS = 600
SCOPES = "identify guilds"
MANAGE_GUILD = 1 << 5
ADMINISTRATOR = 1 << 3
CALLBACK_PATH = "/login/discord/callback"


def discord_sign_in_enabled(settings: Any) -> bool:
    return bool(
        getattr(settings, "discord_application_id", None) and getattr(settings, "discord_client_secret", None)
    )


def _web_base(api_url: str) -> str:
    """https://discord.com/api/v10 → https://discord.com (the authorize page is not under /api)."""
    base, _, _ = api_url.rstrip("/").partition("/api")
    return base


def _client(request: web.Request) -> AsyncOAuth2Client:
    settings: Any = request.app[SETTINGS]
    secret = settings.discord_client_secret.get_secret_value()
    return AsyncOAuth2Client(
        client_id=str(settings.discord_application_id),
        client_secret=secret,
        scope=SCOPES,
        redirect_uri=str(request.url.origin()) + CALLBACK_PATH,
        timeout=10.0,
    )


@routes.get("/login/discord")
async def start(request: web.Request) -> web.StreamResponse:
    if not discord_sign_in_enabled(request.app[SETTINGS]):
        raise web.HTTPNotFound(text=texts.DISCORD_SIGN_IN_OFF)
    settings: Any = request.app[SETTINGS]
    state = secrets.token_urlsafe(24)
    async with _client(request) as client:
        url, _ = client.create_authorization_url(
            _web_base(settings.discord_api_url) + "/oauth2/authorize",
            state=state,
        )
    response = web.HTTPFound(url)
    # Lax, not Strict: the browser must send it on the redirect back from Discord (a top-level GET).
    response.set_cookie(
        STATE_COOKIE,
        state,
        httponly=True,
        samesite="Lax",
        secure=request.app[CONFIG].secure_cookie or request.secure,
        path=CALLBACK_PATH,
        max_age=STATE_SECONDS,
    )
    raise response


@routes.get(CALLBACK_PATH)
async def callback(request: web.Request) -> web.StreamResponse:
    settings: Any = request.app[SETTINGS]
    if not discord_sign_in_enabled(settings):
        raise web.HTTPNotFound(text=texts.DISCORD_SIGN_IN_OFF)
    expected = request.cookies.get(STATE_COOKIE, "")
    given = request.query.get("state", "")
    if not expected or not hmac.compare_digest(expected.encode(), given.encode()):
        raise web.HTTPForbidden(text=texts.REFUSED_OAUTH_STATE)
    if "code" not in request.query:
        raise web.HTTPForbidden(text=texts.refused_discord_sign_in(request.query.get("error", "no code")))
    api = settings.discord_api_url.rstrip("/")
    try:
        async with _client(request) as client:
            await client.fetch_token(api + "/oauth2/token", code=request.query["code"], state=given)
            user = (await client.get(api + "/users/@me")).raise_for_status().json()
            guilds = (await client.get(api + "/users/@me/guilds")).raise_for_status().json()
        installed = await _bot_guilds(api, settings)
    except (httpx2.HTTPError, ValueError, KeyError) as exc:
        log.warning(
            "Sign in with Discord failed: %s", exc, extra={"action": "dashboard_discord_sign_in_failed"}
        )
        raise web.HTTPBadGateway(text=texts.refused_discord_sign_in(type(exc).__name__)) from None
    managed = {
        str(guild["id"])
        for guild in guilds
        if int(guild.get("permissions", 0)) & (MANAGE_GUILD | ADMINISTRATOR) or guild.get("owner")
    }
    grants = tuple(sorted(f"discord:{guild_id}" for guild_id in managed & installed))
    name = str(user.get("global_name") or user.get("username") or user["id"])
    _session, cookie = await request.app[SESSIONS].start(
        f"discord:{user['id']}", user_name=name, grants=grants
    )
    log.info(
        "Discord user %s signed in",
        user["id"],
        extra={"action": "dashboard_discord_signed_in", "user_id": user["id"], "grants": len(grants)},
    )
    response = web.HTTPFound("/gallery")
    config = request.app[CONFIG]
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        httponly=True,
        samesite="Lax",  # arrives on the redirect from Discord; every POST still needs the CSRF token
        secure=config.secure_cookie or request.secure,
        path="/",
        max_age=int(config.session_seconds),
    )
    response.del_cookie(STATE_COOKIE, path=CALLBACK_PATH)
    raise response


async def _bot_guilds(api: str, settings: Any) -> set[str]:
    """The guilds the bot is in (its own token), where a guild admin's grant counts; none without it."""
    if settings.discord_token is None:
        return set()
    headers = {"Authorization": f"Bot {settings.discord_token.get_secret_value()}"}
    async with httpx2.AsyncClient(timeout=10.0) as http:
        answer = (await http.get(api + "/users/@me/guilds", headers=headers)).raise_for_status()
    return {str(guild["id"]) for guild in answer.json()}
